"""The real-time layer across real `server.py` processes on the real servers (MariaDB,
memcached, Redis): a write on one process pushed to a subscriber on another, resume with no gap
or duplicate, Redis killed and restarted, log-out closing sockets elsewhere, orderly shut-down,
and the `server.processes` supervisor."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
import pytest

from resolvers.accounts import _parse_token
from resolvers.realtime import CLOSE_FORBIDDEN, CLOSE_GOING_AWAY
from tao import open_tao
from tests.harness import Services
from tests.schema.client import graphql_settings, password_of
from tests.serverproc import ServerProcess, started_servers
from tests.wsclient import VIEWER_EVENTS, WSClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def rt_settings(services: Services, test_id: str, tmp_path):
    s = graphql_settings("mysql", services, test_id, tmp_path)
    s.jobs.in_process_worker = True
    s.broker.reconnect_min, s.broker.reconnect_max = 0.05, 0.3
    return s


@pytest.fixture
async def two_servers(rt_settings, tmp_path):
    async with started_servers(rt_settings, tmp_path) as procs:
        yield procs


class Api:
    def __init__(self, http: aiohttp.ClientSession, server: ServerProcess) -> None:
        self.http, self.server = http, server

    async def ok(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(self.server.base + "/graphql", json={"query": query, "variables": variables or {}},
                                  headers=headers) as resp:
            body = await resp.json()
        assert resp.status == 200 and "errors" not in body, body
        return body["data"]

    async def sign_up(self, name: str) -> tuple[str, str]:
        d = await self.ok(
            "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token user { id } errors { code } } }",
            {"i": {"username": name, "password": password_of(name), "fullName": name}},
        )
        return d["signUp"]["token"], d["signUp"]["user"]["id"]

    async def follow(self, token: str, user_id: str) -> None:
        d = await self.ok("mutation($i: ID!) { follow(input: {userId: $i}) { status errors { code } } }",
                          {"i": user_id}, token)
        assert d["follow"]["errors"] == [], d

    async def ws(self, token: str) -> WSClient:
        return await WSClient.connect(self.http, self.server.base + "/graphql", token)


async def events(sock: WSClient, n: int, timeout: float = 10.0) -> list[dict]:
    return [(await sock.next_data("1", timeout))["viewerEvents"] for _ in range(n)]


async def test_write_on_one_process_reaches_a_subscriber_on_the_other_and_resume_has_no_gap(two_servers) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        api_a, api_b = Api(http, a), Api(http, b)
        tb, idb = await api_a.sign_up("bob")
        fans = [await api_a.sign_up(f"fan{i}") for i in range(6)]
        sock = await api_b.ws(tb)
        await sock.subscribe("1", VIEWER_EVENTS)
        await asyncio.sleep(0.5)
        await api_a.follow(fans[0][0], idb)
        (first,) = await events(sock, 1)
        assert first["follower"]["username"] == "fan0"
        await sock.close()
        for t, _ in fans[1:3]:            # while bob is away
            await api_b.follow(t, idb)
        sock = await api_a.ws(tb)         # back, on the other process
        await sock.subscribe("1", VIEWER_EVENTS, {"after": first["cursor"]})
        await asyncio.sleep(0.2)
        for t, _ in fans[3:6]:            # live again, through both processes
            await (api_a if _parse_token(t)[0] % 2 else api_b).follow(t, idb)
        got = await events(sock, 5)
        assert [g["follower"]["username"] for g in got] == [f"fan{i}" for i in range(1, 6)]
        assert len({g["eventId"] for g in got} | {first["eventId"]}) == 6
        with pytest.raises(TimeoutError):
            await sock.next_data("1", timeout=1.0)
        await sock.close()


async def test_killed_redis_loses_no_write_and_live_delivery_resumes(two_servers, services: Services) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        api_a, api_b = Api(http, a), Api(http, b)
        tb, idb = await api_a.sign_up("bob")
        fans = [await api_a.sign_up(f"fan{i}") for i in range(4)]
        sock = await api_b.ws(tb)
        await sock.subscribe("1", VIEWER_EVENTS)
        await asyncio.sleep(0.5)
        await api_a.follow(fans[0][0], idb)
        (first,) = await events(sock, 1)
        await asyncio.to_thread(services.kill_redis)
        await api_a.follow(fans[1][0], idb)     # acknowledged while Redis is down: stored
        await api_a.follow(fans[2][0], idb)
        await asyncio.to_thread(services.start_redis)
        # The subscriber's process resubscribes and re-reads its stream: nothing is lost.
        missed = await events(sock, 2, timeout=20)
        assert [m["follower"]["username"] for m in missed] == ["fan1", "fan2"]
        await asyncio.sleep(0.5)
        await api_a.follow(fans[3][0], idb)     # and live delivery is back
        (live,) = await events(sock, 1, timeout=20)
        assert live["follower"]["username"] == "fan3"
        await sock.close()
        # A client resuming by cursor from before the outage gets each event once, in order.
        sock = await api_a.ws(tb)
        await sock.subscribe("1", VIEWER_EVENTS, {"after": first["cursor"]})
        again = await events(sock, 3)
        assert [e["eventId"] for e in again] == [m["eventId"] for m in missed] + [live["eventId"]]
        await sock.close()


async def test_log_out_on_one_process_closes_the_sessions_sockets_on_the_other(two_servers) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        api_a, api_b = Api(http, a), Api(http, b)
        token, _ = await api_a.sign_up("ada")
        sock = await api_b.ws(token)
        await sock.subscribe("1", VIEWER_EVENTS)
        await asyncio.sleep(0.3)
        began = asyncio.get_running_loop().time()
        await api_a.ok("mutation { logOut { ok } }", token=token)
        assert await sock.wait_closed(timeout=5) == CLOSE_FORBIDDEN
        assert asyncio.get_running_loop().time() - began < 3.0  # promptly, not at the periodic check


async def test_sigterm_closes_websockets_with_1001_and_exits_cleanly(two_servers) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        token, _ = await Api(http, a).sign_up("ada")
        sock = await Api(http, b).ws(token)
        await sock.subscribe("1", VIEWER_EVENTS)
        await asyncio.sleep(0.3)
        code = await asyncio.to_thread(b.terminate)
        assert await sock.wait_closed() == CLOSE_GOING_AWAY
        assert "shutting down" in sock.close_reason
        assert code == 0, b.log_tail()


async def test_supervisor_runs_n_processes_on_one_port(rt_settings, tmp_path) -> None:
    pre = await open_tao(rt_settings, migrate=True, start_worker=False)
    await pre.close()
    settings = rt_settings.model_copy(update={"server": rt_settings.server.model_copy(update={"processes": 2})})
    server = ServerProcess(settings, tmp_path / "supervised.log")
    await asyncio.to_thread(server.start)
    try:
        pids = set()
        async with aiohttp.ClientSession() as http:
            for _ in range(300):  # the second process may still be starting: up to ~30 s
                async with aiohttp.ClientSession() as fresh:  # a new connection each time
                    async with fresh.get(server.base + "/version") as resp:
                        pids.add((await resp.json())["pid"])
                if len(pids) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(pids) == 2 and server.proc.pid not in pids
            token, _ = await Api(http, server).sign_up("ada")
            sock = await Api(http, server).ws(token)
            await sock.subscribe("1", VIEWER_EVENTS)
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(server.terminate) == 0, server.log_tail()
            assert await sock.wait_closed() == CLOSE_GOING_AWAY
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        server.kill()


async def test_sockets_per_address_are_capped_and_a_closed_one_frees_its_slot(rt_settings, tmp_path) -> None:
    pre = await open_tao(rt_settings, migrate=True, start_worker=False)
    await pre.close()
    rt_settings.realtime.max_sockets_per_address = 3
    server = ServerProcess(rt_settings, tmp_path / "capped.log")
    await asyncio.to_thread(server.start)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, server)
            token, _ = await api.sign_up("ada")
            anonymous = await WSClient.connect(http, server.base + "/graphql", None)
            socks = [await api.ws(token), await api.ws(token), anonymous]
            # The fourth from this address (authenticated or not) is refused before the upgrade.
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await api.ws(token)
            assert refused.value.status == 429
            async with http.get(server.base + "/graphql", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                "Sec-WebSocket-Protocol": "graphql-transport-ws"}) as resp:
                body = await resp.json()
            assert resp.status == 429 and body["errors"][0]["extensions"]["code"] == "TOO_MANY_SOCKETS", body
            assert "close one" in body["errors"][0]["message"]
            # HTTP from the same address is not affected, and the open sockets still work.
            assert (await api.ok("{ viewer { username } }", token=token)) == {"viewer": {"username": "ada"}}
            assert (await socks[0].execute("q", "{ viewer { username } }"))["data"] == {"viewer": {"username": "ada"}}
            # A closed socket (the client's close, or its connection lost without a close
            # frame) gives its slot back.
            await socks.pop().close()
            lost = socks.pop(0)
            lost.ws.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
            await lost.close()
            for _ in range(50):  # the server notices the lost connection promptly, not at the heartbeat
                try:
                    socks.append(await api.ws(token))
                except aiohttp.WSServerHandshakeError as e:
                    assert e.status == 429
                    await asyncio.sleep(0.1)
                if len(socks) == 3:
                    break
            assert len(socks) == 3
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await api.ws(token)
            for s in socks:
                await s.close()
    finally:
        server.kill()
