"""The GraphQL-over-HTTP spec's rules (graphql_http.py): media types negotiated from `Accept`,
status codes per media type, no `data` for request errors in application/graphql-response+json,
405 for a mutation over GET, and persisted documents (APQ, `documentId`, trusted documents)."""

from __future__ import annotations

import asyncio
import json

import pytest

from config import Settings
from schema.persisted import document_hash
from server import create_app
from tests.schema.client import GQL, graphql_settings, running_app

pytestmark = pytest.mark.no_blocking
GRJ = "application/graphql-response+json"
JSON = "application/json"
VIEWER = "{ viewer { id } }"


@pytest.fixture
def settings(test_id: str, tmp_path) -> Settings:
    return graphql_settings("sqlite", None, test_id, tmp_path)


@pytest.fixture
async def g(settings: Settings):
    app = await asyncio.to_thread(create_app, settings)
    async with running_app(settings, app) as client:
        yield client


async def post(g: GQL, body: dict, accept: str | None):
    headers = {"Content-Type": JSON}
    if accept is not None:
        headers["Accept"] = accept
    resp = await g.client.post("/graphql", data=json.dumps(body), headers=headers,
                               skip_auto_headers=["Accept"] if accept is None else ())
    return resp, await resp.json(content_type=None)


async def test_a_client_asking_for_graphql_response_json_gets_it(g: GQL):
    resp, body = await post(g, {"query": VIEWER}, GRJ)
    assert resp.status == 200 and resp.content_type == GRJ and resp.charset == "utf-8"
    assert body["data"] == {"viewer": None}


@pytest.mark.parametrize("accept, expected", [
    (None, GRJ),  # the spec's default since its 2025 watershed
    ("*/*", JSON),  # browsers, curl and HTTP libraries: the type every legacy client reads
    (JSON, JSON),
    (f"{GRJ}, {JSON}", GRJ),
    (f"{JSON};q=0.5, {GRJ}", GRJ),
    (f"{GRJ};q=0.5, {JSON}", JSON),
    ("application/*", JSON),
])
async def test_the_media_type_follows_accept(g: GQL, accept, expected):
    resp, body = await post(g, {"query": VIEWER}, accept)
    assert resp.status == 200 and resp.content_type == expected and body["data"] == {"viewer": None}


