"""Renames of one account sent at once to two real `server.py` processes: no name is left
claimed by nobody (docs/accounts.md, "Renames"). Before the sixteenth session each rename
released the name it started from, and the names of all but the last stayed claimed for good
by an account that bore none of them."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.harness import Services
from tests.schema.client import graphql_settings
from tests.serverproc import started_servers
from tests.test_throttle_processes import call, sign_up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RENAME = "mutation($u: String!) { updateProfile(input: {username: $u}) { user { username } errors { code } } }"


@pytest.fixture
async def two_servers(services: Services, test_id: str, tmp_path):
    s = graphql_settings("mysql", services, test_id, tmp_path)
    s.auth.username_hold_seconds = 0  # a renamed-away name is free at once: all but the last must be
    async with started_servers(s, tmp_path) as procs:
        yield procs


async def test_renames_at_once_on_two_processes_leave_only_the_last_name_claimed(two_servers) -> None:
    a, b = two_servers
    names = [f"ada_{i}" for i in range(10)]
    async with aiohttp.ClientSession() as http:
        token, _ = await sign_up(http, a, "ada")
        answers = await asyncio.gather(*[call(http, (a, b)[i % 2], RENAME, {"u": n}, token)
                                         for i, n in enumerate(names)])
        assert all(r["data"]["updateProfile"]["errors"] == [] for r in answers), answers
        bears = (await call(http, b, "{ viewer { username } }", token=token))["data"]["viewer"]["username"]
        assert bears in names
        for i, name in enumerate(["ada", *names]):  # every other name is anyone's now
            if name != bears:
                other, _ = await sign_up(http, (a, b)[i % 2], name)
                assert other, name
