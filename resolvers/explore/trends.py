"""Trending hashtags: growth in distinct accounts over a baseline, with decay (Mastodon's
`Trends::Tags`, per bucket of `explore.trend_bucket_minutes` instead of per day).

Tallies (incremental, by outbox job on post creation). `posts.ON_PUBLISH` commits a
`explore.trend_tally` job with the write that publishes a tagged post. The job counts the post
only if it is public (visible, by a public account: private activity never moves a public
trend). For each tag it finds the TREND_BUCKET object of (tag, bucket of the post's time), made
on the tag's shard and found by the unique key `trend/<tag>:<bucket>` (a race has one winner),
and adds the edge `bucket -TREND_USER-> author`: the bucket's exact count of distinct accounts,
kept by the store (an insert counts once; a re-run or a second post by the same account in the
same bucket changes nothing). It also upserts `registry -TREND_RECENT-> tag` (time = last use)
on the well-known TREND_REGISTRY object. A bucket deletes itself (edges, key, object) by a
delayed job once it is older than the baseline.

Scores (`explore.trend_refresh`, enqueued by a tally at most every `trend_refresh_seconds`):
for the tags used in the current bucket (TREND_RECENT) and those already trending,

    observed = distinct accounts in the current bucket
    expected = max(1, mean distinct accounts of the previous `trend_baseline_buckets` buckets)
    score    = (observed - expected)^2 / expected   if observed >= trend_threshold and observed > expected, else 0

A tag keeps its best score and when it reached it (forgotten after `trend_cooldown_hours`);
what is shown is that best score halved every `trend_halflife_hours` since, computed at read time,
so a read is always current without a refresh. The refresh stores `{"t", "tags": {tag: [best,
at, observed]}, "posts": [...]}` on the registry (one cached object read per `trendingHashtags`):
"posts" are the newest public posts of the best tags, Explore's "trending" candidates.
Reads pass each tag through privacy (`listing_visible`: it has a public post).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config import ExploreSettings
from resolvers import privacy
from resolvers.job_context import JobContext
from resolvers.records import Hashtag, Post, User, record_of
from resolvers.well_known import well_known_id
from tao import Tao
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

TALLY_JOB = "explore.trend_tally"
REFRESH_JOB = "explore.trend_refresh"
EXPIRE_BUCKET_JOB = "explore.trend_bucket_expire"
REGISTRY_NS, REGISTRY_KEY, BUCKET_NS = "trend", "registry", "trend"
KIND_CODE = {"photo": 0, "video": 1, "carousel": 2}
KINDS = tuple(KIND_CODE)
_DRAIN = 1000



def on_publish(post: Post) -> list[tuple[str, dict]]:
    """posts.ON_PUBLISH hook: the tally job of a tagged post, committed with its publication."""
    if not post.hashtag_ids:
        return []
    return [(TALLY_JOB, {"post": post.id, "author": post.author, "time": post.time, "tags": list(post.hashtag_ids)})]


def bucket_ms(s: ExploreSettings) -> int:
    return s.trend_bucket_minutes * 60_000


async def registry_id(tao: Tao) -> int:
    """The well-known TREND_REGISTRY object, created by the first caller (a race has one winner)."""
    return await well_known_id(tao, "TREND_REGISTRY", REGISTRY_NS, REGISTRY_KEY)


def _bucket_key(tag: int, bucket: int) -> str:
    return f"{tag}:{bucket}"


async def _bucket_id(tao: Tao, s: ExploreSettings, tag: int, bucket: int) -> int:
    """The TREND_BUCKET of (tag, bucket), made on the tag's shard if missing, with the delayed job
    that deletes it once it is past the baseline."""
    key = _bucket_key(tag, bucket)
    found = (await tao.key_get_many(BUCKET_NS, [key])).get(key)
    if found:
        return int(found)
    delay = (s.trend_baseline_buckets + 2) * bucket_ms(s)
    mine = await tao.obj_add("TREND_BUCKET", {"tag": tag, "b": bucket}, owner=tag,
                             jobs=lambda new_id: [(EXPIRE_BUCKET_JOB, {"bucket": new_id, "key": key}, delay)])
    if await tao.key_claim(BUCKET_NS, key, mine):
        return mine
    await tao.obj_delete(mine)  # its expiry job finds nothing to do
    return int((await tao.key_get_many(BUCKET_NS, [key]))[key])


async def tally_job(job: JobContext, payload: dict) -> None:
    tao, s = job.tao, job.settings.explore
    post_id, author, time = payload["post"], payload["author"], int(payload["time"])
    objs = await tao.obj_get([post_id, author])
    post = record_of(objs[post_id]) if post_id in objs else None
    user = record_of(objs[author]) if author in objs else None
    if not isinstance(post, Post) or not post.is_visible or not isinstance(user, User) or user.is_private:
        return  # only public posts make a public trend
    bucket = time // bucket_ms(s)
    for tag in payload["tags"]:
        bid = await _bucket_id(tao, s, tag, bucket)
        await tao.assoc_add(bid, "TREND_USER", author, time=time)
    rid = await registry_id(tao)
    await tao.assoc_add_many([(rid, "TREND_RECENT", tag, time, None) for tag in payload["tags"]])
    reg = (await tao.obj_get([rid])).get(rid)
    data = reg.data if reg is not None else {}
    now = now_ms()
    last = max(int(data.get("t", 0)), int(data.get("q", 0)))
    if now - last >= s.trend_refresh_seconds * 1000:
        await tao.obj_update(rid, {"q": now}, jobs=[(REFRESH_JOB, {})])


async def expire_bucket_job(job: JobContext, payload: dict) -> None:
    tao, bid = job.tao, payload["bucket"]
    while True:
        page = await tao.assoc_range(bid, "TREND_USER", 0, _DRAIN)
        for e in page:
            await tao.assoc_delete(bid, "TREND_USER", e.id2)
        if len(page) < _DRAIN:
            break
    await tao.key_release(BUCKET_NS, payload["key"], bid)
    await tao.obj_delete(bid)


def trend_score(observed: float, expected: float, s: ExploreSettings) -> float:
    """Mastodon's: the squared growth over the expected count, relative to it (0 below the threshold)."""
    expected = max(1.0, expected)
    if observed < s.trend_threshold or observed <= expected:
        return 0.0
    return (observed - expected) ** 2 / expected


