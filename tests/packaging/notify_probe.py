#!/usr/bin/python3
"""Plays systemd's part of Type=notify for one daemon run, where no systemd runs (containers, CI).

    notify_probe.py --user USER -- PROGRAM ARGS...

Binds a datagram socket, starts PROGRAM (as USER, through setpriv) with NOTIFY_SOCKET,
WATCHDOG_USEC=2000000 and WATCHDOG_PID set as systemd sets them, and checks, each with a
deadline: READY=1 arrives, then WATCHDOG=1 keep-alives (the daemon pings at half WATCHDOG_USEC),
SIGHUP leaves it running, and SIGTERM ends it with exit 0 after STOPPING=1.
Prints one line per check; exit 0 when all passed.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

WATCHDOG_USEC = 2_000_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", default=None)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    argv = args.argv[1:] if args.argv and args.argv[0] == "--" else args.argv

    tmp = tempfile.mkdtemp(prefix="cg-notify-")
    os.chmod(tmp, 0o755)
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o777)  # the daemon runs as another user, as under systemd

    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    # WATCHDOG_PID must be the daemon's own pid: exec through a shell that sets it to $$.
    inner = 'export WATCHDOG_PID=$$; exec "$@"'
    cmd = ["/bin/sh", "-c", inner, "sh"] + argv
    if args.user:
        cmd = ["setpriv", f"--reuid={args.user}", f"--regid={args.user}", "--init-groups", "--"] + cmd
    log_path = os.path.join(tmp, "daemon.log")
    with open(log_path, "wb") as log:  # a file, not a pipe: a chatty daemon must never block on it
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    failures = 0
    messages = []

    def result(ok, what):
        nonlocal failures
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures += 1

    def wait_message(pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
            try:
                data = sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            messages.append(data)
            if pred(data):
                return data
        return None

    t0 = time.monotonic()
    ready = wait_message(lambda m: "READY=1" in m.split("\n"), args.timeout)
    result(ready is not None, f"READY=1 after {time.monotonic() - t0:.2f} s")
    if ready is not None:
        # Two keep-alives within 2 x WATCHDOG_USEC: the timer keeps firing.
        w1 = wait_message(lambda m: m == "WATCHDOG=1", WATCHDOG_USEC / 1e6 * 2)
        w2 = wait_message(lambda m: m == "WATCHDOG=1", WATCHDOG_USEC / 1e6 * 2) if w1 else None
        result(w2 is not None, "WATCHDOG=1 keep-alives at half WATCHDOG_USEC")
        proc.send_signal(signal.SIGHUP)
        w3 = wait_message(lambda m: m == "WATCHDOG=1", WATCHDOG_USEC / 1e6 * 2)
        result(w3 is not None and proc.poll() is None, "still running (and pinging) after SIGHUP")
        proc.send_signal(signal.SIGTERM)
        stopping = wait_message(lambda m: "STOPPING=1" in m, 10)
        result(stopping is not None, "STOPPING=1 on SIGTERM")
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    result(rc == 0, f"exit status {rc} after SIGTERM")
    with open(log_path, "rb") as f:
        out = f.read().decode(errors="replace")
    if failures:
        print("----- daemon output -----\n" + out[-4000:], file=sys.stderr)
        print("----- notify messages -----\n" + repr(messages[-10:]), file=sys.stderr)
    sock.close()
    os.unlink(path)
    os.unlink(log_path)
    os.rmdir(tmp)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
