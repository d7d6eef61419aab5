"""The integration harness: real peers on loopback, the real daemon as a process.

Every test gets an Env (a temporary directory and the processes it started, all stopped at the
end): a real mosquitto on a free port (stoppable and restartable), pymodbus servers from
tests/peers/modbus_sim.py over TCP, RTU on socat pseudo-terminals, or RTU over TCP, the real
citygated, and a platform-side subscriber that decodes the protobuf payloads with the modules
generated from proto/ (build/<dir>/python).

Waiting is always for a condition with a deadline (wait_for), never a bare sleep.

Environment: CITYGATE_BUILD_DIR (default build/default) selects the binaries and the generated
Python modules.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CITYGATE_BUILD_DIR", REPO / "build" / "default")).resolve()
BIN = BUILD / "bin"
# citygatectl fits its human output to 80 columns when piped; the tests that read its content get
# whole lines (test_cli_width checks the layout at 80 columns on a pseudo-terminal).
os.environ["COLUMNS"] = "1000"
PEERS = REPO / "tests" / "peers"
sys.path.insert(0, str(BUILD / "python"))

from citygate.v1 import commands_pb2, reading_pb2, status_pb2  # noqa: E402  (generated)
import paho.mqtt.client as paho  # noqa: E402

PYTHON = "/usr/bin/python3"


def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(kind=socket.SOCK_STREAM):
    """A port free on 127.0.0.1 for TCP (and, with kind=SOCK_DGRAM, UDP), chosen below the
    kernel's ephemeral range: a port from that range can be taken, while a test's broker is down
    for an outage, by any outgoing connection, or by a reconnecting client that connects to itself
    (TCP simultaneous open), and the broker then cannot come back on it."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, low)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            if kind == socket.SOCK_STREAM:
                s.listen(1)  # a port free for listening, not just for binding
            return port
    raise RuntimeError(f"no free port in 10000..{low - 1} on 127.0.0.1")


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_on(cond, predicate, timeout, what="condition", said=lambda: ""):
    """Like wait_for, for a predicate over state that a thread changes under `cond` (a
    threading.Condition it notifies): waits on the condition, not on a sleep."""
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}{said()}")
            cond.wait(min(left, 0.2))


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class Process:
    """A child process with its output in a log file."""

    def __init__(self, env, name, argv, cwd=None, extra_env=None):
        self.env = env
        self.name = name
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.extra_env = extra_env or {}
        self.log_path = env.path(f"{name}.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        e = dict(os.environ)
        e.update(self.extra_env)
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=e,
                                     start_new_session=True)
        log.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL if it does not go; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Broker:
    """A real mosquitto on 127.0.0.1, optionally with a TLS listener."""

    def __init__(self, env, port=None, tls=None, conf=()):
        self.env = env
        self.port = port or free_port()
        self.tls = tls  # dict(ca=, cert=, key=, require_certificate=bool)
        self.dir = env.path(f"mosquitto-{self.port}")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = [
            "user root",
            "persistence true",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 100000",
            "log_type error",
            "log_type warning",
        ]
        if tls:
            lines += [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}",
                      f"require_certificate {'true' if tls.get('require_certificate') else 'false'}"]
        for line in conf:  # later lines win: e.g. allow_anonymous false, password_file, acl_file
            key = line.split()[0]
            lines = [x for x in lines if x.split()[0] != key] + [line]
        Path(self.conf).write_text("\n".join(lines) + "\n")
        self.process = None

    def start(self):
        self.process = Process(self.env, f"mosquitto-{self.port}", ["mosquitto", "-c", self.conf]).start()
        wait_for(lambda: port_open(self.port) or not self.process.running(), 10, what="mosquitto to listen")
        if not self.process.running():
            raise RuntimeError("mosquitto did not start:\n" + self.process.log())
        return self

    def stop(self):
        if self.process:
            self.process.stop()
            wait_for(lambda: not port_open(self.port), 10, what="mosquitto to stop")

    def kill(self):
        if self.process:
            self.process.kill()

    @property
    def uri(self):
        return f"{'ssl' if self.tls else 'tcp'}://127.0.0.1:{self.port}"


