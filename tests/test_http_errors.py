"""What a client gets for a request that cannot run: malformed bodies, transport refusals, an
ambiguous document, a shard down while authenticating, a fault before execution. Every answer is
GraphQL-shaped (`errors[].extensions.code`, `extensions.requestId` equal to the `X-Request-Id`
header), with a status that says what happened, and never an unmasked internal message."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import WSMsgType

import server
from config import Settings
from server import create_app
from tao.ids import make_id
from tests.schema.client import GQL, graphql_settings, running_app

WS_PROTOCOL = "graphql-transport-ws"
JSON = {"Content-Type": "application/json"}
VIEWER = '{"query": "{ viewer { id } }"'


@pytest.fixture
def settings(test_id: str, tmp_path) -> Settings:
    # Request parsing knows nothing of the backend: the embedded one is enough.
    return graphql_settings("sqlite", None, test_id, tmp_path)


@pytest.fixture
async def g(settings: Settings):
    app = await asyncio.to_thread(create_app, settings)
    async with running_app(settings, app) as client:
        yield client


async def refused(resp, status: int, code: str) -> str:
    """Check a GraphQL-shaped refusal; returns its message."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert "data" not in body or body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code, body
    assert body["extensions"]["requestId"] == resp.headers["X-Request-Id"]
    for leak in ("recursion", "Traceback", "Server got itself in trouble", "shard", "SQL"):
        assert leak not in error["message"], error["message"]
    return error["message"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_malformed_bodies_are_400s_that_say_what_to_fix(g: GQL):
    post = g.client.post
    msg = await refused(await post("/graphql", data=b'{"query": "{ viewer { id } }", "variables": {"a": "\xff"}}',
                                   headers=JSON), 400, "BAD_REQUEST")
    assert "UTF-8" in msg
    for body, kind in ((b'"{ viewer { id } }"', "a string"), (b"null", "null"), (b"42", "a number")):
        msg = await refused(await post("/graphql", data=body, headers=JSON), 400, "BAD_REQUEST")
        assert "JSON object" in msg and kind in msg
    for body, field in (('{"query": 3}', "query"), (VIEWER + ', "operationName": []}', "operationName"),
                        (VIEWER + ', "variables": "x"}', "variables"), (VIEWER + ', "extensions": 1}', "extensions")):
        msg = await refused(await post("/graphql", data=body.encode(), headers=JSON), 400, "BAD_REQUEST")
        assert f"`{field}`" in msg
    msg = await refused(await post("/graphql", data=b'{"query": NaN}', headers=JSON), 400, "BAD_REQUEST")
    assert "not valid JSON" in msg
    msg = await refused(await post("/graphql", data=b"{ viewer { id } }", headers={"Content-Type": "text/plain"}),
                        400, "BAD_REQUEST")
    assert "application/json" in msg


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
async def test_deep_nesting_is_refused_before_anything_recurses(g: GQL, depth: int):
    for field in ("variables", "extensions"):
        body = f'{VIEWER}, "{field}": {{"a": {nested(depth)}}}}}'
        msg = await refused(await g.client.post("/graphql", data=body.encode(), headers=JSON), 400, "BAD_REQUEST")
        assert "more than 64 levels" in msg
        resp = await g.client.get("/graphql", params={"query": "{ viewer { id } }", field: nested(depth)})
        msg = await refused(resp, 400, "BAD_REQUEST")
        if depth * 6 < 8000:  # the URL fits the parser's limit (each bracket is %5B)
            assert f"`{field}` query parameter" in msg and "more than 64 levels" in msg
        else:
            assert "at most 8190 bytes" in msg


async def test_a_body_of_many_small_arrays_is_refused_before_it_is_walked(g: GQL):
    """Checking the body's nesting walked every value: 2 MiB of small arrays (340 000 of [0, 0])
    took ~0.8 s of CPU on the event loop before anything was charged. The walk stops past 262 144
    values: a 400 that says so."""
    many = json.dumps([[0, 0]] * 250_000, separators=(",", ":"))
    for field in ("variables", "extensions"):
        body = f'{VIEWER}, "{field}": {{"a": {many}}}}}'
        msg = await refused(await g.client.post("/graphql", data=body.encode(), headers=JSON), 400, "BAD_REQUEST")
        assert "more than 262144 values" in msg, msg
    from schema.request import BadRequestError, decode_json

    with pytest.raises(BadRequestError, match="more than 262144 values"):
        decode_json(json.dumps([[0]] * 150_000), "x", 64)
    assert len(decode_json(json.dumps([[0]] * 30_000), "x", 64)) == 30_000


async def test_a_body_of_too_many_values_is_refused_before_it_is_decoded(g: GQL):
    """Decoding a 2 MiB body of a million zeros took ~0.2 s of CPU on the event loop before the walk
    refused it (150-250 ms to its 400). The values are now counted on the bytes first: the same 400,
    without decoding, so a body cut short (not JSON at all) past the cap says too many values too,
    where the decoder would have reached its end first."""
    zeros = ",".join(["0"] * 300_000)
    for body in (f'{VIEWER}, "variables": {{"a": [{zeros}]}}}}', f'{VIEWER}, "variables": {{"a": [{zeros}'):
        msg = await refused(await g.client.post("/graphql", data=body.encode(), headers=JSON), 400, "BAD_REQUEST")
        assert msg == ("The request body holds more than 262144 values (array entries and object members); "
                       "a GraphQL request needs far fewer: send less."), msg
    from schema.request import decode_json

    # Exact for JSON: commas, brackets and braces in strings are not values, nor is an empty array
    commas = decode_json(json.dumps({"a": "," * 300_000, "b": ['[{,"\\'] * 50_000}), "x", 64)
    assert len(commas["a"]) == 300_000 and len(commas["b"]) == 50_000
    assert len(decode_json(json.dumps([[], {}, [ ]] * 80_000).replace("[]", "[ ]"), "x", 64)) == 240_000


async def test_nesting_within_the_limit_is_served_and_the_limit_is_a_setting(settings: Settings):
    body = f'{VIEWER}, "extensions": {{"a": {nested(60)}}}}}'.encode()
    async with running_app(settings, await asyncio.to_thread(create_app, settings)) as g:
        resp = await g.client.post("/graphql", data=body, headers=JSON)
        assert resp.status == 200 and (await resp.json())["data"] == {"viewer": None}
    settings.limits.max_json_depth = 8
    async with running_app(settings, await asyncio.to_thread(create_app, settings)) as g:
        msg = await refused(await g.client.post("/graphql", data=body, headers=JSON), 400, "BAD_REQUEST")
        assert "more than 8 levels" in msg


async def test_a_get_with_bad_variables_names_the_parameter(g: GQL):
    resp = await g.client.get("/graphql", params={"query": "query($n: Int) { viewer { id } }", "variables": "{n: 1"})
    msg = await refused(resp, 400, "BAD_REQUEST")
    assert "`variables` query parameter is not valid JSON" in msg and "body" not in msg


async def test_transport_refusals_are_graphql_shaped(g: GQL):
    big = b'{"query": "' + b" " * (3 * 1024 * 1024) + b'{ viewer { id } }"}'
    msg = await refused(await g.client.post("/graphql", data=big, headers=JSON), 413, "PAYLOAD_TOO_LARGE")
    assert str(server.MAX_REQUEST_BODY) in msg
    await refused(await g.client.get("/nowhere"), 404, "NOT_FOUND")
    await refused(await g.client.put("/graphql", json={"query": "{ viewer { id } }"}), 405, "METHOD_NOT_ALLOWED")
    # The request id is the client's when it sent a usable one.
    resp = await g.client.get("/nowhere", headers={"X-Request-Id": "abc-1"})
    assert (await resp.json())["extensions"]["requestId"] == "abc-1"


async def test_a_huge_header_is_a_graphql_shaped_400(g: GQL):
    resp = await g.client.post("/graphql", json={"query": "{ viewer { id } }"}, headers={"X-Big": "a" * 20_000})
    assert resp.status == 400 and resp.content_type == "application/json"
    body = await resp.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "aaaa" not in body["errors"][0]["message"]  # the client's bytes are not echoed


async def test_several_operations_need_an_operation_name(g: GQL):
    doc = ('mutation A($i: AccountSignUpInput!) { signUp(input: $i) { errors { code } } } '
           'query B { user(username: "ada") { username } }')
    variables = {"i": {"username": "ada", "password": "password-ada"}}
    # A request error: 200 in application/json (aiohttp's `*/*`), 400 in application/graphql-response+json.
    resp = await g.client.post("/graphql", json={"query": doc, "variables": variables})
    msg = await refused(resp, 200, "BAD_REQUEST")
    assert "operationName" in msg and "A, B" in msg
    resp = await g.client.post("/graphql", json={"query": doc, "variables": variables},
                               headers={"Accept": "application/graphql-response+json"})
    assert resp.status == 400 and "data" not in await resp.json(content_type=None)
    assert (await g.ok('{ user(username: "ada") { username } }'))["user"] is None  # the mutation did not run
    resp = await g.client.post("/graphql", json={"query": doc, "variables": variables, "operationName": "B"})
    assert resp.status == 200 and (await resp.json())["data"] == {"user": None}
    resp = await g.client.post("/graphql", json={"query": doc, "variables": variables, "operationName": "A"})
    assert resp.status == 200 and (await resp.json())["data"]["signUp"]["errors"] == []
    # Over a WebSocket: an error message for that operation; the socket stays usable.
    async with g.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        await ws.send_json(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": "query A { viewer { id } } query B { viewer { id } }"},
            }
        )
        msg = await ws.receive_json(timeout=10)
        assert msg["type"] == "error" and msg["id"] == "1"
        assert (
            msg["payload"][0]["extensions"]["code"] == "BAD_REQUEST" and "operationName" in msg["payload"][0]["message"]
        )
        await ws.send_json(
            {
                "id": "2",
                "type": "subscribe",
                "payload": {"query": "query A { viewer { id } } query B { viewer { id } }", "operationName": "B"},
            }
        )
        msg = await ws.receive_json(timeout=10)
        assert msg["type"] == "next" and msg["payload"]["data"] == {"viewer": None}


