"""Notifications end to end through GraphQL on both backends: each event type, grouping with
exact counts, undo, blocks and mutes, privacy of targets, preferences, read marker, bad input.

Every write's notification job is committed with the write and run here by draining the outbox
(`run_jobs_until_idle`), as a worker would."""

from __future__ import annotations

from tests.resolvers.test_likes import LIKE, UNLIKE, new_post

LIST = """query($types: [NotificationType!], $after: String, $first: Int) { viewer {
  unreadNotificationCount
  notifications(first: $first, after: $after, types: $types) {
    edges { cursor node { type actorCount unread preview actors { username }
      target { __typename ... on Post { id } ... on Comment { id } } } }
    pageInfo { hasNextPage endCursor } } } }"""
COMMENT = "mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code } } }"
DELETE_COMMENT = "mutation($i: CommentDeleteInput!) { deleteComment(input: $i) { errors { code } } }"
PREFS = """mutation($i: NotificationPreferencesUpdateInput!) { updateNotificationPreferences(input: $i) {
  preferences { pushPausedUntil settings { type level push } } errors { code field } } }"""
MARK = "mutation($i: NotificationsMarkReadInput!) { markNotificationsRead(input: $i) { unreadCount errors { code } } }"


async def listed(gql, token, **variables):
    await gql.tao.run_jobs_until_idle()
    data = await gql.ok(LIST, {"first": 20, **variables}, token)
    return data["viewer"]


def nodes(viewer):
    return [e["node"] for e in viewer["notifications"]["edges"]]


async def test_likes_group_with_exact_count_latest_actors_and_undo(gql):
    ta, _ = await gql.sign_up("ada")
    post = await new_post(gql, ta)
    tokens = [(await gql.sign_up(f"u{i}"))[0] for i in range(5)]
    for t in tokens:
        await gql.ok(LIKE, {"i": {"postId": post}}, t)
        await gql.ok(LIKE, {"i": {"postId": post}}, t)  # idempotent: counts once
    await gql.ok(LIKE, {"i": {"postId": post}}, ta)  # your own like tells nobody
    v = await listed(gql, ta)
    [n] = nodes(v)
    assert n["type"] == "LIKE" and n["actorCount"] == 5 and n["unread"] is True
    assert [a["username"] for a in n["actors"]] == ["u4", "u3", "u2"]  # latest first
    assert n["preview"] == "u4, u3 and 3 others liked your post"
    assert n["target"] == {"__typename": "Post", "id": post}
    assert v["unreadNotificationCount"] == 1
    # Undo removes the actor; the count stays exact.
    await gql.ok(UNLIKE, {"i": {"postId": post}}, tokens[4])
    [n] = nodes(await listed(gql, ta))
    assert n["actorCount"] == 4 and [a["username"] for a in n["actors"]] == ["u3", "u2", "u1"]
    # Everyone undoes: the notification goes.
    for t in tokens[:4]:
        await gql.ok(UNLIKE, {"i": {"postId": post}}, t)
    assert nodes(await listed(gql, ta)) == []
    # One notification row for the group, whatever the number of likes.
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    assert await gql.tao.assoc_count(ada, "NOTIFIED") == 0


