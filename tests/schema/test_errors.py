"""What clients see when things go wrong: always a GraphQL-shaped body with `extensions.code`,
never a stack trace, SQL text or a bare 500."""

from __future__ import annotations

import logging

import pytest

import resolvers.users


def codes(body):
    return [e["extensions"]["code"] for e in body["errors"]]


@pytest.mark.parametrize("query,code", [
    ("{ viewer { username ", "GRAPHQL_PARSE_FAILED"),
    ("{ nonsense }", "GRAPHQL_VALIDATION_FAILED"),
    ("{ viewer { username { x } } }", "GRAPHQL_VALIDATION_FAILED"),
    ('{ user(username: 5) { username } }', "GRAPHQL_VALIDATION_FAILED"),
    ("{ user { username } }", "GRAPHQL_VALIDATION_FAILED"),
])
async def test_bad_queries(gql, query, code):
    status, body = await gql.post(query)
    assert status == 200 and body.get("data") is None
    assert codes(body) == [code] and body["errors"][0]["message"]


async def test_wrong_variable_type(gql):
    status, body = await gql.post('query($f: Int!) { viewer { followers(first: $f) { nodes { id } } } }', {"f": "ten"})
    assert status == 200 and "Int cannot represent" in body["errors"][0]["message"]
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_malformed_http_bodies(gql):
    for data, ctype in ((b"{not json", "application/json"), (b"[]", "application/json")):
        resp = await gql.client.post("/graphql", data=data, headers={"Content-Type": ctype})
        assert resp.status == 400
        body = await resp.json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST" and body["errors"][0]["message"]


async def test_get_runs_queries_but_not_mutations(gql):
    resp = await gql.client.get("/graphql", params={"query": "{ viewer { username } }"})
    assert resp.status == 200 and (await resp.json())["data"] == {"viewer": None}
    resp = await gql.client.get("/graphql", params={"query": 'mutation { logOut { ok } }'})
    assert resp.status == 405 and resp.headers["Allow"] == "POST"  # the GraphQL-over-HTTP spec's MUST
    err = (await resp.json())["errors"][0]
    assert err["extensions"]["code"] == "METHOD_NOT_ALLOWED" and "GET" in err["message"]


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(gql, monkeypatch, caplog):
    async def broken(ctx, user_id):
        raise RuntimeError("SELECT secret FROM internals")

    monkeypatch.setattr(resolvers.users, "follower_count", broken)
    await gql.sign_up("ada")
    caplog.set_level(logging.ERROR, logger="taogram.graphql")
    status, body = await gql.post('{ user(username: "ada") { username followerCount } }',
                                  headers={"X-Request-Id": "req-123"})
    assert status == 200
    assert body["data"] == {"user": None}  # followerCount is non-null, so its (nullable) parent is nulled
    (err,) = body["errors"]
    assert err["extensions"]["code"] == "INTERNAL_SERVER_ERROR" and err["path"] == ["user", "followerCount"]
    assert "secret" not in str(body) and "RuntimeError" not in str(body)
    assert "req-123" in err["message"] and body["extensions"]["requestId"] == "req-123"
    logged = [r for r in caplog.records if "req-123" in r.getMessage()]
    assert logged and logged[0].exc_info and "SELECT secret" in str(logged[0].exc_info[1])


async def test_expected_errors_are_not_logged_as_faults(gql, caplog):
    caplog.set_level(logging.ERROR, logger="taogram.graphql")
    await gql.post("{ nonsense }")
    await gql.post('{ viewer { followers(first: 500) { nodes { id } } } }')
    assert not caplog.records
