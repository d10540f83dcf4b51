"""`/metrics` scraped by a real Prometheus server (Debian's `prometheus`), over the real app on
MariaDB and memcached: the series an operator's dashboards are built from are there, with the
labels docs/operations.md names."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.harness.processes import Server, free_port, kill, spawn, which
from tests.schema.client import graphql_settings, running_app
from tests.serverproc import ROOT, settings_env

SCRAPE_INTERVAL = "1s"


@pytest.fixture
def settings(services, test_id, tmp_path):
    return graphql_settings("mysql", services, test_id, tmp_path)


def _start_prometheus(tmp_path: Path, target_port: int) -> Server:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        "  - job_name: taogram\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n")
    port = free_port()
    argv = [which("prometheus", "prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    server = Server("prometheus", argv, port, str(tmp_path / "prometheus.log"))
    spawn(server, detached=False)
    return server


def _query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())["data"]["result"]
    except OSError:
        return []  # not up yet


async def _wait_for(port: int, promql: str, server: Server, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(_query, port, promql)
        if result:
            return result
        assert server.alive(), f"prometheus exited:\n{server.log_tail()}"
        assert time.monotonic() < deadline, f"no series for {promql} within {timeout}s:\n{server.log_tail()}"
        await asyncio.sleep(0.5)


async def test_prometheus_scrapes_requests_store_cache_and_outbox_series(settings, tmp_path):
    async with running_app(settings) as gql:
        token, _ = await gql.sign_up("ann_" + uuid.uuid4().hex[:8])
        _, bob = await gql.sign_up("bob_" + uuid.uuid4().hex[:8])
        await gql.mutate("follow", token, bob)  # leaves jobs in the outbox (no worker runs here)
        for _ in range(3):
            await gql.ok("query MetricsTestProfilePage { viewer { username followingCount } }", token=token)
        await gql("query Broken { viewer { noSuchField } }", token=token)

        resp = await gql.client.get("/metrics")
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
        assert 'taogram_requests_total{operation="MetricsTestProfilePage",outcome="ok"} 3.0' in text

        prometheus = _start_prometheus(tmp_path, gql.client.server.port)
        try:
            port = prometheus.port
            ok = await _wait_for(port, 'taogram_requests_total{operation="MetricsTestProfilePage",outcome="ok"}',
                                 prometheus)
            assert float(ok[0]["value"][1]) == 3
            errors = await _wait_for(port, 'taogram_graphql_errors_total{code="GRAPHQL_VALIDATION_FAILED"}', prometheus)
            assert float(errors[0]["value"][1]) >= 1
            latency = await _wait_for(port, 'taogram_request_seconds_count{operation="MetricsTestProfilePage"}',
                                      prometheus)
            assert float(latency[0]["value"][1]) == 3
            verbs = await _wait_for(port, "taogram_store_calls_total", prometheus)
            assert {"obj_get", "assoc_add"} <= {s["metric"]["verb"] for s in verbs}, verbs
            sql = await _wait_for(port, "taogram_sql_seconds_count", prometheus)
            # Both MariaDB servers served statements (metrics are per process: earlier tests of
            # this run may have added the embedded default's `sqlite`).
            assert {"0", "1"} <= {s["metric"]["server"] for s in sql}
            cache = await _wait_for(port, "taogram_cache_keys_total", prometheus)
            assert {"hit", "miss"} <= {s["metric"]["result"] for s in cache}
            outbox = await _wait_for(port, "taogram_outbox_jobs > 0", prometheus)
            assert outbox and all(s["metric"]["handler"] for s in outbox)
            await _wait_for(port, "taogram_outbox_oldest_job_seconds", prometheus)
        finally:
            kill(prometheus)


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return ""  # not listening yet


async def test_a_worker_serves_metrics_for_every_process_of_its_host(settings, tmp_path):
    """A host with job workers and no server process is scraped at a worker's `--metrics-port`:
    with PROMETHEUS_MULTIPROC_DIR shared, it reports the jobs it ran and its store calls."""
    async with running_app(settings) as gql:
        token, _ = await gql.sign_up("ann_" + uuid.uuid4().hex[:8])
        _, bob = await gql.sign_up("bob_" + uuid.uuid4().hex[:8])
        await gql.mutate("follow", token, bob)  # leaves jobs in the outbox (no worker runs here)

    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAOGRAM_")}
    env = {**base, **settings_env(settings), "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    worker = subprocess.Popen([sys.executable, "-m", "tao", "worker", "--metrics-port", str(port)], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "wb"))
    try:
        deadline = time.monotonic() + 60
        while True:
            text = await asyncio.to_thread(_scrape, port)
            ran = [line for line in text.splitlines()
                   if line.startswith("taogram_job_seconds_count{") and 'outcome="ok"' in line]
            if ran and "taogram_store_calls_total{" in text:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, f"no job series at the worker's /metrics:\n{text[-2000:]}"
            await asyncio.sleep(0.3)
        assert any(float(line.rsplit(" ", 1)[1]) >= 1 for line in ran), ran
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()
