"""A grouped notification counts only the actors its viewer may see (docs/notifications.md).

"bob and 3 others liked your post" with bob the only actor shown: `actorCount` was the group's
exact count of distinct actors, those hidden from the viewer included (an account they block,
one that blocks them, one pending deletion), so the count told the recipient that people they
cannot see had liked their post, and how many; the push said the same. Now it counts the actors
the `actors` rule lets through.
"""

from __future__ import annotations

import asyncio

import pytest

from resolvers.notifications import reads
from tests.resolvers.test_likes import LIKE, new_post
from tests.resolvers.test_notifications import listed, nodes
from tests.schema.client import password_of
from tests.wsclient import WSClient

DELETE = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"
EVENTS = """subscription { notificationEvents { notification { actorCount actors { username } preview } } }"""


async def _liked_by(gql, names: list[str]):
    ta, a = await gql.sign_up("ada")
    post = await new_post(gql, ta)
    users = {}
    for name in names:
        users[name] = await gql.sign_up(name)
        await gql.ok(LIKE, {"i": {"postId": post}}, users[name][0])
    return ta, a, users


async def _hide(gql, ta, a, users, blocked: str, blocking: str, leaving: str) -> None:
    assert (await gql.mutate("block", ta, users[blocked][1], "errors { code }"))["errors"] == []
    assert (await gql.mutate("block", users[blocking][0], a, "errors { code }"))["errors"] == []
    gone = await gql.ok(DELETE, {"i": {"password": password_of(leaving)}}, users[leaving][0])
    assert gone["deleteAccount"]["ok"] is True


async def test_actor_count_leaves_out_blocked_blocking_and_pending_deletion_accounts(gql):
    ta, a, users = await _liked_by(gql, ["bob", "cy", "dee", "eve", "fay"])
    [n] = nodes(await listed(gql, ta))
    assert n["actorCount"] == 5  # the control: everyone is visible
    await _hide(gql, ta, a, users, blocked="cy", blocking="eve", leaving="dee")
    [n] = nodes(await listed(gql, ta))
    assert [u["username"] for u in n["actors"]] == ["fay", "bob"]
    assert (n["actorCount"], n["preview"]) == (2, "fay and bob liked your post")


async def test_actor_count_of_a_group_larger_than_the_scan_leaves_out_hidden_actors(gql, monkeypatch):
    """Past the `ACTOR_SCAN` newest actors, blocks either way and accounts pending deletion are
    still left out (looked up through the viewer's block lists and the deletion tallies)."""
    monkeypatch.setattr(reads, "ACTOR_SCAN", 2, raising=False)  # (no scan before the fix)
    ta, a, users = await _liked_by(gql, ["u0", "u1", "u2", "u3", "u4"])
    for name in ("u2", "u0", "u1", "u3"):  # the scan's two newest followers: u3, u1
        assert (await gql.mutate("follow", users[name][0], a))["errors"] == []
    assert [n["actorCount"] for n in nodes(await listed(gql, ta))] == [4, 5]  # FOLLOW, LIKE
    await _hide(gql, ta, a, users, blocked="u0", blocking="u1", leaving="u2")
    follows, likes = nodes(await listed(gql, ta))
    assert [u["username"] for u in likes["actors"]] == ["u4", "u3"]
    assert (likes["actorCount"], likes["preview"]) == (2, "u4 and u3 liked your post")
    assert (follows["actorCount"], follows["preview"]) == (1, "u3 started following you")


@pytest.mark.parametrize("gql_settings", ["mysql"], indirect=True)
async def test_the_push_says_what_the_list_says(gql):
    """The push's count is the view's (`push._body`): blocked and departed actors left out too."""
    from resolvers.actor import acting_as
    from resolvers.notifications.reads import notification_view, preview_text
    from tests.resolvers.messages_client import store_id

    ta, a, users = await _liked_by(gql, ["bob", "cy", "dee", "eve"])
    await _hide(gql, ta, a, users, blocked="cy", blocking="eve", leaving="dee")
    [n] = nodes(await listed(gql, ta))
    ada = store_id(a)
    [edge] = await gql.tao.assoc_range(ada, "NOTIFIED", 0, 10)
    view = await notification_view(acting_as(gql.tao, ada), edge.id2)
    assert view is not None and (view.actor_count, preview_text(view)) == (1, "bob liked your post")
    assert n["preview"] == "bob liked your post"



