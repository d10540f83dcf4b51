"""`python -m resolvers load-graph`, run as an operator runs it against MariaDB + memcached, makes
data the API serves: its users are found by `user(username:)` and hold their names (a later
sign-up of one is USERNAME_TAKEN), their posts are listed and counted alike, likes carry what the
feed's ranking reads, and the posts' fan-out reaches followers' feeds once the jobs run."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.schema.client import GQL
from tests.tao.procs import write_config

pytestmark = pytest.mark.slow  # a fresh interpreter per command

REPO = Path(__file__).resolve().parents[2]
USERS = 30


def child_env(config: Path) -> dict[str, str]:
    """This environment with the config file deciding (no TAOGRAM_* overrides) and this checkout
    first on the path (the venv's editable install may point at another one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAOGRAM_")}
    return {**env, "TAOGRAM_CONFIG": str(config), "PYTHONPATH": str(REPO)}


async def run(config: Path, *argv: str, timeout: float = 180) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, cwd=REPO, env=child_env(config),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode()


USER = """query($name: String!) { user(username: $name) { id username postCount followerCount
  posts(first: 100) { nodes { id caption author { username } } } followers(first: 100) { nodes { username } } } }"""
SIGN_UP = """mutation($i: AccountSignUpInput!) { signUp(input: $i) { token errors { code field } } }"""


@pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)
async def test_load_graph_makes_data_the_api_serves(gql: GQL, gql_settings, tmp_path):
    config = await asyncio.to_thread(write_config, gql_settings, tmp_path / "taogram.toml")
    code, out = await run(config, "-m", "resolvers", "load-graph", "--users", str(USERS), "--posts-per-user", "2",
                          "--mean-follows", "4", "--likes-per-user", "3")
    assert code == 0, out
    assert f"made {USERS} users" in out

    total_posts = 0
    for i in range(USERS):
        user = (await gql.ok(USER, {"name": f"user{i}"}))["user"]
        assert user is not None and user["username"] == f"user{i}"
        posts = user["posts"]["nodes"]
        assert user["postCount"] == len(posts) and all(p["author"]["username"] == f"user{i}" for p in posts)
        assert user["followerCount"] == len(user["followers"]["nodes"])
        total_posts += len(posts)
    assert total_posts > 0
    assert (await gql.ok(USER, {"name": "USER3"}))["user"]["username"] == "user3"  # names ignore case, as sign-up's

    for name in ("user0", "User1"):
        body = await gql.ok(SIGN_UP, {"i": {"username": name, "password": "a long password", "fullName": "X"}})
        assert body["signUp"] == {"token": None, "errors": [{"code": "USERNAME_TAKEN", "field": "username"}]}
    body = await gql.ok(
        'mutation { logIn(input: {username: "user0", password: "anything at all"}) { token errors { code } } }'
    )
    assert body["logIn"] == {"token": None, "errors": [{"code": "INVALID_CREDENTIALS"}]}  # loaded without a password

    # Likes carry the post's author and kind (the feed's affinity and content-type signals).
    tao = gql.tao
    user0 = (await tao.key_get_many("username", ["user0"]))["user0"]
    for like in await tao.assoc_range(user0, "LIKES", 0, 100):
        post = (await tao.obj_get([like.id2]))[like.id2]
        assert like.data == {"a": post.data["author"], "k": post.data["kind"]}

    # The posts' fan-out jobs were committed with them: once run, followers' feeds hold the posts.
    await tao.run_jobs_until_idle(include_delayed=False)
    fed = 0
    for i in range(USERS):
        uid = (await tao.key_get_many("username", [f"user{i}"]))[f"user{i}"]
        follows = {a.id2 for a in await tao.assoc_range(uid, "FOLLOWS", 0, 100)}
        expected = {a.id2 for f in follows for a in await tao.assoc_range(f, "AUTHORED", 0, 100)}
        feed = {a.id2 for a in await tao.assoc_time_range(uid, "FEED", limit=500)}
        assert feed == expected, f"user{i}"
        fed += len(feed)
    assert fed > 0

    # Loading names that exist is refused before anything is written (user30.. are new, yet not made).
    code, out = await run(config, "-m", "resolvers", "load-graph", "--users", str(USERS + 10))
    assert code == 1 and "exist already" in out, out
    assert await tao.key_get_many("username", [f"user{USERS + 5}"]) == {}


async def test_bulk_follows_backfill_feeds_and_refuse_private_accounts(gql: GQL):
    from resolvers.bulk import do_add_follows_bulk

    alice_t, _ = await gql.sign_up("alice")
    await gql.sign_up("bob")
    await gql.sign_up("carol", private=True)
    for caption in ("one", "two"):
        await gql.ok("mutation($c: String!) { createPost(input: {caption: $c}) { errors { code } } }", {"c": caption},
                     alice_t)
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    ids = await gql.tao.key_get_many("username", ["alice", "bob", "carol"])
    with pytest.raises(ValueError, match="private"):
        await do_add_follows_bulk(gql.tao, [(ids["bob"], ids["carol"])])
    assert await do_add_follows_bulk(gql.tao, [(ids["bob"], ids["alice"])]) == 1
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    authored = {a.id2 for a in await gql.tao.assoc_range(ids["alice"], "AUTHORED", 0, 10)}
    assert {a.id2 for a in await gql.tao.assoc_time_range(ids["bob"], "FEED", limit=10)} == authored
    assert len(authored) == 2
