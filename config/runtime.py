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


# glibc's malloc raises its mmap threshold to the size of the largest mmapped block freed so far
# (up to 32 MiB), and its trim threshold to twice that. After an export frees its first 8 MiB
# part, later parts and 1 MiB media chunks come from the heap and the per-thread arenas instead,
# which keep what is freed: a worker's VmHWM then grew with the number of parts it streamed.
# A fixed threshold keeps such blocks mmapped, returned to the system as soon as they are freed.
# Measured (VmHWM, docs/BENCHMARKS.md "Account export and purge"): export worker, small / 1/10
# account, 159-165 / 172-177 MB with glibc's default, 146 / 150 MB with the threshold fixed.
MMAP_THRESHOLD_BYTES = 512 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def tune_malloc() -> None:
    """Call first thing in a job worker process (glibc only; a no-op elsewhere). Blocks of
    `MMAP_THRESHOLD_BYTES` or more are then always mmapped (and the dynamic adjustment is off)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, say): its allocator has no such setting
        return
    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
