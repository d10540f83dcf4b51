"""`CostBudget`: a viewer's query-cost points are taken from the shared bucket (the real Redis
here, as in production) a few requests' worth at a time and spent from the process's balance,
and a viewer is never served more than the budget, by one process or by several."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from config import BrokerSettings, LimitSettings
from resolvers.errors import ThrottledError
from resolvers.throttle import EventBudget
from schema.cost import CostBudget
from tao.rate_limits import make_rate_limiter


@pytest.fixture
async def redis_limiters(services, test_id):
    """Two limiters on one Redis: two server processes' worth."""
    settings = BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id)
    made = [make_rate_limiter(settings), make_rate_limiter(settings)]
    yield made
    for lim in made:
        await lim.close()


class CountedTakes:
    def __init__(self, limiter) -> None:
        self.limiter, self.calls = limiter, 0

    async def take(self, *args, **kwargs):
        self.calls += 1
        return await self.limiter.take(*args, **kwargs)


async def test_requests_take_from_the_shared_bucket_a_few_at_a_time(redis_limiters):
    budget = CostBudget(10_000, 36_000)
    counted = CountedTakes(redis_limiters[0])
    lefts = []
    for _ in range(16):
        ok, left = await budget.try_spend(counted, "viewer", 12)
        assert ok
        lefts.append(left)
    assert counted.calls == 2  # 8 requests' worth a take; one shared-limiter call a request before
    assert lefts == sorted(lefts, reverse=True) and 10_000 - 16 * 12 - 1 <= lefts[-1] <= 10_000 - 16 * 12 + 1
    # the shared bucket holds what the process has not taken
    peek = await budget.available(redis_limiters[0], "viewer")
    assert 10_000 - 16 * 12 - 1 <= peek <= 10_000 - 16 * 12 + 1


async def test_a_viewer_is_never_served_more_than_the_budget_across_processes(redis_limiters):
    """Two processes (each its own CostBudget and limiter, one Redis) serving one viewer in
    turn: every point spent was taken first, so the served total stays within the budget, and
    what each process still holds when both refuse is less than one request."""
    one, two = CostBudget(1_000, 36_000), CostBudget(1_000, 36_000)
    served, turn = 0, 0
    refusals = 0
    while refusals < 2:
        budget, limiter = ((one, redis_limiters[0]), (two, redis_limiters[1]))[turn % 2]
        ok, _ = await budget.try_spend(limiter, "viewer", 7)
        served += ok
        refusals = 0 if ok else refusals + 1
        turn += 1
    assert 1_000 // 7 - 2 <= served <= 1_000 // 7, served  # 142 at most, as with one Redis call a request


async def test_near_the_end_of_the_budget_every_point_is_usable(redis_limiters):
    """A take of several requests' worth that does not fit falls back to the request's own cost."""
    budget = CostBudget(100, 36_000)
    results = [(await budget.try_spend(redis_limiters[0], "viewer", 30))[0] for _ in range(4)]
    assert results == [True, True, True, False]


async def test_with_little_of_the_budget_left_nothing_is_held_ahead(redis_limiters):
    """Past three quarters of the budget spent, a take ahead is given back at once: the points
    stay in the shared bucket for the viewer's other processes and subscriptions. A request the
    balance does not cover spends the balance first (before the seventeenth session it kept the
    balance aside and took its whole cost: 12.5 points stayed held here to the end)."""
    budget = CostBudget(1_000, 36_000)
    limiter = redis_limiters[0]
    assert (await budget.try_spend(limiter, "viewer", 50))[0]  # 62.5 taken (1/16), 12.5 held ahead
    assert 937 <= await budget.available(limiter, "viewer") <= 938
    assert (await budget.try_spend(limiter, "viewer", 700))[0]  # the 12.5 and 687.5 taken: 250 left
    assert (await budget.try_spend(limiter, "viewer", 50))[0]  # a take ahead, given back
    assert 200 <= await budget.available(limiter, "viewer") <= 201  # 187.5 if 12.5 more were held


async def test_a_subscription_s_events_hold_nothing_ahead_near_the_end_of_the_budget(redis_limiters):
    """`EventBudget` takes several events' worth at a time, through the rule CostBudget spends
    by (`PointsAhead`): past three quarters of the budget, what it took beyond the event is given
    back at once. It had its own copy of that rule, without this: a subscription kept up to
    `MOST_HELD` points the viewer's requests needed."""
    limits = LimitSettings(cost_budget=1_000, cost_window_seconds=36_000)
    budget = EventBudget(SimpleNamespace(rate_limits=redis_limiters[0]), limits, "viewer")  # type: ignore[arg-type]
    costs = CostBudget(1_000, 36_000)
    await budget.pay(100, "an event")  # 200 taken: 100 held ahead
    assert 799 <= await costs.available(redis_limiters[0], "viewer") <= 801
    await budget.pay(600, "an event")  # the 100 held and 500 taken: 300 left
    await budget.pay(10, "an event")  # 80 taken (8 events' worth), 70 given back
    assert 290 <= await costs.available(redis_limiters[0], "viewer") <= 291  # 220 while 70 were held
    budget.release()  # nothing held: nothing to give back
    assert budget.held.balance == 0
    with pytest.raises(ThrottledError):
        await budget.pay(300, "an event")
    assert 290 <= await costs.available(redis_limiters[0], "viewer") <= 291  # a refusal spends nothing
