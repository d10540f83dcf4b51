"""A viewer's Explore pool: candidate posts and suggested accounts, precomputed by a job.

The pool is the data of one self edge, `viewer -EXPLORE_POOL-> viewer` (cached by the store:
a read is one cache key), written by `explore.build_pool` (`build`). A read that finds it older
than `explore.pool_ttl_seconds` serves it and enqueues a rebuild; a viewer without one is served
the trending posts while the job builds theirs (or, with `cold_build_inline`, gets it built
inline: the cold path, measured in docs/BENCHMARKS.md).

Candidate sources, each post getting a prior = the sum of `weight_<source> * strength`:
- colike: posts liked by people who liked what the viewer liked (their newest `seed_likes`
  likes -> `likers_per_post` likers each -> their newest `likes_per_liker` likes); strength
  `1 - exp(-n / 2)` for n co-likers;
- fof: the newest `posts_per_author` posts of the `fof_authors` accounts followed by most of the
  `followings_scanned` accounts the viewer follows; strength `1 - exp(-n / 3)`;
- trending: the trending posts the trends refresh keeps (`resolvers.explore.trends`); strength
  `s / (s + 10)` for the tag's score s;
- tag: the newest public posts of the `engaged_tags` hashtags most present in the viewer's likes;
  strength = the tag's share of those likes.
The pool keeps the best `pool_candidates` by prior among posts that are visible, younger than
`window_days`, by an existing public account that is not the viewer, not followed, not blocked
either way, not muted, and not already served to the viewer on Explore. Reads check again
(things change between builds), and the page served is checked through privacy.

Suggestions come from the same reads: accounts followed by the viewer's followings (n
"mutuals", and the first of them, for "followed by ada and 3 others"), and followers the viewer
does not follow back ("follows you"); minus the viewer, followed or requested accounts, blocks
either way, mutes and recent dismissals.

Encoding (edge data is at most 60 KB): `{"t": built ms, "p": [post], "a": [author], "k": "012..."
(kind codes), "m": [age at build, s], "s": [prior], "kp": [likes of each kind], "su": [[user, n
mutuals, first mutual or 0, follows you 0/1]]}`: about 55 bytes per candidate.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config import ExploreSettings, Settings
from resolvers.edge_data import edge_author, edge_kind
from resolvers.explore.trends import KIND_CODE, KINDS, registry_id
from resolvers.job_context import JobContext
from resolvers.records import Post, User, record_of
from tao import Assoc, Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

BUILD_JOB = "explore.build_pool"
POOL = "EXPLORE_POOL"
DAY_MS = 86_400_000
SHUT = ("MUTES", "BLOCKS", "BLOCKED_BY")
LIST_MAX = 10_000


@dataclass(slots=True)
class Cand:
    post: int
    author: int
    kind: str
    time: int
    prior: float


@dataclass(slots=True)
class Suggestion:
    user: int
    mutuals: int
    first_mutual: int | None
    follows_you: bool


@dataclass(slots=True)
class Pool:
    built: int
    cands: list[Cand] = field(default_factory=list)
    kind_likes: list[int] = field(default_factory=lambda: [0, 0, 0])
    suggestions: list[Suggestion] = field(default_factory=list)

    def encode(self) -> dict:
        return {"t": self.built, "p": [c.post for c in self.cands], "a": [c.author for c in self.cands],
                "k": "".join(str(KIND_CODE.get(c.kind, 0)) for c in self.cands),
                "m": [max(0, (self.built - c.time) // 1000) for c in self.cands],
                "s": [round(c.prior, 3) for c in self.cands], "kp": self.kind_likes,
                "su": [[x.user, x.mutuals, x.first_mutual or 0, int(x.follows_you)] for x in self.suggestions]}

    @classmethod
    def decode(cls, d: dict) -> Pool:
        t = int(d["t"])
        cands = [Cand(p, a, KINDS[int(k)], t - m * 1000, s)
                 for p, a, k, m, s in zip(d["p"], d["a"], d["k"], d["m"], d["s"])]
        sugg = [Suggestion(u, n, m or None, bool(f)) for u, n, m, f in d.get("su", [])]
        return cls(t, cands, list(d.get("kp", [0, 0, 0])), sugg)


async def read_pool(ctx: RequestContext, viewer: int) -> Pool | None:
    edge = await ctx.loaders.assoc_by_key.load((viewer, POOL, viewer))
    if edge is None:
        return None
    try:
        return Pool.decode(edge.data)
    except (KeyError, TypeError, ValueError, IndexError):
        return None  # an older encoding: rebuilt like a missing pool


async def pool_for(ctx: RequestContext, viewer: int) -> Pool:
    """The viewer's pool: the stored one (a stale one is served and a rebuild enqueued), else built now."""
    pool = await read_pool(ctx, viewer)
    now = now_ms()
    if pool is None and not ctx.settings.explore.cold_build_inline:
        await ctx.tao.enqueue(viewer, BUILD_JOB, {"viewer": viewer, "t": now})
        return await trending_pool(ctx, viewer, now)
    if pool is None:
        pool = await build(ctx.tao, ctx.settings, viewer, now)
        await store(ctx.tao, viewer, pool)
        ctx.loaders.assoc_by_key.clear((viewer, POOL, viewer))
    elif now - pool.built > ctx.settings.explore.pool_ttl_seconds * 1000:
        await ctx.tao.enqueue(viewer, BUILD_JOB, {"viewer": viewer, "t": now})
    return pool