async def test_a_new_actor_moves_the_group_to_the_top(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    p1, p2 = await new_post(gql, ta), await new_post(gql, ta)
    await gql.ok(LIKE, {"i": {"postId": p1}}, tb)
    await gql.tao.run_jobs_until_idle()
    await gql.ok(LIKE, {"i": {"postId": p2}}, tb)
    await gql.tao.run_jobs_until_idle()
    assert [n["target"]["id"] for n in nodes(await listed(gql, ta))] == [p2, p1]
    await gql.ok(LIKE, {"i": {"postId": p1}}, tc)
    ns = nodes(await listed(gql, ta))
    assert [(n["target"]["id"], n["actorCount"]) for n in ns] == [(p1, 2), (p2, 1)]


async def test_comments_replies_mentions_and_comment_likes(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    c1 = (await gql.ok(COMMENT, {"i": {"postId": post, "text": "nice @cy"}}, tb))["addComment"]["comment"]["id"]
    await gql.ok(COMMENT, {"i": {"postId": post, "text": "thanks", "replyToId": c1}}, ta)
    await gql.ok("mutation($i: CommentLikeInput!) { likeComment(input: $i) { errors { code } } }",
                 {"i": {"commentId": c1}}, ta)
    ada = nodes(await listed(gql, ta))
    assert [(n["type"], n["actors"][0]["username"]) for n in ada] == [("COMMENT", "bob")]
    bob = nodes(await listed(gql, tb))
    assert [n["type"] for n in bob] == ["COMMENT_LIKE", "REPLY"]
    assert bob[0]["target"] == {"__typename": "Comment", "id": c1}
    cy = nodes(await listed(gql, tc))
    assert [(n["type"], n["preview"]) for n in cy] == [("MENTION", "bob mentioned you")]
    # Deleting the comment takes its notifications away.
    await gql.ok(DELETE_COMMENT, {"i": {"commentId": c1}}, tb)
    assert nodes(await listed(gql, ta)) == [] and nodes(await listed(gql, tc)) == []


async def test_caption_mentions_notify_on_publish(gql):
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    data = await gql.ok('mutation { createPost(input: {caption: "with @bob and @ada"}) { post { id } } }', token=ta)
    [n] = nodes(await listed(gql, tb))
    assert n["type"] == "MENTION" and n["target"]["id"] == data["createPost"]["post"]["id"]
    assert nodes(await listed(gql, ta)) == []  # never yourself


async def test_followers_group_per_day_and_requests_and_acceptance(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    tp, p = await gql.sign_up("pat", private=True)
    await gql.mutate("follow", tb, a)
    await gql.mutate("follow", tc, a)
    [n] = nodes(await listed(gql, ta))
    assert n["type"] == "FOLLOW" and n["actorCount"] == 2 and n["target"] is None
    await gql.mutate("unfollow", tb, a)
    [n] = nodes(await listed(gql, ta))
    assert n["actorCount"] == 1 and n["actors"][0]["username"] == "cy"
    # A follow request, then its acceptance.
    await gql.mutate("follow", tb, p)
    [n] = nodes(await listed(gql, tp))
    assert n["type"] == "FOLLOW_REQUEST"
    await gql.mutate("approveFollowRequest", tp, b)
    assert [n["type"] for n in nodes(await listed(gql, tp))] == ["FOLLOW"]  # the request is resolved
    assert [n["type"] for n in nodes(await listed(gql, tb))] == ["FOLLOW_ACCEPTED"]
    # A withdrawn request leaves nothing.
    await gql.mutate("follow", tc, p)
    await gql.tao.run_jobs_until_idle()
    await gql.mutate("unfollow", tc, p)
    assert [n["type"] for n in nodes(await listed(gql, tp))] == ["FOLLOW"]


async def test_blocked_and_muted_actors_never_notify_and_hidden_targets(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    post = await new_post(gql, ta)
    await gql.mutate("mute", ta, c, "errors { code }")
    await gql.ok(LIKE, {"i": {"postId": post}}, tc)
    assert nodes(await listed(gql, ta)) == []
    await gql.ok(LIKE, {"i": {"postId": post}}, tb)
    assert [n["actorCount"] for n in nodes(await listed(gql, ta))] == [1]
    # Blocked afterwards: bob disappears from the notification, which then has nobody to show.
    await gql.mutate("block", ta, b, "errors { code }")
    assert nodes(await listed(gql, ta)) == []
    # A deleted target hides its notification.
    post2 = await new_post(gql, ta)
    await gql.ok(LIKE, {"i": {"postId": post2}}, tc)  # muted: nothing
    td, _ = await gql.sign_up("dee")
    await gql.ok(LIKE, {"i": {"postId": post2}}, td)
    assert len(nodes(await listed(gql, ta))) == 1
    await gql.ok("mutation($i: PostDeleteInput!) { deletePost(input: $i) { errors { code } } }",
                 {"i": {"postId": post2}}, ta)
    assert nodes(await listed(gql, ta)) == []


async def test_preferences_off_and_from_people_i_follow(gql):
    ta, a = await gql.sign_up("ada")
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    got = await gql.ok(PREFS, {"i": {"settings": [{"type": "LIKE", "level": "FOLLOWING", "push": False},
                                                  {"type": "FOLLOW", "level": "OFF"}], "pausePushHours": 2}}, ta)
    prefs = got["updateNotificationPreferences"]["preferences"]
    assert {"type": "LIKE", "level": "FOLLOWING", "push": False} in prefs["settings"]
    assert {"type": "COMMENT", "level": "EVERYONE", "push": True} in prefs["settings"]
    assert prefs["pushPausedUntil"] is not None
    await gql.mutate("follow", ta, b)
    await gql.mutate("follow", tb, a)  # FOLLOW is off
    post = await new_post(gql, ta)
    await gql.ok(LIKE, {"i": {"postId": post}}, tc)  # ada does not follow cy
    await gql.ok(LIKE, {"i": {"postId": post}}, tb)
    [n] = nodes(await listed(gql, ta))
    assert n["type"] == "LIKE" and n["actorCount"] == 1 and n["actors"][0]["username"] == "bob"
    bad = await gql.ok(PREFS, {"i": {"pausePushHours": -1}}, ta)
    assert bad["updateNotificationPreferences"]["errors"] == [{"code": "INVALID_PAUSE", "field": "pausePushHours"}]


async def test_read_marker_types_filter_pages_and_bad_input(gql):
    ta, a = await gql.sign_up("ada")
    others = [await gql.sign_up(f"u{i}") for i in range(3)]
    posts = [await new_post(gql, ta) for _ in range(3)]
    for (t, _), post in zip(others, posts):
        await gql.ok(LIKE, {"i": {"postId": post}}, t)
        await gql.tao.run_jobs_until_idle()
    await gql.mutate("follow", others[0][0], a)
    v = await listed(gql, ta)
    assert [n["type"] for n in nodes(v)] == ["FOLLOW", "LIKE", "LIKE", "LIKE"] and v["unreadNotificationCount"] == 4
    # Pages: stable cursors.
    first = await listed(gql, ta, first=2)
    rest = await listed(gql, ta, first=2, after=first["notifications"]["pageInfo"]["endCursor"])
    assert [n["target"] for n in nodes(first) + nodes(rest)] == [n["target"] for n in nodes(v)]
    assert first["notifications"]["pageInfo"]["hasNextPage"] is True
    assert [n["type"] for n in nodes(await listed(gql, ta, types=["FOLLOW"]))] == ["FOLLOW"]
    # Read up to the second: two stay unread.
    cursor = v["notifications"]["edges"][2]["cursor"]
    got = await gql.ok(MARK, {"i": {"upTo": cursor}}, ta)
    assert got["markNotificationsRead"] == {"unreadCount": 2, "errors": []}
    assert [n["unread"] for n in nodes(await listed(gql, ta))] == [True, True, False, False]
    assert (await gql.ok(MARK, {"i": {}}, ta))["markNotificationsRead"]["unreadCount"] == 0
    # Bad input: a cursor of another list, an unknown type, someone else's notifications.
    likers_cursor = "Y3Vyc29yOjE6Mg"  # a relay cursor of another list
    body = await gql(LIST, {"first": 5, "after": likers_cursor}, ta)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await gql(LIST, {"first": 5, "types": ["NOPE"]}, ta)
    assert "errors" in body
    body = await gql("query($id: ID!) { node(id: $id) { ... on User { unreadNotificationCount } } }",
                     {"id": others[0][1]}, ta)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_mention_in_a_private_accounts_post_shows_once_the_post_is_visible(gql):
    tp, p = await gql.sign_up("pat", private=True)
    tb, b = await gql.sign_up("bob")
    await gql.ok('mutation { createPost(input: {caption: "hello @bob"}) { post { id } } }', token=tp)
    assert nodes(await listed(gql, tb)) == []  # bob cannot see pat's post: hidden
    await gql.mutate("follow", tb, p)
    await gql.mutate("approveFollowRequest", tp, b)
    assert [n["type"] for n in nodes(await listed(gql, tb))] == ["FOLLOW_ACCEPTED", "MENTION"]


async def test_a_types_list_longer_than_the_types_is_refused(gql):
    """`types` names each type at most once: a list longer than the enum (100 000 entries of
    one type were accepted, each coerced and kept in a set) is a clear BAD_USER_INPUT, while a
    repeat within that length is harmless."""
    from resolvers.notifications.model import NotificationType

    ta, _ = await gql.sign_up("ada")
    n = len(NotificationType)
    assert "errors" not in await gql(LIST, {"first": 5, "types": ["LIKE"] * n}, ta)
    for many in (n + 1, 1024):  # longer than `limits.max_list_length`: tests/schema/test_input_lists.py
        body = await gql(LIST, {"first": 5, "types": ["LIKE"] * many}, ta)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert f"at most {n}" in error["message"] and "`types`" in error["message"], error


async def test_a_read_marker_never_passes_now(gql):
    """`markNotificationsRead(upTo:)` took the time in the cursor as the marker, which only moves
    forward: a cursor whose position is far ahead (crafted, or a sealed cursor opened under
    another process's key while `messages.active_key` changes, docs/graphql.md) marked every
    notification to come read, for good (found by probe4). The marker now stops at now."""
    from schema.relay import from_global_id, list_cursors

    ta, a = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    ahead = list_cursors("User.notifications", from_global_id(a, gql.tao.n_shards)[1]).encode((2**62, 1))
    assert (await gql.ok(MARK, {"i": {"upTo": ahead}}, ta))["markNotificationsRead"]["errors"] == []
    await gql.ok(LIKE, {"i": {"postId": await new_post(gql, ta)}}, tb)
    v = await listed(gql, ta)
    assert [n["unread"] for n in nodes(v)] == [True] and v["unreadNotificationCount"] == 1


async def test_a_caption_edit_tells_whom_it_now_mentions_and_not_whom_it_dropped(gql):
    """Caption mentions were told only when the post was published: `editPost` adding @cy told
    cy nothing, and bob, edited out, kept "ada mentioned you" (found by probe4)."""
    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    tc, _ = await gql.sign_up("cy")
    post = (await gql.ok("mutation { createPost(input: {caption: \"hi @bob\"}) { post { id } } }", token=ta))[
        "createPost"]["post"]["id"]
    assert [n["type"] for n in nodes(await listed(gql, tb))] == ["MENTION"]
    edit = "mutation($i: PostEditInput!) { editPost(input: $i) { errors { code } } }"
    assert (await gql.ok(edit, {"i": {"postId": post, "caption": "hi @cy"}}, ta))["editPost"]["errors"] == []
    seen = nodes(await listed(gql, tc))
    assert [(n["type"], n["target"]) for n in seen] == [("MENTION", {"__typename": "Post", "id": post})]
    assert nodes(await listed(gql, tb)) == []
    # an edit that keeps a mention tells nobody again
    await gql.ok(edit, {"i": {"postId": post, "caption": "hello @cy"}}, ta)
    assert [n["actorCount"] for n in nodes(await listed(gql, tc))] == [1]
