"""Search end to end through GraphQL on both backends (real MariaDB + memcached, or SQLite), with
the real engine (tantivy partitions in the test's directory): what is indexed and when, ranking,
normalisation, privacy in its three places, recent searches, bad input, rebuild, one writer.

Index jobs are committed with the writes and run here by draining the outbox, as the partition's
writer would."""

from __future__ import annotations

import asyncio
import random
import string

import pytest

from resolvers.actor import acting_as
from resolvers.search import deindex_user, query
from resolvers.search.engine import SearchIndexes, WriterBusyError, indexes_for
from resolvers.search.indexer import job_name, rebuild_partition
from schema.relay import from_global_id
from tests.resolvers.test_posts import create, uid

SEARCH = """query($q: String!, $t: [SearchType!], $f: Int, $a: String) {
  search(query: $q, types: $t, first: $f, after: $a) {
    edges { cursor node { __typename
      ... on User { username } ... on Hashtag { name postCount } ... on Location { name } ... on Post { caption } } }
    pageInfo { hasNextPage endCursor } } }"""
DELETE = "mutation($i: PostDeleteInput!) { deletePost(input: $i) { errors { code } } }"
PROFILE = "mutation($i: ProfileUpdateInput!) { updateProfile(input: $i) { errors { code } } }"


async def found(gql, q, token=None, types=None, first=20, drain=True):
    if drain:
        await gql.tao.run_jobs_until_idle()
    data = await gql.ok(SEARCH, {"q": q, "t": types, "f": first}, token)
    out = []
    for e in data["search"]["edges"]:
        n = e["node"]
        out.append(n.get("username") or n.get("name") or n.get("caption"))
    return out


async def sign_up(gql, name, full_name=None, private=False):
    token, gid = await gql.sign_up(name, private=private)
    if full_name is not None:
        await gql.ok(PROFILE, {"i": {"fullName": full_name}}, token)
    return token, gid


async def test_sign_up_is_findable_by_exact_prefix_and_typo_in_that_order(gql):
    t, _ = await sign_up(gql, "lovelace")
    await sign_up(gql, "lovelaces")    # the query is a prefix of it
    await sign_up(gql, "lovelance")    # one edit away
    await sign_up(gql, "grace")
    assert await found(gql, "lovelace", t, ["USER"]) == ["lovelace", "lovelaces", "lovelance"]
    typed = await found(gql, "lovel", t, ["USER"])  # all three are prefixes now: the shortest first
    assert typed[0] == "lovelace" and sorted(typed) == ["lovelace", "lovelaces", "lovelance"][:1] + sorted(
        ["lovelaces", "lovelance"])
    assert (await found(gql, "lvoelace", t, ["USER"]))[:1] == ["lovelace"]  # a transposition: one edit
    assert await found(gql, "grcae", t, ["USER"]) == ["grace"]
    assert await found(gql, "zzzzzz", t) == []


@pytest.mark.parametrize("exact_scan", [query.EXACT_SCAN, 1])
async def test_tiers_from_the_engine_equal_the_rule_on_the_stored_names(gql, monkeypatch, exact_scan):
    """Accounts are ranked with no stored document read (exact vs prefix from a second query on
    the hits, the name's length a fast field): each hit's tier, edit distance and length equal
    `_tier` and `len` on the stored name, for exact, prefix, several-word and typo queries; also
    when the exact scan stops short (`EXACT_SCAN` 1: the hits it did not reach are read)."""
    monkeypatch.setattr(query, "EXACT_SCAN", exact_scan)
    from resolvers.search import text
    from resolvers.search.engine import search_partitions

    names = [("ada", "Ada Byron"), ("adam", "Adam Smith"), ("adamant", None), ("ada_lovelace", "Ada King"),
             ("byron", "Lord Byron"), ("smithy", "Ada Smithson"), ("adz", None), ("bada", "Bad A")]
    for name, full in names:
        await sign_up(gql, name, full)
    await gql.tao.run_jobs_until_idle()
    indexes = indexes_for(gql.tao)
    for q in ["ada", "adam", "ad", "ada smi", "ada by", "byron", "adamnt", "adx", "smith", "lovelace", "bad a"]:
        tokens, handle = text.tokens(q), text.handle(q)
        got = {h.id: (h.tier, h.distance, h.length)
               for h in await asyncio.to_thread(query._entity_hits, indexes, "user", tokens, handle, 50)}
        want = {}
        for fuzzy in (False, True):
            for _, d, _ in await asyncio.to_thread(search_partitions, indexes,
                                                   query.entity_query("user", tokens, handle, fuzzy=fuzzy), 50, True):
                doc_handle = d["handle"][0]
                want.setdefault(int(d["id"][0]), (*query._tier(tokens, handle, doc_handle, d["names"][0].split()),
                                                  len(doc_handle)))
        assert got and all(want[i] == v for i, v in got.items()), (q, got, want)
        assert {i for i, (t, _, _) in want.items() if t >= 2} <= set(got), q  # every exact and prefix match


