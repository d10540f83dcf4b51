"""Buffered hot-path metrics export what prometheus_client's own calls would have."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from config.observability.metrics import FLUSHER, BufferedHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)


def _series(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith("t_seconds") and "_created" not in line]


def test_a_buffered_histogram_exports_what_observe_would():
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    a = Histogram("t_seconds", "t", ["op"], buckets=BUCKETS, registry=direct).labels("get")
    b = BufferedHistogram(Histogram("t_seconds", "t", ["op"], buckets=BUCKETS, registry=buffered).labels("get"))
    values = [0.0, 0.0005, 0.001, 0.0011, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 30.0]  # bounds themselves included
    for v in values[:6]:
        a.observe(v)
        b.observe(v)
    FLUSHER.flush()
    assert _series(buffered) == _series(direct)
    for v in values[6:]:  # the next flush adds only what came since
        a.observe(v)
        b.observe(v)
    FLUSHER.flush()
    FLUSHER.flush()
    assert _series(buffered) == _series(direct)
    assert 't_seconds_count{op="get"} 11.0' in _series(buffered)


def test_every_garbage_collection_is_timed_by_generation():
    import gc

    from config.observability.metrics import GC_PAUSE_SECONDS, watch_gc

    def collected(generation: str) -> float:
        return next(s.value for m in GC_PAUSE_SECONDS.collect() for s in m.samples
                    if s.name.endswith("_count") and s.labels["generation"] == generation)
    watch_gc()
    try:
        FLUSHER.flush()
        before = collected("2"), collected("0")
        gc.collect()
        gc.collect(0)
        FLUSHER.flush()
        assert collected("2") == before[0] + 1 and collected("0") >= before[1] + 1
    finally:
        gc.callbacks.pop()
