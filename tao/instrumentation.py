"""The store's metrics and spans, hooked at three narrow points so the verbs' code stays clean:

- `instrument(tao, cache)` (called by `open_tao`) wraps the public verbs (`obj_*`, `assoc_*`, `key_*`)
  of one `Tao`: a call counter per verb (outermost calls only: a verb that calls another counts
  once) and, with tracing on, a `tao.<verb>` span; and the cache tier's `get_many` and
  `install_many`: a latency histogram and a span; the tier's own hit/miss/bypass/error counters
  (`CacheTier.stats()`) are carried into Prometheus by the metrics flusher thread.
- `SQLTimer` (used by each backend's connection around every statement): latency by database
  server, errors, and with tracing on an `sql` span naming the shard.

Metrics are always kept, at the cost of a dict increment per verb call and one buffered
histogram sample (a bisect and two additions, `metrics.BufferedHistogram`) per cache call or
statement; spans only when tracing is configured
(`config.observability.traces`).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import weakref
from typing import Any

from config.observability import metrics, traces

VERB_PREFIXES = ("obj_", "assoc_", "key_")
_in_verb: contextvars.ContextVar[bool] = contextvars.ContextVar("tao_in_verb", default=False)


def instrument(tao: Any, cache: Any) -> None:
    """Wrap `tao`'s verbs and its cache tier `cache` (once; the instance's attributes shadow the methods)."""
    if getattr(tao, "_instrumented", False):
        return
    tao._instrumented = True
    for name in dir(type(tao)):
        if name.startswith(VERB_PREFIXES) and inspect.iscoroutinefunction(getattr(type(tao), name)):
            setattr(tao, name, _counted_verb(name, getattr(tao, name)))
    _instrument_cache(cache)


_verb_calls = metrics.BufferedCounter(metrics.STORE_CALLS)  # one per process, counted on the event loop


def _counted_verb(verb: str, fn: Any) -> Any:
    _verb_calls.declare(verb)
    counts = _verb_calls.counts
    span_name = f"tao.{verb}"

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if _in_verb.get():
            return await fn(*args, **kwargs)
        counts[verb] += 1
        token = _in_verb.set(True)
        try:
            if traces.tracer is None:
                return await fn(*args, **kwargs)
            with traces.span(span_name):
                return await fn(*args, **kwargs)
        finally:
            _in_verb.reset(token)
    return call


class _CacheCounters:
    """Carries a tier's cumulative counters (`CacheTier.stats()`) into Prometheus as deltas, from
    the metrics flusher thread (exact however calls interleave; nothing on the request path).
    Holds the tier weakly: a closed and dropped tier's poller goes away with it."""

    def __init__(self, cache: Any) -> None:
        self._cache = weakref.ref(cache)
        self._last = {"hits": 0, "misses": 0, "bypassed": 0, "errors": 0}
        self._keys = {"hits": metrics.CACHE_KEYS.labels("hit"), "misses": metrics.CACHE_KEYS.labels("miss"),
                      "bypassed": metrics.CACHE_KEYS.labels("bypassed")}

    def sync(self) -> bool:
        cache = self._cache()
        if cache is None:
            return False
        stats = cache.stats()
        for name, last in self._last.items():
            now = stats.get(name, 0)
            if now > last:
                if name == "errors":
                    metrics.CACHE_ERRORS.inc(now - last)
                else:
                    self._keys[name].inc(now - last)
                self._last[name] = now
        return True


def _instrument_cache(cache: Any) -> None:
    metrics.FLUSHER.add_poller(_CacheCounters(cache).sync)
    for method, op in (("get_many", "get"), ("install_many", "install")):
        setattr(cache, method, _timed_cache_call(getattr(cache, method), op))


def _timed_cache_call(fn: Any, op: str) -> Any:
    histogram = metrics.buffered_histogram(metrics.CACHE_SECONDS, op)  # one per op, whatever the tier
    span_name = f"cache.{op}"

    @functools.wraps(fn)
    async def call(items: list, *args: Any, **kwargs: Any) -> Any:
        if not items:
            return await fn(items, *args, **kwargs)
        began = time.perf_counter()
        try:
            if traces.tracer is None:
                return await fn(items, *args, **kwargs)
            with traces.span(span_name, {"taogram.cache.keys": len(items)}):
                return await fn(items, *args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - began)
    return call


class SQLTimer:
    """`with SQLTimer(server, shard, sql):` around one statement (see the module docstring)."""

    __slots__ = ("_server", "_began", "_span")

    def __init__(self, server: str, shard: int, sql: str) -> None:
        self._server = server
        self._span = None
        if traces.tracer is not None:
            self._span = traces.span("sql", {"db.system": "mysql" if server != "sqlite" else "sqlite",
                                             "taogram.shard": shard, "taogram.db_server": server,
                                             "db.statement": sql[:300]})

    def __enter__(self) -> SQLTimer:
        if self._span is not None:
            self._span.__enter__()
        self._began = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        seconds = time.perf_counter() - self._began
        metrics.buffered_histogram(metrics.SQL_SECONDS, self._server).observe(seconds)
        if exc_type is not None:
            metrics.SQL_ERRORS.labels(self._server).inc()
        if self._span is not None:
            self._span.__exit__(exc_type, exc, tb)
