"""Server processes for the harness: spawn them so they die with us, kill them, wait until ready.

Invariant: no server outlives the process that started it (unless spawned `detached`, for a
server restarted on behalf of a `python -m tests.harness up` process that owns it). Every server
runs in its own process group (a terminal's Ctrl-C reaches the test runner, which tears down in
order) and is spawned through `setpriv --pdeathsig KILL`, so even a SIGKILLed test run leaves
nothing behind. The death signal fires when the *thread* that forked the child exits, so every
spawn happens on one long-lived daemon thread, never on a short-lived executor thread a test
may call us from. No Python runs in the forked child (no `preexec_fn`): there CPython tears down
the other threads' state, and a destructor that waits on a thread the child does not have
(PyAV's per-thread swscale context, kept by any thread that converted a frame) hangs the spawn.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 60.0  # seconds for every server of one start to accept connections
KILL_TIMEOUT = 10.0


def which(name: str, package: str) -> str:
    """The path of binary `name`, or a RuntimeError naming the package that provides it."""
    # mariadbd lives in /usr/sbin, which a non-root PATH may lack.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name, path=path)
    if not found:
        raise RuntimeError(f"`{name}` not found: install {package} (`make deps` does it on Debian/Ubuntu)")
    return found


# --- spawning ----------------------------------------------------------------------------

_spawn_queue: queue.Queue = queue.Queue()
_spawn_thread: threading.Thread | None = None
_spawn_thread_lock = threading.Lock()


def _spawner_loop() -> None:
    while True:
        fn, box, done = _spawn_queue.get()
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed back to the caller's thread
            box.append((False, exc))
        done.set()


def _on_spawner_thread(fn):
    global _spawn_thread
    with _spawn_thread_lock:
        if _spawn_thread is None:
            _spawn_thread = threading.Thread(target=_spawner_loop, name="taogram-harness-spawner", daemon=True)
            _spawn_thread.start()
    box: list = []
    done = threading.Event()
    _spawn_queue.put((fn, box, done))
    done.wait()
    ok, value = box[0]
    if not ok:
        raise value
    return value


@dataclass
class Server:
    """One server process: how to start it, where it listens and logs, and its current pid."""

    kind: str  # "mysql" | "memcached" | "s3" | "redis"
    argv: list[str]
    port: int
    log: str
    pid: int = 0
    proc: subprocess.Popen | None = None

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_alive(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _thread_states(pid: int) -> list[str]:
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            states.append(stat.read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            pass  # a thread that just exited
    return states


def pid_alive(pid: int) -> bool:
    """True while any thread of `pid` runs. A zombie leader is not enough to call it dead: its
    other threads may still be exiting, holding the listening socket and file locks."""
    return pid > 0 and any(state not in ("Z", "X") for state in _thread_states(pid))


def set_stopped(server: Server, stopped: bool) -> None:
    """SIGSTOP or SIGCONT `server` and return once every one of its threads is (no longer)
    stopped: signals are delivered asynchronously, and a "paused" server that still answers
    the next request would make a fault test pass or fail by luck."""
    os.kill(server.pid, signal.SIGSTOP if stopped else signal.SIGCONT)
    deadline = time.monotonic() + KILL_TIMEOUT
    while True:
        states = _thread_states(server.pid)
        if not states or all((state in ("T", "t")) == stopped for state in states):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.kind} pid {server.pid} threads still in states {states} "
                               f"{KILL_TIMEOUT}s after {'SIGSTOP' if stopped else 'SIGCONT'}")
        time.sleep(0.001)


def spawn(server: Server, *, detached: bool) -> None:
    """Start `server`; output goes to its log. Detached servers outlive us (see the docstring)."""
    def popen() -> subprocess.Popen:
        with open(server.log, "ab") as log:
            if detached:  # outlives us; whoever owns the JSON description stops it
                return subprocess.Popen(server.argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            # setpriv sets PR_SET_PDEATHSIG=SIGKILL and execs the server (same pid, its own argv).
            die_with_us = [which("setpriv", "util-linux"), "--pdeathsig", "KILL", "--"]
            return subprocess.Popen([*die_with_us, *server.argv], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, process_group=0)
    server.proc = _on_spawner_thread(popen)
    server.pid = server.proc.pid


def kill(server: Server) -> None:
    """SIGKILL `server` if it runs, and return once it is dead (its port and files released)."""
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(KILL_TIMEOUT)
    elif server.proc is None and pid_alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_TIMEOUT
        while pid_alive(server.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.kind} pid {server.pid} survived SIGKILL for {KILL_TIMEOUT}s")
            time.sleep(0.01)


# --- readiness ---------------------------------------------------------------------------

def _mysql_ready(server: Server) -> bool:
    import pymysql  # imported late: benchmarks that start no MariaDB need not have it

    try:
        conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", password="",
                               connect_timeout=1, read_timeout=2, write_timeout=2)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except (pymysql.err.MySQLError, OSError):  # refused, reset, or still in crash recovery
        return False


def _memcached_ready(server: Server) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
            sock.sendall(b"version\r\n")
            return sock.recv(64).startswith(b"VERSION")
    except OSError:
        return False


def _s3_ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def _redis_ready(server: Server) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


READY = {"mysql": _mysql_ready, "memcached": _memcached_ready, "s3": _s3_ready, "redis": _redis_ready}


def wait_ready(servers: list[Server], timeout: float = START_TIMEOUT) -> None:
    """Return once every server accepts connections; raise with the log tail if one dies or times out."""
    pending = list(servers)
    deadline = time.monotonic() + timeout
    while pending:
        for server in list(pending):
            if not server.alive():
                raise RuntimeError(f"{server.kind} on port {server.port} exited while starting "
                                   f"(argv: {' '.join(server.argv)}); log tail:\n{server.log_tail()}")
            if READY[server.kind](server):
                pending.remove(server)
        if pending and time.monotonic() > deadline:
            s = pending[0]
            raise RuntimeError(f"{s.kind} on port {s.port} did not accept connections within "
                               f"{timeout:.0f}s; log tail ({s.log}):\n{s.log_tail()}")
        if pending:
            time.sleep(0.05)


# --- ports -------------------------------------------------------------------------------

_taken_ports: set[int] = set()


def _port_range() -> tuple[int, int]:
    """[start, stop) for `free_port`: 20000 up to the ephemeral range. A pytest-xdist worker
    (PYTEST_XDIST_WORKER=gw<i> of PYTEST_XDIST_WORKER_COUNT) draws from its own slice, so the
    run's workers, which start their servers at the same moment, never pick one port twice:
    a port is only probed here, and another process may bind it before our server does."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    start, stop = 20000, max(low, 20001)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    try:
        index, count = int(worker.removeprefix("gw")), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        return start, stop
    if count > 1 and 0 <= index < count and (stop - start) // count >= 100:
        size = (stop - start) // count
        start, stop = start + index * size, start + (index + 1) * size
    return start, stop


def free_port() -> int:
    """A free loopback port below the ephemeral range, so no client socket can take it while
    a killed server waits to be restarted on it."""
    start, stop = _port_range()
    for _ in range(200):
        port = random.randrange(start, stop)
        if port in _taken_ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken_ports.add(port)
        return port
    raise RuntimeError("no free loopback port found in 200 tries")
