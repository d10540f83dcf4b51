"""Load shedding (admission.py): while a server process's event loop runs late, a new HTTP
operation is refused before it runs (503 `UNAVAILABLE`, `Retry-After`), nothing of a refused
mutation is written, health checks still answer, and the process takes operations again once
its loop catches up. Past the bound in flight a request waits its turn, then is refused; the
refusal's ramp is checked on the shedder. Operations sent over an open WebSocket take their
places too (refused: an `error` message, the socket kept open), and a live subscription holds
none."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from admission import BUSY_MESSAGE, LoadShedder
from config import Settings
from resolvers import passwords
from resolvers.realtime import KIND_NEW_FOLLOWER, encode_cursor, stream_event
from schema.relay import from_global_id
from server import SHEDDER_KEY, create_app
from server_ws import SOCKETS_KEY
from tao.models import now_ms
from tests.schema.client import GQL, graphql_settings, running_app
from tests.waiting import until
from tests.wsclient import VIEWER_EVENTS, WSClient

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


async def _serve(settings: Settings):
    """A test client of a real app built from `settings` (its shedder included)."""
    app = await asyncio.to_thread(create_app, settings)
    async with running_app(settings, app) as client:
        yield client


@pytest.fixture
async def g(settings: Settings):
    async for client in _serve(settings):
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


# ---- operations over an open WebSocket (graphql-transport-ws)

@pytest.fixture(params=["mysql", "sqlite"])
def ws_settings(request, test_id: str, tmp_path) -> Settings:
    services = request.getfixturevalue("services") if request.param == "mysql" else None
    s = graphql_settings(request.param, services, test_id, tmp_path)
    s.server.shed_loop_lag_ms = 0  # the bound alone (the lag's test below turns it on)
    s.server.max_requests_in_flight, s.server.admission_wait_ms = 2, 150
    return s


@pytest.fixture
async def wg(ws_settings: Settings):
    async for client in _serve(ws_settings):
        yield client


async def _hold_every_place(shedder: LoadShedder) -> int:
    n = 0
    while shedder.in_flight < shedder.max_in_flight:
        assert await shedder.enter()
        n += 1
    return n


REJECTED = 'taogram_requests_total{operation="anonymous",outcome="rejected"}'


async def _metric(g: GQL, series: str) -> float:
    """A series' value on the app's /metrics (0 when it has none yet)."""
    text = await (await g.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _busy(result: dict) -> None:
    """A refusal on the socket: an `error` message (no `data`), UNAVAILABLE, the HTTP refusal's text."""
    assert "data" not in result, result
    [error] = result["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE", error
    assert error["message"] == BUSY_MESSAGE


async def test_a_mutation_over_a_socket_waits_for_a_place_then_is_refused_and_the_socket_stays(wg: GQL):
    """Before: operations sent over an open socket took no place, so a client bypassed the bound
    by sending its mutations there (this sign-up ran at once, with every place taken)."""
    shedder = wg.client.app[SHEDDER_KEY]
    sock = await WSClient.connect(wg.client, "/graphql", None)
    held = await _hold_every_place(shedder)
    shed, rejected = await _metric(wg, "taogram_requests_shed_total"), await _metric(wg, REJECTED)
    started = time.monotonic()
    _busy(await sock.execute("1", SIGN_UP, {"u": "ws_shed"}))
    assert 0.1 < time.monotonic() - started < 2.0  # it waited `admission_wait_ms` for a place
    assert shedder.refused == 1 and shedder.in_flight == held
    # counted as an HTTP refusal is: shed, and a `rejected` operation
    assert await _metric(wg, "taogram_requests_shed_total") == shed + 1
    assert await _metric(wg, REJECTED) == rejected + 1
    for _ in range(held):
        shedder.release()
    # The same socket, still open, runs operations again; the refused sign-up wrote nothing.
    assert (await sock.execute("2", WHO, {"u": "ws_shed"}))["data"]["user"] is None
    result = await sock.execute("3", SIGN_UP, {"u": "ws_shed"})
    assert result["data"]["signUp"]["errors"] == [] and result["data"]["signUp"]["token"], result
    assert shedder.in_flight == 0 and shedder.refused == 1
    assert sock.close_code is None
    await sock.close()


async def test_operations_over_a_socket_are_served_in_turn_within_the_bound(wg: GQL):
    """Eight queries at once on one socket through a process that runs two at a time: all
    answered, none refused, never more than two in flight; and a place freed while one waits
    lets it run."""
    shedder = wg.client.app[SHEDDER_KEY]
    shedder.wait = 5.0
    peak = 0
    release = shedder.release

    def counted_release() -> None:
        nonlocal peak
        peak = max(peak, shedder.in_flight)
        release()
    shedder.release = counted_release
    sock = await WSClient.connect(wg.client, "/graphql", None)
    for i in range(8):
        await sock.subscribe(str(i), WHO, {"u": f"nobody{i}"})
    done: dict[str, dict] = {}
    while len(done) < 8:
        msg = await sock.receive()
        assert msg is not None and msg["type"] in ("next", "complete"), msg
        if msg["type"] == "next":
            done[msg["id"]] = msg["payload"]
    assert all(r["data"]["user"] is None for r in done.values()), done
    assert shedder.refused == 0 and 1 <= peak <= 2
    # A query that finds every place taken waits its turn, and runs when one is freed.
    held = await _hold_every_place(shedder)
    waiting = asyncio.create_task(sock.execute("w", WHO, {"u": "nobody"}))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    shedder.release()
    assert (await waiting)["data"]["user"] is None
    for _ in range(held - 1):
        shedder.release()
    for _ in range(50):
        if shedder.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert shedder.in_flight == 0 and shedder.refused == 0
    await sock.close()


async def test_an_operation_waiting_for_a_place_takes_none_when_its_socket_closes(wg: GQL):
    """A socket closed (or the operation completed by the client) while it waits: its task is
    cancelled, it takes no place, and none leaks."""
    shedder = wg.client.app[SHEDDER_KEY]
    shedder.wait = 5.0
    sock = await WSClient.connect(wg.client, "/graphql", None)
    (handler,) = wg.client.app[SOCKETS_KEY]
    held = await _hold_every_place(shedder)
    await sock.subscribe("1", WHO, {"u": "nobody"})
    await sock.subscribe("2", WHO, {"u": "nobody"})
    for _ in range(100):
        if len(handler.operations) == 2:
            break
        await asyncio.sleep(0.01)
    tasks = [op.task for op in handler.operations.values()]
    assert len(tasks) == 2 and not any(t.done() for t in tasks)  # both wait for a place
    await sock.ws.send_json({"type": "complete", "id": "1"})  # the client stops one
    await asyncio.sleep(0.1)
    await sock.close()  # and goes away with the other
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks)
    for _ in range(held):
        shedder.release()
    assert shedder.in_flight == 0 and shedder.refused == 0
    assert await shedder.enter() and await shedder.enter()  # both places are free
    shedder.release()
    shedder.release()