class ModbusSim:
    """tests/peers/modbus_sim.py: a pymodbus server (TCP, RTU on a pty, or RTU over TCP)."""

    def __init__(self, env, units, transport="tcp", name=None, baudrate=19200):
        self.env = env
        self.name = name or f"modbus-{len(env.processes)}"
        self.units = units
        self.transport = transport
        self.stats_path = env.path(f"{self.name}.stats.json")
        self.ready_path = env.path(f"{self.name}.ready")
        spec = {"units": units, "stats": self.stats_path, "ready": self.ready_path}
        if transport == "tcp":
            self.port = free_port()
            spec["tcp"] = {"host": "127.0.0.1", "port": self.port}
        elif transport == "rtu_over_tcp":
            self.port = free_port()
            spec["rtu_over_tcp"] = {"host": "127.0.0.1", "port": self.port}
        elif transport == "rtu":
            self.device, server_side = env.pty_pair(self.name)
            spec["serial"] = {"port": server_side, "baudrate": baudrate}
        else:
            raise ValueError(transport)
        self.spec = spec
        self.spec_path = env.path(f"{self.name}.json")
        self.process = None

    def write_spec(self):
        Path(self.spec_path).write_text(json.dumps(self.spec))

    def start(self):
        self.write_spec()
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        self.process = Process(self.env, self.name, [PYTHON, PEERS / "modbus_sim.py", self.spec_path]).start()
        wait_for(lambda: os.path.exists(self.ready_path) or not self.process.running(), 20,
                 what=f"{self.name} to be ready")
        if not self.process.running():
            raise RuntimeError(f"{self.name} did not start:\n" + self.process.log())
        return self

    def stop(self):
        if self.process:
            self.process.stop()

    def stats(self):
        try:
            return json.loads(Path(self.stats_path).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def requests(self, unit):
        return self.stats().get(str(unit), {}).get("requests", 0)


class Gateway:
    """The real citygated, configured by a text-format config written to the temp dir."""

    def __init__(self, env, config_text, name="citygated", binary=None, log_level="debug"):
        self.env = env
        self.name = name
        self.config_path = env.path(f"{name}.textproto")
        Path(self.config_path).write_text(config_text)
        self.binary = binary or BIN / "citygated"
        self.log_level = log_level
        self.process = None

    def start(self):
        self.process = Process(self.env, self.name,
                               [self.binary, "--config", self.config_path, "--log-level", self.log_level]).start()
        return self

    def wait_log(self, text, timeout=15):
        wait_for(lambda: text in self.log() or not self.process.running(), timeout, what=f"'{text}' in the log")
        if text not in self.log():
            raise AssertionError(f"citygated exited ({self.process.proc.returncode}) before '{text}':\n{self.log()}")

    def stop(self, timeout=10):
        return self.process.stop(timeout) if self.process else None

    def kill(self):
        if self.process:
            self.process.kill()

    def log(self):
        return self.process.log() if self.process else ""


class Subscriber:
    """The platform: subscribes to <prefix>/<gateway>/# at QoS 1 with a persistent session and
    decodes every payload. Thread-safe; wait_for() blocks on a condition variable."""

    def __init__(self, broker, gateway_id, prefix="citygate/v1", client_id=None, tls=None, username=None,
                 password=None):
        self.broker = broker
        self.root = f"{prefix}/{gateway_id}"
        self.cond = threading.Condition()
        self.readings = []      # every Reading, in arrival order (duplicates kept)
        self.batches = []       # ReadingBatch
        self.status = []        # GatewayStatus (retained and live)
        self.health = []        # GatewayHealth
        self.results = []       # CommandResult (.../cmd/result)
        self.audits = []        # AuditRecord (.../audit)
        self.arrivals = []      # (monotonic time, seq)
        self.connected = False
        self.client = paho.Client(client_id=client_id or f"platform-{os.getpid()}-{id(self)}", clean_session=False)
        if tls:
            self.client.tls_set(ca_certs=tls["ca"], certfile=tls.get("cert"), keyfile=tls.get("key"))
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)

    def start(self):
        self.client.connect_async("127.0.0.1", self.broker.port, keepalive=10)
        self.client.loop_start()
        self.wait_for(lambda: self.connected, 15, "the subscriber to connect")
        return self

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, rc):
        if rc == 0:
            client.subscribe(self.root + "/#", qos=1)
            with self.cond:
                self.connected = True
                self.cond.notify_all()

    def _on_disconnect(self, client, userdata, rc):
        with self.cond:
            self.connected = False
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        leaf = msg.topic.rsplit("/", 1)[-1]
        now = time.monotonic()
        with self.cond:
            if leaf == "readings":
                b = reading_pb2.ReadingBatch()
                b.ParseFromString(msg.payload)
                self.batches.append(b)
                for r in b.readings:
                    self.readings.append(r)
                    self.arrivals.append((now, r.seq))
            elif leaf == "status":
                s = status_pb2.GatewayStatus()
                s.ParseFromString(msg.payload)
                self.status.append(s)
            elif leaf == "health":
                h = status_pb2.GatewayHealth()
                h.ParseFromString(msg.payload)
                self.health.append(h)
            elif msg.topic.endswith("/cmd/result"):
                r = commands_pb2.CommandResult()
                r.ParseFromString(msg.payload)
                self.results.append(r)
            elif leaf == "audit":
                a = commands_pb2.AuditRecord()
                a.ParseFromString(msg.payload)
                self.audits.append(a)
            self.cond.notify_all()

    def command(self, cmd):
        """Publishes a citygate.v1.Command on <root>/cmd at QoS 1, as the platform does."""
        info = self.client.publish(self.root + "/cmd", cmd.SerializeToString(), qos=1)
        info.wait_for_publish(10)

    def results_for(self, request_id):
        with self.cond:
            return [r for r in self.results if r.request_id == request_id]

    def wait_for(self, predicate, timeout, what="condition"):
        return wait_on(self.cond, predicate, timeout, what)

    def of(self, sensor_id):
        with self.cond:
            return [r for r in self.readings if r.sensor_id == sensor_id]

    def seqs(self):
        with self.cond:
            return [r.seq for r in self.readings]


