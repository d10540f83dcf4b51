"""Privacy edges, as a matrix of viewers x surfaces: followers-you-follow on a private account,
hashtag and location counts and existence, media outside a visible post.

Each rule is asserted through every surface that exposes it: a root field (`user`, `hashtag`,
`location`), `node(id:)` and `nodes(ids:)`, and counts (`totalCount`, `postCount`)."""

from __future__ import annotations

import pytest

FYF = "followersYouFollow { totalCount users { username } }"
# The same field reached three ways: by username, by node id, in a list of nodes.
FYF_SURFACES = {
    "user": ("query($u: String!) { it: user(username: $u) { %s } }", lambda b: b["it"]),
    "node": ("query($id: ID!) { it: node(id: $id) { ... on User { %s } } }", lambda b: b["it"]),
    "nodes": ("query($id: ID!) { it: nodes(ids: [$id]) { ... on User { %s } } }", lambda b: b["it"][0]),
}


@pytest.mark.parametrize("surface", FYF_SURFACES)
@pytest.mark.parametrize("who", ["anonymous", "stranger", "requester", "follower", "self"])
async def test_followers_you_follow_of_a_private_account_follows_the_followers_rule(gql, surface, who):
    tp, p = await gql.sign_up("priv", private=True)
    tf, f = await gql.sign_up("fan")
    await gql.mutate("follow", tf, p)
    await gql.mutate("approveFollowRequest", tp, f)
    tv, _ = await gql.sign_up("viewer")
    await gql.mutate("follow", tv, f)  # the viewer follows priv's follower: the membership to hide
    if who == "requester":
        await gql.mutate("follow", tv, p)
    elif who == "follower":
        await gql.mutate("follow", tv, p)
        await gql.mutate("approveFollowRequest", tp, await _id(gql, "viewer"))
    token = {"anonymous": None, "self": tp}.get(who, tv)
    query, pick = FYF_SURFACES[surface]
    variables = {"u": "priv"} if surface == "user" else {"id": p}
    body = await gql(query % f"followers {{ nodes {{ username }} }} {FYF}", variables, token)
    assert body["data"] is not None, body
    got = pick(body["data"])
    if who in ("anonymous", "stranger", "requester"):
        assert got == {"followers": None, "followersYouFollow": None}
        assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
        assert {tuple(e["path"][-1:]) for e in body["errors"]} == {("followers",), ("followersYouFollow",)}
    else:
        assert "errors" not in body, body["errors"]
        mutual = [{"username": "fan"}] if who == "follower" else []
        assert got["followersYouFollow"] == {"totalCount": len(mutual), "users": mutual}


async def _id(gql, name: str) -> str:
    from schema.relay import to_global_id

    return to_global_id("User", (await gql.tao.key_get_many("username", [name]))[name])


CREATE = (
    """mutation($i: PostCreateInput!) { createPost(input: $i) { post { id location { id } } errors { code field } } }"""
)
LISTING = "{ id postCount posts { nodes { caption } } }"
# A hashtag or location reached every way a client can: by name or id, by node id, in nodes.
LISTING_SURFACES = {
    "hashtag": ("query($n: String!) { it: hashtag(name: $n) %s }" % LISTING, lambda b: b["it"]),
    "location": ("query($id: ID!) { it: location(id: $id) %s }" % LISTING, lambda b: b["it"]),
    "node": ("query($id: ID!) { it: node(id: $id) { ... on Hashtag %s ... on Location %s } }" % (LISTING, LISTING),
             lambda b: b["it"]),
    "nodes": ("query($id: ID!) { it: nodes(ids: [$id]) { ... on Hashtag %s ... on Location %s } }" % (LISTING, LISTING),
              lambda b: b["it"][0]),
}


async def _listing_seen(gql, token, kind: str, name: str, gid: str) -> list:
    """What each surface answers for one hashtag (kind "tag") or location (kind "place")."""
    out = []
    for surface, (query, pick) in LISTING_SURFACES.items():
        if (surface == "hashtag") != (kind == "tag") and surface in ("hashtag", "location"):
            continue
        variables = {"n": name} if surface == "hashtag" else {"id": gid}
        got = pick(await gql.ok(query, variables, token))
        out.append(None if got is None else (got["postCount"], sorted(n["caption"] for n in got["posts"]["nodes"])))
    return out


