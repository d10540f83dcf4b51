"""Collapse concurrent loads of the same key to one load per process (a thundering herd on one hot
missing key becomes one SQL query, whatever the number of waiting requests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any


class SingleFlight:
    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future] = {}

    async def load_many(
        self, keys: Sequence[Hashable], fetch: Callable[[list[Hashable]], Awaitable[dict[Hashable, Any]]],
    ) -> dict[Hashable, Any]:
        """Return {key: value} for every key. Keys already being loaded by another task are awaited;
        the rest are fetched here with one `fetch(keys)` call (which must answer every key it gets)."""
        loop = asyncio.get_running_loop()
        mine: list[Hashable] = []
        theirs: dict[Hashable, asyncio.Future] = {}
        for k in dict.fromkeys(keys):
            fut = self._inflight.get(k)
            if fut is None:
                self._inflight[k] = loop.create_future()
                mine.append(k)
            else:
                theirs[k] = fut
        out: dict[Hashable, Any] = {}
        if mine:
            try:
                got = await fetch(mine)
            except BaseException as exc:
                for k in mine:
                    fut = self._inflight.pop(k)
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                        fut.exception()  # mark retrieved: followers may be none
                raise
            for k in mine:
                fut = self._inflight.pop(k)
                out[k] = got[k]
                if not fut.done():
                    fut.set_result(got[k])
        for k, fut in theirs.items():
            out[k] = await asyncio.shield(fut)
        return out