class Env:
    """A test's temporary world. Use as a context manager, or call close()."""

    def __init__(self, name="citygate"):
        self.dir = tempfile.mkdtemp(prefix=f"cg-{name}-")
        self.processes = []
        self.subscribers = []
        self.ptys = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _track(self, p):
        self.processes.append(p)
        return p

    def broker(self, tls=None, port=None, conf=()):
        b = Broker(self, port=port, tls=tls, conf=conf)
        self._track(b)
        return b.start()

    def modbus(self, units, transport="tcp", name=None, start=True, baudrate=19200):
        m = ModbusSim(self, units, transport, name, baudrate)
        self._track(m)
        return m.start() if start else m

    def gateway(self, config_text, name="citygated", start=True, **kw):
        g = Gateway(self, config_text, name, **kw)
        self._track(g)
        return g.start() if start else g

    def subscriber(self, broker, gateway_id, **kw):
        s = Subscriber(broker, gateway_id, **kw).start()
        self.subscribers.append(s)
        return s

    def pty_pair(self, name):
        """Two linked pseudo-terminals (socat): the gateway opens one end, the simulator the other."""
        a = self.path(f"{name}.ttyA")
        b = self.path(f"{name}.ttyB")
        p = Process(self, f"socat-{name}", ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"]).start()
        self.ptys.append(p)
        wait_for(lambda: os.path.exists(a) and os.path.exists(b), 10, what="socat ptys")
        return a, b

    def close(self, inspect=None):
        """Stops every process; `inspect` runs after they stopped and before the files go."""
        for s in self.subscribers:
            try:
                s.stop()
            except Exception:
                pass
        for p in reversed(self.processes):
            try:
                p.stop() if not isinstance(p, Broker) else p.process and p.process.stop()
            except Exception:
                pass
        for p in self.ptys:
            p.stop()
        if inspect:
            inspect()
        if os.environ.get("CITYGATE_KEEP_TMP"):
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def gateway_config(gateway_id, broker_uri, env, buses="", extra="", mqtt_extra="", spool_extra=""):
    """A minimal config text; `buses` and `extra` are appended verbatim. `broker_uri` may be a
    list: brokers in failover order."""
    uris = ", ".join(f'"{u}"' for u in ([broker_uri] if isinstance(broker_uri, str) else broker_uri))
    # Defaults for tests; a setting in `mqtt_extra` replaces its default.
    mqtt_defaults = "".join(f"  {k}: {v}\n" for k, v in (("max_batch_readings", 50), ("max_batch_delay_ms", 100),
                                                         ("reconnect_min_ms", 200), ("reconnect_max_ms", 2000))
                            if f"{k}:" not in mqtt_extra)
    return f"""
gateway_id: "{gateway_id}"
location {{ lat: 47.05 lon: 8.31 }}
mqtt {{
  uri: [{uris}]
{mqtt_defaults}  {mqtt_extra}
}}
control {{ socket: "{env.path('control.sock')}" }}
runtime_dir: "{env.path('run')}"
health_interval_s: 1
spool {{ dir: "{env.path('spool')}" {spool_extra} }}
{buses}
{extra}
"""


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class IntegrationTest(unittest.TestCase):
    """Base class: self.env is a fresh Env; on failure the daemon's log is printed."""

    def setUp(self):
        self.env = Env(self.id().rsplit(".", 1)[-1])

    def tearDown(self):
        failed = False
        outcome = getattr(self, "_outcome", None)
        if outcome is not None:
            result = getattr(outcome, "result", None)
            errors = getattr(result, "errors", []) + getattr(result, "failures", [])
            failed = any(test is self for test, _ in errors)
        if failed:
            for p in self.env.processes:
                if isinstance(p, Gateway):
                    print(f"\n----- {p.name} log -----\n{p.log()[-6000:]}", file=sys.stderr)
        # Under the asan preset a sanitizer report (also the leak check at exit) fails the test.
        reports = []

        def inspect():
            for p in self.env.processes:
                if isinstance(p, Gateway):
                    log = p.log()
                    for marker in SANITIZER_MARKERS:
                        if marker in log:
                            at = log.index(marker)
                            reports.append(f"{p.name}: {log[max(0, at - 200):at + 3000]}")
                            break

        self.env.close(inspect)
        if reports:
            self.fail("sanitizer report in the daemon's log:\n" + "\n".join(reports))
