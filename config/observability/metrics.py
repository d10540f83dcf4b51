"""Every Prometheus metric taogram exports, defined once, and the `/metrics` rendering.

Multiprocess mode: when PROMETHEUS_MULTIPROC_DIR is set in a process's environment before it
starts (prometheus_client reads it at import), every metric below is kept in files in that
directory, and `render()` answers for all the processes that share it (the server processes
and the job workers of one host). The directory must be emptied before the processes start
(`make cluster` and the systemd units in docs/deploy.md do it). Without the variable, each
process reports only itself.

Label values are bounded: operation names come from clients, so only the first
`metrics.max_operation_names` distinct names of a process are kept as labels (`OperationNames`).
The outbox's depth is not a counter any process keeps: the process that answers a scrape reads
it from the shards (`OutboxSampler`), at most once per `metrics.outbox_sample_seconds`.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import gc
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger("taogram.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Request latencies: an interactive target of 200 ms, and tails out to the 10 s a client waits.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
# Store round trips: sub-millisecond on a LAN, up to the query timeout.
IO_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
# Jobs and media: a cache refill takes milliseconds, a video ladder minutes.
JOB_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

# -- GraphQL requests (server processes) -----------------------------------------------------
REQUESTS = Counter("taogram_requests_total", "GraphQL operations answered, by operation name and outcome "
                   "(ok: no error; partial: data with errors; error: no data).", ["operation", "outcome"])
REQUEST_SECONDS = Histogram("taogram_request_seconds", "Time to answer a GraphQL operation over HTTP.",
                            ["operation"], buckets=REQUEST_BUCKETS)
REQUESTS_SHED = Counter("taogram_requests_shed_total", "Operations (over HTTP and open WebSockets) refused before "
                        "they ran because the process was overloaded (admission.py: its event loop late, or too "
                        "many in flight).")
EVENT_LOOP_LAG = Gauge("taogram_event_loop_lag_seconds", "The server process's event loop lag, smoothed "
                       "(admission.py): the largest over the live processes.", multiprocess_mode="livemax")
GRAPHQL_ERRORS = Counter("taogram_graphql_errors_total", "Top-level GraphQL errors, by extensions.code.", ["code"])
WEBSOCKETS_OPEN = Gauge("taogram_websockets_open", "Open graphql-transport-ws connections.",
                        multiprocess_mode="livesum")

# -- the store (every process that opens it) ------------------------------------------------
STORE_CALLS = Counter("taogram_store_calls_total", "Calls of the store's verbs (obj_get, assoc_range, ...), "
                      "outermost only.", ["verb"])
SQL_SECONDS = Histogram("taogram_sql_seconds", "Time of one SQL round trip (a statement, with the statements "
                        "queued before it), by database server (the physical server index of the shard map; "
                        "logical shards would be 4096 label values).",
                        ["server"], buckets=IO_BUCKETS)
SQL_ERRORS = Counter("taogram_sql_errors_total", "SQL statements that raised, by database server.", ["server"])
CACHE_SECONDS = Histogram("taogram_cache_seconds", "Time of one cache tier call (all its servers), by operation.",
                          ["op"], buckets=IO_BUCKETS)
CACHE_KEYS = Counter("taogram_cache_keys_total", "Cache keys read, by result: hit, miss, or bypassed "
                     "(its server down, slow or suspect: read from SQL).", ["result"])
CACHE_ERRORS = Counter("taogram_cache_errors_total", "Cache server calls that failed or timed out.")

# -- jobs (workers, and servers that run the in-process worker) ------------------------------
JOB_SECONDS = Histogram("taogram_job_seconds", "Time of one job run, by handler and outcome (ok or failed).",
                        ["handler", "outcome"], buckets=JOB_BUCKETS)
JOB_FAILURES = Counter("taogram_job_failures_total", "Job runs that raised (the job is retried with backoff, "
                       "or parked after jobs.max_attempts).", ["handler"])
# A cyclic garbage collection stops the process (the event loop included) while it runs.
GC_PAUSE_SECONDS = Histogram("taogram_gc_pause_seconds", "Time of one cyclic garbage collection of a server process "
                             "(nothing else runs in it meanwhile), by generation (2: the full collection).",
                             ["generation"], buckets=IO_BUCKETS)
MEDIA_SECONDS = Histogram("taogram_media_processing_seconds", "Time to process one upload (probe, variants, "
                          "ladder), by kind and outcome.", ["kind", "outcome"], buckets=JOB_BUCKETS)


# -- counts kept in plain Python on hot paths, carried into Prometheus by a flusher thread ------

FLUSH_INTERVAL = 1.0  # seconds; a scrape of this process flushes first, so it never lags


class _Flusher:
    """Hot paths count into plain dicts (a dict increment, not a lock and a file write per call);
    a daemon thread runs the registered pollers every FLUSH_INTERVAL, and each carries its
    cumulative counts into Prometheus as deltas. A poller returning False is dropped (its
    source is gone)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pollers: list[Callable[[], bool | None]] = []
        self._thread: threading.Thread | None = None

    def add_poller(self, poll: Callable[[], bool | None]) -> None:
        with self._lock:
            self._pollers.append(poll)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taogram-metrics", daemon=True)
                self._thread.start()
                atexit.register(self.flush)

    def flush(self) -> None:
        with self._lock:  # one flush at a time: deltas are computed against the last one
            for poll in list(self._pollers):
                try:
                    keep = poll()
                except Exception:  # metrics never take a process down
                    log.debug("metrics poller failed", exc_info=True)
                    keep = True
                if keep is False:
                    self._pollers.remove(poll)

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush()