async def test_full_name_case_accents_full_width_and_cjk_are_normalised(gql):
    t, _ = await sign_up(gql, "jose", "José Álvarez")
    await sign_up(gql, "tokyo_fan", "東京タワー好き")
    await sign_up(gql, "strasse", "Große Straße")
    assert await found(gql, "JOSE alvarez", t, ["USER"]) == ["jose"]
    assert await found(gql, "ＪＯＳＥ", t, ["USER"]) == ["jose"]  # full-width
    assert await found(gql, "álv", t, ["USER"]) == ["jose"]
    assert await found(gql, "タワー", t, ["USER"]) == ["tokyo_fan"]
    assert await found(gql, "東京", t, ["USER"]) == ["tokyo_fan"]
    assert await found(gql, "strasse", t, ["USER"]) == ["strasse"]


async def test_followed_accounts_then_followed_by_followed_rank_first_within_a_tier(gql):
    tv, _ = await sign_up(gql, "viewer")
    _, mid = await sign_up(gql, "middle")
    ids = {}
    for name in ("annaa", "annab", "annac"):
        ids[name] = (await sign_up(gql, name))[1]
    tm = (await gql.ok("mutation { logIn(input: {username: \"middle\", password: \"password-middle\"}) { token } }")
          )["logIn"]["token"]
    await gql.mutate("follow", tv, ids["annac"])          # followed by the viewer
    await gql.mutate("follow", tv, mid)
    await gql.mutate("follow", tm, ids["annab"])          # followed by someone the viewer follows
    assert await found(gql, "anna", tv, ["USER"]) == ["annac", "annab", "annaa"]
    anonymous = await found(gql, "anna", None, ["USER"])  # no graph: popularity (one follower each, annaa none)
    assert anonymous[2] == "annaa" and sorted(anonymous[:2]) == ["annab", "annac"]


async def test_hashtags_with_post_counts_places_and_captions(gql):
    t, _ = await sign_up(gql, "ada")
    await create(gql, t, "Sunrise over the harbour #GoldenHour", location={"name": "Porto Ribeira"})
    await create(gql, t, "another #goldenhour walk")
    await create(gql, t, "#goldenretriever puppy")
    await gql.tao.run_jobs_until_idle()
    data = await gql.ok(SEARCH, {"q": "golden", "t": ["HASHTAG"]}, t)
    tags = [(e["node"]["name"], e["node"]["postCount"]) for e in data["search"]["edges"]]
    assert tags == [("goldenhour", 2), ("goldenretriever", 1)]  # same tier: more posts first
    assert await found(gql, "ribeira", t, ["PLACE"]) == ["Porto Ribeira"]
    assert await found(gql, "harbour sunrise", t, ["POST"]) == ["Sunrise over the harbour #GoldenHour"]
    assert await found(gql, "harb", t, ["POST"]) == ["Sunrise over the harbour #GoldenHour"]  # as you type


async def test_post_edit_and_delete_reach_the_index(gql):
    t, _ = await sign_up(gql, "ada")
    p = (await create(gql, t, "first words"))["post"]["id"]
    assert await found(gql, "first", t, ["POST"]) == ["first words"]
    await gql.ok("mutation($i: PostEditInput!) { editPost(input: $i) { errors { code } } }",
                 {"i": {"postId": p, "caption": "second thoughts"}}, t)
    assert await found(gql, "first", t, ["POST"]) == []
    assert await found(gql, "second", t, ["POST"]) == ["second thoughts"]
    await gql.ok(DELETE, {"i": {"postId": p}}, t)
    assert await found(gql, "second", t, ["POST"]) == []
    assert await _engine_ids(gql, "second", "post") == []  # gone from the index, not only filtered


