"""Waiting in a test for something another task or process does: poll a probe until it holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest


async def until(probe: Callable[[], Any | Awaitable[Any]], what: str, *, timeout: float = 30.0,
                every: float = 0.1) -> Any:
    """Call `probe()` (plain or async) every `every` seconds until it returns a truthy value,
    and return that; fail the test naming `what` if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"never happened within {timeout}s: {what}")
        await asyncio.sleep(every)