async def test_hashtags_and_locations_count_public_posts_and_exist_only_through_visible_ones(gql):
    tp, p = await gql.sign_up("priv", private=True)
    tf, f = await gql.sign_up("fan")
    await gql.mutate("follow", tf, p)
    await gql.mutate("approveFollowRequest", tp, f)
    tu, _ = await gql.sign_up("pub")
    ts, _ = await gql.sign_up("stranger")
    hush = (await gql.ok(CREATE, {"i": {"caption": "p1 #hush", "location": {"name": "Hideout"}}}, tp))["createPost"]
    await gql.ok(CREATE, {"i": {"caption": "p2 #loud", "location": {"name": "Square"}}}, tp)
    loud = (await gql.ok(CREATE, {"i": {"caption": "u1 #loud", "location": {"name": "Square"}}}, tu))["createPost"]
    tag_ids = {n: (await gql.ok("query($n: String!) { hashtag(name: $n) { id } }", {"n": n}, tp))["hashtag"]["id"]
               for n in ("hush", "loud")}
    place_ids = {"hush": hush["post"]["location"]["id"], "loud": loud["post"]["location"]["id"]}
    viewers = {"priv": tp, "fan": tf, "stranger": ts, "anonymous": None}

    async def matrix() -> dict:
        return {(who, kind, name): set(map(repr, await _listing_seen(gql, t, kind, name, ids[name])))
                for who, t in viewers.items() for kind, ids in (("tag", tag_ids), ("place", place_ids))
                for name in ("hush", "loud")}

    def expect(hush_seen: dict, loud_count: int, loud_private_count: int) -> dict:
        out = {}
        for who in viewers:
            insider = who in ("priv", "fan")
            for kind, p1, p2 in (("tag", "p1 #hush", "p2 #loud"), ("place", "p1 #hush", "p2 #loud")):
                seen = hush_seen[who]
                out[(who, kind, "hush")] = {repr(None if seen is None else (seen, [p1]))}
                loud = sorted(["u1 #loud"] + ([p2] if insider or loud_private_count else []))
                out[(who, kind, "loud")] = {repr((loud_count, loud))}
        return out

    # a private account's tag and place: only who may see its posts find them; counts are public posts only
    assert await matrix() == expect({"priv": 0, "fan": 0, "stranger": None, "anonymous": None}, 1, 0)
    # probing a hidden place by id to post at it: as for an id of nothing
    probe = (await gql.ok(CREATE, {"i": {"caption": "x", "locationId": place_ids["hush"]}}, ts))["createPost"]
    assert probe == {"post": None, "errors": [{"code": "LOCATION_INVALID", "field": "locationId"}]}
    # going public: its posts count and show (through the job committed with the change)...
    await gql.ok("mutation { updateProfile(input: {isPrivate: false}) { errors { code } } }", token=tp)
    await gql.tao.run_jobs_until_idle()
    assert await matrix() == expect({"priv": 1, "fan": 1, "stranger": 1, "anonymous": 1}, 2, 1)
    # ...and private again: back as before
    await gql.ok("mutation { updateProfile(input: {isPrivate: true}) { errors { code } } }", token=tp)
    await gql.tao.run_jobs_until_idle()
    assert await matrix() == expect({"priv": 0, "fan": 0, "stranger": None, "anonymous": None}, 1, 0)


async def test_a_post_counts_for_its_tags_only_once_published(gql):
    from resolvers.posts import do_publish_post
    from tests.resolvers.test_privacy_blocks import store_id

    ta, _ = await gql.sign_up("ada")
    ada = (await gql.tao.key_get_many("username", ["ada"]))["ada"]
    media = await gql.tao.obj_add("MEDIA", {"kind": "image", "status": "processing", "owner": ada}, owner=ada)
    await gql.tao.assoc_add(ada, "UPLOADED", media)
    from schema.relay import to_global_id

    made = (await gql.ok(CREATE, {"i": {"caption": "soon #later", "mediaIds": [to_global_id("Media", media)]}},
                         ta))["createPost"]
    assert made["errors"] == []
    q = '{ hashtag(name: "later") { postCount posts { nodes { caption } } } }'
    assert (await gql.ok(q, token=ta))["hashtag"] == {"postCount": 0, "posts": {"nodes": [{"caption": "soon #later"}]}}
    assert (await gql.ok(q))["hashtag"] is None  # processing: the author's alone
    await gql.tao.obj_update(media, {"status": "ready"})
    assert await do_publish_post(gql.tao, store_id(made["post"]["id"]))
    assert (await gql.ok(q))["hashtag"] == {"postCount": 1, "posts": {"nodes": [{"caption": "soon #later"}]}}


DELETE = "mutation($i: AccountDeleteInput!) { deleteAccount(input: $i) { ok errors { code } } }"
LOG_IN = "mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p}) { token errors { code } } }"
SEARCH_TAGS = """query($q: String!) { search(query: $q, types: [HASHTAG], first: 10) {
  edges { node { ... on Hashtag { name postCount } } } } }"""


