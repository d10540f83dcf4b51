"""Request limits: depth, aliases, tokens, strings, query cost and the per-viewer budget,
introspection and field suggestions. Each refusal is a clear GraphQL error (HTTP 200 with an
`errors` entry carrying `extensions.code`), never a 500, and refuses before anything runs."""

from __future__ import annotations

DEEP = "{ viewer { followers { nodes { followers { nodes { followers { nodes { username } } } } } } } }"  # depth 7


def codes(body):
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def test_depth_limit(gql_with):
    async with gql_with(max_depth=5) as g:
        body = await g(DEEP)
        assert body.get("data") is None and "exceeds maximum operation depth" in body["errors"][0]["message"]
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
        assert "errors" not in await g("{ viewer { followers { nodes { username } } } }")


async def test_alias_limit(gql_with):
    async with gql_with(max_aliases=3) as g:
        q = "{ " + " ".join(f"a{i}: viewer {{ username }}" for i in range(4)) + " }"
        body = await g(q)
        assert body.get("data") is None and "aliases" in body["errors"][0]["message"]


async def test_token_limit(gql_with):
    async with gql_with(max_tokens=50) as g:
        q = "{ viewer { " + " ".join(["username"] * 60) + " } }"
        body = await g(q)
        assert body.get("data") is None and "token" in body["errors"][0]["message"].lower()


async def test_oversize_strings_refused_before_running(gql_with):
    async with gql_with(max_string_length=100) as g:
        long = "x" * 101
        variables = {"i": {"username": "ada", "password": long, "fullName": "A"}}
        body = await g("mutation($i: AccountSignUpInput!) { signUp(input: $i) { token } }", variables)
        assert codes(body) == ["BAD_USER_INPUT"] and body["data"] is None
        body = await g(f'mutation {{ signUp(input: {{username: "ada", password: "{long}"}}) {{ token }} }}')
        assert codes(body) == ["BAD_USER_INPUT"]
        assert await g.tao.key_get_many("username", ["ada"]) == {}  # nothing ran


async def test_cost_is_reported(gql):
    body = await gql('{ user(username: "x") { followers(first: 50) { edges { node { username } } } } }')
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 1 + 1 + 50 * 2  # user, followers, 50 x (edge + node)
    status = cost["throttleStatus"]
    assert status["maximumAvailable"] == 10_000 and status["currentlyAvailable"] <= 10_000 - 102
    assert body["extensions"]["requestId"]


async def test_over_costly_query_refused(gql):
    q = '{ user(username: "x") { followers(first: 100) { nodes { followers(first: 100) { nodes { username } } } } } }'
    body = await gql(q)
    assert body["data"] is None and codes(body) == ["MAX_COST_EXCEEDED"]
    assert "first" in body["errors"][0]["message"]
    assert body["extensions"]["cost"]["requestedQueryCost"] > 5000


async def test_budget_per_viewer(gql_with):
    # Two sign-ups (512 points each) fit the anonymous client's bucket; each viewer has their own.
    async with gql_with(cost_budget=1100, cost_window_seconds=3600) as g:
        ta, _ = await g.sign_up("ada")
        tb, _ = await g.sign_up("bob")
        q = "{ viewer { followers(first: 100) { nodes { username } } } }"  # 1 + 1 + 100 = 102 points
        for _ in range(10):
            assert "errors" not in await g(q, token=ta)
        body = await g(q, token=ta)
        assert codes(body) == ["THROTTLED"] and body["data"] is None
        assert "retry in" in body["errors"][0]["message"]
        assert "errors" not in await g(q, token=tb)  # another viewer has their own budget


async def test_introspection_switch(gql_with):
    async with gql_with(introspection=False) as g:
        body = await g("{ __schema { queryType { name } } }")
        assert body.get("data") is None and "introspection" in body["errors"][0]["message"].lower()


async def test_field_suggestions_switch(gql, gql_with):
    body = await gql("{ viewer { usernam } }")
    assert "Did you mean 'username'" in body["errors"][0]["message"]
    async with gql_with(field_suggestions=False) as g:
        body = await g("{ viewer { usernam } }")
        assert "Did you mean" not in body["errors"][0]["message"]
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_introspection_allowed_despite_depth_limit(gql):
    from graphql import get_introspection_query

    body = await gql(get_introspection_query())
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"