FLUSHER = _Flusher()


class BufferedCounter:
    """A labelled counter for hot paths: `counts[label] += 1` (labels declared up front with
    `declare`); the flusher adds what each label gained since its last flush. The dict only
    grows, and a copy of it is one atomic step, so no increment is ever lost."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self.counts: dict[str, int] = {}
        self._flushed: dict[str, int] = {}
        FLUSHER.add_poller(self._flush)

    def declare(self, label: str) -> None:
        self.counts.setdefault(label, 0)

    def _flush(self) -> None:
        for label, n in self.counts.copy().items():
            gained = n - self._flushed.get(label, 0)
            if gained:
                self._counter.labels(label).inc(gained)
                self._flushed[label] = n


class BufferedHistogram:
    """One labelled histogram child for hot paths (a cache call, an SQL statement): `observe`
    is a bisect and two additions into plain Python values, not a lock and a value update per
    bucket (~200 ns a sample instead of ~930, measured alone: ~20 us of a real-time message's
    ~12 ms, a message making ~29 samples);
    the flusher adds each bucket's and the sum's gain since its last flush. Observed from one
    thread (the event loop's); the flusher only reads."""

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)  # the child's buckets, +Inf last
        self.counts = [0] * len(self._bounds)
        self.sum = 0.0
        self._flushed = [0] * len(self._bounds)
        self._flushed_sum = 0.0
        FLUSHER.add_poller(self._flush)

    def observe(self, amount: float) -> None:
        self.counts[bisect.bisect_left(self._bounds, amount)] += 1  # the first bound >= amount, as observe()
        self.sum += amount

    def _flush(self) -> None:
        counts, total = list(self.counts), self.sum
        for i, n in enumerate(counts):
            if n != self._flushed[i]:
                self._child._buckets[i].inc(n - self._flushed[i])
                self._flushed[i] = n
        if total != self._flushed_sum:
            self._child._sum.inc(total - self._flushed_sum)
            self._flushed_sum = total


_buffered_children: dict[tuple[Histogram, str], BufferedHistogram] = {}


def buffered_histogram(family: Histogram, label: str) -> BufferedHistogram:
    """The process's one buffered child of `family` for `label`, made on first use (`labels()`
    takes a lock, and two buffers of one child would both flush into it)."""
    child = _buffered_children.get((family, label))
    if child is None:
        child = _buffered_children[(family, label)] = BufferedHistogram(family.labels(label))
    return child


def watch_gc() -> None:
    """Time this process's cyclic garbage collections into GC_PAUSE_SECONDS (`gc.callbacks`).
    A full collection walks every tracked object that `gc.freeze()` did not set aside, so its
    pause grows with the heap: a stall of every request and socket of the process, which a
    latency tail shows and nothing else names. Collections never overlap, so one buffered child
    per generation is observed from one thread at a time (whichever thread allocated)."""
    children = [buffered_histogram(GC_PAUSE_SECONDS, str(generation)) for generation in range(3)]
    started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            children[info["generation"]].observe(time.perf_counter() - started)
    gc.callbacks.append(on_gc)