def decayed(best: float, at: int, now: int, s: ExploreSettings) -> float:
    return best * 0.5 ** (max(0, now - at) / (s.trend_halflife_hours * 3_600_000))


async def _counts(tao: Tao, keys: list[str]) -> dict[str, int]:
    """Distinct accounts of each bucket key (0 for a bucket nobody used)."""
    if not keys:
        return {}
    ids = await tao.key_get_many(BUCKET_NS, keys)
    counts = await tao.assoc_count_many([(int(i), "TREND_USER") for i in ids.values()])
    return {k: int(counts.get((int(ids[k]), "TREND_USER"), 0)) if k in ids else 0 for k in keys}


async def refresh_job(job: JobContext, payload: dict) -> None:
    await refresh(job.tao, job.settings.explore, at=payload.get("at"))


async def refresh(tao: Tao, s: ExploreSettings, at: int | None = None) -> dict[str, Any]:
    """Re-score the recently used and the trending tags; store the result on the registry."""
    now = now_ms() if at is None else int(at)
    rid = await registry_id(tao)
    reg = (await tao.obj_get([rid])).get(rid)
    old: dict[str, list] = dict(reg.data.get("tags", {})) if reg is not None else {}
    bucket = now // bucket_ms(s)
    recent = await tao.assoc_time_range(rid, "TREND_RECENT", low=bucket * bucket_ms(s), limit=s.trend_max_tags)
    tags = list(dict.fromkeys([e.id2 for e in recent] + [int(t) for t in old]))
    observed = await _counts(tao, [_bucket_key(t, bucket) for t in tags])
    # Only tags over the threshold can score: read their baselines (N buckets each).
    rising = [t for t in tags if observed[_bucket_key(t, bucket)] >= s.trend_threshold]
    base_keys = [_bucket_key(t, bucket - i) for t in rising for i in range(1, s.trend_baseline_buckets + 1)]
    base = await _counts(tao, base_keys)
    cooldown = s.trend_cooldown_hours * 3_600_000
    kept: dict[str, list] = {}
    for t in tags:
        obs = observed[_bucket_key(t, bucket)]
        best, best_at = 0.0, now
        prev = old.get(str(t))
        if prev is not None and now - int(prev[1]) <= cooldown:
            best, best_at = float(prev[0]), int(prev[1])
        if t in rising:
            expected = sum(base[_bucket_key(t, bucket - i)] for i in range(1, s.trend_baseline_buckets + 1))
            score = trend_score(obs, expected / s.trend_baseline_buckets, s)
            if score > best:
                best, best_at = score, now
        if best > 0:
            kept[str(t)] = [round(best, 4), best_at, obs]
    ranked = sorted(kept.items(), key=lambda kv: -decayed(kv[1][0], kv[1][1], now, s))[:4 * s.trend_keep]
    kept = dict(ranked)
    posts = await _trending_posts(tao, s, [(int(t), decayed(v[0], v[1], now, s)) for t, v in ranked
                                           if decayed(v[0], v[1], now, s) >= s.trend_min_score])
    data = {"t": now, "q": None, "tags": kept, "posts": posts}
    await tao.obj_update(rid, data)
    return data


