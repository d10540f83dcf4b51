"""Process-level runtime tuning shared by the server and the benchmarks that stand in for it."""

from __future__ import annotations

import ctypes
import gc
import sys

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


# glibc's malloc raises its mmap threshold to the largest block freed so far (up to 32 MiB): after
# the first 8 MiB buffer of an export is freed, later ones come from the heap and from per-thread
# arenas, which keep freed memory. A worker streaming a 1 GiB export grew ~40 MB per tenfold
# account that way; with these two settings its peak stayed flat from 1/100 to 1/10 of the bench's
# big account (docs/BENCHMARKS.md, "Account export and purge").
MMAP_THRESHOLD_BYTES = 1 << 20  # blocks this big are mmapped, and returned to the system when freed
MALLOC_ARENAS = 2  # threads share two arenas instead of up to 8 per core
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt's parameter numbers (malloc.h)


def tune_malloc() -> None:
    """Call first thing in a server or worker process (glibc only; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, say): its allocator has neither setting
        return
    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
