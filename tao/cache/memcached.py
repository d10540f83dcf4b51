"""The memcached cache tier: versioned installs over a fixed consistent-hash ring, with bypass.

Owns the wire protocol use (pymemcache) and its failure handling. Invariants:

- An entry only moves to a higher version: installs read with `gets`, then `add` (absent) or
  `cas` (present and older), retrying lost races; the rule itself is `codec.plan_install`.
- The ring never changes. pymemcache's `HashClient` is used only to place keys (rendezvous
  hashing, with our faster hasher from `tao.cache.ring`) and to hold one connection pool per
  server; its own failover, which removes a
  dead server and re-hashes its keys onto the survivors, is never invoked. Re-hashing would
  leave entries on the survivors that go stale while the server is out and resurface when it
  returns. A server this process does not trust is bypassed instead (`tao.cache.health`):
  its keys are misses on read and failed installs (which the store repairs via the outbox).
- No result from a server is used unless it was trusted for the whole call (see
  `ServerHealth`), and a server is flushed before it is used again after a fault; only
  evidence of a fault (a failed call or probe, a restart) flushes, never a process's own
  inability to watch the server (a blind spot: it distrusts the server alone).
- Reads and installs talk to the servers on the event loop (`tao.cache.aio`: no thread
  hand-off per call), a call's servers in parallel; the rare blocking pymemcache
  calls (flush, delete, the key scan) run on a small thread pool, never on the loop. Every
  exchange and connect has a timeout; a connection whose exchange did not complete is closed.
- An install, once begun, runs to its end even if its caller is cancelled (as it did on a
  worker thread): a committed write's cache entries are never left half-installed by a
  cancelled request.
- Cache faults never raise out of `get_many`/`install_many`; bad keys (a caller bug) do.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pymemcache.client.base import normalize_server_spec
from pymemcache.client.hash import HashClient

from config.settings import CacheSettings
from tao.cache import aio, codec, metadump
from tao.cache.base import Install, Value
from tao.cache.batches import Outcome, ServerBatches
from tao.cache.health import ChangeClock, ServerHealth
from tao.cache.keys import MAX_TIER_PREFIX, MEMCACHED_MAX_KEY, check_prefix
from tao.cache.ring import FastRendezvousHash

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"[!-~]+")  # what memcached's text protocol accepts: printable, no space
_MAX_TTL = 30 * 24 * 3600  # above this memcached reads the expiry as a unix timestamp
_DEFAULTS = CacheSettings()  # the one set of defaults: what a tier gets when a caller leaves one out
# A lost race means another install of the key landed in between, with a higher version than
# the one read: progress. So the newest version's writer loses at most once per writer racing
# it, and that is how many attempts it needs. Up to 64 exchanges a server are in flight per
# process since installs run on the event loop (CONNECTIONS_PER_SERVER, below), not the 8 of the
# thread pool: at 5 attempts, 40 tasks installing one batch lost the newest version now and then
# (reported failed, so repaired, but late). The batch's time budget still bounds the whole.
MAX_INSTALL_ATTEMPTS = 100
# asyncio connections per server, per process, in use at once. A call holds one across its
# exchanges, each waiting for a turn of the event loop (longer when the loop is busy), so more
# calls are in flight at once than the 9 the thread pool allowed, which would make them queue
# for a connection. memcached's default limit is 1 024 connections.
CONNECTIONS_PER_SERVER = 64


class _BytesSerde:
    """Values are already encoded bytes (`tao.cache.codec`); pass them through untouched."""

    def serialize(self, key: Any, value: bytes) -> tuple[bytes, int]:
        return value, 0

    def deserialize(self, key: Any, value: bytes, flags: int) -> bytes:
        return value


class MemcachedCache:
    def __init__(
        self,
        servers: list[str],
        *,
        key_prefix: str = "",
        timeout: float = _DEFAULTS.timeout,
        connect_timeout: float = _DEFAULTS.connect_timeout,
        ttl_seconds: int = _DEFAULTS.ttl_seconds,
        threads: int = _DEFAULTS.threads,
        heartbeat_interval: float = _DEFAULTS.heartbeat_interval,
        max_install_attempts: int = MAX_INSTALL_ATTEMPTS,
    ) -> None:
        if not servers:
            raise ValueError("MemcachedCache needs at least one server")
        if len(check_prefix(key_prefix)) >= MAX_TIER_PREFIX:
            raise ValueError(f"key_prefix must be shorter than {MAX_TIER_PREFIX} characters")
        if not 0 < ttl_seconds <= _MAX_TTL:
            raise ValueError(f"ttl_seconds must be in (0, {_MAX_TTL}]")
        # Only a stall of `timeout` can fail a writer's call (and leave a stale entry behind).
        # A stretch of blind_limit between good probes (a send to the next reply) could hide
        # one: a blind spot (tao.cache.health); the interval of margin covers network delay.
        # A heartbeat that runs sees any such stall as a timed-out probe (evidence: a fault)
        # before it ends: its first probe inside the stall is sent within an interval and
        # times out within probe_timeout = blind_limit - interval. Shorter stalls fail nothing
        # and are never called faults. After a recovery or a blind spot, reads wait
        # read_grace: by then every process that saw the fault has flushed the server.
        blind_limit = timeout - heartbeat_interval
        probe_timeout = blind_limit - heartbeat_interval
        read_grace = timeout / 2
        if not 0 < heartbeat_interval <= timeout / 4:
            raise ValueError(
                f"heartbeat_interval ({heartbeat_interval}s) must be at most timeout/4 ({timeout / 4}s) "
                "so a stall long enough to time out a call is always seen by the heartbeat"
            )
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ttl_seconds = int(ttl_seconds)
        self.max_install_attempts = max_install_attempts
        self._wire_prefix = f"{key_prefix}:" if key_prefix else ""
        self._max_key = MEMCACHED_MAX_KEY - len(self._wire_prefix)
        self._ring = HashClient(
            servers,
            hasher=FastRendezvousHash,
            serde=_BytesSerde(),
            connect_timeout=connect_timeout,
            timeout=timeout,
            no_delay=True,
            key_prefix=self._wire_prefix.encode("ascii"),
            use_pooling=True,
            max_pool_size=threads + 1,  # flush and delete only, on the worker threads
            ignore_exc=False,  # we want to see every error: it marks the server suspect
            default_noreply=False,
        )
        self._clock = ChangeClock()
        self._conns = {
            name: aio.ServerConnections(normalize_server_spec(name), connect_timeout=connect_timeout,
                                        timeout=timeout, max_connections=CONNECTIONS_PER_SERVER)
            for name in self._ring.clients
        }
        self._health = {
            name: ServerHealth(
                name,
                normalize_server_spec(name),
                clock=self._clock,
                interval=heartbeat_interval,
                probe_timeout=probe_timeout,
                read_grace=read_grace,
                blind_limit=blind_limit,
                on_recover=functools.partial(self._forget_connections, name),
            )
            for name in self._ring.clients
        }
        self._batches = ServerBatches(
            self._ring.clients,
            self._conns,
            self._health,
            wire_prefix=self._wire_prefix.encode("ascii"),
            ttl_seconds=self.ttl_seconds,
            batch_budget=connect_timeout + 4 * timeout,  # a few exchanges; then unsettled keys fail
            max_install_attempts=max_install_attempts,
        )
        # Reads waiting for this loop turn's shared multi-get, per event loop: a tier used from
        # threads with their own loops never hands one loop's future to another's batch.
        self._waiting: dict[asyncio.AbstractEventLoop, list[tuple[list[str], asyncio.Future]]] = {}
        self._coalescing: set[asyncio.Task] = set()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tao-cache")
        for health in self._health.values():
            health.start()
        self._ready = False
        self._closed = False
        self._hits = self._misses = self._round_trips = self._errors = self._bypassed = 0
        self._flushes = self._installed = self._install_skipped = self._install_failed = 0
        self._install_retries = self._wire_round_trips = 0

    # -- CacheTier --------------------------------------------------------------------------

    async def get_many(self, keys: list[str]) -> dict[str, Value]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        for key in keys:  # a bad key is the caller's error: raise it here, not in a shared batch
            self._check_key(key)
        # Coalesce: every get_many issued in this event-loop iteration or the next (concurrent
        # requests, sibling loaders, a loader's batch a turn behind another's: a page loader's
        # groups, a visibility check's reads under its own loader) shares one multi-get per
        # server: one network exchange per server serves them all. One iteration more of
        # waiting saves a whole round trip whenever a read arrives a turn late.
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        waiting = self._waiting.get(loop)
        if waiting is None:
            waiting = self._waiting[loop] = []
            loop.call_soon(loop.call_soon, self._start_coalesced_get, loop)
        waiting.append((keys, fut))
        return await fut

    def _start_coalesced_get(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._waiting.pop(loop, [])
        task = asyncio.ensure_future(self._coalesced_get(batch))
        self._coalescing.add(task)
        task.add_done_callback(self._coalescing.discard)

    async def _coalesced_get(self, batch: list[tuple[list[str], asyncio.Future]]) -> None:
        try:
            found = await self._get_now(list(dict.fromkeys(k for keys, _ in batch for k in keys)))
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        served: set[str] = set()
        for keys, fut in batch:
            if fut.done():  # the caller was cancelled
                continue
            answer = {}
            for k in keys:
                if k in found:
                    # Callers own what they get: a value already handed to another caller in
                    # this batch is copied, never shared.
                    answer[k] = codec.decode(codec.encode(found[k])) if k in served else found[k]
                    served.add(k)
            fut.set_result(answer)

    async def _get_now(self, keys: list[str]) -> dict[str, Value]:
        groups = self._group(keys, lambda k: k, checked=True)  # get_many checked every key
        await self._ensure_ready()
        outcomes = await self._batches.get_all(groups)
        out: dict[str, Value] = {}
        for server, outcome in outcomes.items():
            self._fold(outcome, len(groups[server]))
            for key in groups[server] if not outcome.bypassed else ():
                value = outcome.values.get(key)
                if value is None:
                    self._misses += 1
                    continue
                if codec.is_tombstone(value):
                    self._misses += 1
                else:
                    self._hits += 1
                out[key] = value
        return out

    async def install_many(self, installs: list[Install], *, written: bool = False) -> set[str]:
        # `written` changes nothing here: the installs themselves are what other processes read.
        if not installs:
            return set()
        groups = self._group(installs, lambda i: i.key)
        # Shielded: a cancelled caller does not stop an install half-way (see the invariants).
        outcomes = await asyncio.shield(self._run_batches(self._batches.install, groups))
        failed: set[str] = set()
        for server, outcome in outcomes.items():
            self._fold(outcome, len(groups[server]))
            if outcome.bypassed:
                outcome.failed = {inst.key for inst in groups[server]}
            self._installed += outcome.installed
            self._install_skipped += outcome.skipped
            self._install_retries += outcome.retries
            self._install_failed += len(outcome.failed)
            failed |= outcome.failed
        return failed

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        names = list(self._ring.clients)
        results = await asyncio.gather(
            *(loop.run_in_executor(self._pool, self._batches.flush, name) for name in names)
        )
        self._flushes += sum(results)
        self._errors += len(results) - sum(results)

    async def forget_many(self, keys: list[str]) -> None:
        if not keys:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._delete_grouped, list(keys))

    def _delete_grouped(self, keys: list[str]) -> None:
        """One pipelined `delete` batch per server (HashClient.delete_many sends key by key)."""
        by_server: dict[Any, list[str]] = defaultdict(list)
        for key in keys:
            self._check_key(key)
            # Placed without the ring's memo: these are keys of erased ids, never read again.
            by_server[self._ring.clients.get(self._ring.hasher.place(key))].append(key)
        for client, group in by_server.items():
            if client is not None:
                for i in range(0, len(group), 1000):
                    client.delete_many(group[i:i + 1000], noreply=False)

    async def scan_key_batches(self, size: int) -> AsyncIterator[list[tuple[str, str]]]:
        loop = asyncio.get_running_loop()
        names = list(self._ring.clients)
        # Each server's dump is drained into a temporary file first (why: tao.cache.metadump),
        # the servers in parallel; then the keys come back `size` at a time.
        spools = await asyncio.gather(*(loop.run_in_executor(self._pool, metadump.spool, normalize_server_spec(n),
                                                             self.timeout * 10, self._wire_prefix) for n in names),
                                      return_exceptions=True)
        try:
            for s in spools:
                if isinstance(s, BaseException):
                    raise s
            for name, (spooled, _) in zip(names, spools):  # type: ignore[misc]
                while keys := await loop.run_in_executor(self._pool, metadump.read_batch, spooled, size):
                    yield [(name, k) for k in keys]
        finally:
            for s in spools:
                if not isinstance(s, BaseException):
                    s[0].close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        for conns in self._conns.values():
            conns.close()

        def shutdown() -> None:
            for health in self._health.values():
                health.stop()
            self._pool.shutdown(wait=True)
            for client in self._ring.clients.values():
                client.close()

        # Joining threads blocks: do it off the loop, on a thread of its own.
        await asyncio.to_thread(shutdown)

    def fence(self) -> int:
        return self._clock.now()

    def stats(self) -> dict[str, int]:
        health = self._health.values()
        return {
            "hits": self._hits,
            "misses": self._misses,
            "round_trips": self._round_trips,
            "wire_round_trips": self._wire_round_trips,
            "errors": self._errors + sum(h.probe_errors for h in health),
            "bypassed": self._bypassed,
            "flushes": self._flushes + sum(h.flushes for h in health),
            "installed": self._installed,
            "install_skipped": self._install_skipped,
            "install_failed": self._install_failed,
            "install_retries": self._install_retries,
            "faults": sum(h.faults for h in health),
            "blind_spots": sum(h.blind_spots for h in health),
            "servers_suspect": sum(not h.healthy for h in health),
        }

    def server_of(self, key: str) -> str:
        """The ring's server ("host:port") for `key`: fixed for the life of the tier."""
        return self._ring.hasher.get_node(key)

    # -- event-loop side --------------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if len(key) > self._max_key or not _KEY_RE.fullmatch(key):
            raise ValueError(f"invalid cache key {key[:80]!r}: build keys with tao.cache.keys")

    def _group(self, items: list[Any], key_of: Callable[[Any], str], *, checked: bool = False
               ) -> dict[str, list[Any]]:
        groups: dict[str, list[Any]] = defaultdict(list)
        for item in items:
            key = key_of(item)
            if not checked:
                self._check_key(key)
            groups[self.server_of(key)].append(item)
        return groups

    async def _run_batches(
        self, fn: Callable[[str, list[Any]], Awaitable[Outcome]], groups: dict[str, list[Any]]
    ) -> dict[str, Outcome]:
        await self._ensure_ready()
        # Installs (reads: `ServerBatches.get_all`). One server: no task. Several: in parallel (a
        # task each), so a call waits for its slowest server's exchanges rather than their sum,
        # each a turn of a busy loop. A server that hangs delays the call by its timeout, and
        # the fault detector then bypasses it.
        if len(groups) == 1:
            (name, items), = groups.items()
            return {name: await fn(name, items)}
        results = await asyncio.gather(*(fn(name, items) for name, items in groups.items()))
        return dict(zip(groups, results))

    async def _ensure_ready(self) -> None:
        if self._closed:
            raise RuntimeError("the cache tier is closed")
        if not self._ready:
            # Once per tier: let the first probes land, so a fresh tier does not start by
            # bypassing every server. Bounded by the probe timeout.
            await asyncio.get_running_loop().run_in_executor(self._pool, self._wait_first_probes)
            self._ready = True

    def _forget_connections(self, name: str) -> None:
        """The heartbeat's `on_recover` (its thread), before it flushes a recovered server:
        without this, a connection left idle across a restart fails on first use after the
        recovery: a second fault that only this process sees, while the others already read
        the server (and would serve what this process's writes missed)."""
        self._ring.clients[name].client_pool.clear()
        self._conns[name].clear()

    def _fold(self, outcome: Outcome, n_keys: int) -> None:
        # `round_trips` counts per-server batch calls that reached the network (what the
        # store's round-trip assertions count); `wire_round_trips` every request/response
        # exchange inside them (an install batch is a gets, one pipelined add, one cas per
        # present key, and retries).
        self._round_trips += 1 if outcome.round_trips else 0
        self._wire_round_trips += outcome.round_trips
        self._errors += outcome.errors
        if outcome.bypassed:
            self._bypassed += n_keys

    # -- worker threads (the first probes' wait) ----------------------------------------------

    def _wait_first_probes(self) -> None:
        deadline = time.monotonic() + self.connect_timeout + self.timeout
        for health in self._health.values():
            health.ready.wait(max(0.0, deadline - time.monotonic()))
