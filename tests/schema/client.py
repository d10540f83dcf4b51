"""A GraphQL test client over the real app (aiohttp test server, real store), and its fixtures' helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings
from server import TAO_KEY, create_app
from tao import Tao, open_tao
from tests.tao.conftest import make_settings

TEST_COST_BUDGET = 1_000_000
TEST_MAX_QUERY_COST = 50_000


def graphql_settings(backend: str, services: Any, test_id: str, tmp_path: Any) -> Settings:
    s = make_settings(backend, services, test_id, tmp_path)
    # Cheap argon2 for tests (the production cost is a setting; hashing runs in a thread either way).
    s.auth.argon2_time_cost, s.auth.argon2_memory_cost_kib, s.auth.argon2_parallelism = 1, 1024, 1
    # Tests sign up dozens of accounts from one address, far past a person's budget (a sign-up
    # costs 512 points); the tests of the budget set their own (`gql_with(cost_budget=...)`).
    s.limits.cost_budget = TEST_COST_BUDGET
    # Tests read whole surfaces in one query (every highlight's stories, every thread's messages
    # with their readers: 10 000-15 000 points since lists are costed by their bound, a client
    # would page them); the tests of the limit set it back (`gql_with(max_query_cost=5000)`), and
    # tests/schema/test_cost.py checks the app's own queries against the real default.
    s.limits.max_query_cost = TEST_MAX_QUERY_COST
    return s


def password_of(username: str) -> str:
    """The password the tests give an account: `password-<username>`, unless the product refuses
    it as too easy to guess (`password-cy`: zxcvbn scores it 1), then with a suffix that makes it
    strong. Deterministic: a log-in by it finds the sign-up's."""
    from zxcvbn import zxcvbn  # here, not through resolvers: on the loop, the guard refuses the product's call

    from resolvers.passwords import MIN_SCORE, personal_words, weakness

    password = "password-" + username
    words = personal_words(username, username.title())
    if weakness(password, username) or zxcvbn(password, user_inputs=words)["score"] < MIN_SCORE:
        password += "-correct-staple"
    return password


class GQL:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def tao(self) -> Tao:
        return self.client.app[TAO_KEY]

    async def post(self, query: str, variables: dict | None = None, token: str | None = None,
                   headers: dict | None = None) -> tuple[int, dict]:
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        resp = await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)
        return resp.status, await resp.json()

    async def __call__(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Run an operation that must answer 200; returns the whole response body."""
        status, body = await self.post(query, variables, token)
        assert status == 200, body
        return body

    async def ok(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """Run an operation that must succeed with no errors; returns `data`."""
        body = await self(query, variables, token)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def measure_warm(self, query: str, variables: dict | None = None, token: str | None = None,
                           *, attempts: int = 3) -> tuple[dict, dict]:
        """Run a query on a warm cache; returns (its data, the store's counters for it).

        A round during which this process could not watch a memcached server (a blind spot: the
        process itself was starved, e.g. by a long GC pass of the test run's heap) reads SQL by
        design (docs/caching.md, "blind spots"): such a round says nothing about batching, so it
        is run again after the read grace, up to `attempts` times."""
        for attempt in range(attempts):
            self.tao.reset_stats()
            data = await self.ok(query, variables, token)
            stats = self.tao.stats()
            if not (stats.get("cache_blind_spots") or stats.get("cache_bypassed")) or attempt == attempts - 1:
                return data, stats
            await asyncio.sleep(0.6)
        raise AssertionError("unreachable")

    async def sign_up(self, username: str, *, private: bool = False) -> tuple[str, str]:
        """A new account; returns (token, global id)."""
        data = await self.ok(
            "mutation($i: AccountSignUpInput!) { signUp(input: $i) { token user { id } errors { code } } }",
            {"i": {"username": username, "password": password_of(username), "fullName": username.title()}},
        )
        p = data["signUp"]
        assert p["errors"] == [], p
        if private:
            await self.ok("mutation { updateProfile(input: {isPrivate: true}) { errors { code } } }", token=p["token"])
        return p["token"], p["user"]["id"]

    async def mutate(
        self, name: str, token: str, user_id: str, fields: str = "status errors { code message field }"
    ) -> dict:
        data = await self.ok(
            f"mutation($i: ID!) {{ {name}(input: {{userId: $i}}) {{ {fields} }} }}", {"i": user_id}, token
        )
        return data[name]


@asynccontextmanager
async def running_app(settings: Settings, app: web.Application | None = None) -> AsyncIterator[GQL]:
    """Serve the app on a test server (built here, in a thread, unless given: building it does
    blocking file-system calls, which the blocking-call guard refuses on the event loop)."""
    # MySQL schemas are an operator's step (the app refuses an unmigrated shard): migrate first.
    pre = await open_tao(settings, migrate=True, start_worker=False)
    await pre.close()
    if app is None:
        app = await asyncio.to_thread(create_app, settings)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield GQL(client)
    finally:
        await client.close()
