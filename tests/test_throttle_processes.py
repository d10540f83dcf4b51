"""Throttles across two real `server.py` processes sharing Redis (issue 15, item 5): the log-in
throttle, a per-user action limit and the per-viewer query cost budget are one budget for
both processes, not one each."""

from __future__ import annotations

import aiohttp
import pytest

from tests.harness import Services
from tests.schema.client import graphql_settings, password_of
from tests.serverproc import ServerProcess, started_servers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

LOG_IN = """mutation($u: String!, $p: String!) {
  logIn(input: {username: $u, password: $p}) { token errors { code retryAfter } }
}"""
FOLLOW = "mutation($i: ID!) { follow(input: {userId: $i}) { status errors { code } } }"
HEAVY = "{ viewer { followers(first: 40) { edges { node { followers(first: 10) { edges { node { id } } } } } } } }"


@pytest.fixture
async def two_servers(services: Services, test_id: str, tmp_path):
    s = graphql_settings("mysql", services, test_id, tmp_path)
    s.auth.login_failures_per_username = 4
    s.throttle.follows_per_hour, s.throttle.follows_per_day = 3, 10
    s.limits.cost_budget, s.limits.cost_window_seconds = 10_000, 3600
    async with started_servers(s, tmp_path) as procs:
        yield procs


async def call(http: aiohttp.ClientSession, server: ServerProcess, query: str, variables: dict | None = None,
               token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(server.base + "/graphql", json={"query": query, "variables": variables or {}},
                         headers=headers) as resp:
        return await resp.json()


async def sign_up(http, server, name: str) -> tuple[str, str]:
    d = (await call(http, server, "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token user { id } } }",
                    {"i": {"username": name, "password": password_of(name)}}))["data"]["signUp"]
    return d["token"], d["user"]["id"]


async def test_throttles_are_shared_by_every_server_process(two_servers) -> None:
    a, b = two_servers
    both = [a, b]
    async with aiohttp.ClientSession() as http:
        ada, _ = await sign_up(http, a, "ada")
        targets = [(await sign_up(http, both[i % 2], f"t{i}"))[1] for i in range(4)]

        # Log-in failures: 4 per account in all, counted on either process.
        answers = []
        for i in range(6):
            p = (await call(http, both[i % 2], LOG_IN, {"u": "ada", "p": "wrong password"}))["data"]["logIn"]
            answers.append(p["errors"][0]["code"])
        assert answers == ["INVALID_CREDENTIALS"] * 4 + ["TOO_MANY_ATTEMPTS"] * 2
        p = (await call(http, b, LOG_IN, {"u": "ada", "p": "password-ada"}))["data"]["logIn"]
        assert p["token"] is None and p["errors"][0]["code"] == "TOO_MANY_ATTEMPTS" and p["errors"][0]["retryAfter"] > 0

        # An action limit: 3 follows an hour, alternating processes.
        results = []
        for i, target in enumerate(targets):
            body = await call(http, both[i % 2], FOLLOW, {"i": target}, ada)
            results.append(body["errors"][0]["extensions"] if "errors" in body else "ok")
        assert results[:3] == ["ok"] * 3
        assert results[3]["code"] == "THROTTLED" and 0 < results[3]["retryAfter"] <= 1200

        # The cost budget: one budget of 10 000 points for the viewer, whichever process answers.
        bob, _ = await sign_up(http, b, "bob")
        first = await call(http, a, HEAVY, token=bob)
        cost = first["extensions"]["cost"]["requestedQueryCost"]
        assert "errors" not in first and 500 < cost < 5000
        left = first["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        ok, i = 1, 1
        while True:
            body = await call(http, both[i % 2], HEAVY, token=bob)
            i += 1
            if "errors" in body:
                break
            ok += 1
        assert ok == 10_000 // cost, (ok, cost, left)  # a process-local budget would allow twice as many
        error = body["errors"][0]
        assert error["extensions"]["code"] == "THROTTLED" and error["extensions"]["retryAfter"] > 0
