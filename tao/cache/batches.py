"""The blocking half of the memcached tier: one per-server batch, run on a worker thread.

`MemcachedCache` groups keys by server on the event loop and hands each group to one of these
calls on its thread pool. Each call talks to one server through that server's pymemcache
connection pool and returns an `Outcome` for the loop to fold into the counters.

Invariants kept here: a server with a fault recorded (`ServerHealth.healthy` false) is not
called at all; a read's answer is used only if the server was `readable` when it was issued
and when it returned and its fault `epoch` did not move meanwhile; an install is applied with
gets + add/cas so an entry only moves to a higher version (`codec.plan_install`), and becomes a
tombstone at its version when its fence predates the server's last fault, recovery or blind
spot, or when a fault could have passed unseen since its fence (a tombstone can hide a value,
never show an old one, so a process unsure of the server keeps other processes' reads
correct without flushing it); any error marks the server suspect and reports the unsettled
keys failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pymemcache.client.base import Client, PooledClient, _readline
from pymemcache.exceptions import MemcacheUnexpectedCloseError, MemcacheUnknownError

from tao.cache import codec
from tao.cache.base import Install, Value
from tao.cache.health import ServerHealth

# Commands per pipelined write. The replies are tiny, but bounded batches keep a slow reader
# from ever filling both socket buffers (each side waiting on the other until the timeout).
_PIPELINE = 256
_CAS_REPLIES = {b"STORED": True, b"EXISTS": False, b"NOT_FOUND": None}


def _tombstone(old: Value | None) -> Value:
    return {"stale": True}


def _cas_many(client: Client, items: list[tuple[str, bytes, bytes]], expire: int) -> dict[str, bool | None]:
    """Pipelined `cas`, one exchange for all `items` (key, data, cas token): pymemcache's
    `cas()` takes one key per round trip, and its `_store_cmd` one token for all keys.
    True: stored; False: changed since the `gets`; None: gone. Uses the client's socket the
    way its own store commands do, and closes it on any error, as they do."""
    expire_b = str(expire).encode()
    cmds = []
    for key, data, cas in items:
        wire_key = client.check_key(key, client.key_prefix)
        cmds.append(b"cas %s 0 %s %d %s\r\n%s\r\n" % (wire_key, expire_b, len(data), cas, data))
    if client.sock is None:
        client._connect()
    try:
        client.sock.sendall(b"".join(cmds))
        out: dict[str, bool | None] = {}
        buf = b""
        for key, _, _ in items:
            buf, line = _readline(client.sock, buf)
            if line not in _CAS_REPLIES:
                raise MemcacheUnknownError(line[:32])
            out[key] = _CAS_REPLIES[line]
        return out
    except Exception:
        client.close()
        raise


_RECV_BYTES = 256 * 1024


def _get_many(client: Client, keys: list[str]) -> dict[str, bytes]:
    """One `get` of every key, its reply read in large chunks and parsed in one pass: pymemcache's
    `get_many` reads and parses it line by line, value by value (~15 % of a story tray page's
    CPU for its ~400 values, measured: docs/BENCHMARKS.md, "Stories"). Raw values, in no order
    (the codec decodes them; a value is stored as its bytes, flags 0). Uses the client's socket
    the way its own commands do, and closes it on any error, as they do."""
    if not keys:
        return {}
    # `MemcachedCache.get_many` checked every key before grouping them by server (printable
    # ASCII, no space, within memcached's length with the wire prefix): pymemcache's own check
    # of each key, a third of this call's CPU, is not run again.
    prefix = client.key_prefix
    wire = [prefix + k.encode("ascii") for k in keys]
    by_wire = dict(zip(wire, keys))
    if client.sock is None:
        client._connect()
    sock = client.sock
    try:
        sock.sendall(b"get " + b" ".join(wire) + b"\r\n")
        buf = bytearray()
        pos = 0
        out: dict[str, bytes] = {}
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                chunk = sock.recv(_RECV_BYTES)
                if not chunk:
                    raise MemcacheUnexpectedCloseError()
                buf += chunk
                continue
            if eol == pos + 3 and buf[pos:eol] == b"END":
                return out
            header = bytes(buf[pos:eol]).split()
            if len(header) < 4 or header[0] != b"VALUE":  # SERVER_ERROR, CLIENT_ERROR, ERROR
                raise MemcacheUnknownError(bytes(buf[pos:eol])[:64])
            start = eol + 2
            end = start + int(header[3])
            while len(buf) < end + 2:
                chunk = sock.recv(max(_RECV_BYTES, end + 2 - len(buf)))
                if not chunk:
                    raise MemcacheUnexpectedCloseError()
                buf += chunk
            out[by_wire[header[1]]] = bytes(buf[start:end])
            pos = end + 2
    except Exception:
        client.close()
        raise


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
        health: dict[str, ServerHealth],
        *,
        ttl_seconds: int,
        batch_budget: float,
        max_install_attempts: int,
    ) -> None:
        self._clients = clients
        self._health = health
        self._ttl = ttl_seconds
        self._budget = batch_budget
        self._max_attempts = max_install_attempts

    def get(self, name: str, keys: list[str]) -> Outcome:
        health = self._health[name]
        epoch = health.epoch
        if not health.readable():
            return Outcome(bypassed=True)
        try:
            with self._clients[name].client_pool.get_and_release(destroy_on_fail=True) as client:
                values = _get_many(client, keys)
        except Exception as exc:
            health.mark_suspect(f"get_many failed: {exc!r}")
            return Outcome(bypassed=True, round_trips=1, errors=1)
        if health.epoch != epoch or not health.readable():
            # A fault was seen while the call was in flight: its answer may predate a write
            # this server missed. Discard it.
            return Outcome(bypassed=True, round_trips=1)
        # Decode here, on the worker thread, not on the event loop.
        decoded = {}
        for key, raw in values.items():
            value = codec.decode(raw)
            if value is not None:
                decoded[key] = value
        return Outcome(values=decoded, round_trips=1)

    def install(self, name: str, installs: list[Install]) -> Outcome:
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
        pool = self._clients[name].client_pool
        current = 0
        try:
            with pool.get_and_release(destroy_on_fail=True) as client:
                # `current` outlives the loop: the except below reads which wave failed.
                for current, wave in enumerate(waves):  # noqa: B007
                    out.settled = set()
                    unsettled = self._install_wave(client, health, epoch, wave, deadline, out)
                    if unsettled:
                        out.failed |= unsettled
                        break
                else:
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

    def _install_wave(
        self,
        client: Client,
        health: ServerHealth,
        epoch: int,
        pending: dict[str, Install],
        deadline: float,
        out: Outcome,
    ) -> set[str]:
        """gets, then add/cas; retry lost races. Returns the keys left unsettled."""
        for attempt in range(self._max_attempts):
            if attempt:
                out.retries += len(pending)
            if time.monotonic() > deadline or health.epoch != epoch:
                return set(pending)
            current = client.gets_many(list(pending))
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
            adds: dict[str, bytes] = {}
            cases: list[tuple[str, bytes, bytes]] = []
            for key, inst in pending.items():
                make = inst.make
                if inst.fence is not None and (
                    inst.fence <= health.changed or now_ns - max(inst.fence, seen_ns) >= health.blind_limit_ns
                ):
                    out.failed.add(key)
                    make = _tombstone
                raw, cas = current.get(key, (None, None))
                try:
                    data = codec.plan_install(inst.version, make, raw)
                except Exception as exc:
                    raise _CallerBug() from exc
                if data is None:
                    out.skipped += 1
                    out.settled.add(key)
                elif cas is None:
                    adds[key] = data
                else:
                    cases.append((key, data, cas))
            lost: dict[str, Install] = {}
            add_items = list(adds.items())
            for chunk in range(0, len(add_items), _PIPELINE):
                # One pipelined exchange per chunk of adds. pymemcache has no public add_many;
                # _store_cmd is what its own set_many uses.
                stored = client._store_cmd(b"add", dict(add_items[chunk:chunk + _PIPELINE]), self._ttl, False)
                out.round_trips += 1
                for key, ok in stored.items():
                    if ok:
                        out.installed += 1
                        out.settled.add(key)
                    else:  # someone added first: re-read and decide again
                        lost[key] = pending[key]
            for chunk in range(0, len(cases), _PIPELINE):
                part = cases[chunk:chunk + _PIPELINE]
                stored = _cas_many(client, part, self._ttl)
                out.round_trips += 1
                for key, ok in stored.items():
                    if ok:
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
