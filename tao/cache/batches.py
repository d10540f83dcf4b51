"""The tier's per-server batches: one call talks to one server, on the event loop, through that
server's asyncio connections (`tao.cache.aio`), and returns an `Outcome` for the tier to fold
into its counters. (`flush` alone still runs on a worker thread, through pymemcache.)

Invariants kept here: a server with a fault recorded (`ServerHealth.healthy` false) is not
called at all; a read's answer is used only if the server was `readable` when it was issued
and when it returned and its fault `epoch` did not move meanwhile; an install is applied with
gets + add/cas so an entry only moves to a higher version (`codec.plan_install`), and becomes a
tombstone at its version when its fence predates the server's last fault, recovery or blind
spot, or when a fault could have passed unseen since its fence (a tombstone can hide a value,
never show an old one, so a process unsure of the server keeps other processes' reads
correct without flushing it); any error or timeout marks the server suspect and reports the
unsettled keys failed. Every exchange waits at most the tier's `timeout` (`aio`); a connection
whose exchange did not complete is closed, never reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pymemcache.client.base import PooledClient

from tao.cache import aio, codec
from tao.cache.base import Install, Value
from tao.cache.health import ServerHealth

# Commands per pipelined write: bounded batches keep one exchange's buffers (and its wait for
# the server's replies) small.
_PIPELINE = 256


def _tombstone(old: Value | None) -> Value:
    return {"stale": True}


class _CallerBug(Exception):
    """`make` raised or built a value that cannot be encoded: the caller's bug, not the
    server's fault. Carried out of the network-error handler and re-raised as the original."""


@dataclass(slots=True)
class Outcome:
    """What one per-server batch did; folded into the counters on the event loop thread."""

    values: dict[str, Value] = field(default_factory=dict)  # decoded; undecodable left out
    failed: set[str] = field(default_factory=set)
    settled: set[str] = field(default_factory=set)  # installs known applied or moot
    bypassed: bool = False
    round_trips: int = 0
    errors: int = 0
    installed: int = 0
    skipped: int = 0
    retries: int = 0


