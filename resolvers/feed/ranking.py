"""Ranking: a score per candidate from four signals, the seen-sink, then diversity rules.

score = w_recency * 0.5 ** (age_h / half_life)
      + w_engagement * r / (r + engagement_half_rate),  r = (likes + 2*comments) / (age_h + 2)
      + w_affinity * (1 - exp(-(likes_by_viewer_on_author + 0.5*recent_visit) / 3))
      + w_content_type * (liked_of_kind + 1) / (liked_total + 3)      (Laplace over 3 kinds)

Signals come from the viewer's newest AFFINITY_LIKES likes (which authors, which kinds) and
VISITED edges (profile visits), and the posts' LIKED_BY / HAS_COMMENT counts. Posts the viewer
already scrolled past (seen marks on their FEED edges, read with the list) sink below every unseen post; within each group the order is by
score. Diversity is then applied greedily over aligned blocks of `feed.diversity_window` items:
no more than `max_same_author_run` consecutive posts by one author, and no kind over
`max_content_type_share` of a block. When no remaining candidate fits, the type rule is relaxed
first, then the author rule (a feed with one author still shows it), and an unseen post is
never moved below a seen one to satisfy a rule.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config import FeedSettings
from resolvers.feed.candidates import Candidate
from tao.core import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

AFFINITY_LIKES = 200
AFFINITY_VISITS = 100
KINDS = ("photo", "video", "carousel")
LOOKAHEAD = 64  # candidates examined per slot before a rule is relaxed


@dataclass(slots=True)
class Signals:
    likes: dict[int, int] = field(default_factory=dict)           # post -> like count
    comments: dict[int, int] = field(default_factory=dict)        # post -> comment count
    seen: set[int] = field(default_factory=set)                   # posts the viewer scrolled past
    liked_authors: Counter = field(default_factory=Counter)       # author -> viewer's recent likes
    visited: dict[int, int] = field(default_factory=dict)         # author -> last visit (ms)
    liked_kinds: Counter = field(default_factory=Counter)         # kind -> viewer's recent likes


@dataclass(slots=True)
class Scored:
    cand: Candidate
    score: float
    components: dict[str, float]
    seen: bool


async def load_signals(ctx: RequestContext, viewer: int, cands: list[Candidate]) -> Signals:
    tao = ctx.tao
    posts = [c.post for c in cands]
    count_keys = [(p, "LIKED_BY") for p in posts] + [(p, "HAS_COMMENT") for p in posts]
    counts, likes, visits = await asyncio.gather(
        tao.assoc_count_many(count_keys) if posts else _empty(),
        tao.assoc_time_range(viewer, "LIKES", limit=AFFINITY_LIKES),
        tao.assoc_time_range(viewer, "VISITED", limit=AFFINITY_VISITS))
    liked = [o for o in await ctx.loaders.object_by_id.load_many([e.id2 for e in likes]) if o is not None]
    return Signals(
        likes={p: counts.get((p, "LIKED_BY"), 0) for p in posts},
        comments={p: counts.get((p, "HAS_COMMENT"), 0) for p in posts},
        seen={c.post for c in cands if c.seen},
        liked_authors=Counter(int(o.data["author"]) for o in liked if o.data.get("author") is not None),
        visited={e.id2: e.time for e in visits},
        liked_kinds=Counter(o.data.get("kind") for o in liked if o.data.get("kind") in KINDS),
    )


async def _empty() -> dict:
    return {}


def score(c: Candidate, sig: Signals, s: FeedSettings, now: int) -> tuple[float, dict[str, float]]:
    age_h = max(0.0, (now - c.time) / 3_600_000)
    recency = 0.5 ** (age_h / s.recency_half_life_hours)
    rate = (sig.likes.get(c.post, 0) + 2 * sig.comments.get(c.post, 0)) / (age_h + 2)
    engagement = rate / (rate + s.engagement_half_rate)
    visit = sig.visited.get(c.author)
    visit_w = 0.0 if visit is None else 0.5 ** ((now - visit) / (7 * 24 * 3_600_000))
    affinity = 1 - math.exp(-(sig.liked_authors.get(c.author, 0) + 0.5 * visit_w) / 3)
    total_likes = sum(sig.liked_kinds.values())
    kind = _kind(c)
    content = (sig.liked_kinds.get(kind, 0) + 1) / (total_likes + len(KINDS))
    parts = {"recency": recency, "engagement": engagement, "affinity": affinity, "content_type": content}
    total = (s.weight_recency * recency + s.weight_engagement * engagement
             + s.weight_affinity * affinity + s.weight_content_type * content)
    return total, parts


def _kind(c: Candidate) -> str:
    return (c.obj.data.get("kind") if c.obj is not None else None) or "photo"


def rank(cands: list[Candidate], sig: Signals, s: FeedSettings, now: int | None = None) -> list[Scored]:
    """Scored candidates in feed order: unseen before seen, by score, then diversity."""
    now = now_ms() if now is None else now
    scored = []
    for c in cands:
        total, parts = score(c, sig, s, now)
        scored.append(Scored(c, total, parts, c.post in sig.seen))
    scored.sort(key=lambda x: (x.seen, -x.score, -x.cand.time, -x.cand.post))
    unseen = [x for x in scored if not x.seen]
    return diversify(unseen + [x for x in scored if x.seen], s, n_unseen=len(unseen))


def diversify(items: list[Scored], s: FeedSettings, n_unseen: int | None = None) -> list[Scored]:
    """Greedy re-order keeping the diversity rules (see the module docstring). Items before
    `n_unseen` are placed before any item after it."""
    n_unseen = len(items) if n_unseen is None else n_unseen
    window = max(1, s.diversity_window)
    type_cap = max(1, math.floor(s.max_content_type_share * window))
    run = max(1, s.max_same_author_run)
    out: list[Scored] = []
    block: Counter = Counter()
    for group in (items[:n_unseen], items[n_unseen:]):
        pool = list(group)
        while pool:
            if len(out) % window == 0:
                block = Counter()
            recent = [x.cand.author for x in out[-run:]]
            author_full = recent[0] if len(recent) == run and len(set(recent)) == 1 else None
            pick = _first(pool, lambda x: x.cand.author != author_full and block[_kind(x.cand)] < type_cap)
            if pick is None:
                pick = _first(pool, lambda x: x.cand.author != author_full)
            if pick is None:
                pick = 0
            x = pool.pop(pick)
            block[_kind(x.cand)] += 1
            out.append(x)
    return out


def _first(pool: list[Scored], ok) -> int | None:
    for i, x in enumerate(pool[:LOOKAHEAD]):
        if ok(x):
            return i
    return None


def chronological(cands: list[Candidate]) -> list[Scored]:
    return [Scored(c, 0.0, {}, False) for c in sorted(cands, key=lambda c: (c.time, c.post), reverse=True)]