async def trending_pool(ctx: RequestContext, viewer: int, now: int) -> Pool:
    """A cold viewer's stand-in pool: the trending posts (one cached object), no suggestions. The
    read's filters and page check apply as to any pool."""
    rid = await registry_id(ctx.tao)
    obj = await ctx.loaders.object_by_id.load(rid)
    rows = getattr(obj, "data", {}).get("posts", []) if obj is not None else []
    s = ctx.settings.explore
    return Pool(now, [Cand(p, a, KINDS[int(k)], t, s.weight_trending * (sc / (sc + 10.0)))
                      for p, a, k, t, sc in rows if a != viewer])


async def store(tao: Tao, viewer: int, pool: Pool) -> None:
    await tao.assoc_add(viewer, POOL, viewer, time=pool.built, data=pool.encode())


async def build_pool_job(job: JobContext, payload: dict) -> None:
    """Rebuild a viewer's pool, unless one was built since the job was asked for (idempotent)."""
    tao, viewer = job.tao, payload["viewer"]
    edge = (await tao.assoc_get(viewer, POOL, [viewer])).get(viewer)
    if edge is not None and edge.time >= int(payload.get("t", 0)):
        return
    found = (await tao.obj_get([viewer])).get(viewer)
    if found is None or not isinstance(record_of(found), User):
        return  # the account is gone
    await store(tao, viewer, await build(tao, job.settings, viewer, now_ms()))


def _strength(n: float, k: float) -> float:
    return 1.0 - math.exp(-n / k)


async def build(tao: Tao, settings: Settings, viewer: int, now: int) -> Pool:
    s = settings.explore
    low = now - int(s.window_days * DAY_MS)
    rid = await registry_id(tao)
    likes, follows, followers, shut_lists, reg = await asyncio.gather(
        tao.assoc_time_range(viewer, "LIKES", limit=max(s.seed_likes, 200)),
        tao.assoc_range(viewer, "FOLLOWS", 0, s.followings_scanned),
        tao.assoc_range(viewer, "FOLLOWED_BY", 0, s.followers_scanned),
        tao.assoc_range_many([(viewer, t) for t in SHUT], 0, LIST_MAX),
        tao.obj_get([rid]))
    shut = {e.id2 for page in shut_lists.values() for e in page}
    followed = {e.id2 for e in follows}
    kind_likes = Counter(edge_kind(e.data) for e in likes)
    seeds = [e.id2 for e in likes[:s.seed_likes]]
    prior: defaultdict[int, float] = defaultdict(float)  # post -> prior

    # colike
    likers_pages = await tao.assoc_range_many([(p, "LIKED_BY") for p in seeds], 0, s.likers_per_post)
    likers = list(dict.fromkeys(e.id2 for page in likers_pages.values() for e in page if e.id2 != viewer))
    colike: Counter[int] = Counter()
    if likers:
        their = await tao.assoc_time_range_many([(u, "LIKES") for u in likers], low=low, limit=s.likes_per_liker)
        for page in their.values():
            for e in page:
                if edge_author(e.data) != viewer:
                    colike[e.id2] += 1
    for p, n in colike.items():
        prior[p] += s.weight_colike * _strength(n, 2.0)

    # fof (and the mutuals of suggestions)
    fof: Counter[int] = Counter()
    first_mutual: dict[int, int] = {}
    if follows:
        pages = await tao.assoc_range_many([(e.id2, "FOLLOWS") for e in follows], 0, s.follows_per_following)
        for e in follows:
            for f in pages.get((e.id2, "FOLLOWS"), []):
                if f.id2 != viewer and f.id2 not in followed:
                    fof[f.id2] += 1
                    first_mutual.setdefault(f.id2, e.id2)
    authors = [a for a, _ in fof.most_common() if a not in shut][:s.fof_authors]
    if authors:
        authored = await tao.assoc_time_range_many([(a, "AUTHORED") for a in authors], low=low,
                                                   limit=s.posts_per_author)
        for (a, _), page in authored.items():
            for e in page:
                prior[e.id2] += s.weight_fof * _strength(fof[a], 3.0)

    # trending
    for p, _a, _k, _t, sc in (reg[rid].data.get("posts", []) if rid in reg else []):
        prior[p] += s.weight_trending * (sc / (sc + 10.0))

    # engaged hashtags
    liked_posts = await tao.obj_get(seeds)
    tags: Counter[int] = Counter()
    for o in liked_posts.values():
        rec = record_of(o)
        if isinstance(rec, Post):
            tags.update(rec.hashtag_ids)
    if tags:
        total = sum(tags.values())
        top = tags.most_common(s.engaged_tags)
        pages = await tao.assoc_range_many([(t, "PUBLIC_TAGS") for t, _ in top], 0, s.posts_per_tag)
        for t, n in top:
            for e in pages.get((t, "PUBLIC_TAGS"), []):
                prior[e.id2] += s.weight_tag * (n / total)

    for e in likes:  # what the viewer liked, they have seen
        prior.pop(e.id2, None)
    cands = await _eligible(tao, s, viewer, prior, shut, low)
    suggestions = await _suggestions(tao, settings, viewer, fof, first_mutual, followers, followed, shut, now)
    return Pool(now, cands, [kind_likes.get(k, 0) for k in KINDS], suggestions)


