"""Explore's ranking funnel over a viewer's pool: a cheap first pass over every candidate, a
finer second pass over the best, then diversity.

first pass  = prior (the sources' weights, from the pool)
            + w_recency * 0.5 ** (age_h / recency_half_life_hours)
            + w_content_type * (liked_of_kind + 1) / (liked_total + 3)
Candidates are then reduced to one per author (that author's best by the first pass): a snapshot
holds at most one post per author, so every page does too, whatever `first` the client pages by.
second pass = first pass + w_engagement * r / (r + engagement_half_rate),
              r = (likes + 2 * comments) / (age_h + 2)
for the best `rank_depth` (their like and comment counts read in one many-keys call); the rest
follow in first-pass order. Diversity: over each aligned block of `diversity_window` cells, no
kind (photo, video, carousel) above `max_content_type_share`; when nothing left fits, the rule is
relaxed (a pool of only photos still fills the grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from config import ExploreSettings
from resolvers.explore.pool import Cand
from resolvers.explore.trends import KINDS
from tao import Tao

LOOKAHEAD = 64


@dataclass(slots=True)
class Ranked:
    cand: Cand
    score: float


def first_pass(cands: list[Cand], kind_likes: list[int], s: ExploreSettings, now: int) -> list[Ranked]:
    """Every candidate scored from what the pool carries, best first, one per author."""
    total = sum(kind_likes)
    pref = {k: (kind_likes[i] + 1) / (total + 3) for i, k in enumerate(KINDS)}
    per_ms = -math.log(2) / (s.recency_half_life_hours * 3_600_000)
    scored = [Ranked(c, c.prior + s.weight_recency * math.exp(max(0, now - c.time) * per_ms)
                     + s.weight_content_type * pref.get(c.kind, 1 / 3)) for c in cands]
    scored.sort(key=lambda x: (-x.score, -x.cand.post))
    authors: set[int] = set()
    out = []
    for x in scored:
        if x.cand.author not in authors:
            authors.add(x.cand.author)
            out.append(x)
    return out


async def second_pass(tao: Tao, ranked: list[Ranked], s: ExploreSettings, now: int) -> list[Ranked]:
    """The best `rank_depth` re-scored with engagement (one count read), ahead of the rest."""
    head, tail = ranked[:s.rank_depth], ranked[s.rank_depth:]
    if not head:
        return ranked
    posts = [x.cand.post for x in head]
    counts = await tao.assoc_count_many([(p, "LIKED_BY") for p in posts] + [(p, "HAS_COMMENT") for p in posts])
    for x in head:
        p = x.cand.post
        likes, comments = counts.get((p, "LIKED_BY"), 0), counts.get((p, "HAS_COMMENT"), 0)
        if likes or comments:
            rate = (likes + 2 * comments) / (max(0, now - x.cand.time) / 3_600_000 + 2)
            x.score += s.weight_engagement * rate / (rate + s.engagement_half_rate)
    head.sort(key=lambda x: (-x.score, -x.cand.post))
    return head + tail


def diversify(items: list[Ranked], s: ExploreSettings) -> list[Ranked]:
    """Greedy: each block of `diversity_window` cells keeps every kind under the share cap;
    the rule is relaxed for a slot when nothing in the lookahead fits."""
    window = max(1, s.diversity_window)
    cap = max(1, math.floor(s.max_content_type_share * window))
    pool = list(items)
    out: list[Ranked] = []
    block: dict[str, int] = {}
    while pool:
        if len(out) % window == 0:
            block = {}
        pick = next((i for i in range(min(LOOKAHEAD, len(pool))) if block.get(pool[i].cand.kind, 0) < cap), 0)
        x = pool.pop(pick)
        block[x.cand.kind] = block.get(x.cand.kind, 0) + 1
        out.append(x)
    return out


async def rank(tao: Tao, cands: list[Cand], kind_likes: list[int], s: ExploreSettings, now: int) -> list[Ranked]:
    return diversify(await second_pass(tao, first_pass(cands, kind_likes, s, now), s, now), s)
