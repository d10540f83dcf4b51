"""Load shedding (admission.py): while a server process's event loop runs late, a new HTTP
operation is refused before it runs (503 `UNAVAILABLE`, `Retry-After`), nothing of a refused
mutation is written, health checks still answer, and the process takes operations again once
its loop catches up. Past the bound in flight a request waits its turn, then is refused; the
refusal's ramp is checked on the shedder."""

from __future__ import annotations

import asyncio
import time

import pytest

from admission import LoadShedder
from config import Settings
from server import SHEDDER_KEY, create_app
from tests.schema.client import GQL, graphql_settings, running_app

JSON = {"Content-Type": "application/json"}
SIGN_UP = """mutation($u: String!) { signUp(input: {username: $u, password: "correct-horse-9", fullName: "Shed"}) {
  token errors { code } } }"""
WHO = "query($u: String!) { user(username: $u) { id } }"
LAG_MS = 40


@pytest.fixture
def settings(test_id: str, tmp_path) -> Settings:
    s = graphql_settings("sqlite", None, test_id, tmp_path)
    s.server.shed_loop_lag_ms = LAG_MS
    s.server.max_requests_in_flight, s.server.admission_wait_ms = 2, 5000
    return s


@pytest.fixture
async def g(settings: Settings):
    app = await asyncio.to_thread(create_app, settings)
    async with running_app(settings, app) as client:
        yield client


async def _stall_loop(shedder: LoadShedder) -> None:
    """Hold the event loop in slices of CPU work, as an overloaded process does, until the
    shedder's smoothed lag is past twice its threshold (where it refuses everything)."""
    deadline = time.monotonic() + 10
    while shedder.refuse_chance() < 1:
        assert time.monotonic() < deadline, f"the lag never rose: {shedder.lag}"
        spin_until = time.perf_counter() + 3 * LAG_MS / 1000
        while time.perf_counter() < spin_until:
            pass
        await asyncio.sleep(0)


async def test_a_late_loop_refuses_new_operations_before_they_run_and_recovers(g: GQL):
    shedder = g.client.app[SHEDDER_KEY]
    await _stall_loop(shedder)
    resp = await g.client.post("/graphql", json={"query": SIGN_UP, "variables": {"u": "shed_one"}})
    assert resp.status == 503, await resp.text()
    assert resp.headers["Retry-After"] == "1"
    body = await resp.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "nothing was done" in error["message"]
    assert body["extensions"]["requestId"] == resp.headers["X-Request-Id"]
    assert shedder.refused >= 1 and shedder.in_flight == 0
    health = await g.client.get("/healthz")  # never shed: the load balancer must see the process live
    assert health.status == 200

    # Idle, the loop catches up and the smoothed lag decays: operations run again, and the
    # refused sign-up had written nothing (its name is free).
    deadline = time.monotonic() + 10
    while shedder.refuse_chance() > 0:
        assert time.monotonic() < deadline, f"the lag never fell: {shedder.lag}"
        await asyncio.sleep(0.05)
    status, body = await g.post(WHO, {"u": "shed_one"})
    assert status == 200 and body["data"]["user"] is None, body
    status, body = await g.post(SIGN_UP, {"u": "shed_one"})
    assert status == 200 and body["data"]["signUp"]["errors"] == [] and body["data"]["signUp"]["token"], body
    assert shedder.in_flight == 0


async def test_a_websocket_upgrade_is_refused_while_the_loop_is_late(g: GQL):
    await _stall_loop(g.client.app[SHEDDER_KEY])
    resp = await g.client.get("/graphql", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                   "Sec-WebSocket-Version": "13",
                                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                                   "Sec-WebSocket-Protocol": "graphql-transport-ws"})
    assert resp.status == 503
    assert (await resp.json())["errors"][0]["extensions"]["code"] == "UNAVAILABLE"


async def test_the_refusal_chance_ramps_from_the_threshold_to_twice_it():
    draws = iter([0.49, 0.51])
    shedder = LoadShedder(100, 0, chance=lambda: next(draws))
    shedder.lag = 0.1
    assert shedder.refuse_chance() == 0 and await shedder.enter()
    shedder.lag = 0.15  # half way: refused when the draw is under one half
    assert shedder.refuse_chance() == pytest.approx(0.5)
    assert not await shedder.enter() and await shedder.enter()
    shedder.lag = 0.3
    assert shedder.refuse_chance() == 1
    assert LoadShedder(0, 0).refuse_chance() == 0  # 0: lag never refuses


async def test_past_the_bound_a_request_waits_its_turn_then_is_refused():
    shedder = LoadShedder(0, 2, 150)
    assert await shedder.enter() and await shedder.enter()
    assert not shedder.admit_socket()  # every place taken: no new socket either
    started = time.monotonic()
    assert not await shedder.enter()  # no place freed within the wait
    assert 0.1 < time.monotonic() - started < 1.0
    waiting = [asyncio.create_task(shedder.enter()) for _ in range(2)]
    await asyncio.sleep(0.02)
    shedder.release()  # the first waiter takes the freed place, in arrival order
    assert await waiting[0] is True
    assert await waiting[1] is False  # the second found none within the wait
    assert shedder.in_flight == 2 and shedder.refused == 3
    shedder.release()
    assert shedder.admit_socket() and shedder.in_flight == 1  # a socket's upgrade holds no place
    no_wait = LoadShedder(0, 1, 0)
    assert await no_wait.enter() and not await no_wait.enter()  # no wait: refused at once


async def test_a_burst_past_the_bound_is_served_in_turn_over_http(g: GQL, settings: Settings):
    """Eight queries at once through a process that runs two at a time and lets the others wait
    long enough: all answered, none refused, and never more than two in flight."""
    shedder = g.client.app[SHEDDER_KEY]
    peak = 0
    release = shedder.release

    def counted_release() -> None:
        nonlocal peak
        peak = max(peak, shedder.in_flight)
        release()
    shedder.release = counted_release
    results = await asyncio.gather(*(g.post(WHO, {"u": f"nobody{i}"}) for i in range(8)))
    assert all(status == 200 and body["data"]["user"] is None for status, body in results), results
    assert shedder.refused == 0 and 1 <= peak <= 2 and shedder.in_flight == 0