async def test_a_subscription_takes_a_place_to_start_and_holds_none_while_it_lives(wg: GQL):
    """Its start (the subscribe's parse, checks, the broker's listen, the stream's head) holds a
    place: refused when none is free, with nothing left listening. Started, it waits for events
    holding no place, so live subscriptions never fill the bound; its events still arrive."""
    shedder = wg.client.app[SHEDDER_KEY]
    token, bob_gid = await wg.sign_up("bob")
    carol_token, carol_gid = await wg.sign_up("carol")
    assert (await wg.mutate("follow", carol_token, bob_gid))["errors"] == []
    listeners = wg.tao.broker.stats()["listeners"]
    sock = await WSClient.connect(wg.client, "/graphql", token)
    await asyncio.sleep(0.2)
    watch = wg.tao.broker.stats()["listeners"]  # the socket's session watch
    held = await _hold_every_place(shedder)
    await sock.subscribe("1", VIEWER_EVENTS)
    msg = await sock.receive()
    assert msg is not None and msg["id"] == "1" and msg["type"] == "error", msg
    _busy({"errors": msg["payload"]})
    assert wg.tao.broker.stats()["listeners"] == watch  # nothing of it listens
    for _ in range(held):
        shedder.release()
    subs = 3
    for i in range(subs):  # more live subscriptions than places
        await sock.subscribe(f"s{i}", VIEWER_EVENTS)
    for _ in range(100):
        if wg.tao.broker.stats()["listeners"] == watch + subs:
            break
        await asyncio.sleep(0.02)
    assert wg.tao.broker.stats()["listeners"] == watch + subs
    for _ in range(100):
        if shedder.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert shedder.in_flight == 0  # listening, they hold no place
    status, body = await wg.post(WHO, {"u": "bob"})  # the bound is all HTTP's and the socket's
    assert status == 200 and body["data"]["user"], body
    assert (await sock.execute("q", WHO, {"u": "carol"}))["data"]["user"]["id"] == carol_gid
    bob = from_global_id(bob_gid, wg.tao.n_shards)[1]
    carol = from_global_id(carol_gid, wg.tao.n_shards)[1]
    await stream_event(wg.tao, [bob], KIND_NEW_FOLLOWER, {"user": carol}, near=bob).deliver(wg.tao)
    got = {}
    while len(got) < subs:
        msg = await sock.receive()
        assert msg is not None and msg["type"] == "next", msg
        got[msg["id"]] = msg["payload"]["data"]["viewerEvents"]["follower"]["username"]
    assert set(got.values()) == {"carol"}
    assert shedder.in_flight == 0 and shedder.refused == 1
    await sock.close()
    for _ in range(100):
        if wg.tao.broker.stats()["listeners"] == listeners:
            break
        await asyncio.sleep(0.02)
    assert wg.tao.broker.stats()["listeners"] == listeners and shedder.in_flight == 0


