"""Per-process health of one memcached server: the heartbeat, "suspect", and flush-on-recovery.

The memcached tier never re-hashes a failed server's keys onto the survivors. Instead each
process tracks every server here and *bypasses* one it does not trust. The invariant this
module keeps, for the server it watches:

    A data call's result is used only if the server was healthy, with a fresh heartbeat, both
    when the call was issued and when it returned, and no fault was recorded in between; and
    after any fault this process flushes the server (`flush_all`) before using it again.

"Fault" means: a probe or a data call failed or timed out, the server restarted (its `pid`
changed or its `uptime` went down), or two successive good probe replies are `gap_limit` or
more apart (the server, or this process's heartbeat, was stopped that long; we cannot tell
which, so we assume the worst). Since `gap_limit < timeout`, any stall long enough to make
some writer's call time out (and so leave a stale entry behind) is a fault here too, as long
as this process's heartbeat is not itself starved — and a starved heartbeat is caught by the
freshness check (`usable`), which fails closed. `docs/caching.md` states the exact guarantee
and its residual windows.

Threading: one daemon heartbeat thread per server owns the probe connection and the
transitions to healthy; data-path threads may only mark the server suspect. Plain attribute
reads are safe under the GIL; transitions take `_lock`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pymemcache.client.base import Client

log = logging.getLogger(__name__)


class ChangeClock:
    """A process-wide counter stamped on every server's fault and recovery; `now()` is a fence."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    def now(self) -> int:
        return self._value


class ServerHealth:
    def __init__(
        self,
        name: str,
        address: tuple[str, int] | str,
        *,
        clock: ChangeClock,
        interval: float,
        probe_timeout: float,
        gap_limit: float,
        on_recover: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        # Called on recovery from a fault, before the flush: drops the data path's pooled
        # connections, which may still be sockets to a server process that has since restarted.
        self._on_recover = on_recover
        self.interval = interval
        self.gap_limit = gap_limit
        # Read lock-free by data-path threads; written under _lock.
        self.healthy = False
        self.epoch = 0  # bumped on every fault; a call whose epoch changed is discarded
        self.last_ok = 0.0  # monotonic time of the last good probe reply
        # After a recovery, reads wait until this monotonic time: see `readable`.
        self.reads_from = 0.0
        # `clock` value at the last fault or recovery: an install fenced before it is refused.
        self.changed = 0
        self._clock = clock
        self.ready = threading.Event()  # the first probe has finished (either way)
        # Counters written only by the heartbeat thread (or under _lock): exact without atomics.
        self.flushes = 0
        self.faults = 0
        self.probe_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._identity: tuple[int, int] | None = None  # (pid, uptime) at the last good probe
        self._client = Client(
            address,
            connect_timeout=probe_timeout,
            timeout=probe_timeout,
            no_delay=True,
            default_noreply=False,
        )
        self._thread = threading.Thread(target=self._run, name=f"tao-cache-heartbeat[{name}]", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the heartbeat to stop and wait for it (blocking: call from a thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._client.close()

    def usable(self) -> bool:
        """May a data call use this server now? Fails closed when the heartbeat is late."""
        return self.healthy and time.monotonic() - self.last_ok < self.gap_limit

    def readable(self) -> bool:
        """May a read use this server now? `usable`, and past the recovery grace: after a flush
        this process waits `gap_limit` before reading, by which time every other live process
        has seen the server answer and flushed it too. Until then another process may still be
        bypassing the server with its writes (leaving older values in it unrepaired), so a
        value filled here would be stale there. Installs need no grace: the last flush clears them."""
        return self.usable() and time.monotonic() >= self.reads_from

    def mark_suspect(self, reason: str) -> None:
        """Record a fault: bypass the server until the heartbeat flushes it."""
        with self._lock:
            self.epoch += 1
            self.faults += 1
            self.changed = self._clock.tick()
            was_healthy, self.healthy = self.healthy, False
        if was_healthy:
            log.warning("memcached %s is suspect (%s): bypassing it until it answers and is flushed", self.name, reason)

    # -- heartbeat thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._probe()
            except Exception:  # never let the heartbeat die: a dead heartbeat bypasses forever
                log.exception("memcached %s: heartbeat probe crashed", self.name)
                self.mark_suspect("heartbeat error")
            finally:
                self.ready.set()
            self._stop.wait(self.interval)

    def _probe(self) -> None:
        try:
            stats = self._client.stats()
        except Exception as exc:
            self.probe_errors += 1
            self.mark_suspect(f"probe failed: {exc!r}")
            return
        now = time.monotonic()
        identity = (int(stats.get(b"pid", -1)), int(stats.get(b"uptime", -1)))
        previous, self._identity = self._identity, identity
        if previous is not None and (identity[0] != previous[0] or identity[1] < previous[1]):
            self.mark_suspect(f"restarted (pid/uptime {previous} -> {identity})")
        elif self.healthy and now - self.last_ok >= self.gap_limit:
            self.mark_suspect(f"no good probe for {now - self.last_ok:.3f}s")
        if self.healthy:
            self.last_ok = now
            return
        if previous is None and self.faults == 0:
            # First contact: this process saw no fault, so there is nothing of its own to flush.
            self._recover(now, flush=False)
        else:
            self._recover(now, flush=True)

    def _recover(self, now: float, *, flush: bool) -> None:
        epoch = self.epoch
        if flush:
            try:
                if self._on_recover is not None:
                    self._on_recover()
                self._client.flush_all(noreply=False)
            except Exception as exc:
                self.probe_errors += 1
                self.mark_suspect(f"flush failed: {exc!r}")
                return
            self.flushes += 1
            now = time.monotonic()
        with self._lock:
            if self.epoch != epoch:  # a data call failed meanwhile: flush again next time
                return
            if flush:
                self.changed = self._clock.tick()
                self.reads_from = now + self.gap_limit
            self.last_ok = now
            self.healthy = True
        if flush:
            log.warning("memcached %s answers again and was flushed: using it again", self.name)
