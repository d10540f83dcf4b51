"""Shedding load before it piles up: a server process refuses a new HTTP operation (503
`UNAVAILABLE`, `Retry-After`) while its event loop runs late or too many operations are in
flight, rather than taking every request and failing some halfway through.

Why: one server process is one event loop. Past what its core serves, every request it accepts
waits in the loop's ready queue behind all the others, so all of them slow down together; the
store's timeouts then fail requests after their work began (a send timed out between its two
transactions cost both, for an error), which lowers what the process completes below what it
could. Measured before this (docs/BENCHMARKS.md, seventeenth session): 200 sends a second
offered to two processes that serve fewer completed 44 a second, 2 450 of 4 000 failed after
their work, p99 12 s. A refusal before any work costs a fraction of a millisecond, and the
requests let in finish in time.

The signal is the loop's lag: a timer due every `PROBE_SECONDS` that fires late measures how
long a callback waits in the ready queue right now, which is the queueing delay every request
pays (a CPU-bound process shows it at once; a loop waiting on I/O does not lag). Requests are
refused with a probability that rises from 0 at `server.shed_loop_lag_ms` to 1 at twice it
(a smoothed lag, so one slow callback refuses nothing), so the process settles at the load it
can serve instead of swinging between all and nothing. `server.max_requests_in_flight` bounds
the operations a process has started and not answered, for an overload the loop does not see
(every request waiting on a slow store).

Invariants:
- A refused request ran no resolver: nothing of a refused mutation was written.
- Only the start of an HTTP operation (POST or GET /graphql, a WebSocket's upgrade) is refused:
  operations in flight, open sockets' messages, health checks and metrics never are.
- `release()` is called once for each `admit()` that returned True and held a place (the view
  does it in a `finally`), so the in-flight count cannot drift. An open WebSocket holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

PROBE_SECONDS = 0.025  # the lag timer's period
SMOOTHING = 0.3  # weight of the newest lag sample in the smoothed lag (per probe)
RETRY_AFTER_SECONDS = 1


class LoadShedder:
    """One per server process (its app): `admit()` before an operation starts, `release()` after."""

    def __init__(self, shed_lag_ms: float, max_in_flight: int, *, chance: Callable[[], float] = random.random,
                 report_lag: Callable[[float], None] | None = None) -> None:
        self.shed_lag = shed_lag_ms / 1000  # 0: lag never refuses
        self.max_in_flight = max_in_flight  # 0: no bound
        self.lag = 0.0  # seconds, smoothed
        self.in_flight = 0
        self.refused = 0
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

    def admit(self, *, hold: bool = True) -> bool:
        """May a new operation start? With `hold`, it counts as in flight until `release()`
        (a WebSocket's upgrade is admitted without: an open socket is not work in flight)."""
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            self.refused += 1
            return False
        chance = self.refuse_chance()
        if chance > 0 and self._chance() < chance:
            self.refused += 1
            return False
        if hold:
            self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