async def test_a_replaying_subscription_gives_its_place_back_at_its_first_event(wg: GQL):
    """A subscription resumed with `after` holds its place while it reads the backlog, and gives
    it back with its first event: what follows is sent at the client's pace, which must not
    hold a place (a client that does not read would hold it until the send times out)."""
    shedder = wg.client.app[SHEDDER_KEY]
    token, bob_gid = await wg.sign_up("bob")
    carol_token, carol_gid = await wg.sign_up("carol")
    assert (await wg.mutate("follow", carol_token, bob_gid))["errors"] == []
    bob = from_global_id(bob_gid, wg.tao.n_shards)[1]
    carol = from_global_id(carol_gid, wg.tao.n_shards)[1]
    for _ in range(3):
        await stream_event(wg.tao, [bob], KIND_NEW_FOLLOWER, {"user": carol}, near=bob).deliver(wg.tao)
    sock = await WSClient.connect(wg.client, "/graphql", token)
    (handler,) = wg.client.app[SOCKETS_KEY]
    in_flight_at_send: list[int] = []  # the places taken as each event goes out on the wire
    send_json = handler.websocket.send_json

    async def recorded(message):
        if message.get("type") == "next":
            in_flight_at_send.append(shedder.in_flight)
        await send_json(message)
    handler.websocket.send_json = recorded
    await sock.subscribe("1", VIEWER_EVENTS, {"after": encode_cursor(now_ms() - 60_000)})
    for _ in range(3):
        data = await sock.next_data("1")
        assert data["viewerEvents"]["follower"]["username"] == "carol"
    assert in_flight_at_send == [0, 0, 0], in_flight_at_send
    assert shedder.refused == 0
    await sock.close()


async def test_a_late_loop_refuses_operations_over_an_open_socket_and_keeps_it(g: GQL):
    shedder = g.client.app[SHEDDER_KEY]
    sock = await WSClient.connect(g.client, "/graphql", None)  # opened while the loop is on time
    await _stall_loop(shedder)
    _busy(await sock.execute("1", SIGN_UP, {"u": "late_ws"}))
    assert shedder.in_flight == 0
    deadline = time.monotonic() + 10
    while shedder.refuse_chance() > 0:
        assert time.monotonic() < deadline, f"the lag never fell: {shedder.lag}"
        await asyncio.sleep(0.05)
    assert (await sock.execute("2", WHO, {"u": "late_ws"}))["data"]["user"] is None  # nothing was written
    assert sock.close_code is None
    await sock.close()


# ---- a wait on the password pool holds no place (resolvers/passwords.py)

@pytest.fixture
async def pool_g(test_id: str, tmp_path):
    s = graphql_settings("sqlite", None, test_id, tmp_path)
    s.server.shed_loop_lag_ms = 0
    s.server.max_requests_in_flight, s.server.admission_wait_ms = 1, 300
    s.auth.password_hash_workers, s.auth.password_queue_max = 1, 2
    async for client in _serve(s):
        yield client


async def test_a_sign_in_waiting_on_the_password_pool_holds_no_place_and_the_pool_queue_is_bounded(pool_g: GQL):
    """A process that runs one operation at a time, its one password thread busy: a sign-up
    waiting for that thread gives its place back, so a query still starts at once (before, a
    flood of log-ins held every place while their hashes queued, and the process answered
    nothing else: bench/login_flood_bench.py --no-address-throttle); the pool's queue takes
    `password_queue_max` (2) and refuses the next at once, writing nothing."""
    shedder = pool_g.client.app[SHEDDER_KEY]
    base = passwords._queued[1]
    gate = threading.Event()
    busy = passwords._pool(1).submit(gate.wait, 30)  # the pool's one thread, taken

    def sign_up(name: str):
        return asyncio.ensure_future(pool_g.client.post("/graphql", json={"query": SIGN_UP, "variables": {"u": name}}))
    try:
        first = sign_up("pool_one")
        await until(lambda: passwords._queued[1] == base + 1, "the sign-up reached the pool", timeout=10, every=0.01)
        assert shedder.in_flight == 0  # its place given back while it waits
        started = time.monotonic()
        resp = await pool_g.client.post("/graphql", json={"query": WHO, "variables": {"u": "nobody"}})
        assert resp.status == 200 and (await resp.json())["data"] == {"user": None}
        assert time.monotonic() - started < 0.25 and shedder.refused == 0  # no wait for a place
        second = sign_up("pool_two")
        await until(lambda: passwords._queued[1] == base + 2, "the second sign-up reached the pool", timeout=10,
                    every=0.01)
        started = time.monotonic()
        third = await (await pool_g.client.post("/graphql", json={"query": SIGN_UP, "variables": {"u": "pool_three"}}
                                                )).json()
        assert time.monotonic() - started < 0.25  # refused at once, not after a wait
        [error] = third["errors"]
        assert error["extensions"]["code"] == "UNAVAILABLE" and "retry" in error["message"], third
    finally:
        gate.set()
    await asyncio.wrap_future(busy)
    for done in (await first, await second):
        body = await done.json()
        assert body["data"]["signUp"]["errors"] == [] and body["data"]["signUp"]["token"], body
    who = await (await pool_g.client.post("/graphql", json={"query": WHO, "variables": {"u": "pool_three"}})).json()
    assert who["data"]["user"] is None  # the refused sign-up wrote nothing
    assert shedder.in_flight == 0 and passwords._queued[1] == base
