"""The HTTP surface: /healthz, /version, GraphiQL with local assets, WebSocket auth, start-up
and shutdown, and backend faults turned into clear errors."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import weakref
from urllib.parse import urlsplit

from config import Settings
from server import STATIC_DIR, create_app, new_event_loop
from tao import open_tao
from tests.conftest import release_closed_apps
from tests.schema.client import GQL, graphql_settings, running_app
from tests.schema.conftest import gql, gql_app, gql_settings  # noqa: F401  (fixtures)

WS_PROTOCOL = "graphql-transport-ws"


async def test_healthz_and_version(gql):
    resp = await gql.client.get("/healthz")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok"
    assert body["shards"] == {"total": 8, "down": {}}
    resp = await gql.client.get("/version")
    assert resp.status == 200 and (await resp.json())["name"] == "taogram"


async def test_graphiql_is_served_with_local_assets_only(gql):
    resp = await gql.client.get("/graphql", headers={"Accept": "text/html"})
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert "GraphiQL" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "GraphiQL must not load anything from a CDN"
    assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", html)
    assert len(assets) == 4
    for path in assets:
        r = await gql.client.get(path)
        assert r.status == 200, path
        assert len(await r.read()) > 1000
        assert (STATIC_DIR / path.removeprefix("/static/")).is_file()


async def test_graphiql_can_be_switched_off(gql_settings: Settings):
    gql_settings.server.graphiql = False
    async with running_app(gql_settings) as g:
        resp = await g.client.get("/graphql", headers={"Accept": "text/html"})
        assert resp.status == 404


async def _ws_query(client, payload, query="{ viewer { username } }"):
    async with client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": payload})
        msg = await ws.receive(timeout=10)
        if msg.type.name != "TEXT":
            await ws.receive(timeout=10)
            return ("closed", ws.close_code)
        assert msg.json()["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        nxt = await ws.receive_json(timeout=10)
        assert nxt["type"] == "next" and nxt["id"] == "1"
        assert (await ws.receive_json(timeout=10))["type"] == "complete"
        return ("data", nxt["payload"])


async def test_websocket_takes_the_token_in_connection_init(gql):
    token, _ = await gql.sign_up("ada")
    kind, payload = await _ws_query(gql.client, {"Authorization": f"Bearer {token}"})
    assert kind == "data" and payload["data"] == {"viewer": {"username": "ada"}}
    kind, payload = await _ws_query(gql.client, {})
    assert kind == "data" and payload["data"] == {"viewer": None}
    kind, code = await _ws_query(gql.client, {"Authorization": "Bearer tgs_revoked"})
    assert (kind, code) == ("closed", 4403)


async def test_websocket_operations_get_fresh_loaders(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {ta}"}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        counts = []
        for i in range(2):
            await ws.send_json({"id": str(i), "type": "subscribe",
                                "payload": {"query": '{ user(username: "bob") { followerCount } }'}})
            counts.append((await ws.receive_json(timeout=10))["payload"]["data"]["user"]["followerCount"])
            assert (await ws.receive_json(timeout=10))["type"] == "complete"
            if i == 0:
                await gql.mutate("follow", ta, b)  # over HTTP, between the two operations
        assert counts == [0, 1]


async def test_request_id_header(gql):
    resp = await gql.client.post("/graphql", json={"query": "{ viewer { id } }"}, headers={"X-Request-Id": "abc-1"})
    assert resp.headers["X-Request-Id"] == "abc-1"
    resp = await gql.client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"X-Request-Id": "bad id\u00e9"}
    )
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-Id"])


async def test_in_process_worker_runs_domain_jobs_and_shutdown_closes_the_store(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    settings = graphql_settings("sqlite", None, "tstart", tmp_path)
    settings.jobs.in_process_worker = True  # the embedded default: the worker runs inside the server
    settings.jobs.poll_interval = 0.05
    app = await asyncio.to_thread(create_app, settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    g = GQL(client)
    tb, b = await g.sign_up("bob", private=True)
    ta, a = await g.sign_up("ada")
    await g.mutate("follow", ta, b)
    await g.ok("mutation { updateProfile(input: {isPrivate: false}) { errors { code } } }", token=tb)
    # The job ("follows.approve_pending_requests") is run by the server's own worker: wait for it.
    for _ in range(200):
        if (await g.ok("{ viewer { followerCount } }", token=tb))["viewer"]["followerCount"] == 1:
            break
        await asyncio.sleep(0.05)
    assert (await g.ok("{ viewer { followerCount followRequests { nodes { id } } } }", token=tb))["viewer"] == {
        "followerCount": 1, "followRequests": {"nodes": []}}
    def workers():
        return [t for t in asyncio.all_tasks() if t.get_name() == "tao-outbox-worker" and not t.done()]

    assert len(workers()) == 1
    await client.close()  # on_cleanup closes the store, which stops its worker
    assert workers() == []


async def test_a_dead_shard_server_is_a_clear_error_and_unhealthy(request, test_id, tmp_path):
    services = request.getfixturevalue("services")
    settings = graphql_settings("mysql", services, test_id, tmp_path)
    settings.store.query_timeout = settings.store.connect_timeout = settings.store.acquire_timeout = 1.0
    async with running_app(settings) as g:
        services.kill_mysql(1)
        resp = await g.client.get("/healthz")
        body = await resp.json()
        assert resp.status == 503 and body["status"] == "unavailable" and body["shards"]["down"]
        results = []
        # A sign-up writes the user's shard, the username's and its look-alike skeleton's (each
        # fixed by its hash): 5 to 7 of 40 succeeded in four runs, so 60 tries all failing is a
        # real fault; 20 tries all failed once in a CI run.
        for i in range(60):
            status, body = await g.post(
                "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token errors { code } } }",
                {"i": {"username": f"user{i}", "password": "password-123"}})
            assert status == 200
            results.append(body)
        failed = [b for b in results if "errors" in b]
        assert failed, "with half the shards down some sign-ups must fail"
        for b in failed:
            assert {e["extensions"]["code"] for e in b["errors"]} == {"UNAVAILABLE"}
            assert "retry" in b["errors"][0]["message"] and "shard" not in b["errors"][0]["message"]
        assert any("errors" not in b for b in results), "shards on the live server keep serving"


async def test_a_stalled_cache_server_is_reported_and_requests_still_succeed(request, test_id, tmp_path):
    services = request.getfixturevalue("services")
    settings = graphql_settings("mysql", services, test_id, tmp_path)
    async with running_app(settings) as g:
        token, _ = await g.sign_up("ada")
        services.pause_memcached(0)
        try:
            for _ in range(100):  # the tier's heartbeat notices within a few intervals
                resp = await g.client.get("/healthz")
                if resp.status == 503:
                    break
                await asyncio.sleep(0.1)
            body = await resp.json()
            assert resp.status == 503 and body["cache"]["servers_suspect"] == 1 and body["shards"]["down"] == {}
            # the API keeps answering from MySQL
            assert (await g.ok("{ viewer { username followerCount } }", token=token))["viewer"]["username"] == "ada"
        finally:
            services.resume_memcached(0)


async def test_local_media_urls_follow_the_server_port_unless_set(test_id, tmp_path):
    """With `media.local_base_url` unset, part URLs name the server's own host and port, so a
    server moved off 8000 (`TAOGRAM_SERVER__PORT`) still takes its uploads."""
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestClient, TestServer

    from tests.resolvers.test_media_api import complete, jpeg, parts_of, put, start

    settings = graphql_settings("sqlite", None, test_id, tmp_path)
    assert settings.media.backend == "local" and settings.media.local_base_url == ""  # the defaults
    settings.media.local_dir, settings.media.part_size = str(tmp_path / "media"), 16 * 1024
    settings.server.port = _free_port()
    await (await open_tao(settings, migrate=True, start_worker=False)).close()
    client = TestClient(TestServer(await asyncio.to_thread(create_app, settings),
                                   host="127.0.0.1", port=settings.server.port))
    await client.start_server()
    try:
        g = GQL(client)
        token, _ = await g.sign_up("ada")
        data = await asyncio.to_thread(jpeg, 200, 150)
        p = await start(g, token, data, part_size=settings.media.part_size)
        assert p["errors"] == [], p
        parts = p["upload"]["parts"]
        assert len(parts) > 1
        assert {urlsplit(part["url"]).netloc for part in parts} == {f"127.0.0.1:{settings.server.port}"}
        async with ClientSession() as http:
            for part, body in zip(parts, parts_of(data, p["upload"]["partSize"])):
                assert await put(http, part, body) == 200
        done = await complete(g, token, p["upload"]["id"])
        assert done["errors"] == [] and done["media"]["status"] == "PROCESSING"
    finally:
        await client.close()
    # An explicit base URL (a proxy, a public name) is used as given.
    settings.media.local_base_url = "https://media.example.com/m"
    assert settings.media_served().local_base_url == "https://media.example.com/m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_websocket_operations_obey_the_string_input_rule(gql):
    """The input rule lives in the schema, so the WebSocket transport gets it too (nothing stored)."""
    token, _ = await gql.sign_up("ada")
    async with gql.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "mutation($b: String) { updateProfile(input: {bio: $b}) { errors { code } } }",
            "variables": {"b": "x\ud800y"}}})
        msg = await ws.receive_json(timeout=10)
        errors = msg["payload"] if msg["type"] == "error" else msg["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"], msg
    assert (await gql.ok('{ user(username: "ada") { bio } }'))["user"]["bio"] == ""


def test_server_processes_run_on_uvloop_unless_configured_off():
    import uvloop

    settings = Settings()
    for on, kind in ((True, uvloop.Loop), (False, asyncio.BaseEventLoop)):
        settings.server.uvloop = on
        loop = new_event_loop(settings)
        try:
            assert isinstance(loop, kind) and isinstance(loop, uvloop.Loop) is on
            assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
        finally:
            loop.close()


async def test_a_closed_app_and_its_store_are_freed(test_id, tmp_path):
    """Once a test's app is closed and `release_closed_apps` has run (after every test), nothing
    keeps the app, its store or its schema: a suite that built ~1 500 of them otherwise ends
    with a heap of gigabytes that interpreter exit spends minutes collecting."""
    settings = graphql_settings("sqlite", None, test_id, tmp_path)
    async with running_app(settings) as g:
        token, _ = await g.sign_up("ada")
        assert (await g.ok("{ viewer { username } }", token=token))["viewer"]["username"] == "ada"
        app, tao = weakref.ref(g.client.app), weakref.ref(g.tao)
        del g
    release_closed_apps()
    gc.collect()
    assert app() is None, [type(r).__name__ for r in gc.get_referrers(app())]
    assert tao() is None, [type(r).__name__ for r in gc.get_referrers(tao())]
