"""Process-level runtime tuning shared by the server and the benchmarks that stand in for it."""

from __future__ import annotations

import gc

# Young-generation threshold: CPython's default (700 allocations) runs a collection several
# times inside one feed refresh, which allocates thousands of short-lived containers.
GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """Call once the process is up (pools open, schema built). `gc.freeze()` moves everything
    alive at that point out of the collector's reach, so the older-generation passes that land
    inside requests no longer walk the start-up heap; a higher gen-0 threshold makes the
    passes rarer. Measured on the feed's first page (docs/BENCHMARKS.md, "Feed"): the p99 tail
    is mostly these passes."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
