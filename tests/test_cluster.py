"""`make cluster` end to end: the whole stack comes up from nothing, answers GraphQL through its
two server processes, reports the metrics of every server process and the worker on one
`/metrics`, stops on SIGINT (Ctrl-C) leaving no process behind, and keeps its data across a
restart."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.harness.processes import free_port, pid_alive

ROOT = Path(__file__).resolve().parent.parent
UP_TIMEOUT = 240.0
pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Cluster:
    def __init__(self, data: Path, port: int) -> None:
        self.port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAOGRAM_", "PROMETHEUS_"))}
        self.proc = subprocess.Popen([sys.executable, "scripts/cluster.py", "up", "--dir", str(data),
                                      "--port", str(port)],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_up(self) -> None:
        deadline = time.monotonic() + UP_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.output)
                assert time.monotonic() < deadline, "".join(self.output)
                continue
            if line.startswith("cluster is up"):
                return

    def graphql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", headers=headers,
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode())
        for attempt in range(10):
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    body = json.loads(resp.read())
                break
            except urllib.error.HTTPError as e:
                # The cluster runs with production settings, load shedding on: on a busy CI box a
                # late event loop refuses a request (503, Retry-After, nothing ran), and a client
                # retries it, as an app does (docs/operations.md, "Load shedding").
                if e.code != 503 or "Retry-After" not in e.headers or attempt == 9:
                    raise
                time.sleep(float(e.headers["Retry-After"]))
        assert "errors" not in body, body
        return body["data"]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as resp:
            return resp.read().decode()

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the cluster; it must exit 0 and leave no process behind."""
        family = _descendants(self.proc.pid)
        assert len(family) >= 9, family  # 2 MariaDB, 2 memcached, Redis, S3, worker, server.py + its 2 processes
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(180) == 0, "".join(self.output)
        time.sleep(0.5)
        left = [pid for pid in family if pid_alive(pid)]
        assert not left, f"processes left after Ctrl-C: {left}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(180)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _roles(data: Path) -> set[str]:
    """The processes that wrote a JSON line to the cluster's server log."""
    log = data / "logs" / "server.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return {json.loads(line).get("role") for line in lines if line.startswith("{")}


def _sample(metrics: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name))


def test_cluster_serves_reports_stops_cleanly_and_keeps_its_data(tmp_path):
    data, port = tmp_path / "cluster", free_port()
    username, password = "ada_" + uuid.uuid4().hex[:8], "password-" + uuid.uuid4().hex
    cluster = Cluster(data, port)
    try:
        cluster.wait_up()
        sign_up = "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token user { id } errors { code } } }"
        ada = cluster.graphql(sign_up, {"i": {"username": username, "password": password}})["signUp"]
        bob = cluster.graphql(sign_up, {"i": {"username": "bob_" + username[4:], "password": password}})["signUp"]
        assert ada["errors"] == [] and bob["errors"] == []
        follow = cluster.graphql("mutation($i: ID!) { follow(input: {userId: $i}) { errors { code } } }",
                                 {"i": bob["user"]["id"]}, ada["token"])
        assert follow["follow"]["errors"] == []
        # New connections: the kernel spreads them over the server processes that are listening.
        # The cluster is up when one process answers, so a busy box may still be starting the
        # other: ask until both have logged a request (or a minute passes).
        checks, deadline = 0, time.monotonic() + 60
        while checks < 10 or (_roles(data) < {"server-0", "server-1"} and time.monotonic() < deadline):
            cluster.graphql("query ClusterCheck { viewer { username } }", token=ada["token"])
            checks += 1
        # One scrape answers for both server processes and the worker (multiprocess mode).
        deadline = time.monotonic() + 60
        while True:
            metrics = cluster.metrics()
            if _sample(metrics, "taogram_job_seconds_count") > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert _sample(metrics, 'taogram_requests_total{operation="ClusterCheck",outcome="ok"}') == checks
        assert _sample(metrics, "taogram_job_seconds_count") > 0, "the worker's job metrics are not in the scrape"
        server_log = (data / "logs" / "server.log").read_text()
        assert password not in server_log and ada["token"] not in server_log
        assert {"server-0", "server-1"} <= _roles(data), _roles(data)
        cluster.interrupt()

        cluster = Cluster(data, port)  # a restart on the same data dir
        cluster.wait_up()
        again = cluster.graphql("mutation($i: AccountLogInInput!) { logIn(input: $i) { token errors { code } } }",
                                {"i": {"username": username, "password": password}})["logIn"]
        assert again["errors"] == [] and again["token"]
        cluster.interrupt()
    finally:
        cluster.kill()
