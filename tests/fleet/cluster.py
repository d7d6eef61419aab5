"""A three-node RabbitMQ 3.10 cluster on loopback, with the MQTT plugin, in a temporary directory.

Debian's rabbitmq-server run directly (/usr/lib/rabbitmq/bin/rabbitmq-server, not the /usr/sbin
wrapper that switches user), as /work/shared/reference/toolchain.md "A three-node RabbitMQ
cluster on loopback" describes: one Erlang cookie, an epmd of our own on a free port (so nothing
of another cluster on the machine is touched, and it is stopped with the cluster), free ports for
AMQP, MQTT and Erlang distribution, `mqtt.durable_queue_type = quorum` (or classic) written before
any session exists.

Every node runs in its own session (process group); a node is stopped in the scenario with
`rabbitmqctl stop` (Node.stop) or SIGKILL (Node.kill); Cluster.stop() kills every node's group and
the epmd, and is safe to call more than once.
"""
import json
import os
import signal
import subprocess
import time

from harness import port_open  # tests/integration (fleet.py puts it on the path)
from pathlib import Path

RMQ_BIN = Path("/usr/lib/rabbitmq/bin")
# Idle Erlang schedulers must not spin on a 2-core machine.
ERL_ARGS = "-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"


class Node:
    def __init__(self, cluster, index, ports):
        self.cluster = cluster
        self.index = index  # 1-based
        self.name = f"{cluster.prefix}n{index}@localhost"
        self.amqp_port, self.mqtt_port, self.dist_port = ports
        self.dir = cluster.dir / f"node{index}"
        self.proc = None
        self.log_path = self.dir / "stdout.log"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "mnesia").mkdir(exist_ok=True)
        (self.dir / "log").mkdir(exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text("\n".join([
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}",
            "mqtt.allow_anonymous = true",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            f"mqtt.durable_queue_type = {cluster.queue_type}",
            "loopback_users = none",
            "log.file.level = info",
            "log.console = false",
            # A 20 s outage must not be taken for a partition to heal by hand.
            "cluster_partition_handling = ignore",
        ]) + "\n")
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")

    @property
    def mqtt_uri(self):
        return f"tcp://127.0.0.1:{self.mqtt_port}"

    def env(self):
        e = dict(os.environ)
        e.update(self.cluster.base_env())
        e.update({
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
        })
        return e

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(RMQ_BIN / "rabbitmq-server")], stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env(), cwd=self.dir, start_new_session=True)
        log.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def ctl(self, *args, timeout=120, check=True):
        r = subprocess.run([str(RMQ_BIN / "rabbitmqctl"), "-n", self.name, *args], env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.name} {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def await_startup(self, timeout=180, ctl=False):
        """Waits for the MQTT listener, which opens at the end of the boot (and, with ctl, for
        rabbitmqctl await_startup first: each call boots an Erlang VM, seconds on 2 cores)."""
        deadline = time.monotonic() + timeout
        while ctl:
            if not self.running():
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.tail()}")
            try:
                r = self.ctl("await_startup", "--timeout", "60", timeout=90, check=False)
                if r.returncode == 0:
                    break
            except subprocess.TimeoutExpired as e:
                r = subprocess.CompletedProcess(e.cmd, 1, str(e.stdout or ""), str(e.stderr or ""))
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start in {timeout} s:\n{r.stdout}{r.stderr}\n{self.tail()}")
            time.sleep(0.5)
        # The MQTT listener opens at the end of the boot; wait for it too.
        while not port_open(self.mqtt_port):
            if not self.running():
                raise RuntimeError(f"{self.name} exited during start-up:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: MQTT port {self.mqtt_port} never opened")
            time.sleep(0.05)

    def stop(self, timeout=60):
        """Graceful stop (rabbitmqctl stop closes every client connection); SIGKILL if it hangs."""
        if not self.running():
            return
        try:
            self.ctl("stop", timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, n=4000):
        out = ""
        for p in [self.log_path, *sorted((self.dir / "log").glob("*.log"))]:
            try:
                out += f"--- {p.name}\n" + p.read_text(errors="replace")[-n:]
            except FileNotFoundError:
                pass
        return out

    def log_files(self):
        return sorted((self.dir / "log").glob("*.log"))


class Cluster:
    def __init__(self, directory, ports, queue_type="quorum", nodes=3):
        """ports: a function returning a free TCP port each call."""
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.queue_type = queue_type
        self.prefix = f"fleet{os.getpid()}"
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(os.urandom(16).hex().upper())
        cookie.chmod(0o400)
        self.epmd_port = ports()
        self.epmd = None
        self.names = [f"{self.prefix}n{i + 1}@localhost" for i in range(nodes)]
        self.nodes = [Node(self, i + 1, (ports(), ports(), ports())) for i in range(nodes)]

    def base_env(self):
        return {"HOME": str(self.home), "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.epmd_port),
                "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def start(self):
        """Starts every node, clusters nodes 2.. with node 1; returns the seconds it took."""
        t0 = time.monotonic()
        # The cluster's own epmd, a child of ours (not a daemon a node would start and leave
        # behind: `epmd -kill` refuses while a killed node is still registered).
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                     env={**os.environ, **self.base_env()}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while not port_open(self.epmd_port):
            if self.epmd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"epmd did not start on port {self.epmd_port}")
            time.sleep(0.05)
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.await_startup()
        # One node at a time, as the recipe says: nodes booted together with peer discovery form
        # the MQTT plugin's client-id tracker (a Ra cluster) with one member, and the cluster's MQTT
        # then dies with that node (seen: a restarted first node never finished booting).
        for n in self.nodes[1:]:
            n.ctl("stop_app")
            n.ctl("join_cluster", self.nodes[0].name)
            n.ctl("start_app")
            n.await_startup()
        self.await_running(set(self.names), timeout=120)
        return time.monotonic() - t0

    def running_nodes(self, via=None):
        node = via or next(n for n in self.nodes if n.running())
        out = node.ctl("cluster_status", "--formatter", "json", timeout=60, check=False).stdout
        try:
            return set(json.loads(out).get("running_nodes", []))
        except ValueError:
            return set()

    def await_running(self, names, timeout=120):
        """Until the cluster reports exactly `names` running (a restarted node has rejoined)."""
        deadline = time.monotonic() + timeout
        while True:
            running = self.running_nodes()
            if running == set(names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster: running {sorted(running)}, expected {sorted(names)}")
            time.sleep(0.5)

    def stop(self):
        """Tear-down: SIGKILL of every node's process group (its data is thrown away with the
        temporary directory; a graceful stop of three nodes takes 30 s to 90 s on 2 busy cores),
        then the cluster's epmd."""
        for n in self.nodes:
            n.kill()
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.kill()
            self.epmd.wait(10)

    @property
    def uris(self):
        return [n.mqtt_uri for n in self.nodes]