async def test_rename_reaches_the_index(gql):
    t, _ = await sign_up(gql, "oldname")
    await gql.ok(PROFILE, {"i": {"username": "newname", "fullName": "Someone"}}, t)
    assert await found(gql, "oldname", t, ["USER"]) == []
    assert await found(gql, "newname", t, ["USER"]) == ["newname"]


async def _engine_ids(gql, q, kind):
    class Ctx:  # what the engine half of a search reads
        tao = gql.tao
        settings = gql.tao.settings
    from resolvers.search import text
    hits = await asyncio.to_thread(query._engine_hits, Ctx, (kind,), text.tokens(q), text.handle(q))
    return [h.id for h in hits]


async def test_followed_authors_posts_first_and_blocked_authors_posts_dropped_by_their_indexed_author(gql):
    w = "lighthouse" + "".join(random.choices(string.ascii_lowercase, k=8))  # a word no other post uses
    tv, _ = await sign_up(gql, "viewer")
    tf, friend = await sign_up(gql, "friend")
    ts, _ = await sign_up(gql, "stranger")
    tp, pest = await sign_up(gql, "pest")
    await create(gql, ts, f"{w} {w} {w}")      # the best match by BM25
    await create(gql, tf, f"a {w} far away in the fog seen from the ferry")
    await create(gql, tp, f"{w} {w} at dusk")
    await gql.mutate("follow", tv, friend)
    await gql.mutate("block", tv, pest)
    # Anonymous: BM25 alone (scores are per partition, so their order is not asserted), no graph.
    assert len(await found(gql, w, None, ["POST"])) == 3
    anonymous, _ = await query.ranked(acting_as(gql.tao, None), w, ("post",))
    assert len(anonymous) == 3 and {h.graph for h in anonymous} == {0}
    assert await found(gql, w, tv, ["POST"]) == [
        f"a {w} far away in the fog seen from the ferry", f"{w} {w} {w}"]
    # Ranking knew each post's author from the index (a fast field), so it loaded none of them:
    # the blocked author's post was dropped before the page check, which loads only the page.
    hits, _ = await query.ranked(acting_as(gql.tao, await uid(gql, "viewer")), w, ("post",))
    assert [h.author for h in hits] == [from_global_id(friend, gql.tao.n_shards)[1], await uid(gql, "stranger")]
    assert [h.graph for h in hits] == [2, 0]  # first because followed, whatever BM25 says


async def test_the_privacy_check_reads_no_viewer_edge_per_result(gql):
    """The viewer's BLOCKS, BLOCKED_BY and FOLLOWS lists, read once by the search, answer
    privacy's three edge lookups per account: a page costs one more cache key (the record) per
    account it returns, not four."""
    tv, _ = await sign_up(gql, "viewer")
    ids = [(await sign_up(gql, f"kestrel{i}"))[1] for i in range(8)]
    await sign_up(gql, "osprey0")
    await sign_up(gql, "osprey1")
    _, blocked = await sign_up(gql, "nuisance")
    await gql.mutate("follow", tv, ids[0])
    await gql.mutate("block", tv, blocked)
    await found(gql, "kestrel", tv, ["USER"])  # warm: the second degree is cached for a while

    async def keys_read(q, n):
        gql.tao.reset_stats()
        assert len(await found(gql, q, tv, ["USER"], drain=False)) == n
        s = gql.tao.stats()
        return s["cache_hits"] + s["cache_misses"]
    assert await keys_read("kestrel", 8) - await keys_read("osprey", 2) == 6


async def _engine_pops(gql, q, kind):
    class Ctx:
        tao = gql.tao
        settings = gql.tao.settings
    from resolvers.search import text
    hits = await asyncio.to_thread(query._engine_hits, Ctx, (kind,), text.tokens(q), text.handle(q))
    return [h.pop for h in hits]