async def test_a_deep_websocket_message_closes_the_socket_as_malformed(g: GQL):
    async with g.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        assert (await ws.receive_json(timeout=10))["type"] == "connection_ack"
        await ws.send_str('{"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { id } }", '
                          f'"variables": {{"a": {nested(5000)}}}}}}}')
        msg = await ws.receive(timeout=10)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 4400


async def test_an_unexpected_fault_before_execution_is_masked_with_the_request_id(g: GQL, monkeypatch):
    async def broken(ctx, token):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server, "authenticate", broken)
    resp = await g.client.post("/graphql", json={"query": "{ viewer { id } }"}, headers={"X-Request-Id": "r-500"})
    msg = await refused(resp, 500, "INTERNAL_SERVER_ERROR")
    assert "r-500" in msg and "secret" not in msg
    async with g.client.ws_connect("/graphql", protocols=[WS_PROTOCOL], headers={"X-Request-Id": "r-ws"}) as ws:
        await ws.send_json({"type": "connection_init", "payload": {}})
        msg = await ws.receive(timeout=10)
        assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 1011
        assert "r-ws" in (msg.extra or "") and "secret" not in (msg.extra or "")


def _token_on(shard: int) -> str:
    """A well-formed token whose session would live on `shard` (none does: the read must reach SQL)."""
    return f"tgs_{make_id(int(time.time() * 1000), shard, 1)}_{'x' * 43}"