@pytest.mark.parametrize("accept", ["text/plain", "text/html", f"{JSON};q=0"])
async def test_nothing_acceptable_is_a_406_before_anything_runs(g: GQL, accept):
    doc = 'mutation { signUp(input: {username: "ada", password: "password-ada"}) { errors { code } } }'
    resp, body = await post(g, {"query": doc}, accept)
    assert resp.status == 406 and body["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"
    assert (await g.ok('{ user(username: "ada") { username } }'))["user"] is None  # nothing ran


@pytest.mark.parametrize("request_body, code", [
    ({"query": "{"}, "GRAPHQL_PARSE_FAILED"),
    ({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED"),
    ({"query": "query A { viewer { id } } query B { viewer { id } }"}, "BAD_REQUEST"),  # operation not determined
    ({"query": "query($n: Int!) { node(id: $n) { id } }", "variables": {"n": "x"}}, "GRAPHQL_VALIDATION_FAILED"),
    ({"query": "query($f: Int!) { viewer { id } }", "variables": {"f": "not a number"}}, "GRAPHQL_VALIDATION_FAILED"),
])
async def test_request_errors_are_400s_without_data_in_graphql_response_json(g: GQL, request_body, code):
    resp, body = await post(g, request_body, GRJ)
    assert resp.status == 400 and resp.content_type == GRJ, body
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == code
    # With application/json the same well-formed request is a 200 (the spec's SHOULD for it).
    resp, body = await post(g, request_body, JSON)
    assert resp.status == 200 and resp.content_type == JSON
    assert body.get("data") is None and body["errors"][0]["extensions"]["code"] == code


async def test_an_operation_name_the_document_lacks_is_a_request_error(g: GQL):
    request_body = {"query": "query A { viewer { id } }", "operationName": "B"}
    resp, body = await post(g, request_body, GRJ)
    assert resp.status == 400 and "data" not in body and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    resp, body = await post(g, request_body, JSON)
    assert resp.status == 200 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "B" in body["errors"][0]["message"]


async def test_field_errors_with_data_are_200s_in_both_types(g: GQL):
    for accept in (GRJ, JSON):
        resp, body = await post(g, {"query": '{ node(id: "not-an-id") { id } }'}, accept)
        assert resp.status == 200 and body["data"] == {"node": None}
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and body["errors"][0]["path"] == ["node"]


async def test_malformed_requests_are_400s_in_both_types(g: GQL):
    for accept in (GRJ, JSON):
        resp = await g.client.post("/graphql", data=b"{nope", headers={"Content-Type": JSON, "Accept": accept})
        body = await resp.json(content_type=None)
        assert resp.status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST" and "data" not in body


async def test_a_mutation_over_get_is_a_405_and_does_not_run(g: GQL):
    doc = 'mutation { signUp(input: {username: "ada", password: "password-ada"}) { errors { code } } }'
    for accept in (GRJ, JSON):
        resp = await g.client.get("/graphql", params={"query": doc}, headers={"Accept": accept})
        body = await resp.json(content_type=None)
        assert resp.status == 405 and resp.headers["Allow"] == "POST"
        assert (body["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
                and "POST" in body["errors"][0]["message"])
    assert (await g.ok('{ user(username: "ada") { username } }'))["user"] is None
    resp = await g.client.get("/graphql", params={"query": VIEWER}, headers={"Accept": GRJ})  # queries run over GET
    assert resp.status == 200 and (await resp.json(content_type=None))["data"] == {"viewer": None}


async def test_throttled_is_a_429_in_graphql_response_json(g: GQL, settings: Settings):
    settings.limits.cost_budget = 2
    settings.limits.cost_window_seconds = 3600
    async with running_app(settings, await asyncio.to_thread(create_app, settings)) as small:
        statuses = []
        for _ in range(4):
            resp, body = await post(small, {"query": "{ viewer { id } }"}, GRJ)
            statuses.append(resp.status)
        assert statuses[-1] == 429 and body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body


# ---- persisted documents ------------------------------------------------------------------------

def apq(text: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(text)}}


async def test_automatic_persisted_queries(g: GQL):
    resp, body = await post(g, {"extensions": apq(VIEWER)}, JSON)
    assert resp.status == 200 and body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert body["errors"][0]["message"] == "PersistedQueryNotFound"  # what Apollo clients look for
    resp, body = await post(g, {"query": VIEWER, "extensions": apq(VIEWER)}, JSON)  # registers it
    assert resp.status == 200 and body["data"] == {"viewer": None}
    resp, body = await post(g, {"extensions": apq(VIEWER)}, GRJ)
    assert resp.status == 200 and body["data"] == {"viewer": None}
    # By GET too (what APQ is for: short, cacheable URLs).
    resp = await g.client.get("/graphql", params={"extensions": json.dumps(apq(VIEWER))})
    assert resp.status == 200 and (await resp.json())["data"] == {"viewer": None}
    # And by the spec's documentId.
    resp, body = await post(g, {"documentId": "sha256:" + document_hash(VIEWER)}, GRJ)
    assert resp.status == 200 and body["data"] == {"viewer": None}


async def test_registered_documents_are_bounded_by_their_text_not_only_their_count(g: GQL):
    """The APQ store kept 2 000 texts whatever their length: a comment pads a registration to the
    request's 2 MiB, so one client made 2 000 such requests (~4 GB in a process). Now a text past
    100 000 characters runs but is not kept, and the store holds at most 16 Mi characters in all
    (the oldest go first): a client asking by hash for one no longer kept sends its text again."""
    huge = VIEWER + " #" + "x" * 1_000_000
    resp, body = await post(g, {"query": huge, "extensions": apq(huge)}, JSON)
    assert resp.status == 200 and body["data"] == {"viewer": None}, body  # it ran
    resp, body = await post(g, {"extensions": apq(huge)}, JSON)
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND", body  # not kept
    first = VIEWER + " # first"
    await post(g, {"query": first, "extensions": apq(first)}, JSON)
    for i in range(180):  # 180 x 95 000 characters: more than 16 Mi in all
        padded = f"{VIEWER} # {i} " + "x" * 95_000
        resp, body = await post(g, {"query": padded, "extensions": apq(padded)}, JSON)
        assert resp.status == 200 and "errors" not in body, body
    resp, body = await post(g, {"extensions": apq(first)}, JSON)  # the oldest: evicted
    assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND", body
    resp, body = await post(g, {"extensions": apq(padded)}, JSON)  # the newest: kept
    assert resp.status == 200 and body["data"] == {"viewer": None}, body


async def test_a_persisted_hash_must_match_its_text(g: GQL):
    resp, body = await post(g, {"query": "{ viewer { username } }", "extensions": apq(VIEWER)}, JSON)
    assert resp.status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    resp, body = await post(g, {"extensions": apq(VIEWER)}, GRJ)  # nothing was registered
    assert resp.status == 400 and body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    resp, body = await post(g, {"query": VIEWER, "documentId": "sha256:" + document_hash(VIEWER)}, JSON)
    assert resp.status == 400 and "not both" in body["errors"][0]["message"]


async def test_trusted_documents_only(settings: Settings, tmp_path):
    manifest = tmp_path / "documents.json"
    manifest.write_text(json.dumps({"sha256:" + document_hash(VIEWER): VIEWER}))
    settings.server.trusted_documents = str(manifest)
    settings.server.trusted_documents_only = True
    async with running_app(settings, await asyncio.to_thread(create_app, settings)) as g:
        resp, body = await post(g, {"documentId": "sha256:" + document_hash(VIEWER)}, GRJ)
        assert resp.status == 200 and body["data"] == {"viewer": None}
        resp, body = await post(g, {"query": VIEWER}, JSON)  # the same text, sent in full: allowed
        assert resp.status == 200 and body["data"] == {"viewer": None}
        other = "{ viewer { username } }"
        for request_body in ({"query": other}, {"query": other, "extensions": apq(other)}):
            resp, body = await post(g, request_body, GRJ)
            assert resp.status == 400 and body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
        resp, body = await post(g, {"extensions": apq(other)}, GRJ)  # the attempt registered nothing
        assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


def test_a_manifest_whose_keys_are_not_the_hashes_stops_the_start(settings: Settings, tmp_path):
    manifest = tmp_path / "documents.json"
    manifest.write_text(json.dumps({"sha256:" + "0" * 64: VIEWER}))
    settings.server.trusted_documents = str(manifest)
    with pytest.raises(SystemExit, match="not the SHA-256"):
        create_app(settings)


async def test_a_subscription_over_http_is_a_request_error(g: GQL):
    """HTTP ran a subscription as a query: its field's event stream was no value, so the answer
    was a masked fault (INTERNAL_SERVER_ERROR, logged as a server error) after its cost was
    spent. It is refused before anything runs, saying where subscriptions go."""
    token, _ = await g.sign_up("ada")
    sub = {"query": "subscription { viewerEvents { cursor } }"}
    for accept, status in ((JSON, 200), (GRJ, 400)):
        resp = await g.client.post("/graphql", json=sub, headers={"Authorization": f"Bearer {token}",
                                                                  "Accept": accept})
        body = await resp.json()
        assert resp.status == status, body
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST", body
        assert "WebSocket" in body["errors"][0]["message"] and "cost" not in body.get("extensions", {}), body
    resp = await g.client.get("/graphql", params=sub, headers={"Accept": JSON})
    assert (await resp.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
