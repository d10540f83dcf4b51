"""A failed key fails only that key: with one MariaDB server down, a query answers everything on
the live server and `UNAVAILABLE` exactly on the fields that needed the dead one."""

from __future__ import annotations

from typing import Any

from schema.relay import from_global_id
from tao import shard_of
from tao.shardmap import ShardMap
from tests.schema.client import graphql_settings, running_app

QUERY = """query($a: ID!, $b: ID!) {
  a: node(id: $a) { ... on User { username followerCount following(first: 5) { nodes { username } } } }
  b: node(id: $b) { ... on User { username followerCount } }
  both: nodes(ids: [$a, $b]) { ... on User { username } }
}"""


def _errors_by_path(body: dict[str, Any]) -> dict[tuple, str]:
    return {tuple(e["path"]): e["extensions"]["code"] for e in body.get("errors", [])}


async def test_one_dead_server_fails_only_the_fields_that_needed_it(request, test_id, tmp_path) -> None:
    services = request.getfixturevalue("services")
    settings = graphql_settings("mysql", services, test_id, tmp_path)
    settings.store.query_timeout = settings.store.connect_timeout = settings.store.acquire_timeout = 1.0
    server_of = ShardMap.from_settings(settings.store).server_of_shard
    n_shards = settings.store.logical_shards

    # Accounts until one lives on each server; the one on server 0 follows the one on server 1,
    # and the one on server 1 follows back (so server 0's count lists mention both).
    on: dict[int, tuple[str, str, str]] = {}  # server -> (token, global id, username)
    async with running_app(settings) as g:
        for i in range(40):
            token, gid = await g.sign_up(f"user{i}")
            on.setdefault(server_of[shard_of(from_global_id(gid, n_shards)[1])], (token, gid, f"user{i}"))
            if len(on) == 2:
                break
        assert len(on) == 2, "sign-ups never reached both servers"
        (ta, a, name_a), (tb, b, name_b) = on[0], on[1]
        await g.mutate("follow", ta, b)
        await g.mutate("follow", tb, a)
        healthy = await g.ok(QUERY, {"a": a, "b": b})
        assert healthy["a"]["following"]["nodes"] == [{"username": name_b}]

    # A cold cache (another key prefix), so every read below must reach its shard's server.
    settings.cache.key_prefix = f"{test_id}-cold"
    async with running_app(settings) as g:
        services.kill_mysql(1)
        body = await g(QUERY, {"a": a, "b": b})

    data = body["data"]
    # What lives on server 0 answers: the user, its follower count (server 0's count row).
    assert data["a"]["username"] == name_a and data["a"]["followerCount"] == 1, body
    assert data["both"][0] == {"username": name_a}, body
    # What needed server 1 is null, each with its own UNAVAILABLE error and nothing else failed:
    # the followed user's object (a's `following`), user b, and b's slot in `nodes`.
    assert data["a"]["following"] is None and data["b"] is None and data["both"][1] is None, body
    assert _errors_by_path(body) == {("a", "following"): "UNAVAILABLE", ("b",): "UNAVAILABLE",
                                     ("both", 1): "UNAVAILABLE"}, body
    for error in body["errors"]:
        assert "retry" in error["message"] and "shard" not in error["message"], error
