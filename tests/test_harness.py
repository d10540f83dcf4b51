"""The harness gives real servers and real faults: what every integration test leans on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomysql
import boto3
import pymysql
import pytest
from botocore.config import Config
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from tests.harness import Services, attach_services, start_services
from tests.harness.processes import pid_alive

REPO = Path(__file__).resolve().parent.parent


async def _connect(services: Services, i: int, db: str | None = None) -> aiomysql.Connection:
    ep = services.mysql[i]
    return await aiomysql.connect(host=ep.host, port=ep.port, user=ep.user, password=ep.password,
                                  db=db, autocommit=True, connect_timeout=5)


async def test_every_mariadb_answers_a_query(services: Services) -> None:
    assert len(services.mysql) == 2
    ports = set()
    for i in range(len(services.mysql)):
        conn = await _connect(services, i)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT @@port, @@character_set_server")
                port, charset = await cur.fetchone()
        finally:
            conn.close()
        assert port == services.mysql[i].port
        assert charset == "utf8mb4"
        ports.add(port)
    assert len(ports) == 2


async def test_killed_mariadb_keeps_committed_rows_and_loses_uncommitted(services: Services, test_id: str) -> None:
    conn = await _connect(services, 0)
    async with conn.cursor() as cur:
        await cur.execute(f"CREATE DATABASE {test_id}")
        await cur.execute(f"CREATE TABLE {test_id}.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
        await cur.execute(f"INSERT INTO {test_id}.t VALUES (1, 'committed')")
    pending = await _connect(services, 0)
    async with pending.cursor() as cur:
        await pending.begin()
        await cur.execute(f"INSERT INTO {test_id}.t VALUES (2, 'never committed')")

    await asyncio.to_thread(services.kill_mysql, 0)
    with pytest.raises(pymysql.err.OperationalError):  # the old connection really lost its server
        async with conn.cursor() as cur:
            await cur.execute("SELECT 1")
    conn.close()
    pending.close()
    await asyncio.to_thread(services.start_mysql, 0)

    conn = await _connect(services, 0)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT id, v FROM {test_id}.t ORDER BY id")
            assert await cur.fetchall() == ((1, "committed"),)
            await cur.execute(f"DROP DATABASE {test_id}")
    finally:
        conn.close()


def _memcache(addr: str) -> MemcacheClient:
    host, port = addr.rsplit(":", 1)
    # noreply=False: a set is acknowledged, so it cannot be lost by a pause or a close racing it.
    return MemcacheClient((host, int(port)), timeout=0.5, connect_timeout=0.5, default_noreply=False)


def test_paused_memcached_times_out_and_answers_again_once_resumed(services: Services, test_id: str) -> None:
    client = _memcache(services.memcached[1])
    client.set(f"{test_id}:k", b"v")
    services.pause_memcached(1)
    try:
        with pytest.raises(TimeoutError):
            client.get(f"{test_id}:k")
    finally:
        services.resume_memcached(1)
    # pymemcache dropped the timed-out socket, so no stale reply can be read as this answer.
    assert client.get(f"{test_id}:k") == b"v"
    client.close()


def test_restarted_memcached_is_empty(services: Services, test_id: str) -> None:
    client = _memcache(services.memcached[0])
    client.set(f"{test_id}:k", b"v")
    services.kill_memcached(0)
    with pytest.raises((OSError, MemcacheUnexpectedCloseError)):
        client.get(f"{test_id}:k")
    services.start_memcached(0)
    assert client.get(f"{test_id}:k") is None
    client.set(f"{test_id}:k", b"w")
    assert _memcache(services.memcached[0]).get(f"{test_id}:k") == b"w"
    client.close()


def test_moto_s3_stores_and_returns_an_object(services: Services, test_id: str) -> None:
    s3 = boto3.client("s3", endpoint_url=services.s3_endpoint, region_name=services.s3_region,
                      aws_access_key_id=services.s3_access_key, aws_secret_access_key=services.s3_secret_key,
                      config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1}))
    s3.create_bucket(Bucket=test_id)
    s3.put_object(Bucket=test_id, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=test_id, Key="a/b.txt")["Body"].read() == b"hello"


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)


def test_servers_die_with_a_killed_owner(tmp_path: Path) -> None:
    script = ("import os, signal, sys\n"
              "from tests.harness import start_services\n"
              "s = start_services(n_mysql=0, n_memcached=1, s3=False)\n"
              "print(s.servers()[0].pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[0])
    _wait_for(lambda: not pid_alive(pid), f"memcached {pid} dying with its owner")


def test_a_spawn_survives_pyav_state_held_by_another_thread() -> None:
    """PyAV keeps a swscale context per thread that converted a frame; its destructor waits on
    its slice threads. A spawn that ran Python in the forked child (a preexec_fn) tore down the
    other threads' state there and hung on that destructor forever."""
    script = ("import threading, av\n"
              "from tests.harness import start_services\n"
              "hold = threading.Event()\n"
              "def convert():\n"
              "    av.VideoFrame(640, 480, 'yuv420p').reformat(320, 240, 'rgb24')\n"
              "    hold.wait()\n"
              "threading.Thread(target=convert, daemon=True).start()\n"
              "import time; time.sleep(0.5)\n"
              "s = start_services(n_mysql=0, n_memcached=1, s3=False)\n"
              "print('started', flush=True)\n"
              "s.stop()\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and "started" in done.stdout, done.stderr


def test_up_cli_serves_attached_runs_and_stops_what_they_restarted(tmp_path: Path) -> None:
    desc_path = tmp_path / "services.json"
    up = subprocess.Popen([sys.executable, "-m", "tests.harness", "up", "--json", str(desc_path),
                           "--mysql", "0", "--memcached", "1", "--no-s3"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: desc_path.exists() or up.poll() is not None, "the up process describing its services")
        assert up.poll() is None, up.stdout.read()
        attached = attach_services(desc_path)
        first_pid = json.loads(desc_path.read_text())["memcached"][0]["pid"]
        attached.kill_memcached(0)
        attached.start_memcached(0)  # detached from this process, recorded for the up process
        second_pid = json.loads(desc_path.read_text())["memcached"][0]["pid"]
        assert second_pid != first_pid and pid_alive(second_pid)
        assert _memcache(attached.memcached[0]).set("k", b"v")
        attached.stop()  # attached: leaves the servers running
        assert pid_alive(second_pid)
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=30)
    assert up.returncode == 0, out
    assert "TAOGRAM_TEST_SERVICES" in out
    assert not desc_path.exists()
    _wait_for(lambda: not pid_alive(second_pid), "the restarted memcached stopping with the up process")
    assert not pid_alive(first_pid)


def test_up_cli_stops_a_redis_an_attached_run_restarted(tmp_path: Path) -> None:
    """redis-server rewrites its command line ("/usr/bin/redis-server 127.0.0.1:<port>"), so the
    owner's check that a recorded pid still runs the recorded binary (argv[0]) never matched a
    restarted Redis: it was left running, detached, after the owner stopped."""
    desc_path = tmp_path / "services.json"
    up = subprocess.Popen([sys.executable, "-m", "tests.harness", "up", "--json", str(desc_path),
                           "--mysql", "0", "--memcached", "0", "--no-s3"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: desc_path.exists() or up.poll() is not None, "the up process describing its services")
        assert up.poll() is None, up.stdout and up.stdout.read()
        attached = attach_services(desc_path)
        first_pid = json.loads(desc_path.read_text())["redis"]["pid"]
        attached.kill_redis()
        attached.start_redis()  # detached from this process, recorded for the up process
        second_pid = json.loads(desc_path.read_text())["redis"]["pid"]
        assert second_pid != first_pid and pid_alive(second_pid)
        attached.stop()
        assert pid_alive(second_pid)
    finally:
        up.send_signal(signal.SIGTERM)
        out, _ = up.communicate(timeout=30)
    assert up.returncode == 0, out
    _wait_for(lambda: not pid_alive(second_pid), "the restarted redis-server stopping with the up process")
    assert not pid_alive(first_pid)


def _our_roots() -> set[Path]:
    return {
        p.parent for p in Path(tempfile.gettempdir()).glob("taogram-*/owner.pid") if p.read_text() == str(os.getpid())
    }


def test_a_missing_server_binary_is_an_error_naming_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = _our_roots()
    monkeypatch.setenv("PATH", str(tmp_path))  # memcached lives in /usr/bin, not on this PATH
    with pytest.raises(RuntimeError, match=r"`memcached` not found: install memcached"):
        start_services(n_mysql=0, n_memcached=1, s3=False)
    assert _our_roots() == before  # the failed start removed its temp dir


async def test_no_blocking_marker_fails_blocking_calls_on_the_loop_only(tmp_path: Path) -> None:
    from blockbuster import BlockingError

    from config import load_settings

    path = tmp_path / "taogram.toml"
    path.write_text("[server]\nport = 8123\n")  # the test module itself is not scanned
    with pytest.raises(BlockingError):
        load_settings(path, env={})  # file I/O inside a taogram package, on the event loop
    settings = await asyncio.to_thread(load_settings, path, {})  # the same call in a thread is fine
    assert settings.server.port == 8123
