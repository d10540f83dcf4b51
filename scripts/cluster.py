"""`make cluster`: the production stack on one machine, from one command.

    python scripts/cluster.py up [--dir .cluster] [--port 8000] [--workers 1]
    python scripts/cluster.py reset [--dir .cluster]

`up` starts 2 MariaDB servers, 2 memcached servers, Redis (the event broker), an S3-compatible
server (moto), applies migrations (`python -m tao migrate`), then starts the job workers
(`python -m tao worker`) and `server.py` with `server.processes = 2` (two server processes on one
port), all from a config it generates and prints (`<dir>/taogram.toml`). Ctrl-C (or SIGTERM)
stops everything in order, servers first and MariaDB last with a clean shutdown; no process is
left behind, even if this script is killed (every child is spawned to die with it: the test
harness's `tests.harness.processes`, reused here).

Everything lives under the data dir: MariaDB datadirs, the generated config and the state it is
made from (`cluster.json`: ports and secrets chosen at the first start, reused after), logs of
every process (`logs/`), the S3 server's request log and the Prometheus multiprocess directory.
Data survives a restart: MariaDB keeps its datadirs; moto keeps objects in memory only, so it
records every request (`s3/recording.jsonl`, moto's recorder) and replays them at the next start.
memcached starts empty (it is a cache) and Redis keeps nothing (it only says "look").
`reset` deletes the data dir.

Like the benchmarks in bench/, this script reuses the harness in tests/ (PYTHONPATH=repo root).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.processes import Server, free_port, spawn, wait_ready, which  # noqa: E402
from tests.harness.services import MARIADB_COMMON_OPTS, MARIADB_OPTS, _mariadb_template  # noqa: E402

N_MYSQL = 2
N_MEMCACHED = 2
SERVER_PROCESSES = 2
LOGICAL_SHARDS = 8
STOP_TIMEOUT = 60.0  # seconds a process gets after SIGTERM before SIGKILL (MariaDB flushes its buffer pool)


class ClusterError(Exception):
    """A start that cannot go on; the message is one sentence saying what to do."""


# --- state: ports and secrets, chosen once --------------------------------------------------

def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pick_port(taken: set[int], preferred: int | None = None) -> int:
    """`preferred` if free, else a free port below the ephemeral range (no client socket takes it
    while the cluster is down, so the same ports serve the next start); never one of `taken`,
    the ports already chosen for this cluster (added to it). The server's port is only probed
    here, not bound until the server starts: without `taken` a service could be given it
    (seen in CI: memcached on the server's port, which then never bound)."""
    if preferred and preferred not in taken and _port_free(preferred):
        port = preferred
    else:
        port = free_port()
        while port in taken:
            port = free_port()
    taken.add(port)
    return port


def load_state(data: Path, port: int | None) -> dict:
    """The cluster's ports and secrets: read from `cluster.json`, or chosen and saved at the first start."""
    path = data / "cluster.json"
    if path.exists():
        state = json.loads(path.read_text())
        changed = "cursor_key" not in state["secrets"]  # a cluster made before cursors had their own key
        state["secrets"].setdefault("cursor_key", base64.b64encode(secrets.token_bytes(32)).decode())
        if port and port != state["ports"]["server"]:
            ports = state["ports"]
            services = {*ports["mysql"], *ports["memcached"], ports["redis"], ports["s3"]}
            if port in services:
                raise SystemExit(f"cluster: port {port} is one of this cluster's own services' ports "
                                 f"({path}); choose another --port")
            ports["server"] = port
            changed = True
        if changed:
            path.write_text(json.dumps(state, indent=2))
        return state
    taken: set[int] = set()
    state = {
        "ports": {
            "server": _pick_port(taken, port or 8000),
            "mysql": [_pick_port(taken) for _ in range(N_MYSQL)],
            "memcached": [_pick_port(taken) for _ in range(N_MEMCACHED)],
            "redis": _pick_port(taken),
            "s3": _pick_port(taken),
        },
        "secrets": {
            "message_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "cursor_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "signing_key": secrets.token_urlsafe(32),
        },
    }
    data.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    return state


def render_config(data: Path, state: dict, workers: int) -> str:
    """The generated TOML: one file every process of the cluster reads (TAOGRAM_CONFIG)."""
    p, s = state["ports"], state["secrets"]
    mysql = ",\n".join(f'  {{ host = "127.0.0.1", port = {port}, user = "root", password = "" }}'
                       for port in p["mysql"])
    memcached = ", ".join(f'"127.0.0.1:{port}"' for port in p["memcached"])
    return f"""# Generated by `make cluster` from {data / 'cluster.json'}; rewritten at every start.
# Override any setting with TAOGRAM_<SECTION>__<FIELD> in the environment (docs/deploy.md).

[server]
host = "127.0.0.1"
port = {p['server']}
processes = {SERVER_PROCESSES}
cursor_keys = {{ cluster = "{s['cursor_key']}" }}
cursor_key = "cluster"

[store]
backend = "mysql"
logical_shards = {LOGICAL_SHARDS}
mysql_servers = [
{mysql},
]

[cache]
backend = "memcached"
servers = [{memcached}]

[broker]
backend = "redis"
url = "redis://127.0.0.1:{p['redis']}/0"

[jobs]
# {workers} `python -m tao worker` process(es) run the jobs.
in_process_worker = false

[media]
backend = "s3"
s3_endpoint_url = "http://127.0.0.1:{p['s3']}"
s3_bucket = "taogram-media"
s3_access_key = "cluster"
s3_secret_key = "cluster"
signing_key = "{s['signing_key']}"
work_dir = "{data / 'media-work'}"
workers = 1

[messages]
encryption_keys = {{ cluster = "{s['message_key']}" }}
active_key = "cluster"

[logging]
format = "json"

[metrics]
enabled = true
"""


# --- processes --------------------------------------------------------------------------------

def infrastructure(data: Path, state: dict) -> list[Server]:
    """MariaDB x2, memcached x2, Redis and moto, on the cluster's ports, logging under `logs/`."""
    p, logs = state["ports"], data / "logs"
    user = ["--user=root"] if os.geteuid() == 0 else []
    servers = []
    for i, port in enumerate(p["mysql"]):
        datadir = data / f"mysql{i}"
        if not datadir.exists():
            shutil.copytree(_mariadb_template(), datadir, ignore=shutil.ignore_patterns(".complete"))
        argv = [which("mariadbd", "mariadb-server"), "--no-defaults", *user, f"--datadir={datadir}",
                f"--socket={data}/mysql{i}.sock", f"--port={port}", f"--pid-file={data}/mysql{i}.pid",
                f"--log-error={logs}/mysql{i}.log", f"--tmpdir={data}", *MARIADB_COMMON_OPTS, *MARIADB_OPTS]
        servers.append(Server("mysql", argv, port, str(logs / f"mysql{i}.log")))
    mc_user = ["-u", "root"] if os.geteuid() == 0 else []
    for i, port in enumerate(p["memcached"]):
        argv = [which("memcached", "memcached"), *mc_user, "-l", "127.0.0.1", "-p", str(port), "-m", "64", "-c", "1024"]
        servers.append(Server("memcached", argv, port, str(logs / f"memcached{i}.log")))
    argv = [which("redis-server", "redis-server"), "--port", str(p["redis"]), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data), "--protected-mode", "no", "--logfile", str(logs / "redis.log")]
    servers.append(Server("redis", argv, p["redis"], str(logs / "redis.log")))
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p["s3"])]
    servers.append(Server("s3", argv, p["s3"], str(logs / "s3.log")))
    return servers


