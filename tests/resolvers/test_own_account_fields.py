"""The `User` fields that exist only on one's own account (sessions, two-factor, notification
settings and counts, the story tray and archive, close friends, restricted and story-muted
accounts), read on someone else's account by every relation a viewer can have to its owner:
nothing of them reaches the reader, over HTTP or over a WebSocket, and the owner reads them all.
Each field decides this itself (schema/users.py), so each is checked."""

from __future__ import annotations

import pytest

from tests.resolvers.transports import PRIVATE, both, mentions
from tests.schema.client import GQL

# field -> its selection; the owner's answer is checked in the test.
FIELDS = {
    "sessions": "sessions { id }",
    "twoFactor": "twoFactor { enabled }",
    "notificationPreferences": "notificationPreferences { settings { __typename } }",
    "unreadNotificationCount": "unreadNotificationCount",
    "storyTray": "storyTray(first: 5) { edges { cursor } }",
    "storyArchive": "storyArchive(first: 5) { edges { cursor } }",
    "closeFriends": "closeFriends(first: 5) { nodes { username } }",
    "restrictedUsers": "restrictedUsers(first: 5) { nodes { username } }",
    "storyMutedUsers": "storyMutedUsers(first: 5) { nodes { username } }",
}


def _query(field: str) -> str:
    return '{ user(username: "ada") { username %s } }' % FIELDS[field]


@pytest.fixture
async def ada(gql: GQL) -> dict[str, str | None]:
    """ada (private) with something in every list; a token per relation to her."""
    ta, _ = await gql.sign_up("ada")
    assert (await gql.ok(PRIVATE, {"p": True}, ta))["updateProfile"]["errors"] == []
    tb, bob = await gql.sign_up("bob")         # an approved follower, and on her close friends
    tc, cy = await gql.sign_up("cy")           # restricted by her
    td, dan = await gql.sign_up("dan")         # his stories muted by her
    te, eve = await gql.sign_up("eve")         # blocked by her
    tf, _ = await gql.sign_up("fay")           # blocks her
    ts, _ = await gql.sign_up("stranger")
    ada_id = (await gql.ok('{ user(username: "ada") { id } }', token=tb))["user"]["id"]
    await gql.mutate("follow", tb, ada_id)
    assert (await gql.mutate("approveFollowRequest", ta, bob))["errors"] == []
    add = "mutation($i: [ID!]!) { addCloseFriends(input: {userIds: $i}) { errors { code } } }"
    assert (await gql.ok(add, {"i": [bob]}, ta))["addCloseFriends"]["errors"] == []
    for name, who in (("restrict", cy), ("muteStories", dan)):
        done = await gql.ok(f"mutation($i: ID!) {{ {name}(input: {{userId: $i}}) {{ errors {{ code }} }} }}",
                            {"i": who}, ta)
        assert done[name]["errors"] == [], done
    assert (await gql.mutate("block", ta, eve))["errors"] == []
    assert (await gql.mutate("block", tf, ada_id))["errors"] == []
    await gql.tao.run_jobs_until_idle()  # bob's follow request notifies her
    return {"owner": ta, "approved follower and close friend": tb, "restricted": tc, "story-muted": td,
            "blocked by her": te, "blocking her": tf, "stranger": ts, "anonymous": None}


async def test_the_owner_reads_every_own_account_field(gql: GQL, ada):
    async with both(gql, ada["owner"]) as reader:
        user = {}
        for field in FIELDS:
            got = await reader.read(_query(field))
            assert got["errors"] == [], (field, got)
            user.update(got["data"]["user"])
    assert len(user["sessions"]) == 1 and user["twoFactor"] == {"enabled": False}
    assert user["notificationPreferences"]["settings"] and user["unreadNotificationCount"] >= 1
    assert user["storyTray"] is not None and user["storyArchive"] == {"edges": []}
    assert user["closeFriends"]["nodes"] == [{"username": "bob"}]
    assert user["restrictedUsers"]["nodes"] == [{"username": "cy"}]
    assert user["storyMutedUsers"]["nodes"] == [{"username": "dan"}]


@pytest.mark.parametrize("relation", ["approved follower and close friend", "restricted", "story-muted",
                                      "blocked by her", "blocking her", "stranger", "anonymous"])
async def test_nobody_else_reads_them(gql: GQL, ada, relation):
    async with both(gql, ada[relation]) as reader:
        for field in FIELDS:
            got = await reader.read(_query(field))  # the same over HTTP and the socket
            user = got["data"]["user"] if got["data"] else None
            assert user is None or user.get(field) is None, (relation, field, got)
            # Where she is visible, the refusal says why, the same for every field: log in
            # (anonymous), or it is not yours.
            if user is not None:
                want = "UNAUTHENTICATED" if relation == "anonymous" else "FORBIDDEN"
                assert got["errors"] == [(want, ("user", field))], (relation, field, got)
            # Not even through a list's members' names (her lists hold bob, cy and dan).
            if field in ("closeFriends", "restrictedUsers", "storyMutedUsers"):
                assert not mentions(got, '"bob"', '"cy"', '"dan"'), (relation, field, got)
