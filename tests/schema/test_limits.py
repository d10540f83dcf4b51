"""Request limits: depth, aliases, tokens, strings, query cost and the per-viewer budget,
introspection and field suggestions. Each refusal is a clear GraphQL error (HTTP 200 with an
`errors` entry carrying `extensions.code`), never a 500, and refuses before anything runs."""

from __future__ import annotations

import asyncio

from tests.schema.client import TEST_COST_BUDGET

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
    assert status["maximumAvailable"] == TEST_COST_BUDGET and status["currentlyAvailable"] <= TEST_COST_BUDGET - 102
    assert body["extensions"]["requestId"]


async def test_over_costly_query_refused(gql_with):
    q = '{ user(username: "x") { followers(first: 100) { nodes { followers(first: 100) { nodes { username } } } } } }'
    async with gql_with(max_query_cost=5000) as gql:
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


NESTED = ("followers(first: {f}) {{ nodes {{ followers(first: {f}) {{ nodes {{ "
          "followers(first: {f}) {{ nodes {{ id }} }} }} }} }} }}")


async def test_arguments_are_costed_as_coerced_variable_defaults_included(gql):
    # user + followers + 100 nodes + 100 followers + 100^2 nodes + 100^2 followers + 100^3 nodes
    literal = await gql('{ user(username: "x") { %s } }' % NESTED.format(f="100"))
    assert codes(literal) == ["MAX_COST_EXCEEDED"] and literal["extensions"]["cost"]["requestedQueryCost"] == 1_020_202
    defaulted = await gql('query($f: Int! = 100) { user(username: "x") { %s } }' % NESTED.format(f="$f"))
    assert (
        codes(defaulted) == ["MAX_COST_EXCEEDED"] and defaulted["extensions"]["cost"] == literal["extensions"]["cost"]
    )
    # a nullable variable left out: the field's own default (20) applies, as in execution
    unset = await gql('query($f: Int) { user(username: "x") { %s } }' % NESTED.format(f="$f"))
    assert unset["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 20 + 20 + 400 + 400 + 8000
    given = await gql('query($f: Int! = 100) { user(username: "x") { %s } }' % NESTED.format(f="$f"), {"f": 2})
    assert "errors" not in given and given["extensions"]["cost"]["requestedQueryCost"] == 1 + 1 + 2 + 2 + 4 + 4 + 8


async def test_list_arguments_are_costed_by_length(gql_with):
    from schema.relay import to_global_id

    ids = [to_global_id("User", 1000 + i) for i in range(50)]
    listed = ", ".join(f'"{i}"' for i in ids)
    below = "{ id ... on User { followers(first: 100) { nodes { id } } } }"
    expected = 50 * (1 + 1 + 100)  # per id: the node, its followers and their 100 nodes
    async with gql_with(max_query_cost=5000) as gql:
        literal = await gql("{ nodes(ids: [%s]) %s }" % (listed, below))
        assert codes(literal) == ["MAX_COST_EXCEEDED"]
        assert literal["extensions"]["cost"]["requestedQueryCost"] == expected
        body = await gql("query($ids: [ID!]! = [%s]) { nodes(ids: $ids) %s }" % (listed, below))
        assert codes(body) == ["MAX_COST_EXCEEDED"] and body["extensions"]["cost"]["requestedQueryCost"] == expected
        body = await gql("query($ids: [ID!]!) { nodes(ids: $ids) %s }" % below, {"ids": ids})
        assert body["extensions"]["cost"]["requestedQueryCost"] == expected


def doubling_fragments(levels: int) -> str:
    """F0 spreads F1 twice, F1 spreads F2 twice, ...: 2^levels paths to one `viewer`."""
    frags = "".join(f" fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return "{ ...F0 }" + frags + f" fragment F{levels} on Query {{ viewer {{ id }} }}"


def test_repeated_fragments_are_costed_once_each(monkeypatch):
    from graphql import parse

    from schema import build_schema
    from schema.cost import _Walker, query_cost

    # Costing each of the 2^40 paths would never finish; costing each fragment once visits the
    # one field once. Counted rather than timed: a busy CI box makes any wall-clock bound flaky.
    costed_fields = []
    field_cost = _Walker.field_cost
    monkeypatch.setattr(
        _Walker,
        "field_cost",
        lambda self, parent, node: costed_fields.append(node.name.value) or field_cost(self, parent, node),
    )
    cost = query_cost(build_schema()._schema, parse(doubling_fragments(40)), None, {}, 100)
    assert cost.points == 2**40 and costed_fields.count("viewer") == 1


async def test_expanded_fragments_count_against_the_selection_cap(gql):
    # 81 selections as written, 2^42 - 1 with each spread expanded: strawberry's depth and
    # alias rules walk every expansion, so the cap counts them, and nothing is validated.
    body = await asyncio.wait_for(gql(doubling_fragments(40)), 10)
    assert body["data"] is None and codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert f"{2**42 - 1} field selections" in body["errors"][0]["message"]


async def test_deeply_nested_fragments_are_refused_with_a_reason(gql):
    # 292 selections, within the cap; graphql-core's validation used to give up on it with a
    # bare "Validation aborted." (its recursion exhausted).
    levels = 290
    chain = "".join(f" fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(levels))
    body = await gql("{ ...F0 }" + chain + f" fragment F{levels} on Query {{ __typename }}")
    assert body["data"] is None and codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert "291 levels deep, more than the limit of 50" in body["errors"][0]["message"]
    chain = "".join(f" fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(49))
    assert (await gql.ok("{ ...F0 }" + chain + " fragment F49 on Query { __typename }")) == {"__typename": "Query"}


async def test_selections_are_capped_before_validation(gql):
    q = "{" + " viewer { id }" * 1000 + " }"  # 2000 selections, 14 KB, under the token limit
    body = await gql(q)
    assert body["data"] is None and codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    message = body["errors"][0]["message"]
    assert "2000 field selections" in message and "limit of 300" in message and "Split it" in message
    cost = body["extensions"]["cost"]
    assert (
        cost["requestedQueryCost"] == 2000 and cost["throttleStatus"]["currentlyAvailable"] <= TEST_COST_BUDGET - 2000
    )


async def test_every_document_costs_at_least_its_selections(gql):
    body = await gql("{ viewer {" + " id" * 99 + " } }")  # one object, 99 scalars: 1 point of data
    assert "errors" not in body and body["extensions"]["cost"]["requestedQueryCost"] == 100


async def test_an_unused_fragment_counts_toward_the_selection_cap(gql):
    """Validation walks every fragment, spread or not, but only what operations spread was
    counted: `query { __typename } fragment F on Query { viewer { id } ... }` with 1 200 repeated
    fields was validated (1.4 s of CPU on the event loop, ending "Validation aborted.") for 1
    point. An unused fragment now counts once: over `max_selections`, refused before validation
    and charged its selections."""
    body = await gql("query { __typename } fragment F on Query {" + " viewer { id }" * 400 + " }")
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"], body
    assert "801 field selections" in body["errors"][0]["message"] and "not validated" in body["errors"][0]["message"]
    assert body["extensions"]["cost"]["requestedQueryCost"] == 801


async def test_refused_documents_are_charged(gql_with):
    async with gql_with(max_selections=50, cost_budget=100, cost_window_seconds=3600) as g:
        invalid = "{ viewer {" + "".join(f" f{i}" for i in range(39)) + " } }"  # 40 selections, all unknown
        for left in (60, 20):
            body = await g(invalid)
            assert codes(body)[0] == "GRAPHQL_VALIDATION_FAILED"
            assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == left
        body = await g(invalid)  # the budget cannot pay for validating it: refused before validation
        assert codes(body) == ["THROTTLED"] and "40 points and 20 are left" in body["errors"][0]["message"]
        body = await g("{" + " viewer { id }" * 30 + " }")  # over the cap: charged what is left
        assert "limit of 50" in body["errors"][0]["message"]
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
        assert codes(await g("{ viewer { id } }")) == ["THROTTLED"]


def test_no_argument_type_is_lazy():
    """strawberry resolves a lazy argument type (`strawberry.lazy`) again on every call, for
    every element of a list: an import lookup and two `os.stat`s of `__main__` and the module,
    on the event loop. `notifications(types:)` took one: 100 000 `LIKE`s (a 1 MB variable, 2
    cost points) held the loop for 5.5 s. An argument's type is the real type, never lazy."""
    from strawberry.types.base import StrawberryList, StrawberryOptional
    from strawberry.types.lazy_type import LazyType

    from schema import build_schema

    def lazy(t) -> bool:
        while isinstance(t, StrawberryOptional | StrawberryList):
            t = t.of_type
        return isinstance(t, LazyType)

    found = [f"{name}.{field.python_name}({arg.python_name})"
             for name, concrete in build_schema().schema_converter.type_map.items()
             for field in getattr(concrete.definition, "fields", [])
             for arg in getattr(field, "arguments", [])
             if lazy(arg.type)]
    assert found == []
