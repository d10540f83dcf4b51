"""Posts through GraphQL on both backends: create (hashtags, mentions, location), edit, delete,
the lists they appear in, privacy on every surface, and bad input that must change nothing."""

from __future__ import annotations

CREATE = """mutation($i: PostCreateInput!) { createPost(input: $i) {
  post { id caption status hashtags author { username } mentions { username } location { id name }
         likeCount commentCount publishedAt }
  errors { code field message } } }"""
POSTS = """query($u: String!) { user(username: $u) { postCount
  posts(first: 10) { nodes { caption } pageInfo { hasNextPage endCursor } } } }"""
HASHTAG = """query($n: String!) { hashtag(name: $n) { name postCount posts { nodes { caption } } } }"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Post { caption } } }"


async def create(gql, token, caption="", **extra):
    data = await gql.ok(CREATE, {"i": {"caption": caption, **extra}}, token)
    return data["createPost"]


async def uid(gql, name):
    return (await gql.tao.key_get_many("username", [name]))[name]


def captions(conn):
    return [n["caption"] for n in conn["nodes"]]


async def test_create_post_parses_tags_mentions_and_location(gql):
    ta, _ = await gql.sign_up("ada")
    await gql.sign_up("bob")
    p = await create(gql, ta, "Café at dawn #Café #東京 #café @bob @nobody #123 mail@bob.com",
                     location={"name": "Le  Dôme", "latitude": 48.84, "longitude": 2.33})
    assert p["errors"] == []
    post = p["post"]
    assert post["status"] == "VISIBLE" and post["publishedAt"] is not None
    assert post["hashtags"] == ["café", "東京"]  # unicode, case-folded, deduplicated; digits-only is no tag
    assert post["author"] == {"username": "ada"}
    assert post["mentions"] == [{"username": "bob"}]  # unknown names and e-mail addresses are text
    assert post["location"]["name"] == "Le Dôme"
    assert (post["likeCount"], post["commentCount"]) == (0, 0)
    # the same place again is the same location
    again = await create(gql, ta, "second", location={"name": "le dôme", "latitude": 48.84, "longitude": 2.33})
    assert again["post"]["location"]["id"] == post["location"]["id"]
    loc = await gql.ok("query($id: ID!) { location(id: $id) { postCount posts { nodes { caption } } } }",
                       {"id": post["location"]["id"]})
    assert loc["location"]["postCount"] == 2 and captions(loc["location"]["posts"]) == ["second", post["caption"]]
    # edges: the hashtag lists and the mention
    tag = (await gql.ok(HASHTAG, {"n": "#CAFÉ"}))["hashtag"]
    assert tag["name"] == "café" and tag["postCount"] == 1 and captions(tag["posts"]) == [post["caption"]]
    assert await gql.tao.assoc_count(await uid(gql, "bob"), "MENTIONED_IN") == 1
    lists = (await gql.ok(POSTS, {"u": "ada"}))["user"]
    assert lists["postCount"] == 2 and captions(lists["posts"]) == ["second", post["caption"]]



async def test_hashtags_in_scripts_with_combining_marks_and_turkish_capitals(gql):
    """`\\w` stops at a combining mark: `#हिन्दी` was the tag `#ह` (every Hindi, Bengali or Tamil
    tag cut to a letter or two and merged with unrelated ones), and `#İstanbul` (its lower case
    holds a combining dot) was a refused caption (probe3). Both are whole tags now, `İ` as `i`."""
    ta, _ = await gql.sign_up("ada")
    p = await create(gql, ta, "#हिन्दी #नमस्ते #தமிழ் #বাংলা #İstanbul #ISTANBUL #café")
    assert p["errors"] == []
    assert p["post"]["hashtags"] == ["हिन्दी", "नमस्ते", "தமிழ்", "বাংলা", "istanbul", "café"]
    for name in ("हिन्दी", "#İSTANBUL", "istanbul", "தமிழ்"):
        tag = (await gql.ok(HASHTAG, {"n": name}))["hashtag"]
        assert tag is not None and tag["postCount"] == 1, name
    assert (await gql.ok(HASHTAG, {"n": "ह"}))["hashtag"] is None  # not a tag of its own


async def test_full_width_and_case_folded_hashtags_are_one_tag(gql):
    """`#ｃａｔ` (full-width, as a Japanese or Chinese keyboard types it) was a tag of its own,
    which `hashtag(name: "cat")` and `#cat`'s posts never met (probe). A tag's name is its NFKC
    case fold now, at write and at every look-up by name; a full-width `＃` starts a tag too."""
    ta, _ = await gql.sign_up("ada")
    first = await create(gql, ta, "#ｃａｔ nap")
    assert first["errors"] == [] and first["post"]["hashtags"] == ["cat"]
    second = await create(gql, ta, "＃Ｃａｔ and #CAT and #cat and #Straße #STRASSE")
    assert second["post"]["hashtags"] == ["cat", "strasse"]
    for name in ("cat", "#ｃａｔ", "＃ＣＡＴ", "CAT"):
        tag = (await gql.ok(HASHTAG, {"n": name}))["hashtag"]
        assert tag is not None and tag["name"] == "cat" and tag["postCount"] == 2, name
    assert (await gql.ok(HASHTAG, {"n": "straße"}))["hashtag"]["postCount"] == 1
    assert len(await gql.tao.key_get_many("hashtag", ["cat", "ｃａｔ"])) == 1
    # the search index holds the one tag, found as typed in either width
    from tests.resolvers.test_search import found
    assert await found(gql, "#ｃａｔ", ta, ["HASHTAG"]) == ["cat"]
    assert await found(gql, "cat", ta, ["HASHTAG"]) == ["cat"]


async def test_tags_stored_under_an_old_normal_form_are_moved_onto_it(gql):
    """Posts tagged before the fifteenth session carry tags named in NFC lower case (`ｃａｔ`,
    `straße`): `hashtags-renormalize` moves them onto the NFKC case-folded tag (their counts
    follow), leaving the stale tag without posts; running it again changes nothing."""
    from resolvers.hashtag_names import renormalize_hashtags
    from resolvers.hashtags import hashtag_ids_for
    from resolvers.posts import sync_post_edges
    from resolvers.records import record_of
    from schema.relay import from_global_id
    from tao.repair import verify_shard

    ta, _ = await gql.sign_up("ada")
    new = (await create(gql, ta, "#cat today"))["post"]
    old = (await create(gql, ta, "#ｃａｔ #Straße #ｃａｔ2 then"))["post"]
    pid = from_global_id(old["id"], gql.tao.n_shards)[1]
    stale = await hashtag_ids_for(gql.tao, ["ｃａｔ", "straße", "ｃａｔ2"])  # as the old parse named them
    updated = await gql.tao.obj_update(pid, {"hashtags": list(stale), "hashtag_ids": list(stale.values())})
    await sync_post_edges(gql.tao, record_of(updated))
    await gql.tao.run_jobs_until_idle()
    assert (await gql.ok(HASHTAG, {"n": "cat"}))["hashtag"]["postCount"] == 1  # the old post is elsewhere
    moved = [m async for m in renormalize_hashtags(gql.tao)]
    assert sorted(n for n, _ in moved) == ["straße", "ｃａｔ", "ｃａｔ2"]
    assert sum(m for _, m in moved) == 1  # the post, renamed whole at its first stale tag
    await gql.tao.run_jobs_until_idle()
    tag = (await gql.ok(HASHTAG, {"n": "#ｃａｔ"}))["hashtag"]
    assert tag["name"] == "cat" and tag["postCount"] == 2
    assert captions(tag["posts"]) == [old["caption"], new["caption"]]
    assert (await gql.ok(HASHTAG, {"n": "strasse"}))["hashtag"]["postCount"] == 1
    post = (await gql.ok("query($id: ID!) { node(id: $id) { ... on Post { hashtags } } }", {"id": old["id"]}))
    assert post["node"]["hashtags"] == ["cat", "strasse", "cat2"]
    for sid in stale.values():
        assert await gql.tao.assoc_count(sid, "TAGS") == 0 and await gql.tao.assoc_count(sid, "PUBLIC_TAGS") == 0
    assert sorted([m async for m in renormalize_hashtags(gql.tao)]) == [("straße", 0), ("ｃａｔ", 0), ("ｃａｔ2", 0)]
    for shard in range(gql.tao.n_shards):
        assert (await verify_shard(gql.tao, shard)).ok

async def test_hashtag_found_by_concurrent_first_uses_is_one_object(gql):
    ta, _ = await gql.sign_up("ada")
    import asyncio
    results = await asyncio.gather(*(create(gql, ta, f"#same post {i}") for i in range(4)))
    assert all(r["errors"] == [] for r in results)
    tag = (await gql.ok(HASHTAG, {"n": "same"}))["hashtag"]
    assert tag["postCount"] == 4
    assert len(await gql.tao.key_get_many("hashtag", ["same"])) == 1


async def test_edit_post_moves_hashtag_and_mention_edges(gql):
    ta, _ = await gql.sign_up("ada")
    await gql.sign_up("bob")
    await gql.sign_up("cy")
    post = (await create(gql, ta, "#one #two @bob"))["post"]
    data = await gql.ok("""mutation($i: PostEditInput!) { editPost(input: $i) {
        post { caption hashtags mentions { username } } errors { code } } }""",
                        {"i": {"postId": post["id"], "caption": "#two #three @cy"}}, ta)
    assert data["editPost"] == {"post": {"caption": "#two #three @cy", "hashtags": ["two", "three"],
                                         "mentions": [{"username": "cy"}]}, "errors": []}
    counts = {n: (await gql.ok(HASHTAG, {"n": n}))["hashtag"] for n in ("one", "two", "three")}
    assert {n: h and h["postCount"] for n, h in counts.items()} == {
        "one": None,
        "two": 1,
        "three": 1,
    }  # no post: no tag
    assert await gql.tao.assoc_count(await uid(gql, "bob"), "MENTIONED_IN") == 0
    assert await gql.tao.assoc_count(await uid(gql, "cy"), "MENTIONED_IN") == 1
    # only the author may edit
    tb, _ = await gql.sign_up("dee")
    data = await gql.ok("mutation($i: PostEditInput!) { editPost(input: $i) { post { id } errors { code } } }",
                        {"i": {"postId": post["id"], "caption": "hacked"}}, tb)
    assert data["editPost"] == {"post": None, "errors": [{"code": "NOT_AUTHOR"}]}


async def test_delete_post_removes_it_everywhere(gql):
    ta, a = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    post = (await create(gql, ta, "bye #gone"))["post"]
    await gql.ok(
        "mutation($i: PostLikeInput!) { likePost(input: $i) { errors { code } } }", {"i": {"postId": post["id"]}}, tb
    )
    c = await gql.ok("mutation($i: CommentAddInput!) { addComment(input: $i) { comment { id } errors { code } } }",
                     {"i": {"postId": post["id"], "text": "nice"}}, tb)
    assert c["addComment"]["errors"] == []
    delete = "mutation($i: PostDeleteInput!) { deletePost(input: $i) { deletedPostId errors { code } } }"
    # someone else cannot
    assert (await gql.ok(delete, {"i": {"postId": post["id"]}}, tb))["deletePost"]["errors"] == [{"code": "NOT_AUTHOR"}]
    assert (await gql.ok(delete, {"i": {"postId": post["id"]}}, ta))["deletePost"] == {
        "deletedPostId": post["id"], "errors": []}
    assert (await gql.ok(NODE, {"id": post["id"]}, ta))["node"] is None
    lists = (await gql.ok(POSTS, {"u": "ada"}))["user"]
    assert lists["postCount"] == 0 and captions(lists["posts"]) == []
    assert (await gql.ok(HASHTAG, {"n": "gone"}))["hashtag"] is None  # its only post is gone
    assert await gql.tao.assoc_count((await gql.tao.key_get_many("hashtag", ["gone"]))["gone"], "PUBLIC_TAGS") == 0
    # likes and comments are the cleanup job's
    await gql.tao.run_jobs_until_idle()
    bob = await uid(gql, "bob")
    assert await gql.tao.assoc_count(bob, "LIKES") == 0
    store_post = int(__import__("base64").urlsafe_b64decode(post["id"] + "==").decode().split(":")[1])
    assert await gql.tao.assoc_count(store_post, "LIKED_BY") == 0
    assert await gql.tao.assoc_count(store_post, "HAS_COMMENT") == 0
    # deleting again: not found
    assert (await gql.ok(delete, {"i": {"postId": post["id"]}}, ta))["deletePost"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_bad_input_is_refused_and_changes_nothing(gql):
    ta, a = await gql.sign_up("ada")
    ada = await uid(gql, "ada")
    cases = [
        ("x" * 2201, {}, "CAPTION_TOO_LONG"),
        (" ".join(f"#t{i}" for i in range(31)), {}, "TOO_MANY_HASHTAGS"),
        ("#" + "a" * 101, {}, "HASHTAG_INVALID"),
        ("ok", {"location": {"name": "", "latitude": 1.0, "longitude": 1.0}}, "LOCATION_INVALID"),
        ("ok", {"location": {"name": "North", "latitude": 91.0, "longitude": 1.0}}, "LOCATION_INVALID"),
        ("ok", {"location": {"name": "Half", "latitude": 1.0}}, "LOCATION_INVALID"),
    ]
    for caption, extra, code in cases:
        p = await create(gql, ta, caption, **extra)
        assert p["post"] is None and [e["code"] for e in p["errors"]] == [code], (caption[:20], p)
    # malformed ids are top-level BAD_USER_INPUT
    body = await gql(CREATE, {"i": {"caption": "x", "mediaIds": ["nonsense"]}}, ta)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await gql(CREATE, {"i": {"caption": "x", "locationId": a}}, ta)  # a User's id
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await gql.tao.assoc_count(ada, "AUTHORED") == 0
    assert await gql.tao.key_get_many("hashtag", ["t1", "a" * 100]) == {}
    # anonymous: a top-level UNAUTHENTICATED
    body = await gql(CREATE, {"i": {"caption": "x"}})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_private_and_blocked_authors_posts_are_invisible(gql):
    ta, a = await gql.sign_up("ada", private=True)
    tb, b = await gql.sign_up("bob")
    tc, c = await gql.sign_up("cy")
    post = (await create(gql, ta, "secret #hush"))["post"]
    pub = (await create(gql, tb, "public #loud"))["post"]
    # a private author's post: invisible to a non-follower on every surface
    for token in (tb, None):
        assert (await gql.ok(NODE, {"id": post["id"]}, token))["node"] is None
        assert (await gql.ok(HASHTAG, {"n": "hush"}, token))["hashtag"] is None  # a private-only tag
        body = await gql(POSTS, {"u": "ada"}, token)
        assert body["data"]["user"]["posts"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        if token:
            like = await gql.ok("mutation($i: PostLikeInput!) { likePost(input: $i) { errors { code } } }",
                                {"i": {"postId": post["id"]}}, token)
            assert like["likePost"]["errors"] == [{"code": "NOT_FOUND"}]
    # once an approved follower: visible
    await gql.mutate("follow", tb, a)
    await gql.mutate("approveFollowRequest", ta, b)
    assert (await gql.ok(NODE, {"id": post["id"]}, tb))["node"] == {"id": post["id"], "caption": "secret #hush"}
    assert captions((await gql.ok(POSTS, {"u": "ada"}, tb))["user"]["posts"]) == ["secret #hush"]
    # a block hides the blocker's posts from the blocked and vice versa
    await gql.mutate("block", tb, c)
    assert (await gql.ok(NODE, {"id": pub["id"]}, tc))["node"] is None
    assert captions((await gql.ok(HASHTAG, {"n": "loud"}, tc))["hashtag"]["posts"]) == []
    assert captions((await gql.ok(HASHTAG, {"n": "loud"}, ta))["hashtag"]["posts"]) == ["public #loud"]
    like = await gql.ok("mutation($i: PostLikeInput!) { likePost(input: $i) { errors { code } } }",
                        {"i": {"postId": pub["id"]}}, tc)
    assert like["likePost"]["errors"] == [{"code": "NOT_FOUND"}]
    assert await gql.tao.assoc_count(await uid(gql, "cy"), "LIKES") == 0


async def test_post_with_media_processing_until_published(gql):
    from resolvers.posts import ON_PUBLISH, do_publish_post

    ta, _ = await gql.sign_up("ada")
    tb, _ = await gql.sign_up("bob")
    ada = await uid(gql, "ada")
    # uploads as the media pipeline will record them (its GraphQL types are not part of this test)
    m1 = await gql.tao.obj_add("MEDIA", {"kind": "image", "status": "ready", "owner": ada}, owner=ada)
    m2 = await gql.tao.obj_add("MEDIA", {"kind": "video", "status": "processing", "owner": ada}, owner=ada)
    for m in (m1, m2):
        await gql.tao.assoc_add(ada, "UPLOADED", m)
    from schema.relay import node_types, register_node, to_global_id
    had_media_type = "Media" in node_types()
    if not had_media_type:  # what the media schema registers; needed to decode Media ids
        register_node("Media", "MEDIA", lambda o: None)
    published: list[int] = []
    ON_PUBLISH.append(lambda post: published.append(post.id) or [])
    try:
        p = await create(gql, ta, "two", mediaIds=[to_global_id("Media", m1), to_global_id("Media", m2)])
        assert p["errors"] == [] and p["post"]["status"] == "PROCESSING" and p["post"]["publishedAt"] is None
        pid = int(__import__("base64").urlsafe_b64decode(p["post"]["id"] + "==").decode().split(":")[1])
        assert (await gql.ok(NODE, {"id": p["post"]["id"]}, tb))["node"] is None  # only the author sees it
        assert (await gql.ok(NODE, {"id": p["post"]["id"]}, ta))["node"] is not None
        assert await do_publish_post(gql.tao, pid) is False and published == []  # m2 not ready
        await gql.tao.obj_update(m2, {"status": "ready"})
        assert await do_publish_post(gql.tao, pid) is True and published == [pid]
        assert await do_publish_post(gql.tao, pid) is False and published == [pid]  # idempotent
        assert (await gql.ok(NODE, {"id": p["post"]["id"]}, tb))["node"]["caption"] == "two"
        # a media item belongs to one post; someone else's upload is refused
        again = await create(gql, ta, "reuse", mediaIds=[to_global_id("Media", m1)])
        assert [e["code"] for e in again["errors"]] == ["MEDIA_INVALID"]
        other = await create(gql, tb, "steal", mediaIds=[to_global_id("Media", m2)])
        assert [e["code"] for e in other["errors"]] == ["MEDIA_INVALID"]
    finally:
        ON_PUBLISH.pop()
        if not had_media_type:
            node_types().pop("Media", None)
