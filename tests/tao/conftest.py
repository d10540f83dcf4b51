"""Store fixtures. `tao` is parametrized over both backends, so every test using it is part of
the one contract suite both must pass:

- "sqlite": the embedded default — SQLite files in a temp dir, the in-process cache tier;
- "mysql": 8 logical shards on the session's 2 MariaDB servers, memcached on its 2 servers.

Each test gets fresh databases (a unique database prefix) and a unique cache namespace, so tests
never see each other's rows, outbox jobs or cache entries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from config import MySQLServer, Settings
from tao import Tao, open_tao
from tests.harness import Services

N_SHARDS = 8


def make_settings(backend: str, services: Services | None, test_id: str, tmp_path) -> Settings:
    s = Settings()
    s.store.logical_shards = N_SHARDS
    s.jobs.in_process_worker = False  # tests drain the outbox explicitly, or start workers themselves
    s.cache.key_prefix = test_id
    s.search.index_dir = str(tmp_path / "search")
    if backend == "sqlite":
        s.store.backend = "sqlite"
        s.store.sqlite_dir = str(tmp_path / "shards")
        s.cache.backend = "local"
    else:
        s.store.backend = "mysql"
        s.store.mysql_servers = [MySQLServer(host=m.host, port=m.port, user=m.user, password=m.password)
                                 for m in services.mysql]
        s.store.database_prefix = test_id
        s.store.query_timeout = 3.0
        s.store.acquire_timeout = 3.0
        s.store.connect_timeout = 2.0
        s.cache.backend = "memcached"
        s.cache.servers = list(services.memcached)
        # A 2-core CI box running MariaDB, memcached and several Python processes can starve
        # the heartbeat threads for a while; a longer call timeout (and so a longer allowed
        # heartbeat gap) keeps false "suspect" verdicts, which cost flushes and extra SQL
        # reads, from making round-trip counts flaky. Fault tests shorten it explicitly.
        s.cache.timeout = 1.0
        s.cache.connect_timeout = 1.0
        s.cache.heartbeat_interval = 0.1
        # The real broker, namespaced like the cache: a test hears only its own channels.
        s.broker.backend = "redis"
        s.broker.url = services.redis_url
    s.broker.channel_prefix = test_id
    # The load shedder refuses operations while a server's event loop runs late or too many run
    # at once; a 2-core CI box running the suite beside its servers makes loops late, and tests
    # fire bursts, for reasons no test is about. tests/test_admission.py turns it on.
    s.server.shed_loop_lag_ms = 0
    s.server.max_requests_in_flight = 0
    return s


async def open_store(settings: Settings) -> Tao:
    tao = await open_tao(settings, migrate=True, start_worker=False)
    return tao


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_settings(request, backend: str, test_id: str, tmp_path) -> Settings:
    services = request.getfixturevalue("services") if backend == "mysql" else None
    return make_settings(backend, services, test_id, tmp_path)


@pytest.fixture
async def tao(store_settings: Settings) -> AsyncIterator[Tao]:
    store = await open_store(store_settings)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def mysql_settings(services: Services, test_id: str, tmp_path) -> Settings:
    return make_settings("mysql", services, test_id, tmp_path)


@pytest.fixture
async def mysql_store(mysql_settings: Settings) -> AsyncIterator[Tao]:
    """A store on MariaDB alone, for tests of the MySQL backend's own behaviour."""
    store = await open_store(mysql_settings)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def make_user(tao: Tao) -> Callable:
    async def make(**data) -> int:
        return await tao.obj_add("TEST_NODE", data)
    return make
