"""Shared steps of the story tests: accounts, ready uploads, posting, and the manual clock."""

from __future__ import annotations

from schema.relay import to_global_id
from tao.clock import ManualClock

DAY = 24 * 3600 * 1000
T0 = 1_800_000_000_000  # a fixed instant: every test runs on the same store clock readings

CREATE = """mutation($i: StoryCreateInput!) { createStory(input: $i) {
  story { id isLive isCloseFriends audience hashtag link postedAt expiresAt author { username }
          mentions { username } media { id } }
  errors { code field message } } }"""
TRAY = """{ viewer { storyTray(first: 50) { edges { cursor node { hasUnseen isCloseFriends latestStoryAt
  user { username } stories { id isCloseFriends } } } pageInfo { hasNextPage endCursor } } } }"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Story { isLive } ... on Media { id } } }"
STORIES = """query($u: String!) { user(username: $u) { stories(first: 100) { nodes { id } }
  highlights(first: 100) { nodes { title stories(first: 100) { nodes { id } } } } } }"""
SEEN = """mutation($ids: [ID!]!) { markStorySeen(input: {storyIds: $ids}) { stories { id viewerHasSeen }
  errors { code field } } }"""


def unwrap(data):
    """`data` with each connection selected as `{ nodes { ... } }` alone replaced by its nodes."""
    if isinstance(data, dict):
        if list(data) == ["nodes"]:
            return unwrap(data["nodes"])
        return {k: unwrap(v) for k, v in data.items()}
    if isinstance(data, list):
        return [unwrap(v) for v in data]
    return data


def clock(gql, start: int = T0) -> ManualClock:
    c = ManualClock(start)
    gql.tao.clock = c
    return c


async def uid(gql, name: str) -> int:
    return (await gql.tao.key_get_many("username", [name]))[name]


async def ready_media(gql, name: str, kind: str = "image", status: str = "ready") -> str:
    """An upload as the media pipeline records it once processed (the pipeline has its own tests)."""
    owner = await uid(gql, name)
    m = await gql.tao.obj_add("MEDIA", {"kind": kind, "status": status, "owner": owner}, owner=owner)
    await gql.tao.assoc_add(owner, "UPLOADED", m)
    return to_global_id("Media", m)


async def post_story(gql, token: str, name: str, **extra) -> dict:
    media = extra.pop("mediaId", None) or await ready_media(gql, name)
    data = await gql.ok(CREATE, {"i": {"mediaId": media, **extra}}, token)
    p = data["createStory"]
    assert p["errors"] == [], p
    return p["story"]


async def tray(gql, token: str) -> list[dict]:
    data = await gql.ok(TRAY, token=token)
    return [e["node"] for e in data["viewer"]["storyTray"]["edges"]]


def ring_names(rings: list[dict]) -> list[str]:
    return [r["user"]["username"] for r in rings]


async def follow(gql, token: str, user_gid: str) -> None:
    p = await gql.mutate("follow", token, user_gid)
    assert p["errors"] == [], p
