"""Ranking: a score per candidate from four signals, the seen-sink, then diversity rules.

score = w_recency * 0.5 ** (age_h / half_life)
      + w_engagement * r / (r + engagement_half_rate),  r = (likes + 2*comments) / (age_h + 2)
      + w_affinity * (1 - exp(-(likes_by_viewer_on_author + 0.5*recent_visit) / 3))
      + w_content_type * (liked_of_kind + 1) / (liked_total + 3)      (Laplace over 3 kinds)

Signals come from the viewer's newest AFFINITY_LIKES likes (which authors, which kinds: carried
on the LIKES edges) and VISITED edges (profile visits), and the posts' LIKED_BY / HAS_COMMENT
counts. Ranking has two passes: every candidate is scored without engagement (the first pass,
from data already in hand), and the best `feed.rank_depth` of them (unseen first) get their
counts read and the full score (the second pass); the rest follow them in first-pass order.
Posts the viewer already scrolled past (seen marks on their FEED edges, read with the list)
sink below every unseen post; within each group the order is by
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
from operator import itemgetter
from typing import TYPE_CHECKING

from config import FeedSettings
from resolvers.edge_data import edge_author, edge_kind
from resolvers.feed.candidates import Candidate
from resolvers.records import Post, PostKind
from tao.models import now_ms

if TYPE_CHECKING:
    from resolvers.context import RequestContext

AFFINITY_LIKES = 200
AFFINITY_VISITS = 100
KINDS = tuple(k.value for k in PostKind)
LOOKAHEAD = 64  # candidates examined per slot before a rule is relaxed


@dataclass(slots=True)
class Signals:
    likes: dict[int, int] = field(default_factory=dict)           # post -> like count
    comments: dict[int, int] = field(default_factory=dict)        # post -> comment count
    # Posts whose counts were read (the second pass); None: every post's are known.
    engaged: set[int] | None = None
    seen: set[int] = field(default_factory=set)                   # posts the viewer scrolled past
    liked_authors: Counter = field(default_factory=Counter)       # author -> viewer's recent likes
    visited: dict[int, int] = field(default_factory=dict)         # author -> last visit (ms)
    liked_kinds: Counter = field(default_factory=Counter)         # kind -> viewer's recent likes


COMPONENTS = ("recency", "engagement", "affinity", "content_type")


@dataclass(slots=True)
class Scored:
    cand: Candidate
    score: float
    parts: tuple[float, ...]  # one per COMPONENTS entry; () when not scored (chronological)
    seen: bool


async def load_signals(ctx: RequestContext, viewer: int) -> Signals:
    """The viewer-side signals (affinity, content-type preference); the seen marks come with
    the candidates (`Signals.seen`), the engagement counts later, for the second pass only
    (`load_engagement`). Needs nothing but the viewer: it runs beside the candidates' read."""
    tao = ctx.tao
    likes, visits = await asyncio.gather(
        tao.assoc_time_range(viewer, "LIKES", limit=AFFINITY_LIKES),
        tao.assoc_time_range(viewer, "VISITED", limit=AFFINITY_VISITS))
    # A like's edge carries the post's author and kind; older edges without them load the post.
    missing = [e.id2 for e in likes if edge_author(e.data) is None]
    loaded = {o.id: (o.author, o.kind.value) for o in await ctx.loaders.object_by_id.load_many(missing)
              if isinstance(o, Post)}
    liked = [(author, edge_kind(e.data)) if (author := edge_author(e.data)) is not None else loaded.get(e.id2)
             for e in likes]
    pairs = [p for p in liked if p is not None]
    return Signals(
        engaged=set(),
        liked_authors=Counter(author for author, _ in pairs),
        visited={e.id2: e.time for e in visits},
        liked_kinds=Counter(kind for _, kind in pairs if kind in KINDS),
    )


def second_pass(cands: list[Candidate], scorer: Scorer) -> list[Candidate]:
    """The `feed.rank_depth` candidates that get the full score: the best by the first-pass
    score (every signal but engagement, which needs two counts per post), unseen first."""
    seen = scorer.sig.seen
    first = sorted(cands, key=lambda c: (c.post in seen, -scorer.first_pass(c), -c.time, -c.post))
    return first[:scorer.s.rank_depth]


async def load_engagement(tao, cands: list[Candidate], sig: Signals) -> None:
    """Like and comment counts of `cands` into `sig` (one many-keys count read)."""
    posts = [c.post for c in cands]
    if not posts:
        return
    counts = await tao.assoc_count_many([(p, "LIKED_BY") for p in posts] + [(p, "HAS_COMMENT") for p in posts])
    for p in posts:
        sig.likes[p] = counts.get((p, "LIKED_BY"), 0)
        sig.comments[p] = counts.get((p, "HAS_COMMENT"), 0)
    if sig.engaged is not None:
        sig.engaged.update(posts)


