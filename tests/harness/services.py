"""The `Services` handle: which servers run where, and the faults a test can inject into them.

`start_services()` copies an initialised MariaDB datadir (built once per MariaDB version, see
`_mariadb_template`) for each MariaDB, picks free loopback ports, starts every server at once
and waits until all accept connections. `attach_services()` rebuilds the handle from the JSON
an `up` process wrote (see `tests/harness/__main__.py`); its restarts are detached from the test
run and recorded back in that JSON, so the `up` process still owns, and stops, every server.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.processes import Server, free_port, kill, pid_alive, set_stopped, spawn, wait_ready, which

DEFAULT_JSON = Path(tempfile.gettempdir()) / "taogram-services.json"
# A RAM disk for the test servers' data when it has this much room (see `scratch_dir`).
SHM_DIR = Path("/dev/shm")
SHM_MIN_FREE = 4 << 30

# Both mariadb-install-db (for the template datadir) and mariadbd get these, so a copied
# template matches the server that opens it.
MARIADB_COMMON_OPTS = ["--innodb-log-file-size=32M"]
MARIADB_OPTS = [
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--innodb-buffer-pool-size=128M",
    "--innodb-buffer-pool-load-at-startup=0",
    # At commit the redo log is written to the OS (write(2)) and fsync'd about once a second.
    # A SIGKILLed mariadbd loses nothing the kernel already holds, so every committed
    # transaction survives kill_mysql(); only an OS crash could lose the last second, which a
    # throwaway test server does not care about. Commits stay cheap (no fsync per commit).
    "--innodb-flush-log-at-trx-commit=2",
    "--max-connections=500",
    "--skip-log-bin",
    # --no-defaults would otherwise leave latin1 as the server default; the store keeps UTF-8.
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
]


@dataclass
class MySQLEndpoint:
    host: str
    port: int
    user: str = "root"
    password: str = ""
    unix_socket: str = ""


def scratch_dir() -> Path:
    """Where the tests' servers keep their data: `TAOGRAM_TEST_TMPDIR` when set, else /dev/shm
    (a tmpfs) when it is writable with `SHM_MIN_FREE` free, else the system temp dir.

    Every test migrates fresh databases (eight MariaDB schemas of eight tables, or eight SQLite
    files): on a disk, each CREATE TABLE creates and fsyncs a file and each SQLite commit
    fsyncs its journal, a third of the suite's time on a virtual disk; on a tmpfs they cost
    nothing. Nothing the tests check depends on durability across an OS crash (a SIGKILLed
    server still recovers from what the kernel holds). Benchmarks keep the system temp dir
    (`start_services()`'s default), so their figures stay comparable."""
    chosen = os.environ.get("TAOGRAM_TEST_TMPDIR")
    if chosen:
        return Path(chosen)
    try:
        st = os.statvfs(SHM_DIR)
        if os.access(SHM_DIR, os.W_OK | os.X_OK) and st.f_bavail * st.f_frsize >= SHM_MIN_FREE:
            return SHM_DIR
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _mariadb_template(parent: Path | None = None) -> Path:
    """An initialised datadir, built once per MariaDB version (under `parent`, the system temp
    dir by default) and copied for every server."""
    mariadbd = which("mariadbd", "mariadb-server")
    install_db = which("mariadb-install-db", "mariadb-server")
    version = subprocess.run([mariadbd, "--version"], capture_output=True, text=True, check=True).stdout
    tag = hashlib.sha1((version + " ".join(MARIADB_COMMON_OPTS)).encode()).hexdigest()[:12]
    template = (parent or Path(tempfile.gettempdir())) / f"taogram-mariadb-template-{tag}"
    if (template / ".complete").exists():
        return template
    with open(f"{template}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if (template / ".complete").exists():
            return template
        building = Path(f"{template}.building")
        shutil.rmtree(building, ignore_errors=True)
        user = ["--user=root"] if os.geteuid() == 0 else []
        argv = [install_db, "--no-defaults", "--auth-root-authentication-method=normal",
                f"--datadir={building}", "--skip-test-db", *user, *MARIADB_COMMON_OPTS]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        (building / ".complete").touch()
        shutil.rmtree(template, ignore_errors=True)
        building.rename(template)
    return template


def extra_args(variable: str) -> list[str]:
    """Options added to a server's command line from the environment (`TAOGRAM_MARIADB_ARGS`,
    `TAOGRAM_MEMCACHED_ARGS`), for a benchmark that tries a setting side by side; the tests set none."""
    return shlex.split(os.environ.get(variable, ""))


def _mysql_server(root: Path, i: int) -> Server:
    datadir = root / f"mysql{i}"
    shutil.copytree(_mariadb_template(root.parent), datadir, ignore=shutil.ignore_patterns(".complete"))
    port = free_port()
    log = root / f"mysql{i}.log"
    user = ["--user=root"] if os.geteuid() == 0 else []
    argv = [which("mariadbd", "mariadb-server"), "--no-defaults", *user, f"--datadir={datadir}",
            f"--socket={root}/mysql{i}.sock", f"--port={port}", f"--pid-file={root}/mysql{i}.pid",
            f"--log-error={log}", f"--tmpdir={root}", *MARIADB_COMMON_OPTS, *MARIADB_OPTS,
            *extra_args("TAOGRAM_MARIADB_ARGS")]
    return Server("mysql", argv, port, str(log))


def _memcached_server(root: Path, i: int) -> Server:
    port = free_port()
    user = ["-u", "root"] if os.geteuid() == 0 else []  # memcached refuses to run as root without -u
    argv = [which("memcached", "memcached"), *user, "-l", "127.0.0.1", "-p", str(port), "-m", "64", "-c", "1024",
            *extra_args("TAOGRAM_MEMCACHED_ARGS")]
    return Server("memcached", argv, port, str(root / f"memcached{i}.log"))


def _redis_server(root: Path) -> Server:
    port = free_port()
    # No persistence and no config file: a throwaway pub/sub broker. Killing it loses nothing
    # the store has (the real-time streams live in the store; Redis only says "look").
    argv = [which("redis-server", "redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(root), "--protected-mode", "no",
            "--logfile", str(root / "redis.log")]
    return Server("redis", argv, port, str(root / "redis.log"))


def _s3_server(root: Path) -> Server:
    # find_spec, not import: importing moto here would cost seconds the server pays anyway.
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise RuntimeError("moto's S3 server is missing: pip install 'moto[server]' (`make venv` does it)")
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return Server("s3", argv, port, str(root / "s3.log"))


# --- the handle --------------------------------------------------------------------------

_live: list[Services] = []


class Services:
    """Addresses of running servers and their fault controls; see the module docstring."""

    mysql: list[MySQLEndpoint]
    memcached: list[str]
    s3_endpoint: str | None
    redis_url: str | None
    # moto accepts any credentials; these are what the tests and benchmarks pass.
    s3_region = "us-east-1"
    s3_access_key = "testing"
    s3_secret_key = "testing"

    def __init__(self, root: Path, mysql: list[Server], memcached: list[Server], s3: Server | None,
                 redis: Server | None = None, *, owned: bool, description: Path | None = None):
        self.root = root
        self._mysql, self._memcached, self._s3, self._redis = mysql, memcached, s3, redis
        self._owned = owned  # False: attached to an `up` process's servers; restarts detach
        self._description = description
        self.mysql = [MySQLEndpoint("127.0.0.1", s.port, unix_socket=str(root / f"mysql{i}.sock"))
                      for i, s in enumerate(mysql)]
        self.memcached = [f"127.0.0.1:{s.port}" for s in memcached]
        self.s3_endpoint = f"http://127.0.0.1:{s3.port}" if s3 else None
        self.redis_url = f"redis://127.0.0.1:{redis.port}/0" if redis else None

    def kill_mysql(self, i: int) -> None:
        """SIGKILL MariaDB server `i` (no clean shutdown: what a crash looks like)."""
        kill(self._mysql[i])

    def start_mysql(self, i: int) -> None:
        """Restart MariaDB server `i` on its port and datadir (crash recovery runs); waits until ready."""
        self._start(self._mysql[i])

    def pause_memcached(self, i: int) -> None:
        """SIGSTOP memcached `i` and wait until it is stopped: the kernel still accepts
        connections and requests, nothing answers them."""
        set_stopped(self._memcached[i], True)

    def resume_memcached(self, i: int) -> None:
        """SIGCONT memcached `i` and wait until it runs; requests sent meanwhile are answered."""
        set_stopped(self._memcached[i], False)

    def kill_memcached(self, i: int) -> None:
        kill(self._memcached[i])

    def start_memcached(self, i: int) -> None:
        """Restart memcached `i`, empty, on the same port; waits until ready."""
        self._start(self._memcached[i])

    def kill_redis(self) -> None:
        """SIGKILL Redis: every subscription connection drops, publishes fail."""
        assert self._redis is not None, "these services have no Redis"
        kill(self._redis)

    def start_redis(self) -> None:
        """Restart Redis, empty, on the same port; waits until ready."""
        assert self._redis is not None, "these services have no Redis"
        self._start(self._redis)

    def ensure_running(self) -> None:
        """Resume paused memcached servers and restart dead servers (a fault test that failed
        half-way must not poison the tests after it)."""
        for server in self.servers():
            if server.alive():
                if server.kind == "memcached":
                    set_stopped(server, False)
            else:
                self._start(server)

    def stop(self) -> None:
        """Kill every server and remove the temp dir. Attached services are left running."""
        if self in _live:
            _live.remove(self)
        if not self._owned:
            return
        for server in self.servers():
            try:
                kill(server)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                pass  # best effort: PDEATHSIG still reaps it when we exit
        shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """The JSON-able description `attach_services()` reads back."""
        def one(s: Server) -> dict[str, Any]:
            return {"argv": s.argv, "port": s.port, "log": s.log, "pid": s.pid}
        return {"root": str(self.root), "owner_pid": os.getpid(),
                "mysql": [one(s) for s in self._mysql], "memcached": [one(s) for s in self._memcached],
                "s3": one(self._s3) if self._s3 else None, "redis": one(self._redis) if self._redis else None}

    def servers(self) -> list[Server]:
        return [*self._mysql, *self._memcached, *([self._s3] if self._s3 else []),
                *([self._redis] if self._redis else [])]

    def _start(self, server: Server) -> None:
        if server.alive():
            raise RuntimeError(f"{server.kind} on port {server.port} is already running")
        spawn(server, detached=not self._owned)
        if not self._owned and self._description is not None:
            _update_pid(self._description, server)
        wait_ready([server])


def _sweep_stale_roots(parent: Path) -> None:
    """Remove temp dirs of earlier runs that were SIGKILLed (their servers died with them)."""
    for owner in parent.glob("taogram-*/owner.pid"):
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(owner.parent, ignore_errors=True)


def start_services(n_mysql: int = 2, n_memcached: int = 2, s3: bool = True, redis: bool = True,
                   parent: str | os.PathLike[str] | None = None) -> Services:
    """Start fresh servers under a new temp dir (in `parent`, the system temp dir by default;
    the tests pass `scratch_dir()`) and wait until all accept connections."""
    parent = Path(parent or tempfile.gettempdir())
    _sweep_stale_roots(parent)
    root = Path(tempfile.mkdtemp(prefix="taogram-", dir=parent))
    (root / "owner.pid").write_text(str(os.getpid()))
    started: list[Server] = []
    try:
        # Spawn each server as soon as it is defined, the slowest starter (moto) first, and wait
        # for all at the end: their start-ups overlap each other and the datadir copies.
        def started_now(server: Server) -> Server:
            spawn(server, detached=False)
            started.append(server)
            return server

        server_s3 = started_now(_s3_server(root)) if s3 else None
        servers_mc = [started_now(_memcached_server(root, i)) for i in range(n_memcached)]
        server_redis = started_now(_redis_server(root)) if redis else None
        servers_mysql = [started_now(_mysql_server(root, i)) for i in range(n_mysql)]
        services = Services(root, servers_mysql, servers_mc, server_s3, server_redis, owned=True)
        _live.append(services)
        wait_ready(started)
    except BaseException:
        _live[:] = [live for live in _live if live.root != root]
        for server in started:
            kill(server)
        shutil.rmtree(root, ignore_errors=True)
        raise
    return services


def attach_services(path: str | os.PathLike[str]) -> Services:
    """Services described by an `up` process's JSON file; waits until they accept connections."""
    desc = json.loads(Path(path).read_text())
    if not pid_alive(desc["owner_pid"]):
        raise RuntimeError(f"{path} describes services whose `up` process ({desc['owner_pid']}) is gone: "
                           "start `python -m tests.harness up` again, or unset TAOGRAM_TEST_SERVICES")

    def one(kind: str, d: dict[str, Any]) -> Server:
        return Server(kind, d["argv"], d["port"], d["log"], pid=d["pid"])

    services = Services(Path(desc["root"]), [one("mysql", d) for d in desc["mysql"]],
                        [one("memcached", d) for d in desc["memcached"]],
                        one("s3", desc["s3"]) if desc["s3"] else None,
                        one("redis", desc["redis"]) if desc.get("redis") else None,
                        owned=False, description=Path(path))
    services.ensure_running()
    wait_ready(services.servers())
    return services


def _update_pid(path: Path, server: Server) -> None:
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        desc = json.loads(path.read_text())
        for entry in [*desc["mysql"], *desc["memcached"], *([desc["s3"]] if desc["s3"] else []),
                      *([desc["redis"]] if desc.get("redis") else [])]:
            if entry["port"] == server.port:
                entry["pid"] = server.pid
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(desc, indent=2))
        tmp.replace(path)


@atexit.register
def _stop_all() -> None:
    for services in list(_live):
        services.stop()