async def _trending_posts(tao: Tao, s: ExploreSettings, tags: list[tuple[int, float]]) -> list[list]:
    """[[post, author, kind code, time, tag score]]: the newest public posts of the best tags."""
    best = tags[:s.trend_post_tags]
    if not best:
        return []
    pages = await tao.assoc_range_many([(t, "PUBLIC_TAGS") for t, _ in best], 0, s.trend_posts_per_tag)
    score_of: dict[int, float] = {}
    for t, sc in best:
        for e in pages.get((t, "PUBLIC_TAGS"), []):
            score_of[e.id2] = max(score_of.get(e.id2, 0.0), sc)
    objs = await tao.obj_get(list(score_of))
    out = []
    for pid, sc in score_of.items():
        p = record_of(objs[pid]) if pid in objs else None
        if isinstance(p, Post) and p.is_visible:
            out.append([pid, p.author, KIND_CODE.get(p.kind.value, 0), p.time, round(sc, 3)])
    return out


@dataclass(slots=True)
class TrendingTag:
    hashtag: Hashtag
    score: float
    accounts: int  # distinct accounts in the bucket of the last refresh


async def registry_data(ctx: RequestContext) -> dict[str, Any]:
    rid = await registry_id(ctx.tao)
    obj = await ctx.loaders.object_by_id.load(rid)
    data = getattr(obj, "data", None)
    return dict(data) if data is not None else {}


async def trending_hashtags(ctx: RequestContext, first: int, at: int | None = None) -> list[TrendingTag]:
    """The trending tags the viewer may see, best first (scores decayed to now)."""
    s = ctx.settings.explore
    now = now_ms() if at is None else at
    data = await registry_data(ctx)
    scored = sorted(((int(t), decayed(v[0], v[1], now, s), int(v[2])) for t, v in data.get("tags", {}).items()),
                    key=lambda x: (-x[1], x[0]))
    scored = [x for x in scored if x[1] >= s.trend_min_score][:s.trend_keep]
    out: list[TrendingTag] = []
    # Privacy per tag (a tag used only by private accounts does not exist for strangers); the
    # tags come from public posts, so nearly all pass: check a few more than asked, in one batch.
    for i in range(0, len(scored), max(first, 1) * 2):
        chunk = scored[i:i + max(first, 1) * 2]
        objs = await ctx.loaders.object_by_id.load_many([t for t, _, _ in chunk])
        seen = await asyncio.gather(*(_visible(ctx, o) for o in objs))
        out += [TrendingTag(o, sc, n) for (t, sc, n), o, ok in zip(chunk, objs, seen) if ok and isinstance(o, Hashtag)]
        if len(out) >= first:
            break
    return out[:first]


async def _visible(ctx: RequestContext, obj: Any) -> bool:
    return obj is not None and await privacy.can_see_object(ctx, obj)
