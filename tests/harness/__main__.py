"""`python -m tests.harness up`: start services for fast test iterations and keep them running.

It writes their description (addresses, pids, argv) to a JSON file and waits for Ctrl-C or
SIGTERM. In another shell, `export TAOGRAM_TEST_SERVICES=<that file>` makes the pytest
`services` fixture attach to them instead of starting its own. On exit it also kills servers a
test run restarted (those are detached from the test run and recorded in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from tests.harness.services import DEFAULT_JSON, Services, scratch_dir, start_services


def _kill_recorded(path: Path, services: Services) -> None:
    """Kill servers a test run restarted (detached from it) and recorded in the JSON."""
    ours = {s.pid for s in services.servers()}
    try:
        desc = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for entry in [*desc["mysql"], *desc["memcached"], *([desc["s3"]] if desc["s3"] else []),
                  *([desc["redis"]] if desc.get("redis") else [])]:
        pid = entry["pid"]
        if pid not in ours and _runs(pid, entry["argv"][0]):
            os.kill(pid, signal.SIGKILL)


def _runs(pid: int, binary: str) -> bool:
    """Whether `pid` still runs `binary` (so a recycled pid is never killed). Read from the
    executable the process runs, not its command line: redis-server rewrites its argv to
    "/usr/bin/redis-server 127.0.0.1:<port>", so a restarted Redis never matched its recorded
    argv[0] and outlived the owner."""
    try:
        return os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(binary)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.harness up`: start services, describe them in a JSON file, wait for a signal."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start services and keep them running until Ctrl-C / SIGTERM")
    up.add_argument("--json", default=str(DEFAULT_JSON), help=f"description file (default {DEFAULT_JSON})")
    up.add_argument("--mysql", type=int, default=2)
    up.add_argument("--memcached", type=int, default=2)
    up.add_argument("--no-s3", action="store_true")
    up.add_argument("--no-redis", action="store_true")
    args = parser.parse_args(argv)

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    began = time.monotonic()
    services = start_services(args.mysql, args.memcached, s3=not args.no_s3, redis=not args.no_redis,
                              parent=scratch_dir())
    path = Path(args.json)
    try:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(services.describe(), indent=2))
        tmp.replace(path)
        print(f"services up in {time.monotonic() - began:.1f}s under {services.root}")
        for i, ep in enumerate(services.mysql):
            print(f"  mysql[{i}]      {ep.host}:{ep.port}  (socket {ep.unix_socket})")
        for i, addr in enumerate(services.memcached):
            print(f"  memcached[{i}]  {addr}")
        print(f"  s3            {services.s3_endpoint}")
        print(f"  redis         {services.redis_url}")
        print(f"description: {path}\nin another shell:\n  export TAOGRAM_TEST_SERVICES={path}\n"
              "Ctrl-C stops everything.", flush=True)
        while not stopping.wait(0.5):
            for server in services.servers():  # reap servers a test run killed
                if server.proc is not None:
                    server.proc.poll()
    finally:
        _kill_recorded(path, services)
        services.stop()
        path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
