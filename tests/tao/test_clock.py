"""The store's clock: shard 0's server time, extrapolated; a manual clock for tests."""

from __future__ import annotations

import time

from tao.clock import ManualClock, StoreClock


async def test_store_clock_reads_the_database_time(tao):
    clock = tao.clock
    assert isinstance(clock, StoreClock)
    await clock.sync()
    wall = time.time() * 1000
    # The test servers run on this machine, so the server's time is the wall clock's, to a second.
    assert abs(clock.now_ms() - wall) < 1000
    # a sample behind the values handed out never moves the clock back
    before = clock.now_ms()
    clock._base_ms -= 10_000  # as if the next sample were 10 s behind
    assert clock.now_ms() >= before


async def test_store_clock_uses_the_server_not_the_process(tao):
    clock = tao.clock
    clock._base_ms, clock._base_mono = 5_000.0, time.monotonic_ns()  # a server whose time is 5 s after the epoch
    clock._last = 0
    assert 5_000 <= clock.now_ms() < 6_000  # not this process's wall clock
    await clock.sync()
    assert clock.now_ms() > 1_700_000_000_000


def test_manual_clock_moves_only_when_told():
    c = ManualClock(1_000)
    assert c.now_ms() == 1_000
    c.advance(86_399_999)
    assert c.now_ms() == 86_400_999
    c.set(5)
    assert c.now_ms() == 5


async def test_delayed_jobs_come_due_on_the_store_clock_and_may_say_not_due(tao):
    """The outbox schedules on `tao.clock`; a handler raising JobNotDueError is put back for its
    time with no attempt counted, so a drain of delayed jobs ends instead of spinning."""
    from tao import JobNotDueError

    c = ManualClock(1_000_000)
    tao.clock = c
    runs: list[int] = []

    async def handler(_store, payload):
        runs.append(c.now_ms())
        if c.now_ms() < payload["due"]:
            raise JobNotDueError(payload["due"])

    tao.outbox.register("test.due", handler)
    await tao.enqueue(tao.ids.next_id(0), "test.due", {"due": 1_000_000 + 5_000}, delay_ms=5_000)
    assert await tao.run_jobs_until_idle(include_delayed=False) == 0  # not due on the store's clock
    assert await tao.run_jobs_until_idle(include_delayed=True) == 0  # run early: put back, the drain ends
    assert runs == [1_000_000] and await tao.outbox.pending() == 1
    c.advance(5_000)
    assert await tao.run_jobs_until_idle(include_delayed=False) == 1
    assert await tao.outbox.pending() == 0
