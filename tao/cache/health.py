"""Per-process health of one memcached server: the heartbeat, faults, blind spots, and
flush-on-recovery.

The memcached tier never re-hashes a failed server's keys onto the survivors. Instead each
process tracks every server here and *bypasses* one it does not trust. The invariants this
module keeps, for the server it watches:

    A read's answer is used only if the server was trusted, and watched recently enough, both
    when the read was issued and when it returned, with no fault recorded in between. After a
    fault this process flushes the server (`flush_all`) before using it again. A flush needs
    evidence of a fault; a process that only lost sight of the server distrusts it alone.

A **fault** is evidence that the server misbehaved: a probe or a data call failed or timed out,
or the server restarted (its `pid` changed or its `uptime` went down). A write this process
made may then be missing from the server (its install failed, or was bypassed while the
server was suspect), so the server is flushed when it answers again.

A **blind spot** is a stretch of at least `blind_limit` (the call timeout less one heartbeat
interval) between a good probe's send and the next good probe's reply. Only a stall that long
can have timed out some writer's call and left a stale entry; a shorter stretch cannot hide
one, whatever its cause, so it is ignored. A longer one has two possible causes this process
cannot tell apart: the server stalled, or this process was starved of CPU (its heartbeat thread
ran late: the GIL held, event-loop work, a paused process). Neither is evidence of a fault, and
a flush would empty the server for every process, so a blind spot flushes nothing: if the
server did stall, the processes that saw the stall (the writer whose call timed out among
them) have the evidence and flush it. This process waits `read_grace` before reading again (by
then those processes have flushed), and refuses installs fenced early enough that a fault may
have passed unseen since (`changed`). Between good probes, the data path itself fails closed
once the heartbeat is `blind_limit` old (`watched`): reads bypass the server, and an install
becomes a tombstone when its fence is that old too.

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
    """Fences and change stamps, both times on the process's monotonic clock (integer ns).

    `now()` is a fence: taken before the SQL read an install's value comes from, it says both
    what the install predates (every server's fault, recovery or blind spot is stamped with
    `tick()`, always later than any fence taken before it) and how long the value has been
    on its way (an install whose fence is recent cannot have been overtaken by a fault that
    went unseen: see `ServerBatches`)."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        with self._lock:
            self._value = max(time.monotonic_ns(), self._value + 1)
            return self._value

    def now(self) -> int:
        return time.monotonic_ns()


class ServerHealth:
    def __init__(
        self,
        name: str,
        address: tuple[str, int] | str,
        *,
        clock: ChangeClock,
        interval: float,
        probe_timeout: float,
        read_grace: float,
        blind_limit: float,
        on_recover: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        # Called on recovery from a fault, before the flush: drops the data path's pooled
        # connections, which may still be sockets to a server process that has since restarted.
        self._on_recover = on_recover
        self.interval = interval
        self.read_grace = read_grace
        self.blind_limit = blind_limit
        self.blind_limit_ns = int(blind_limit * 1e9)
        # Read lock-free by data-path threads; written under _lock.
        self.healthy = False  # False from a fault until the flush that follows it
        self.epoch = 0  # bumped on every fault; a call whose epoch changed is discarded
        # Monotonic time the last good probe was *sent*: the server answered at some instant
        # after it. Blind spots are measured from it (a probe's reply may be read late).
        self.seen_at = 0.0
        self._reply_at = 0.0  # monotonic time the last good probe's reply was read
        # After a recovery or a blind spot, reads wait until this monotonic time: see `readable`.
        self.reads_from = 0.0
        # `clock` stamp of the last fault, recovery or blind spot: an install fenced at or
        # before it is refused.
        self.changed = 0
        self._clock = clock
        self.ready = threading.Event()  # the first probe has finished (either way)
        # Counters written only by the heartbeat thread (or under _lock): exact without atomics.
        self.flushes = 0
        self.faults = 0
        self.blind_spots = 0
        self.probe_errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._identity: tuple[int, int] | None = None  # (pid, uptime) at the last good probe
        self._identity_sock: object = None  # the probe client's connection that read it
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

    def watched(self) -> bool:
        """Has the heartbeat seen the server answer recently enough that no stall long enough
        to fail a call can have passed unseen? False while the heartbeat runs late."""
        return time.monotonic() - self.seen_at < self.blind_limit

    def readable(self) -> bool:
        """May a read use this server now? Trusted, watched, and past the grace that follows a
        recovery or a blind spot: this process then waits `read_grace` before reading, by which
        time every other live process has seen the server answer and, if it saw a fault,
        flushed it. Until then another process may still be bypassing the server with its
        writes (leaving older values in it unrepaired), so a value read here could be stale.
        Installs need no grace: the flush clears them."""
        return self.healthy and self.watched() and time.monotonic() >= self.reads_from

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
        sent = time.monotonic()
        # The server's identity (pid, uptime) is read only on a new connection: a connection
        # does not outlive the server process it reached, so over the one that carried the last
        # identity, a restart fails the probe (the client then closes it) before any probe can
        # succeed. The probe there is `version` (one line) rather than `stats` (~90 lines, parsed
        # in Python: most of an idle server process's heartbeat CPU, 10 probes a second a server).
        same_connection = self._client.sock is not None and self._client.sock is self._identity_sock
        stats = None
        try:
            if same_connection:
                self._client.version()
            else:
                stats = self._client.stats()
        except Exception as exc:
            self.probe_errors += 1
            self.mark_suspect(f"probe failed: {exc!r}")
            return
        now = time.monotonic()
        previous = self._identity
        restarted = False
        if stats is not None:
            identity = (int(stats.get(b"pid", -1)), int(stats.get(b"uptime", -1)))
            self._identity, self._identity_sock = identity, self._client.sock
            restarted = previous is not None and (identity[0] != previous[0] or identity[1] < previous[1])
        if restarted:
            self.mark_suspect(f"restarted (pid/uptime {previous} -> {self._identity})")
        elif self.healthy and now - self.seen_at >= self.blind_limit:
            self._blind_spot(now, sent)
        if self.healthy:
            # After the blind spot's bookkeeping: a reader that sees the new `seen_at` must
            # also see its `reads_from`.
            self.seen_at, self._reply_at = sent, now
            return
        if previous is None and self.faults == 0:
            # First contact: this process saw no fault, so there is nothing of its own to flush.
            self._recover(sent, now, flush=False)
        else:
            self._recover(sent, now, flush=True)

    def _blind_spot(self, now: float, sent: float) -> None:
        """This process could not watch the server for `blind_limit` or more: not a fault (no
        flush), but reads wait out the grace, and installs fenced at least `blind_limit`
        before this probe was sent are refused: a fault may have passed unseen after their
        fence. (One fenced later has less than that unseen before the server answered this
        probe, too little for a stall that fails a call.)"""
        with self._lock:
            self.blind_spots += 1
            self.changed = max(self.changed, int((sent - self.blind_limit) * 1e9))
            self.reads_from = max(self.reads_from, now + self.read_grace)
        late = max(0.0, sent - self._reply_at - self.interval)
        log.warning("memcached %s: not watched for %.3fs (this process's heartbeat ran %.3fs late); no fault "
                 "seen, so no flush: reads resume in %.2fs", self.name, now - self.seen_at, late, self.read_grace)

    def _recover(self, sent: float, now: float, *, flush: bool) -> None:
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
                self.reads_from = now + self.read_grace
            self.seen_at, self._reply_at = sent, now
            self.healthy = True
        if flush:
            log.warning("memcached %s answers again and was flushed: using it again", self.name)
