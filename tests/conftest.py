"""Fixtures for every test: the real servers, a per-test id, and the blocking-call guard.

- `services` (session): 2 MariaDB, 2 memcached, 1 moto S3 and 1 Redis server started by
  `tests.harness.start_services()`, or, when `TAOGRAM_TEST_SERVICES` names the JSON written by
  `python -m tests.harness up`, those servers reused. A missing server is an error, never a skip.
  After every test that used it, paused memcached servers are resumed and dead servers
  restarted, so a fault test that fails half-way does not break the tests after it.
- `test_id` (function): a short unique string to prefix cache keys and database names with, so
  tests sharing the session's servers (or a reused `up` set) never see each other's data; the
  databases named after it are dropped when the test ends.
- Under pytest-xdist (`make test` runs 2 workers) each worker is a session of its own, with its
  own servers (see `services_path`).
- Temp files (`tmp_path`, the servers' datadirs) go to `scratch_dir()`: /dev/shm when it has room.
- `_release_closed_apps` (function, on for every test): see `release_closed_apps`.
- `no_blocking` (function, on for every test): see its docstring. A test that must block the
  loop on purpose says why with `@pytest.mark.allow_blocking(reason="...")`.

Package-specific fixtures belong in `tests/<package>/conftest.py`.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest
import zxcvbn
from aiohttp import web_app
from argon2 import PasswordHasher
from blockbuster import BlockBuster, BlockBusterFunction, blockbuster_ctx

from tests.harness import Services, attach_services, start_services
from tests.harness.services import scratch_dir

SERVICES_ENV = "TAOGRAM_TEST_SERVICES"
# Blocking calls are reported when one of these (when it exists) is on the call stack.
SCANNED_MODULES = ("server", "http_errors", "schema", "resolvers", "tao", "media_pipeline", "config")
# Calls that do not block on I/O but hold a core for tens of milliseconds: on the loop they
# stall every other request, so `no_blocking` fails them like a blocking call.
# zxcvbn's estimate is pure Python: up to ~60 ms for a 72-character password (resolvers/passwords.py).
CPU_BOUND_CALLS = ((PasswordHasher, "hash"), (PasswordHasher, "verify"), (zxcvbn, "zxcvbn"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_blocking: fail the test on a blocking call made on the event loop (the default for every test)"
    )
    config.addinivalue_line(
        "markers", "allow_blocking(reason): turn the blocking-call guard off for this test; say why in `reason`"
    )
    # tmp_path and the test process's other temp files (SQLite shards, search indexes, media work
    # dirs) go where the servers' data does: a RAM disk when there is one (`scratch_dir`).
    tempfile.tempdir = str(scratch_dir())


def services_path() -> str | None:
    """The `up` JSON this process attaches to, or None to start its own servers.

    Under pytest-xdist every worker is a process of its own: with `TAOGRAM_TEST_SERVICES` unset,
    each starts its own set (so a fault test in one worker never kills another worker's server).
    A set kept running for one worker each is named with `{worker}` in the path
    (`/tmp/svc-{worker}.json` attaches worker gw0 to /tmp/svc-gw0.json); one set shared by
    several workers is refused, since a test that kills or pauses a server would break the
    tests the other workers run on it meanwhile."""
    path = os.environ.get(SERVICES_ENV)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not path or not worker:
        return path or None
    if "{worker}" in path:
        return path.replace("{worker}", worker)
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        raise RuntimeError(f"{SERVICES_ENV}={path} would be shared by the run's pytest-xdist workers, whose fault "
                           "tests kill and pause its servers: unset it (each worker starts its own set), run "
                           "one set per worker and name them with {worker} (/tmp/svc-{worker}.json for "
                           "gw0, gw1, ...), or run without -n")
    return path


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """The session's real servers (see the module docstring)."""
    path = services_path()
    if not path:
        started = start_services(n_mysql=2, n_memcached=2, s3=True, redis=True, parent=scratch_dir())
        try:
            yield started
        finally:
            started.stop()
        return
    attached = attach_services(path)
    if (len(attached.mysql) < 2 or len(attached.memcached) < 2 or not attached.s3_endpoint
            or not attached.redis_url):
        raise RuntimeError(f"{SERVICES_ENV}={path} has {len(attached.mysql)} MariaDB, {len(attached.memcached)} "
                           f"memcached, s3={attached.s3_endpoint} and redis={attached.redis_url}; tests need 2, "
                           "2, one S3 and one Redis: restart `python -m tests.harness up` with its defaults")
    yield attached
    attached.ensure_running()


@pytest.fixture(autouse=True)
def _restore_services(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "services" in request.fixturenames:
        request.getfixturevalue("services").ensure_running()


def release_closed_apps() -> None:
    """Drop aiohttp's process-wide cache of middleware chains, whose keys hold the app that served
    each route (`aiohttp.web_app._cached_build_middleware`, an `lru_cache` of 1024 entries).

    A server process has one app and a handful of routes, so the cache stays small there. A test
    process builds an app per test, and each app's entry kept that whole app alive (its schema,
    its closed store, its event loop) until 1024 later entries pushed it out: the suite's heap
    grew by about 3 MB a test and interpreter exit spent minutes collecting it. Clearing it once
    a test's apps are closed lets them go; the next request of a live app rebuilds its entry."""
    web_app._cached_build_middleware.cache_clear()


@pytest.fixture(autouse=True)
def _release_closed_apps() -> Iterator[None]:
    """After every test (autouse fixtures are torn down last, after its apps were closed)."""
    yield
    release_closed_apps()


@pytest.fixture
def test_id(request: pytest.FixtureRequest) -> Iterator[str]:
    """A short unique id for this test (lowercase letters and digits, starts with a letter).

    When the test used the session's servers, the MariaDB databases named after it are dropped
    once it is over (its apps and stores are closed by then): thousands of tests' schemas
    would otherwise pile up on the servers (4 GB of datadir a run, on a RAM disk)."""
    tid = "t" + uuid.uuid4().hex[:10]
    yield tid
    if "services" in request.fixturenames:
        drop_databases(request.getfixturevalue("services"), tid)


def drop_databases(services: Services, prefix: str) -> None:
    """Drop every database whose name starts with `prefix` on each of `services`' MariaDB
    servers. Best effort: a server a fault test left down keeps them (it is restarted after
    the test), and a database still locked by a leaked connection is left after a few seconds
    rather than hanging the run."""
    import pymysql  # imported late: most of the suite's collection never needs it

    for endpoint in services.mysql:
        try:
            conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                                   password=endpoint.password, connect_timeout=2, read_timeout=30,
                                   write_timeout=30)
        except pymysql.err.MySQLError:
            continue
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET SESSION lock_wait_timeout = 5")
                cur.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                            (prefix.replace("_", "\\_").replace("%", "\\%") + "%",))
                for (name,) in cur.fetchall():
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        except pymysql.err.MySQLError:
            pass