async def test_a_pending_deletion_and_its_cancellation_change_what_the_index_counts(gql):
    """An account's deletion request (and a change to private) takes its posts out of their
    hashtags' and places' public counts, but the index kept each tag's and place's popularity,
    and the document of one only it had used, until something re-indexed them (another post):
    the index ranked by posts nobody may see. Now the job that re-syncs the author's posts
    re-indexes the tags and places whose public posts it changed; cancelling does the same."""
    te, _ = await sign_up(gql, "eve")
    tb, _ = await sign_up(gql, "bob")
    place = (await create(gql, te, "e0 #sunset", location={"name": "Evenook"}))["post"]["location"]["id"]
    for i in range(1, 4):
        await create(gql, te, f"e{i} #sunset", locationId=place)
    await create(gql, tb, "b0 #sunset", locationId=place)
    await create(gql, te, "e9 #evesown", location={"name": "Solitude"})

    # Index jobs wait a moment (LISTING_DELAY_MS, SETTLE_MS): the moment passes on the outbox's
    # clock, moved on rather than slept through (two rounds took 2.4 s of the wall clock).
    wall, ahead = gql.tao.outbox.now, [0]
    gql.tao.outbox.now = lambda: wall() + ahead[0]

    async def indexed():
        for _ in range(2):  # index jobs wait a moment, and the author's job enqueues some
            ahead[0] += 1200
            await gql.tao.run_jobs_until_idle(include_delayed=False)  # the purge waits days: due jobs only
        return {q: await _engine_pops(gql, q, kind) for q, kind in
                (("sunset", "hashtag"), ("evenook", "place"), ("evesown", "hashtag"), ("solitude", "place"))}

    five, one = query._pop4(5), query._pop4(1)
    everything = {"sunset": [five], "evenook": [five], "evesown": [one], "solitude": [one]}
    assert await indexed() == everything
    deleted = await gql.ok("mutation { deleteAccount(input: {password: \"password-eve\"}) { ok } }", token=te)
    assert deleted["deleteAccount"]["ok"] is True
    assert await indexed() == {"sunset": [one], "evenook": [one], "evesown": [], "solitude": []}
    logged_in = await gql.ok("mutation { logIn(input: {username: \"eve\", password: \"password-eve\"}) "
                             "{ token errors { code } } }")
    assert logged_in["logIn"]["errors"] == []  # cancels the deletion
    assert await indexed() == everything
    # going private is the same change to the public posts
    await gql.ok(PROFILE, {"i": {"isPrivate": True}}, logged_in["logIn"]["token"])
    assert await indexed() == {"sunset": [one], "evenook": [one], "evesown": [], "solitude": []}


async def test_private_accounts_posts_are_never_indexed_but_the_profile_is(gql):
    tp, pid = await sign_up(gql, "secretive", private=True)
    tf, _ = await sign_up(gql, "friend")
    await gql.mutate("follow", tf, pid)  # a request: the friend cannot see the posts either way
    await create(gql, tp, "hidden treasure")
    assert await found(gql, "secretive", tf, ["USER"]) == ["secretive"]  # the profile is findable
    assert await found(gql, "treasure", tp, ["POST"]) == []              # not even for the author
    assert await _engine_ids(gql, "treasure", "post") == []              # never in the index
    # Going public brings the posts in; going private again takes them out.
    await gql.ok(PROFILE, {"i": {"isPrivate": False}}, tp)
    assert await found(gql, "treasure", tf, ["POST"]) == ["hidden treasure"]
    await gql.ok(PROFILE, {"i": {"isPrivate": True}}, tp)
    assert await found(gql, "treasure", tp, ["POST"]) == []
    assert await _engine_ids(gql, "treasure", "post") == []


async def test_blocks_either_way_are_excluded_at_query_time(gql):
    ta, a = await sign_up(gql, "blocker")
    tb, b = await sign_up(gql, "blockee")
    tc, _ = await sign_up(gql, "bystander")
    await create(gql, tb, "blockee sunset")
    await gql.tao.run_jobs_until_idle()
    await gql.mutate("block", ta, b)
    # No draining: the query-time exclusion alone hides them, both ways.
    assert await found(gql, "block", ta, ["USER"], drain=False) == ["blocker"]
    assert await found(gql, "blocker", tb, ["USER"], drain=False) == ["blockee"]  # a typo of it; not the blocker
    assert await found(gql, "sunset", ta, ["POST"], drain=False) == []
    assert await found(gql, "sunset", tc, ["POST"], drain=False) == ["blockee sunset"]  # others still see it
    assert "blockee" in await found(gql, "block", tc, ["USER"])