@pytest.mark.parametrize("scan", [50, 2])
async def test_a_live_event_counts_only_the_actors_its_subscriber_may_see(gql, monkeypatch, scan):
    """Over the real WebSocket (`notificationEvents`), an event's notification says what the list
    says: a new like on a group whose other actors include an account the recipient blocked, one
    that blocks her and one pending deletion counts the two she may see, within the newest
    `ACTOR_SCAN` actors or past them. Only the HTTP list had a test of this."""
    monkeypatch.setattr(reads, "ACTOR_SCAN", scan)
    ta, a = await gql.sign_up("ada")
    post = await new_post(gql, ta)
    users = {}
    for name in ("bob", "cy", "dee", "eve"):
        users[name] = await gql.sign_up(name)
        await gql.ok(LIKE, {"i": {"postId": post}}, users[name][0])
    await _hide(gql, ta, a, users, blocked="cy", blocking="eve", leaving="dee")
    await gql.tao.run_jobs_until_idle()
    sock = await WSClient.connect(gql.client, "/graphql", ta)
    try:
        await sock.subscribe("n", EVENTS)
        await asyncio.sleep(0.3)  # live once the broker acknowledged it
        tf, _ = await gql.sign_up("fay")
        await gql.ok(LIKE, {"i": {"postId": post}}, tf)
        await gql.tao.run_jobs_until_idle()
        event = (await sock.next_data("n"))["notificationEvents"]["notification"]
    finally:
        await sock.close()
    assert event["actorCount"] == 2, event
    if scan == 50:
        assert event == {"actorCount": 2, "actors": [{"username": "fay"}, {"username": "bob"}],
                         "preview": "fay and bob liked your post"}
    [now] = nodes(await listed(gql, ta))  # (a scan of 2 reads only fay and eve: "fay and 1 other")
    assert {k: now[k] for k in event} == event


async def test_an_account_under_purge_is_not_counted_past_the_scan(gql, monkeypatch):
    """A deleted account's purge removes its likes (kind `likes`), then its tallies
    (`dormant_tallies`), and only at `inbound` the NOTIF_ACTOR edges others' notifications hold
    to it. In between, in a group larger than `ACTOR_SCAN`, it was counted again: no tally
    named it any more, and its edge was still there (docs/notifications.md, "Not handled"). Its
    likes' and follows' purge now takes it out of the groups they made first, as an unlike does."""
    from resolvers.account_data.registry import DataContext, kinds
    from tests.resolvers.messages_client import store_id

    monkeypatch.setattr(reads, "ACTOR_SCAN", 2)
    ta, a, users = await _liked_by(gql, ["u0", "u1", "u2", "u3", "u4"])  # the scan reads u4 and u3
    for name in ("u0", "u1", "u2", "u3"):
        assert (await gql.mutate("follow", users[name][0], a))["errors"] == []
    await gql.tao.run_jobs_until_idle()
    gone = await gql.ok(DELETE, {"i": {"password": password_of("u1")}}, users["u1"][0])
    assert gone["deleteAccount"]["ok"] is True
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    assert [n["actorCount"] for n in nodes(await listed(gql, ta))] == [3, 4]  # pending: left out
    ctx = DataContext(gql.tao, gql.tao.settings, None, 1000)
    u1 = store_id(users["u1"][1])
    for kind in kinds():  # the purge up to the edges others hold to it (`inbound`)
        if kind.name == "notifications_about":
            break
        if kind.purge is not None and kind.name != "media":
            while await kind.purge(ctx, u1):
                pass
    await gql.tao.run_jobs_until_idle(include_delayed=False)
    follows, likes = nodes(await listed(gql, ta))
    assert (likes["actorCount"], follows["actorCount"]) == (4, 3)