async def test_a_shard_down_while_authenticating_is_a_masked_unavailable_error(request, test_id, tmp_path):
    services = request.getfixturevalue("services")
    settings = graphql_settings("mysql", services, test_id, tmp_path)
    settings.store.query_timeout = settings.store.connect_timeout = settings.store.acquire_timeout = 1.0
    app = await asyncio.to_thread(create_app, settings)
    async with running_app(settings, app) as g:
        services.kill_mysql(1)
        outcomes = {}
        for shard in range(settings.store.logical_shards):
            resp = await g.client.post("/graphql", json={"query": "{ viewer { id } }"},
                                       headers={"Authorization": f"Bearer {_token_on(shard)}"})
            if resp.status == 200:  # as when a shard fails during execution
                msg = await refused(resp, 200, "UNAVAILABLE")
                assert "retry" in msg
            else:
                await refused(resp, 401, "UNAUTHENTICATED")  # a live shard: no such session
            outcomes[shard] = resp.status
        assert set(outcomes.values()) == {200, 401}, outcomes
        down = next(s for s, status in outcomes.items() if status == 200)
        async with g.client.ws_connect("/graphql", protocols=[WS_PROTOCOL]) as ws:
            await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {_token_on(down)}"}})
            msg = await ws.receive(timeout=10)
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED) and ws.close_code == 1013
            assert "retry" in (msg.extra or "")


def test_request_json_decoding_never_recurses():
    from schema.request import BadRequestError, decode_json

    assert decode_json(b'{"a": [1, {"b": 2}]}', "x", 3) == {"a": [1, {"b": 2}]}
    with pytest.raises(BadRequestError):
        decode_json(b'{"a": [1, {"b": []}]}', "x", 3)
    deep = json.dumps({"v": 1})
    for _ in range(200):
        deep = f'{{"k": {deep}}}'
    with pytest.raises(BadRequestError, match="more than 64 levels"):
        decode_json(deep, "x", 64)
