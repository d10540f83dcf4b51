"""`search(query:, types:, first:, after:)`: as-you-type search over the partitions, ranked with
the viewer's graph, filtered by privacy twice (blocks at query time, then the authoritative check).

Order (docs/search.md, "Ranking"): accounts, hashtags and places first, each placed by its match
tier — exact (the whole name, or every word), then prefix (what has been typed so far), then
typo-tolerant (one edit for words of 3 to 5 characters, two beyond: `text.fuzzy_distance`) —
then by edit distance within the typo tier, then the viewer's graph (accounts the viewer follows,
then accounts followed by accounts the viewer follows), then popularity (followers, public posts),
then the engine's BM25 score. Posts whose caption matches follow, by BM25 (a followed author's
post first). A page's cursor is (query fingerprint, offset in that ranking): a cursor from
another query or list is refused with BAD_USER_INPUT.

Privacy: a private account's posts are never in the index; accounts that block the viewer or
that the viewer blocks are dropped at query time; and every result passes the same check as
every other surface (`resolvers.privacy`) before it is returned, which also covers the seconds
before the index catches up with a write.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tantivy

from resolvers import privacy
from resolvers.errors import BadInputError
from resolvers.pagination import Page, check_first
from resolvers.records import Post
from resolvers.search import text
from resolvers.search.engine import (
    SCHEMA,
    PartitionHits,
    SearchIndexes,
    indexes_for,
    search_hits,
    search_partitions,
    searchers,
)
from resolvers.search.viewer import ViewerEdges, second_degree, viewer_edges

if TYPE_CHECKING:
    from resolvers.context import RequestContext

ENTITY_KINDS = ("user", "hashtag", "place")

_Occ = tantivy.Occur
_Q = tantivy.Query


def _should(queries: list[tantivy.Query]) -> tantivy.Query:
    return _Q.boolean_query([(_Occ.Should, q) for q in queries])


def _boost(q: tantivy.Query, b: float) -> tantivy.Query:
    return _Q.boost_query(q, b)


def _word_query(field: str, token: str, *, last: bool, fuzzy: bool = True) -> tantivy.Query:
    """One typed word against a field: exact, prefix (the word being typed), typo-tolerant."""
    alts = [_boost(_Q.term_query(SCHEMA, field, token), 4.0)]
    if last:
        alts.append(_boost(_Q.fuzzy_term_query(SCHEMA, field, token, 0, True, True), 2.0))
    d = 0 if text.is_cjk(token) or not fuzzy else text.fuzzy_distance(token)
    if d:
        alts.append(_Q.fuzzy_term_query(SCHEMA, field, token, d, True, False))
    return _should(alts)


def entity_query(kind: str, tokens: list[str], handle: str, fuzzy: bool = True) -> tantivy.Query:
    shoulds: list[tantivy.Query] = []
    if handle:
        shoulds += [_boost(_Q.term_query(SCHEMA, "handle", handle), 40.0),
                    _boost(_Q.fuzzy_term_query(SCHEMA, "handle", handle, 0, True, True), 20.0)]
        d = text.fuzzy_distance(handle) if fuzzy else 0
        if d:
            shoulds.append(_boost(_Q.fuzzy_term_query(SCHEMA, "handle", handle, 1, True, False), 8.0))
        if d >= 2:
            shoulds += [_boost(_Q.fuzzy_term_query(SCHEMA, "handle", handle, 2, True, False), 3.0),
                        _boost(_Q.fuzzy_term_query(SCHEMA, "handle", handle, 1, True, True), 2.0)]
    if tokens:
        shoulds.append(_Q.boolean_query([(_Occ.Must, _word_query("names", t, last=i == len(tokens) - 1,
                                                                  fuzzy=fuzzy))
                                         for i, t in enumerate(tokens)]))
    return _Q.boolean_query([(_Occ.Must, _Q.term_query(SCHEMA, "kind", kind)), (_Occ.Must, _should(shoulds))])


def exact_query(kind: str, tokens: list[str], handle: str) -> tantivy.Query:
    """The exact tier (`_tier`'s 3): the whole name, or every word."""
    shoulds = [_Q.term_query(SCHEMA, "handle", handle)] if handle else []
    if tokens:
        shoulds.append(_Q.boolean_query([(_Occ.Must, _Q.term_query(SCHEMA, "names", t)) for t in tokens]))
    return _Q.boolean_query([(_Occ.Must, _Q.term_query(SCHEMA, "kind", kind)), (_Occ.Must, _should(shoulds))])


def caption_query(tokens: list[str], fuzzy: bool = True) -> tantivy.Query:
    """Posts whose caption has every word (the last as a prefix)."""
    words = [(_Occ.Must, _word_query("text", t, last=i == len(tokens) - 1, fuzzy=fuzzy and len(t) >= 5))
             for i, t in enumerate(tokens)]
    return _Q.boolean_query([(_Occ.Must, _Q.term_query(SCHEMA, "kind", "post")), *words])


@dataclass
class Hit:
    kind: str
    id: int
    score: float
    tier: int = 0       # 3 exact, 2 prefix, 1 typo (entities); 0 for posts
    distance: int = 0   # edits from the query (typo tier)
    graph: int = 0      # 2 followed by the viewer, 1 by someone they follow
    pop: int = 0        # popularity in quarter steps of log2(2 + followers or public posts)
    length: int = 0     # of the name: a shorter completion first
    author: int | None = None


def _tier(tokens: list[str], handle: str, doc_handle: str, names: list[str]) -> tuple[int, int]:
    words = set(names)
    if handle and handle == doc_handle or (tokens and all(t in words for t in tokens)):
        return 3, 0
    head, last = tokens[:-1], tokens[-1] if tokens else ""
    if handle and doc_handle.startswith(handle) or (
            last and all(t in words for t in head) and any(w.startswith(last) for w in words)):
        return 2, 0
    dist = text.edit_distance(handle, doc_handle) if handle and doc_handle else 3
    if tokens and names:
        dist = min(dist, max(min(text.edit_distance(t, w) for w in names) for t in tokens))
    return 1, dist


def fingerprint(query: str, kinds: tuple[str, ...]) -> int:
    return zlib.crc32(f"{text.normalize(query)}|{','.join(kinds)}".encode()) & 0x7FFFFFFF


def check_query(ctx: RequestContext, query: str) -> str:
    q = query.strip()
    limit = ctx.settings.search.max_query_chars
    if len(q) > limit:
        raise BadInputError(f"`query` is at most {limit} characters (got {len(q)}): shorten it.")
    return q


def _post_hits(indexes: SearchIndexes, tokens: list[str], limit: int) -> list[Hit]:
    """The best `limit` caption matches of every partition, each with its author (a fast field:
    no post is loaded to rank or filter it)."""
    def best(fuzzy: bool) -> list[tuple[float, dict[str, Any], int]]:
        return search_partitions(indexes, caption_query(tokens, fuzzy), limit, False, stored=False,
                                 fast=("id", "author_id"))
    # Typo-tolerant terms (automata that can expand to many terms) only when exact and prefix
    # matches are fewer than `limit`: a correct query never pays for them.
    found = best(False)
    if len(found) < limit:
        found = best(True)
    return [Hit("post", int(d["id"][0]), score, author=d["author_id"][0]) for score, d, _ in found]


_ENTITY_FIELDS = ("id", "pop", "hlen")
EXACT_SCAN = 1000  # exact-tier matches per partition read to tell exact from prefix hits apart


def _entity_hits(indexes: SearchIndexes, kind: str, tokens: list[str], handle: str, limit: int) -> list[Hit]:
    """The best `limit` accounts (hashtags, places) of every partition, each with its tier.

    The query without typo-tolerant terms matches exactly the exact and prefix tiers; the exact
    query (`exact_query`, up to `EXACT_SCAN` matches: term lookups, no scoring worth the name)
    tells those two apart; id, popularity and the name's length are fast fields. So a page of
    exact and prefix matches reads no stored document; past `EXACT_SCAN` exact matches, a hit the
    scan did not reach is read to tell. Only when the exact and prefix matches are fewer than
    `limit` does the typo-tolerant query run; its hits are read (a typo's edit distance is
    computed on the stored name), as they always were."""
    snapshot = searchers(indexes)  # one searcher per partition for every query here
    found = search_hits(snapshot, entity_query(kind, tokens, handle, fuzzy=False), limit, True, ())
    if sum(len(ph.addrs) for ph in found) < limit:
        # Fewer exact and prefix matches than `limit`: the typo-tolerant query's hits, each read
        # (a typo hit's edit distance needs its stored name; there are few of the others).
        hits: list[Hit] = []
        for ph in search_hits(snapshot, entity_query(kind, tokens, handle), limit, True, ()):
            for addr, score in zip(ph.addrs, ph.scores, strict=True):
                d = ph.searcher.doc(addr).to_dict()
                doc_handle = (d.get("handle") or [""])[0]
                tier, dist = _tier(tokens, handle, doc_handle, (d.get("names") or [""])[0].split())
                hits.append(Hit(kind, int(d["id"][0]), score, tier, dist, pop=_pop4((d.get("pop") or [0])[0]),
                                length=len(doc_handle)))
        return hits
    exact_q = exact_query(kind, tokens, handle)
    out: list[Hit] = []
    for ph in found:
        if not ph.addrs:
            continue
        ph.read(_ENTITY_FIELDS)
        res = ph.searcher.search(exact_q, EXACT_SCAN, count=False)  # fewer than asked: all of them
        out += _ranked_hits(kind, ph, tokens, handle, {(a.segment_ord, a.doc) for _, a in res.hits},
                            len(res.hits) < EXACT_SCAN)
    return out


def _pop4(pop: int | None) -> int:
    """Popularity in quarter steps of log2(2 + followers or public posts)."""
    return int(math.log2(2 + (pop or 0)) * 4)


def _ranked_hits(kind: str, ph: PartitionHits, tokens: list[str], handle: str, exact: set[tuple[int, int]],
                 whole: bool) -> list[Hit]:
    """Hits of the query without typo terms (tiers 3 and 2): the exact ones are in `exact`; when
    that is not `whole` (past `EXACT_SCAN`), a hit not in it is read to tell."""
    out = []
    for at, addr, score, id_, pop, length in zip(ph.where(), ph.addrs, ph.scores, ph.cols["id"], ph.cols["pop"],
                                                 ph.cols["hlen"], strict=True):
        tier = 3 if at in exact else 2
        if not whole and tier == 2:
            d = ph.searcher.doc(addr)
            tier, _ = _tier(tokens, handle, d.get_first("handle") or "", (d.get_first("names") or "").split())
        out.append(Hit(kind, id_, score, tier, 0, pop=_pop4(pop), length=length or 0))
    return out


def _engine_hits(ctx: RequestContext, kinds: tuple[str, ...], tokens: list[str], handle: str) -> list[Hit]:
    """The engine's candidates for each kind (blocking: runs in a thread)."""
    indexes = indexes_for(ctx.tao)
    limit = ctx.settings.search.candidates
    hits: list[Hit] = []
    for kind in kinds:
        hits += _post_hits(indexes, tokens, limit) if kind == "post" else _entity_hits(indexes, kind, tokens,
                                                                                         handle, limit)
    return hits


async def _graph(ctx: RequestContext) -> tuple[ViewerEdges, frozenset[int]]:
    edges = await viewer_edges(ctx)
    return edges, await second_degree(ctx, edges)


async def ranked(ctx: RequestContext, query: str, kinds: tuple[str, ...]) -> tuple[list[Hit], ViewerEdges]:
    """Every candidate for the query, best first, minus blocked accounts and their posts (not yet
    the final check), and the viewer's lists read for it. The engine runs while they are read."""
    tokens = text.tokens(query)
    handle = text.handle(query)
    if not tokens and not handle:
        return [], ViewerEdges(ctx.viewer_id)
    hits, (edges, second) = await asyncio.gather(
        asyncio.to_thread(_engine_hits, ctx, kinds, tokens, handle), _graph(ctx))
    blocked, followed = edges.blocked, edges.followed
    best: dict[tuple[str, int], Hit] = {}
    for h in hits:  # a document is in one partition, but a reload race could show it twice
        if (h.kind, h.id) not in best or best[(h.kind, h.id)].score < h.score:
            best[(h.kind, h.id)] = h
    hits = list(best.values())
    for h in hits:
        who = h.id if h.kind == "user" else h.author if h.kind == "post" else None
        h.graph = 2 if who in followed else 1 if h.kind == "user" and who in second else 0
    entities = [h for h in hits if h.kind != "post" and not (h.kind == "user" and h.id in blocked)]
    entities.sort(key=lambda h: (-h.tier, h.distance, -h.graph, -h.pop, h.length, -h.score, h.id))
    posts = [h for h in hits if h.kind == "post" and h.author not in blocked]
    posts.sort(key=lambda h: (-h.graph, -h.score, -h.id))
    return entities + posts, edges


async def _visible(ctx: RequestContext, hits: list[Hit], edges: ViewerEdges) -> dict[tuple[str, int], Any]:
    """The records of the hits the viewer may see (the authoritative check, `resolvers.privacy`).
    The posts load first, so the viewer's edges to their authors (and to the accounts) can be
    answered from the lists this search read (`ViewerEdges.prime`)."""
    out: dict[tuple[str, int], Any] = {}
    users = [h.id for h in hits if h.kind == "user"]
    posts = [h.id for h in hits if h.kind == "post"]
    listings = [h for h in hits if h.kind in ("hashtag", "place")]
    loaded = await ctx.loaders.object_by_id.load_many(posts) if posts else []
    edges.prime(ctx.loaders, users + [o.author for o in loaded if isinstance(o, Post)])
    # The kinds present check together (their loads share a round trip); one kind, as a page of
    # accounts or of posts usually is, is awaited alone (no tasks to make).
    checks: dict[str, Awaitable[list[Any]]] = {}
    if users:
        checks["user"] = privacy.visible_users(ctx, users)
    if posts:
        checks["post"] = privacy.visible_posts(ctx, posts)
    if listings:
        checks["listing"] = asyncio.gather(*(privacy.load_visible_object(ctx, h.id) for h in listings))
    answers = [await a for a in checks.values()] if len(checks) == 1 else await asyncio.gather(*checks.values())
    got = dict(zip(checks, answers))
    out.update({("user", u.id): u for u in got.get("user", [])})
    out.update({("post", p.id): p for p in got.get("post", [])})
    want = {"hashtag": "HASHTAG", "place": "LOCATION"}
    for h, obj in zip(listings, got.get("listing", [])):
        if obj is not None and obj.otype == want[h.kind]:
            out[(h.kind, h.id)] = obj
    return out


async def search(ctx: RequestContext, query: str, kinds: tuple[str, ...], first: int,
                 after: tuple[int, int] | None) -> Page[Any]:
    """A page of results the viewer may see; cursors are (fingerprint, offset)."""
    check_first(ctx, first)
    q = check_query(ctx, query)
    fp = fingerprint(q, kinds)
    start = 0
    if after is not None:
        if after[0] != fp or not 0 <= after[1] <= 10_000:
            raise BadInputError("`after` is a cursor of another search or list: pass an `endCursor` of this same "
                                "search, or search again without `after`.")
        start = after[1]
    if not q or not kinds or first == 0:
        return Page(items=[], has_next=False, end_cursor=(fp, start), has_previous=start > 0)
    hits, edges = await ranked(ctx, q, kinds)
    items: list[tuple[tuple[int, int], Any]] = []
    pos = start
    while pos < len(hits) and len(items) < first:
        chunk = hits[pos:pos + max(first - len(items), 10)]
        seen = await _visible(ctx, chunk, edges)
        for h in chunk:
            pos += 1
            rec = seen.get((h.kind, h.id))
            if rec is not None:
                items.append(((fp, pos), rec))
                if len(items) == first:
                    break
    return Page(items=items, has_next=pos < len(hits), end_cursor=(fp, pos), has_previous=start > 0)