async def test_a_pending_deletion_accounts_tags_and_places_go_with_its_posts(gql):
    """An account pending deletion is hidden with all its content (docs/accounts.md, "Deletion"),
    but its posts still counted in their hashtags' and locations' `postCount`, and a tag or place
    only it had used stayed on every surface (by name, node, search; Explore's trends read tags
    through the same rule) with none of its posts shown. Now its posts stop being public with
    the deletion (as when it goes private), and come back when the deletion is cancelled."""
    te, _ = await gql.sign_up("eve")
    tb, _ = await gql.sign_up("bob")
    tv, _ = await gql.sign_up("vic")
    only = (await gql.ok(CREATE, {"i": {"caption": "e1 #evesonly", "location": {"name": "Nook"}}}, te))["createPost"]
    await gql.ok(CREATE, {"i": {"caption": "e2 #shared", "location": {"name": "Square"}}}, te)
    shared = (await gql.ok(CREATE, {"i": {"caption": "b1 #shared", "location": {"name": "Square"}}}, tb))["createPost"]
    tag_ids = {n: (await gql.ok("query($n: String!) { hashtag(name: $n) { id } }", {"n": n}, te))["hashtag"]["id"]
               for n in ("evesonly", "shared")}
    place_ids = {"evesonly": only["post"]["location"]["id"], "shared": shared["post"]["location"]["id"]}

    async def seen(token, settle: bool = True) -> dict:
        # The search index's jobs wait a moment (delayed); once the deletion is requested its
        # purge job (delayed by the grace period) would only re-enqueue itself: due jobs only.
        await gql.tao.run_jobs_until_idle(include_delayed=settle)
        out: dict = {}
        for name in ("evesonly", "shared"):
            for kind, ids in (("tag", tag_ids), ("place", place_ids)):
                out[(kind, name)] = set(map(repr, await _listing_seen(gql, token, kind, name, ids[name])))
            found = (await gql.ok(SEARCH_TAGS, {"q": name}, token))["search"]["edges"]
            out[("search", name)] = [(e["node"]["name"], e["node"]["postCount"]) for e in found]
        return out

    def expect(eve_shown: bool) -> dict:
        mine = {repr((1, ["e1 #evesonly"]))} if eve_shown else {repr(None)}
        both = {repr((2, ["b1 #shared", "e2 #shared"]) if eve_shown else (1, ["b1 #shared"]))}
        n = 2 if eve_shown else 1
        return {("tag", "evesonly"): mine, ("place", "evesonly"): mine, ("tag", "shared"): both,
                ("place", "shared"): both, ("search", "evesonly"): [("evesonly", 1)] if eve_shown else [],
                ("search", "shared"): [("shared", n)]}

    for token in (tv, None):
        assert await seen(token) == expect(True)  # the control
    assert (await gql.ok(DELETE, {"i": {"password": "password-eve"}}, te))["deleteAccount"]["ok"] is True
    for token in (tv, None):
        assert await seen(token, settle=False) == expect(False)
    # logging in within the grace period cancels the deletion: all of it is back
    assert (await gql.ok(LOG_IN, {"u": "eve", "p": "password-eve"}))["logIn"]["errors"] == []
    for token in (tv, None):
        assert await seen(token) == expect(True)


def _cursor_bytes(cursor: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


async def test_a_page_cursor_carries_no_hidden_posts_id_or_time(gql):
    """A page's `endCursor` is the position of the last edge read, which may be a post the viewer
    may not see (a private account's, on a tag's or a place's page): its id and time used to be
    in the cursor in the clear, so a stranger walking `first: 1` pages listed every hidden post of
    the tag with when it was posted (found by probe4). Paging still shows every visible post once."""
    import struct

    from schema.relay import from_global_id

    tu, _ = await gql.sign_up("pub")
    tp, _ = await gql.sign_up("priv", private=True)
    ts, _ = await gql.sign_up("stranger")
    older = (await gql.ok(CREATE, {"i": {"caption": "u1 #sun", "location": {"name": "Pier"}}}, tu))["createPost"]
    place = older["post"]["location"]["id"]
    hidden = [(await gql.ok(CREATE, {"i": {"caption": f"p{i} #sun", "locationId": place}}, tp))["createPost"]["post"]
              ["id"] for i in range(2)]
    newer = (await gql.ok(CREATE, {"i": {"caption": "u2 #sun", "locationId": place}}, tu))["createPost"]["post"]["id"]
    ids = [from_global_id(h, gql.tao.n_shards)[1] for h in hidden]
    secrets = [struct.pack(">Q", i) for i in ids]
    created = {o.created for o in (await gql.tao.obj_get(ids)).values()}
    for query, variables in (
        ("query($a: String) { it: hashtag(name: \"sun\") { posts(first: 1, after: $a) { %s } } }", {}),
        ("query($a: String, $id: ID!) { it: location(id: $id) { posts(first: 1, after: $a) { %s } } }", {"id": place}),
    ):
        q = query % "nodes { id } pageInfo { endCursor hasNextPage }"
        shown, after, pages = [], None, 0
        while True:
            page = (await gql.ok(q, {**variables, "a": after}, ts))["it"]["posts"]
            shown += [n["id"] for n in page["nodes"]]
            raw = _cursor_bytes(page["pageInfo"]["endCursor"])
            assert not any(s in raw for s in secrets), "a cursor names a post the viewer may not see"
            assert not any(struct.pack(">q", t) in raw for t in created)
            pages += 1
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert shown == [newer, older["post"]["id"]] and pages == 4