class OperationNames:
    """Client-chosen operation names as label values, at most `limit` distinct ones per process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if name in self._seen:
            return name
        if len(self._seen) < self.limit and len(name) <= 100:
            self._seen.add(name)
            return name
        return "other"


class OutboxSampler:
    """The outbox's depth and oldest due job per handler, read from the shards by `read()`
    (async; {handler: (due jobs, oldest created ms, parked jobs)}) at most every `interval` s."""

    def __init__(self, read: Callable[[], Awaitable[dict[str, tuple[int, int | None, int]]]],
                 interval: float, timeout: float = 5.0) -> None:
        self._read = read
        self._interval = interval
        self._timeout = timeout
        self._at = float("-inf")
        self._value: dict[str, tuple[int, int | None, int]] = {}
        self._lock = asyncio.Lock()

    async def sample(self) -> dict[str, tuple[int, int | None, int]]:
        async with self._lock:  # concurrent scrapes share one read
            if time.monotonic() - self._at >= self._interval:
                try:
                    self._value = await asyncio.wait_for(self._read(), self._timeout)
                except Exception as exc:  # a shard down must not fail the whole scrape
                    log.warning("outbox depth not read: %s", exc)
                self._at = time.monotonic()
            return self._value


class _OutboxCollector:
    def __init__(self, value: dict[str, tuple[int, int | None, int]]) -> None:
        self._value = value

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("taogram_outbox_jobs", "Jobs due or running in the outbox, by handler.",
                                  labels=["handler"])
        oldest = GaugeMetricFamily("taogram_outbox_oldest_job_seconds", "Age of the oldest due job, by handler.",
                                   labels=["handler"])
        parked = GaugeMetricFamily("taogram_outbox_parked_jobs", "Jobs parked after jobs.max_attempts failures, "
                                   "waiting for an operator, by handler.", labels=["handler"])
        now_ms = time.time() * 1000
        for handler, (due, oldest_ms, n_parked) in sorted(self._value.items()):
            depth.add_metric([handler], due)
            oldest.add_metric([handler], max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms else 0.0)
            parked.add_metric([handler], n_parked)
        yield from (depth, oldest, parked)


def render_sync(outbox: dict[str, tuple[int, int | None, int]] | None = None) -> bytes:
    """The `/metrics` body: every process's metrics (multiprocess mode) or this one's, and the
    outbox gauges from an `OutboxSampler.sample()`. Reads files: call it off the event loop."""
    FLUSHER.flush()  # this process's buffered counts, so its own scrape never lags
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = PROCESS_REGISTRY
    body = generate_latest(registry)
    if outbox is not None:
        extra = CollectorRegistry()
        extra.register(_OutboxCollector(outbox))
        body += generate_latest(extra)
    return body


class _FlushOnScrape:
    """A collector that yields nothing: registered first, it carries this process's buffered
    counts into Prometheus before the scrape reads them (as `render_sync` does)."""

    def collect(self) -> Iterator[Any]:
        FLUSHER.flush()
        return iter(())


def serve_in_thread(port: int, host: str = "0.0.0.0") -> bool:
    """Serve `/metrics` from prometheus_client's own HTTP server, in a daemon thread (for
    processes with no aiohttp app: the job workers). Multiprocess mode: it answers for every
    process sharing the directory. False when the port is taken (another worker of the host
    serves it already)."""
    from prometheus_client import start_http_server
    if MULTIPROCESS:
        registry = CollectorRegistry()
        registry.register(_FlushOnScrape())
        MultiProcessCollector(registry)
    else:  # this process's own registry (served once per process)
        registry = PROCESS_REGISTRY
        registry.register(_FlushOnScrape())
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics: port %s not served (%s); another process of this host may serve it", port, exc)
        return False
    return True


def process_exited(pid: int) -> None:
    """A process sharing the multiprocess directory exited: drop its live gauges (open sockets)."""
    if MULTIPROCESS:
        mark_process_dead(pid)