async def test_authoritative_check_covers_the_index_lag(gql):
    t, _ = await sign_up(gql, "ada")
    p = (await create(gql, t, "ephemeral note"))["post"]["id"]
    tv, _ = await sign_up(gql, "viewer")
    assert await found(gql, "ephemeral", tv, ["POST"]) == ["ephemeral note"]
    await gql.ok(DELETE, {"i": {"postId": p}}, t)
    assert await _engine_ids(gql, "ephemeral", "post") != []              # the index has not caught up
    assert await found(gql, "ephemeral", tv, ["POST"], drain=False) == []  # but the check hides it
    await gql.ok(PROFILE, {"i": {"isPrivate": True}}, t)
    q = (await create(gql, t, "private now"))["post"]["id"]
    assert q and await found(gql, "private", tv, ["POST"], drain=False) == []


async def test_deindex_user_takes_the_profile_and_posts_out(gql):
    t, _ = await sign_up(gql, "leaving")
    await create(gql, t, "farewell message")
    await gql.tao.run_jobs_until_idle()
    user_id = await uid(gql, "leaving")
    assert await _engine_ids(gql, "leaving", "user") == [user_id]
    await gql.tao.obj_update(user_id, {"status": "deactivated"})  # what the accounts branch will set
    await deindex_user(gql.tao, user_id)
    await gql.tao.run_jobs_until_idle()
    assert await _engine_ids(gql, "leaving", "user") == []
    assert await _engine_ids(gql, "farewell", "post") == []


async def test_index_jobs_are_idempotent(gql):
    t, _ = await sign_up(gql, "twice")
    await gql.tao.run_jobs_until_idle()
    user_id = await uid(gql, "twice")
    from resolvers.search import index_jobs
    for _ in range(3):
        for name, payload, delay in index_jobs(gql.tao, [("user", user_id)]):
            await gql.tao.enqueue(user_id, name, payload, delay_ms=delay)
    await gql.tao.run_jobs_until_idle()
    assert await _engine_ids(gql, "twice", "user") == [user_id]


BAD = ["", "   ", "*", "\"", "~", ":", "(", ")", "a:b", "\"ada", "ada~2", "(ada OR", "***:::", "AND", "-", "\\"]


async def test_bad_input_is_a_clear_error_or_an_empty_result(gql):
    t, _ = await sign_up(gql, "ada")
    await gql.tao.run_jobs_until_idle()
    for q in BAD:
        body = await gql(SEARCH, {"q": q}, t)
        assert "errors" not in body, (q, body)
    assert await found(gql, "", t) == []
    assert await found(gql, "(ada)", t, ["USER"]) == ["ada"]  # syntax characters are just text
    body = await gql(SEARCH, {"q": "a" * 1000}, t)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most 100 characters" in body["errors"][0]["message"]
    body = await gql(SEARCH, {"q": "ada", "t": ["ACCOUNTS"]}, t)  # unknown type: a validation error
    assert body.get("data") is None and "SearchType" in body["errors"][0]["message"]
    assert await found(gql, "ada", t, []) == []  # no types: nothing
    for msg in (b.get("message", "") for b in body["errors"]):
        assert "tantivy" not in msg.lower()


async def test_cursors_page_and_refuse_another_querys_cursor(gql):
    t, _ = await sign_up(gql, "pager")
    for i in range(5):
        await sign_up(gql, f"pager{i}")
    await gql.tao.run_jobs_until_idle()
    seen, after = [], None
    while True:
        data = await gql.ok(SEARCH, {"q": "pager", "t": ["USER"], "f": 2, "a": after}, t)
        seen += [e["node"]["username"] for e in data["search"]["edges"]]
        if not data["search"]["pageInfo"]["hasNextPage"]:
            break
        after = data["search"]["pageInfo"]["endCursor"]
    assert seen[0] == "pager" and sorted(seen) == sorted(["pager"] + [f"pager{i}" for i in range(5)])
    data = await gql.ok(SEARCH, {"q": "pager", "t": ["USER"], "f": 2}, t)
    other = data["search"]["pageInfo"]["endCursor"]
    body = await gql(SEARCH, {"q": "pag", "t": ["USER"], "f": 2, "a": other}, t)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "another search" in body["errors"][0][
        "message"]
    feed_cursor = "Y3Vyc29yOjE3MDAwMDAwMDAwMDA6MTIz"  # base64("cursor:1700000000000:123"): a list's cursor
    body = await gql(SEARCH, {"q": "pager", "a": feed_cursor}, t)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await gql(SEARCH, {"q": "pager", "a": "garbage!"}, t)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


