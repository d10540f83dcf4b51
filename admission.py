"""Shedding load before it piles up: a server process runs at most `server.max_requests_in_flight`
operations at once (over HTTP, and queries, mutations and subscriptions' starts over its open
WebSockets), lets a new one wait `server.admission_wait_ms` for a place, and refuses it when
none frees in time or while its event loop runs late (HTTP: 503 `UNAVAILABLE`, `Retry-After`;
a socket: an `error` message for that operation, code `UNAVAILABLE`, the socket kept open),
rather than taking every request and failing some halfway through.

Why: one server process is one event loop on one core. Past what that core serves, every request
it takes waits in the loop's ready queue behind all the others, so all of them slow down
together, and the store's timeouts then fail requests after their work began (a send that timed
out between its two transactions cost both, for an error): what the process completes falls below
what it could. Measured before this (docs/BENCHMARKS.md, seventeenth session): 200 sends a second
offered to two processes completed 44-64 a second; half the sends failed after their work, p99
10-14 s.

- **The bound in flight** is the main control. By Little's law a process that completes X
  operations a second with N in flight answers in N / X seconds, so a bound caps the latency of
  what it takes (64 in flight at 100 a second: 0.64 s at worst) while a few in flight already keep
  one core busy (each operation alternates CPU with waits on MariaDB, memcached and Redis). A
  request past the bound waits for a place in arrival order (asyncio's semaphore), at most
  `admission_wait_ms`: a burst is absorbed, a sustained overload is refused at once and cheaply.
- **The loop's lag** catches an overload the bound does not see (subscriptions' events, jobs and
  socket traffic compete for the same loop): a timer due every `PROBE_SECONDS` that fires late
  measures how long a callback waits in the ready queue. Requests are refused with a chance
  rising from 0 at `server.shed_loop_lag_ms` to 1 at twice it (a smoothed lag, so one slow
  callback refuses nothing; a ramp, so the process settles at what it serves).

Invariants:
- A refused request ran no resolver: nothing of a refused mutation was written.
- Only the start of an operation is refused (POST or GET /graphql, a WebSocket's upgrade, a
  `subscribe` message on an open socket): operations in flight, a subscription's events, the
  socket itself, health checks and metrics never are.
- `release()` is called once for each `enter()` that returned True (the view does it in a
  `finally`; a socket's operation in its task's `finally`, or earlier once its work is done:
  `server_ws.Place`), so places cannot leak. An open WebSocket holds none (`admit_socket`), nor
  does a live subscription: its place covers its start, up to its first message or its first
  wait for an event (server_ws, docs/operations.md "Load shedding").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from aiohttp import web

PROBE_SECONDS = 0.025  # the lag timer's period
SMOOTHING = 0.3  # weight of the newest lag sample in the smoothed lag (per probe)
RETRY_AFTER_SECONDS = 1
# What a refused operation is told, over HTTP (with a 503) and on a socket (an `error` message).
BUSY_MESSAGE = "The server is busy; nothing was done: retry in a second."


class LoadShedder:
    """One per server process (its app): `enter()` before an operation starts, `release()` after."""

    def __init__(self, shed_lag_ms: float, max_in_flight: int, wait_ms: float = 0, *,
                 chance: Callable[[], float] = random.random,
                 report_lag: Callable[[float], None] | None = None) -> None:
        self.shed_lag = shed_lag_ms / 1000  # 0: lag never refuses
        self.max_in_flight = max_in_flight  # 0: no bound
        self.wait = wait_ms / 1000
        self.lag = 0.0  # seconds, smoothed
        self.in_flight = 0
        self.refused = 0
        self._places = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._chance = chance
        self._report_lag = report_lag  # the metrics gauge, each probe
        self._probe: asyncio.Task | None = None

    def start(self) -> None:
        if self.shed_lag > 0 and self._probe is None:
            self._probe = asyncio.get_running_loop().create_task(self._measure_lag())

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + PROBE_SECONDS
            await asyncio.sleep(PROBE_SECONDS)
            self.observe_lag(max(0.0, loop.time() - due))

    def observe_lag(self, sample: float) -> None:
        self.lag += SMOOTHING * (sample - self.lag)
        if self._report_lag is not None:
            self._report_lag(self.lag)

    def refuse_chance(self) -> float:
        """0 below the lag threshold, rising to 1 at twice it."""
        if self.shed_lag <= 0 or self.lag <= self.shed_lag:
            return 0.0
        return min(1.0, (self.lag - self.shed_lag) / self.shed_lag)

    def _late(self) -> bool:
        chance = self.refuse_chance()
        return chance > 0 and self._chance() < chance

    async def enter(self) -> bool:
        """May a new operation start? True: it holds a place until `release()`."""
        if self._late():
            self.refused += 1
            return False
        if self._places is not None:
            if self._places.locked() and self.wait <= 0:
                self.refused += 1
                return False
            try:
                async with asyncio.timeout(self.wait if self._places.locked() else None):
                    await self._places.acquire()
            except TimeoutError:
                self.refused += 1
                return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
        if self._places is not None:
            self._places.release()

    def admit_socket(self) -> bool:
        """May a WebSocket open? Not while the loop is late or every place is taken (an open
        socket then holds no place: it is not work in flight)."""
        if self._late() or (self._places is not None and self._places.locked()):
            self.refused += 1
            return False
        return True


class Place:
    """An operation's place in flight, given back once: `release()` may be called by the
    operation's first message or its stream's first wait for an event (server_ws), by its first
    wait on the password pool (resolvers.passwords.LEND_PLACE), and by its end."""

    __slots__ = ("_shedder",)

    def __init__(self, shedder: LoadShedder | None) -> None:
        self._shedder = shedder

    def release(self) -> None:
        shedder, self._shedder = self._shedder, None
        if shedder is not None:
            shedder.release()


SHEDDER_KEY = web.AppKey("shedder", LoadShedder)  # the process's shedder, on its aiohttp app