class Scorer:
    """The score of candidates for one viewer's signals at one instant. What does not depend on
    the candidate (decay constants, each author's affinity, each kind's preference) is
    computed once, and each candidate's engagement-free parts once: the first pass and the
    final ranking both use them. A refresh scores hundreds of candidates, so this is the
    ranking's hot loop."""

    def __init__(self, sig: Signals, s: FeedSettings, now: int | None = None) -> None:
        self.sig, self.s = sig, s
        self.now = now_ms() if now is None else now
        self._recency_per_ms = -math.log(2) / (s.recency_half_life_hours * 3_600_000)
        self._visit_per_ms = -math.log(2) / (7 * 24 * 3_600_000)
        denominator = sum(sig.liked_kinds.values()) + len(KINDS)
        self._content = {k: (sig.liked_kinds.get(k, 0) + 1) / denominator for k in KINDS}
        self._content_other = 1 / denominator  # a kind the viewer never liked (none outside KINDS)
        self._affinity: dict[int, float] = {}
        # post -> (first-pass score, recency, affinity, content_type)
        self._base: dict[int, tuple[float, float, float, float]] = {}

    def author_affinity(self, author: int) -> float:
        """The viewer's affinity with an author, in [0, 1) (the story tray orders rings by it)."""
        return self._author_affinity(author)

    def _author_affinity(self, author: int) -> float:
        affinity = self._affinity.get(author)
        if affinity is None:
            visit = self.sig.visited.get(author)
            visit_w = 0.0 if visit is None else math.exp((self.now - visit) * self._visit_per_ms)
            affinity = 1 - math.exp(-(self.sig.liked_authors.get(author, 0) + 0.5 * visit_w) / 3)
            self._affinity[author] = affinity
        return affinity

    def _base_parts(self, c: Candidate) -> tuple[float, float, float, float]:
        """(first-pass score, recency, affinity, content_type): every signal that needs no count."""
        base = self._base.get(c.post)
        if base is None:
            s = self.s
            recency = math.exp(max(0, self.now - c.time) * self._recency_per_ms)
            affinity = self._author_affinity(c.author)
            content = self._content.get(_kind(c), self._content_other)
            first = s.weight_recency * recency + s.weight_affinity * affinity + s.weight_content_type * content
            base = self._base[c.post] = (first, recency, affinity, content)
        return base

    def engagement(self, c: Candidate) -> float:
        likes, comments = self.sig.likes.get(c.post, 0), self.sig.comments.get(c.post, 0)
        if not (likes or comments):
            return 0.0
        rate = (likes + 2 * comments) / (max(0, self.now - c.time) / 3_600_000 + 2)
        return rate / (rate + self.s.engagement_half_rate)

    def first_pass(self, c: Candidate) -> float:
        return self._base_parts(c)[0]

    def __call__(self, c: Candidate) -> tuple[float, tuple[float, float, float, float]]:
        """(total score, (recency, engagement, affinity, content_type)) of one candidate."""
        first, recency, affinity, content = self._base_parts(c)
        engagement = self.engagement(c)
        return first + self.s.weight_engagement * engagement, (recency, engagement, affinity, content)


def _kind(c: Candidate) -> str:
    return c.kind or (c.obj.kind.value if c.obj is not None else None) or PostKind.PHOTO.value


def rank(cands: list[Candidate], sig: Signals, s: FeedSettings, now: int | None = None,
         scorer: Scorer | None = None) -> list[Scored]:
    """Scored candidates in feed order: unseen before seen; within each, the second pass's
    fully scored candidates by score, then the rest by their first-pass score; then diversity.
    Pass the `scorer` the second pass used, to reuse what it computed."""
    scorer = scorer or Scorer(sig, s, now)
    seen, engaged = sig.seen, sig.engaged
    keyed = []
    for c in cands:
        x = Scored(c, *scorer(c), c.post in seen)
        first_pass_only = engaged is not None and c.post not in engaged
        keyed.append(((x.seen, first_pass_only, -x.score, -c.time, -c.post), x))
    keyed.sort(key=itemgetter(0))
    ordered = [x for _, x in keyed]
    n_unseen = sum(not x.seen for x in ordered)  # the sort put every unseen item first
    return diversify(ordered, s, n_unseen=n_unseen)


def diversify(items: list[Scored], s: FeedSettings, n_unseen: int | None = None) -> list[Scored]:
    """Greedy re-order keeping the diversity rules (see the module docstring). Items before
    `n_unseen` are placed before any item after it. Runs once per refresh over the whole
    snapshot, so it tracks the current author run and block counts instead of re-reading them."""
    n_unseen = len(items) if n_unseen is None else n_unseen
    window = max(1, s.diversity_window)
    type_cap = max(1, math.floor(s.max_content_type_share * window))
    max_run = max(1, s.max_same_author_run)
    out: list[Scored] = []
    block: dict[str, int] = {}
    last_author, run = None, 0
    for group in (items[:n_unseen], items[n_unseen:]):
        pool = [(x.cand.author, _kind(x.cand), x) for x in group]
        while pool:
            if len(out) % window == 0:
                block = {}
            barred = last_author if run >= max_run else None  # would make the run too long
            look = min(LOOKAHEAD, len(pool))
            pick = _first_fit(pool, look, barred, block, type_cap)
            if pick is None:  # relax the type rule first...
                pick = _first_fit(pool, look, barred, None, type_cap)
            if pick is None:  # ...then the author rule
                pick = 0
            author, kind, x = pool.pop(pick)
            block[kind] = block.get(kind, 0) + 1
            run = run + 1 if author == last_author else 1
            last_author = author
            out.append(x)
    return out


def _first_fit(pool: list, look: int, barred: int | None, block: dict[str, int] | None, type_cap: int
               ) -> int | None:
    """The index of the first of `pool[:look]` that keeps the author rule and, unless `block`
    is None, the type rule. (A plain loop: this runs once per slot of every refresh.)"""
    for i in range(look):
        author, kind, _ = pool[i]
        if author != barred and (block is None or block.get(kind, 0) < type_cap):
            return i
    return None


def chronological(cands: list[Candidate]) -> list[Scored]:
    return [Scored(c, 0.0, (), False) for c in sorted(cands, key=lambda c: (c.time, c.post), reverse=True)]