async def _eligible(tao: Tao, s: ExploreSettings, viewer: int, prior: dict[int, float], shut: set[int], low: int
                    ) -> list[Cand]:
    """The best `pool_candidates` candidates that pass every exclusion known at build time."""
    # Most candidates are checked; loading 3x the pool keeps the job's reads bounded.
    ranked = sorted(prior, key=lambda p: (-prior[p], -p))[:3 * s.pool_candidates]
    posts = await tao.obj_get(ranked)
    recs = {p: r for p, o in posts.items() if isinstance(r := record_of(o), Post)}
    ok = [p for p in ranked if p in recs and recs[p].is_visible and recs[p].time >= low
          and recs[p].author != viewer and recs[p].author not in shut]
    authors = list({recs[p].author for p in ok})
    users, follows, seen = await asyncio.gather(
        tao.obj_get(authors),
        tao.assoc_get(viewer, "FOLLOWS", authors) if authors else _empty(),
        tao.assoc_get(viewer, "EXPLORE_SEEN", ok) if ok else _empty())
    public = {a for a, o in users.items() if isinstance(u := record_of(o), User) and not u.is_private}
    out = [Cand(p, recs[p].author, recs[p].kind.value, recs[p].time, prior[p]) for p in ok
           if recs[p].author in public and recs[p].author not in follows and p not in seen]
    return out[:s.pool_candidates]


async def _empty() -> dict:
    return {}


async def _suggestions(tao: Tao, settings: Settings, viewer: int, fof: Counter[int], first_mutual: dict[int, int],
                       followers: list[Assoc], followed: set[int], shut: set[int], now: int) -> list[Suggestion]:
    s = settings.explore
    follows_you = {e.id2 for e in followers}
    score: defaultdict[int, float] = defaultdict(float, {u: float(n) for u, n in fof.items()})
    for u in follows_you:
        score[u] += 2.0
    ranked = [u for u in sorted(score, key=lambda u: (-score[u], -u))[:4 * s.suggestions]
              if u != viewer and u not in followed and u not in shut]
    if not ranked:
        return []
    users, follows, requested, dismissed = await asyncio.gather(
        tao.obj_get(ranked), tao.assoc_get(viewer, "FOLLOWS", ranked),
        tao.assoc_get(viewer, "FOLLOW_REQUESTED", ranked), tao.assoc_get(viewer, "DISMISSED_SUGGESTION", ranked))
    recent = now - int(s.dismiss_days * DAY_MS)
    out = []
    for u in ranked:
        if not isinstance(record_of(users[u]) if u in users else None, User):
            continue
        if u in follows or u in requested or (u in dismissed and dismissed[u].time >= recent):
            continue
        out.append(Suggestion(u, fof.get(u, 0), first_mutual.get(u), u in follows_you))
    return out[:s.suggestions]