RECENT = "{ recentSearches { __typename ... on User { username } ... on Hashtag { name } } }"


async def test_recent_searches_add_list_clear_and_privacy(gql):
    t, _ = await sign_up(gql, "me")
    _, a = await sign_up(gql, "alpha")
    tb, b = await sign_up(gql, "beta")
    add = "mutation($i: RecentSearchAddInput!) { addRecentSearch(input: $i) { errors { code } } }"
    assert (await gql.ok(add, {"i": {"id": a}}, t))["addRecentSearch"]["errors"] == []
    await gql.ok(add, {"i": {"id": b}}, t)
    await gql.ok(add, {"i": {"id": a}}, t)  # again: moves to the top, once
    assert [r["username"] for r in (await gql.ok(RECENT, token=t))["recentSearches"]] == ["alpha", "beta"]
    await gql.mutate("block", tb, (await gql.ok("{ viewer { id } }", token=t))["viewer"]["id"])
    assert [r["username"] for r in (await gql.ok(RECENT, token=t))["recentSearches"]] == ["alpha"]  # hidden now
    bad = await gql.ok(add, {"i": {"id": b}}, t)  # blocked: as if missing
    assert bad["addRecentSearch"]["errors"] == [{"code": "NOT_FOUND"}]
    cleared = await gql.ok("mutation { clearRecentSearches { cleared errors { code } } }", token=t)
    assert cleared["clearRecentSearches"]["cleared"] == 2
    assert (await gql.ok(RECENT, token=t))["recentSearches"] == []
    body = await gql(RECENT)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_rebuild_reindexes_a_partition_from_the_store(gql):
    names = [f"rebuilt{i}" for i in range(6)]
    t = None
    for n in names:
        t, _ = await sign_up(gql, n)
    await gql.tao.run_jobs_until_idle()
    indexes = indexes_for(gql.tao)
    for p in indexes.partitions:  # lose every document
        await asyncio.to_thread(p.clear)
        await asyncio.to_thread(p.commit)
    assert await found(gql, "rebuilt", t, ["USER"]) == []
    ticks: list[int] = []
    for p in range(len(indexes.partitions)):
        await rebuild_partition(gql.tao, p, progress=lambda shard, n: ticks.append(n))
    assert sorted(await found(gql, "rebuilt", t, ["USER"])) == names and ticks


async def test_a_partition_has_one_writer(gql):
    await sign_up(gql, "solo")
    await gql.tao.run_jobs_until_idle()  # this process took the writer of the account's partition
    user_id = await uid(gql, "solo")
    n = indexes_for(gql.tao).partition(user_id).number
    other = SearchIndexes(gql.tao.settings.search)  # another process on the same directory
    with pytest.raises(WriterBusyError):
        await other.partitions[n].take_writer()
    other.close()
    assert job_name(n) in gql.tao.outbox.handlers


async def test_a_types_list_longer_than_the_types_is_refused(gql):
    """As `notifications(types:)`: 100 000 entries were accepted; now more than the enum holds
    is a clear BAD_USER_INPUT."""
    from schema.search import SearchType

    t, _ = await sign_up(gql, "ada")
    n = len(SearchType)
    assert await found(gql, "ada", t, ["USER"] * n) == ["ada"]
    for many in (n + 1, 1024):  # longer than `limits.max_list_length`: tests/schema/test_input_lists.py
        body = await gql(SEARCH, {"q": "ada", "t": ["USER"] * many}, t)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert f"at most {n}" in error["message"] and "`types`" in error["message"], error
