"""Sketches' hints against the real Redis: `hints_at_least` answers one flag per key, in order."""

from __future__ import annotations

import asyncio

import pytest

from config import BrokerSettings
from tao.sketches import Sketches


async def test_hints_at_least_flags_each_key_in_order(services, test_id):
    sk = Sketches(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id))
    try:
        await sk.hint_set("a", 100, 60_000)
        await sk.hint_set("b", 99, 60_000)
        await sk.hint_set("gone", 500, 1)  # expires at once
        await asyncio.sleep(0.01)
        keys = ["b", "missing", "a", "gone", "a"]
        assert await sk.hints_at_least(keys, 100) == [False, False, True, False, True]
        assert await sk.hints_at_least(keys, 99) == [True, False, True, False, True]
        assert await sk.hints_at_least([], 0) == []
        many = [f"k{i}" for i in range(1500)]
        for i in range(0, 1500, 7):
            await sk.hint_set(many[i], i, 60_000)
        assert await sk.hints_at_least(many, 700) == [i % 7 == 0 and i >= 700 for i in range(1500)]
    finally:
        await sk.close()


async def test_hints_at_least_reloads_its_script_after_a_flush(services, test_id):
    sk = Sketches(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id))
    try:
        await sk.hint_set("a", 5, 60_000)
        assert await sk.hints_at_least(["a"], 5) == [True]
        await sk._redis().script_flush()  # a restarted Redis forgets loaded scripts
        assert await sk.hints_at_least(["a"], 6) == [False]
        assert await sk.hints_at_least(["a"], 5) == [True]
    finally:
        await sk.close()



async def test_hints_at_least_refuses_keys_it_could_not_tell_apart(services, test_id):
    sk = Sketches(BrokerSettings(backend="redis", url=services.redis_url, channel_prefix=test_id))
    try:
        for bad in (["a\nb"], ["a", ""], ["a\n"]):  # keys travel newline-joined: these would shift the flags
            with pytest.raises(ValueError):
                await sk.hints_at_least(bad, 0)
    finally:
        await sk.close()
