"""`tao.rate_limits`: token buckets, all or nothing across buckets, in process memory and in the
real Redis, shared by two limiters (two processes' worth) there, and the fall-back to process
memory while Redis is unreachable."""

from __future__ import annotations

import pytest

from config import BrokerSettings
from tao import Bucket, Mode
from tao.rate_limits import LocalRateLimiter, RedisRateLimiter, make_rate_limiter


@pytest.fixture(params=["local", "redis"])
async def limiter(request, test_id):
    if request.param == "local":
        yield LocalRateLimiter()
        return
    services = request.getfixturevalue("services")
    made = RedisRateLimiter(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id))
    yield made
    await made.close()


async def test_take_is_all_or_nothing_and_says_how_long_to_wait(limiter):
    hour = Bucket("a:h", 3, 3600)
    day = Bucket("a:d", 5, 86400)
    for _ in range(3):
        assert (await limiter.take([hour, day])).ok
    refused = await limiter.take([hour, day])
    assert not refused.ok and refused.levels[0] < 1 and 2 - 0.01 < refused.levels[1] <= 2.01
    assert 1190 < refused.retry_after <= 1200  # one token of the hourly bucket: 3600 / 3 seconds
    again = await limiter.take([hour, day], mode=Mode.PEEK)
    assert not again.ok and 2 - 0.01 < again.levels[1] <= 2.01  # the refusal took nothing from the day
    assert (await limiter.take([Bucket("b:h", 3, 3600)])).ok  # other keys are untouched


async def test_force_takes_down_to_zero_and_peek_changes_nothing(limiter):
    b = Bucket("f", 10, 60)
    assert (await limiter.take([b], 4, Mode.PEEK)).levels == pytest.approx((10,), abs=0.01)
    forced = await limiter.take([b], 25, Mode.FORCE)
    assert forced.levels == pytest.approx((0,), abs=0.01)
    peek = await limiter.take([b], 1, Mode.PEEK)
    assert not peek.ok and 5.5 < peek.retry_after <= 6.0  # one point at 10 per 60 s
    await limiter.reset(["f"])
    assert (await limiter.take([b], 10)).ok


async def test_two_processes_share_one_budget_in_redis(services, test_id):
    settings = BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id)
    one, two = make_rate_limiter(settings), make_rate_limiter(settings)
    try:
        b = Bucket("shared", 4, 3600)
        results = [(await lim.take([b])).ok for lim in (one, two, one, two, one, two)]
        assert results == [True, True, True, True, False, False]  # 4 in all, not 4 each
        assert one.fallbacks == two.fallbacks == 0
    finally:
        await one.close()
        await two.close()


async def test_redis_unreachable_falls_back_to_process_memory(test_id):
    from tests.harness.processes import free_port

    settings = BrokerSettings(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", channel_prefix=test_id,
                              connect_timeout=0.2, publish_timeout=0.05)
    lim = RedisRateLimiter(settings)
    try:
        b = Bucket("down", 2, 3600)
        assert [(await lim.take([b])).ok for _ in range(3)] == [True, True, False]  # still limited, per process
        assert lim.fallbacks == 3
    finally:
        await lim.close()


async def test_refund_gives_back_up_to_capacity(limiter):
    """A log-in takes its attempt first (so a burst cannot pass one check each) and gives it back
    when it succeeds: never past the bucket's capacity."""
    b, c = Bucket("r:a", 3, 3600), Bucket("r:b", 5, 3600)
    assert (await limiter.take([b, c], 1)).ok
    back = await limiter.take([b, c], 1, Mode.REFUND)
    assert back.ok and back.levels == pytest.approx((3, 5), abs=0.01)
    again = await limiter.take([b, c], 2, Mode.REFUND)  # already full: stays at capacity
    assert again.levels == pytest.approx((3, 5), abs=0.01)
    for _ in range(3):
        assert (await limiter.take([b, c])).ok
    assert not (await limiter.take([b, c])).ok
    assert (await limiter.take([b, c], 1, Mode.REFUND)).levels == pytest.approx((1, 3), abs=0.01)
    assert (await limiter.take([b, c])).ok