def _replay_s3(state: dict, recording: Path) -> int:
    """Replay the S3 requests of earlier runs into the fresh (in-memory) moto server."""
    if not recording.exists() or recording.stat().st_size == 0:
        return 0
    url = f"http://127.0.0.1:{state['ports']['s3']}/moto-api/recorder/replay-recording"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=600):
        pass
    return sum(1 for _ in recording.open())


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def stop(processes: list[Server]) -> None:
    """SIGTERM each process, last started first, and wait for it; SIGKILL one that hangs."""
    for server in reversed(processes):
        proc = server.proc
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"cluster: {server.kind} (pid {proc.pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f}s; killing it",
                  flush=True)
            proc.kill()
            proc.wait(10)


def up(data: Path, port: int | None, workers: int) -> int:
    data = data.resolve()
    state = load_state(data, port)
    taken = [f"{kind} {p}" for kind, ports in state["ports"].items()
             for p in (ports if isinstance(ports, list) else [ports]) if not _port_free(p)]
    if taken:
        raise ClusterError(f"port(s) already in use: {', '.join(taken)} (is another `make cluster` running on this "
                           f"data dir? else stop what listens there, or delete {data / 'cluster.json'} "
                           "to pick new ports)")
    (data / "logs").mkdir(parents=True, exist_ok=True)
    (data / "s3").mkdir(exist_ok=True)
    (data / "media-work").mkdir(exist_ok=True)
    config = data / "taogram.toml"
    config.write_text(render_config(data, state, workers))
    # Every process the cluster starts inherits these.
    metrics_dir = data / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # prometheus_client's multiprocess dir starts empty
    metrics_dir.mkdir()
    recording = data / "s3" / "recording.jsonl"
    os.environ.update({
        "TAOGRAM_CONFIG": str(config), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(ROOT),
        "MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(recording),
    })

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    started: list[Server] = []
    began = time.monotonic()
    try:
        infra = infrastructure(data, state)
        print(f"cluster: starting MariaDB x{N_MYSQL}, memcached x{N_MEMCACHED}, Redis, S3 (moto) under {data}",
              flush=True)
        for server in infra:
            spawn(server, detached=False)
            started.append(server)
        wait_ready(infra)
        replayed = _replay_s3(state, recording)
        if replayed:
            print(f"cluster: S3 restored from {replayed} recorded requests", flush=True)
        if stopping.is_set():
            return 0
        migrate = subprocess.run([sys.executable, "-m", "tao", "migrate"], cwd=ROOT, capture_output=True, text=True)
        if migrate.returncode != 0:
            raise ClusterError(f"migrations failed: {(migrate.stderr or migrate.stdout).strip().splitlines()[-1]}")
        print(f"cluster: {migrate.stdout.strip()}", flush=True)
        apps = [Server("worker", [sys.executable, "-m", "tao", "worker"], 0, str(data / "logs" / f"worker{i}.log"))
                for i in range(workers)]
        apps.append(Server("server", [sys.executable, str(ROOT / "server.py")], state["ports"]["server"],
                           str(data / "logs" / "server.log")))
        for server in apps:
            spawn(server, detached=False)
            started.append(server)
        server = apps[-1]
        deadline = time.monotonic() + 120
        while not _healthy(server.port):
            if server.proc.poll() is not None:
                raise ClusterError(f"server.py exited with {server.proc.returncode}: {server.log_tail(3)}")
            if stopping.is_set():
                return 0
            if time.monotonic() > deadline:
                raise ClusterError(f"server.py did not answer /healthz within 120 s; see {server.log}")
            time.sleep(0.2)

        print(f"\n--- {config} ---\n{config.read_text()}---", flush=True)
        base = f"http://127.0.0.1:{server.port}"
        print(f"cluster is up in {time.monotonic() - began:.0f}s:\n"
              f"  GraphQL   {base}/graphql  (GraphiQL in a browser)\n"
              f"  metrics   {base}/metrics  (Prometheus; every server process and worker)\n"
              f"  health    {base}/healthz\n"
              f"  processes {SERVER_PROCESSES} server, {workers} worker; logs in {data / 'logs'} (JSON lines)\n"
              f"  data      {data}  (kept across restarts; `make cluster-reset` deletes it)\n"
              "Ctrl-C stops everything.", flush=True)
        while not stopping.wait(0.5):
            for s in started:
                if s.proc.poll() is not None:
                    raise ClusterError(f"{s.kind} (pid {s.proc.pid}) exited with {s.proc.returncode}; "
                                       f"its log: {s.log}")
        print("cluster: stopping", flush=True)
        return 0
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop(started)
        if started:
            print("cluster: stopped; no process left", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="start the stack; Ctrl-C stops it")
    r = sub.add_parser("reset", help="delete the data dir")
    for p in (u, r):
        p.add_argument("--dir", default=os.environ.get("CLUSTER_DIR", str(ROOT / ".cluster")), help="data dir")
    u.add_argument("--port", type=int, default=None, help="the server's port (default 8000 if free at the first start)")
    u.add_argument("--workers", type=int, default=1, help="job worker processes (default 1)")
    args = parser.parse_args(argv)
    data = Path(args.dir)
    if args.command == "reset":
        shutil.rmtree(data, ignore_errors=True)
        print(f"cluster: deleted {data}")
        return 0
    try:
        return up(data, args.port, args.workers)
    except (RuntimeError, OSError) as exc:  # a missing binary (names its package), a port, a file
        print(f"cluster: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
