"""A finished request is freed by reference counting, not left to the cycle collector.

graphql-core's execution context refers to itself and holds the request's context (its loaders,
every record they read): until `schema.execution.TaogramExecutionContext` broke that cycle, each request
left its whole graph for the collector, whose generation-1 passes then landed, 11-22 ms each, in
the slowest 1 % of story tray pages (docs/BENCHMARKS.md, "Stories")."""

from __future__ import annotations

import gc

from resolvers.context import RequestContext
from resolvers.loaders import Loaders
from tests.schema.client import GQL

PAGE = """query($u: String!) { user(username: $u) { username followerCount
  followers(first: 5) { edges { cursor node { username } } pageInfo { hasNextPage } } } }"""


async def test_a_served_request_leaves_no_context_or_loaders_to_the_cycle_collector(gql: GQL):
    token, ada = await gql.sign_up("ada")
    for name in ("bo", "cy"):
        t, _ = await gql.sign_up(name)
        await gql.ok("mutation($u: ID!) { follow(input: {userId: $u}) { errors { code } } }", {"u": ada}, t)
    await gql.ok(PAGE, {"u": "ada"}, token)  # warm: first-use caches are not the request's garbage
    gc.collect()
    gc.freeze()  # what exists now is out of the collector's sight: it walks only these requests' objects
    gc.set_debug(gc.DEBUG_SAVEALL)  # the collector keeps what it finds unreachable, for us to look at
    try:
        for _ in range(3):
            data = await gql.ok(PAGE, {"u": "ada"}, token)
            assert data["user"]["followerCount"] == 2
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, (RequestContext, Loaders))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
    assert left == []