class ServerBatches:
    def __init__(
        self,
        clients: dict[str, PooledClient],
        conns: dict[str, aio.ServerConnections],
        health: dict[str, ServerHealth],
        *,
        wire_prefix: bytes,
        ttl_seconds: int,
        batch_budget: float,
        max_install_attempts: int,
    ) -> None:
        self._clients = clients  # pymemcache's, for `flush` only
        self._conns = conns
        self._health = health
        self._prefix = wire_prefix
        self._ttl = ttl_seconds
        self._budget = batch_budget
        self._max_attempts = max_install_attempts

    async def get_all(self, groups: dict[str, list[str]]) -> dict[str, Outcome]:
        """Every server's keys, each server's `get` written before any reply is read: a call
        waits about one round trip (one turn of the loop) whatever its number of servers, with
        no task per server."""
        # `MemcachedCache.get_many` checked every key (printable ASCII, no space, within
        # memcached's length with the wire prefix): no second check here.
        prefix = self._prefix
        out: dict[str, Outcome] = {}
        asked: list[tuple[str, int, aio.Connection, list[bytes], list[str]]] = []

        def failed(name: str, exc: Exception) -> None:
            self._health[name].mark_suspect(f"get_many failed: {exc!r}")
            out[name] = Outcome(bypassed=True, round_trips=1, errors=1)
        try:
            for name, keys in groups.items():
                health = self._health[name]
                epoch = health.epoch
                if not health.readable():
                    out[name] = Outcome(bypassed=True)
                    continue
                wire = [prefix + k.encode("ascii") for k in keys]
                pool = self._conns[name]
                try:
                    conn = await pool.acquire()
                except Exception as exc:
                    failed(name, exc)
                    continue
                try:
                    aio.send_get(conn, wire)
                except Exception as exc:
                    pool.release(conn, reuse=False)
                    failed(name, exc)
                    continue
                asked.append((name, epoch, conn, wire, keys))
            while asked:
                name, epoch, conn, wire, keys = asked.pop(0)
                health, pool = self._health[name], self._conns[name]
                try:
                    raw = await pool.exchange(aio.read_values(conn, False))
                except BaseException as exc:
                    pool.release(conn, reuse=False)
                    if not isinstance(exc, Exception):
                        raise
                    failed(name, exc)
                    continue
                pool.release(conn, reuse=True)
                if health.epoch != epoch or not health.readable():
                    # A fault was seen while the call was in flight: its answer may predate a
                    # write this server missed. Discard it.
                    out[name] = Outcome(bypassed=True, round_trips=1)
                    continue
                decoded = {}
                by_wire = dict(zip(wire, keys))
                for w, (value_bytes, _) in raw.items():
                    value = codec.decode(value_bytes)
                    if value is not None:
                        decoded[by_wire[w]] = value
                out[name] = Outcome(values=decoded, round_trips=1)
        finally:  # cancelled (or a caller bug) half-way: nothing half-read goes back to a pool
            for name, _, conn, _, _ in asked:
                self._conns[name].release(conn, reuse=False)
        return out

    async def install(self, name: str, installs: list[Install]) -> Outcome:
        health = self._health[name]
        epoch = health.epoch
        if not health.healthy:  # a fault: this process flushes the server before using it again
            return Outcome(bypassed=True)
        out = Outcome()
        deadline = time.monotonic() + self._budget
        # The same key twice in one batch: apply in order, one wave per occurrence.
        waves: list[dict[str, Install]] = []
        for inst in installs:
            for wave in waves:
                if inst.key not in wave:
                    wave[inst.key] = inst
                    break
            else:
                waves.append({inst.key: inst})
        pool = self._conns[name]
        current = 0
        try:
            conn = await pool.acquire()
            completed = reuse = False
            try:
                # `current` outlives the loop: the except below reads which wave failed.
                for current, wave in enumerate(waves):  # noqa: B007
                    out.settled = set()
                    unsettled = await self._install_wave(pool, conn, health, epoch, wave, deadline, out)
                    if unsettled:
                        out.failed |= unsettled
                        break
                else:
                    completed = True
                reuse = True
            finally:
                pool.release(conn, reuse=reuse)
            if completed:
                return out
        except _CallerBug as bug:
            raise bug.__cause__ from None  # type: ignore[misc]
        except Exception as exc:
            health.mark_suspect(f"install failed: {exc!r}")
            out.errors += 1
            # Keys already confirmed stored (or moot) stay so; the rest are reported for repair.
            out.failed |= set(waves[current]) - out.settled
        for rest in waves[current + 1:]:
            out.failed |= set(rest)
        return out

    async def _install_wave(
        self,
        pool: aio.ServerConnections,
        conn: aio.Connection,
        health: ServerHealth,
        epoch: int,
        pending: dict[str, Install],
        deadline: float,
        out: Outcome,
    ) -> set[str]:
        """gets, then add/cas; retry lost races. Returns the keys left unsettled."""
        prefix = self._prefix
        for attempt in range(self._max_attempts):
            if attempt:
                out.retries += len(pending)
            if time.monotonic() > deadline or health.epoch != epoch:
                return set(pending)
            wire = {key: prefix + key.encode("ascii") for key in pending}
            current = await pool.exchange(aio.gets_many(conn, list(wire.values())))
            out.round_trips += 1
            if health.epoch != epoch:  # a fault while the gets was in flight
                return set(pending)
            # Decided as late as possible before the writes, for each fenced install: the
            # value may be older than a write the server missed (and the server may already
            # be flushed) if it was fenced at or before the server's last fault, recovery or
            # blind spot, or if a fault could have passed unseen since its fence (the stretch
            # since the later of its fence and the heartbeat's last good probe is blind_limit
            # or more: a missed write needs a stall of `timeout` after the fence). Install a
            # tombstone at its version instead, and report the key failed (the store repairs
            # it). A tombstone can only hide a value, never show an old one, and it keeps a
            # fill that read SQL before a missed write from standing in for that write until
            # the repair runs. An unfenced install is installed as given.
            now_ns = time.monotonic_ns()
            seen_ns = int(health.seen_at * 1e9)
            adds: list[tuple[str, bytes]] = []
            cases: list[tuple[str, bytes, bytes]] = []
            for key, inst in pending.items():
                make = inst.make
                if inst.fence is not None and (
                    inst.fence <= health.changed or now_ns - max(inst.fence, seen_ns) >= health.blind_limit_ns
                ):
                    out.failed.add(key)
                    make = _tombstone
                raw, cas = current.get(wire[key], (None, None))
                try:
                    data = codec.plan_install(inst.version, make, raw)
                except Exception as exc:
                    raise _CallerBug() from exc
                if data is None:
                    out.skipped += 1
                    out.settled.add(key)
                elif cas is None:
                    adds.append((key, data))
                else:
                    cases.append((key, data, cas))
            lost: dict[str, Install] = {}
            # The adds and the cases go in one exchange (a pipeline of both), _PIPELINE at a time.
            for chunk in range(0, len(adds) + len(cases), _PIPELINE):
                part = adds[chunk:chunk + _PIPELINE]
                part2 = cases[max(0, chunk - len(adds)):max(0, chunk + _PIPELINE - len(adds))]
                stored, replies = await pool.exchange(aio.store_many(
                    conn, [(wire[k], d) for k, d in part], [(wire[k], d, t) for k, d, t in part2], self._ttl))
                out.round_trips += 1
                for (key, _), ok in zip(part, stored):
                    if ok:
                        out.installed += 1
                        out.settled.add(key)
                    else:  # someone added first: re-read and decide again
                        lost[key] = pending[key]
                for (key, _, _), answer in zip(part2, replies):
                    if answer:
                        out.installed += 1
                        out.settled.add(key)
                    else:  # changed since our gets (False), or gone (None): decide again
                        lost[key] = pending[key]
            if not lost:
                return set()
            pending = lost
        return set(pending)

    def flush(self, name: str) -> bool:
        try:
            self._clients[name].flush_all(noreply=False)
            return True
        except Exception as exc:
            # This process will flush it when it answers again: the same effect, later.
            self._health[name].mark_suspect(f"flush failed: {exc!r}")
            return False