@pytest.fixture
def no_blocking(request: pytest.FixtureRequest) -> Iterator[BlockBuster]:
    """Fail the test when code running on the event loop makes a blocking call.

    On for every test (`_blocking_guard`); request it by name to reach the `BlockBuster`. While
    active, blockbuster raises
    `blockbuster.BlockingError` for a blocking call (time.sleep, socket and file I/O,
    threading.Lock.acquire, os.stat, ...) made on a thread that runs an event loop and whose call
    stack passes through taogram's packages (`SCANNED_MODULES`); calls inside executors are
    allowed, which is where pymemcache, boto3, PyAV and Pillow belong. CPU-bound calls that must
    stay off the loop count as blocking too (`CPU_BOUND_CALLS`: argon2's hash and verify,
    zxcvbn's password estimate). To
    allow a known-harmless call, name the function it happens in:
    `no_blocking.functions["io.BufferedReader.read"].can_block_in("tao/x.py", {"load"})`.
    """
    scanned = [name for name in SCANNED_MODULES if importlib.util.find_spec(name) is not None]
    with blockbuster_ctx(scanned) as blockbuster:
        extra = [BlockBusterFunction(owner, name, scanned_modules=scanned) for owner, name in CPU_BOUND_CALLS]
        for function in extra:
            blockbuster.functions[function.full_name] = function.activate()
        try:
            yield blockbuster
        finally:
            for function in extra:
                function.deactivate()


@pytest.fixture(autouse=True)
def _blocking_guard(request: pytest.FixtureRequest) -> None:
    """The guard for every test, unless it is marked `allow_blocking` with its reason. Blocking
    calls matter on an event loop's thread only, so a synchronous test is unaffected unless it
    runs a loop itself. Autouse fixtures are set up first: the guard also covers the test's
    async fixtures."""
    marker = request.node.get_closest_marker("allow_blocking")
    if marker is None:
        request.getfixturevalue("no_blocking")
    elif not marker.kwargs.get("reason"):
        raise pytest.UsageError(f"{request.node.nodeid}: allow_blocking needs reason=\"...\"")


@pytest.fixture
def round_trips(monkeypatch) -> list[list[str]]:
    """Every round trip the MySQL backend makes while the test runs, as its statements' first
    two words (a queued batch is one trip: `tao.backends.mysql._MySQLConn._run`); but the id
    lease's renewals (`tao.id_leases`), which run on their own schedule."""
    from tao.backends import mysql  # imported late: most tests never touch the MySQL backend

    trips: list[list[str]] = []
    run = mysql._MySQLConn._run

    async def counted(self, cur, statement):
        batch = [*self._queued, statement] if statement is not None else list(self._queued)
        if not any("id_slots" in s for s in batch):
            trips.append([" ".join(s.split()[:2]) for s in batch])
        return await run(self, cur, statement)
    monkeypatch.setattr(mysql._MySQLConn, "_run", counted)
    return trips
