"""A MemcachedCache in another OS process, driven over a pipe: the "other process" of the
cross-process tests (its own heartbeat, connections and view of which servers are suspect)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tao.cache import Install, MemcachedCache
from tests.tao.procs import ChildProcess


def _serve(conn: Any, servers: list[str], kwargs: dict[str, Any]) -> None:
    async def main() -> None:
        tier = MemcachedCache(servers, **kwargs)
        try:
            while True:
                msg = await asyncio.to_thread(conn.recv)
                if msg is None:
                    return
                op, arg = msg
                if op == "install":
                    installs = [Install(k, v, (lambda d: lambda old: dict(d))(data)) for k, v, data in arg]
                    conn.send(sorted(await tier.install_many(installs)))
                elif op == "get":
                    conn.send(await tier.get_many(arg))
                elif op == "stats":
                    conn.send(tier.stats())
                elif op == "hold_gil":
                    conn.send(hold_gil(arg))
        finally:
            await tier.close()

    asyncio.run(main())


def hold_gil(seconds: float) -> float:
    """Block the event loop and starve every other thread of this process (its heartbeats
    included) for about `seconds`: `sum` over a range runs in C and never releases the GIL.
    Returns how long the hold lasted."""
    started = time.perf_counter()
    sum(range(10_000_000))
    n = int(seconds / max(time.perf_counter() - started, 1e-6) * 10_000_000)
    started = time.perf_counter()
    sum(range(n))
    return time.perf_counter() - started


class RemoteTier(ChildProcess):
    def __init__(self, servers: list[str], **kwargs: Any) -> None:
        super().__init__(_serve, servers, kwargs)

    def send_get(self, keys: list[str]) -> None:
        """Queue a get without waiting (e.g. for a process that is stopped); see `receive`."""
        self.send(("get", keys))

    async def install(self, items: list[tuple[str, int, dict]]) -> set[str]:
        return set(await self.request(("install", items), "install"))

    async def get(self, keys: list[str]) -> dict:
        return await self.request(("get", keys), "get")

    async def stats(self) -> dict:
        return await self.request(("stats", None), "stats")

    async def hold_gil(self, seconds: float) -> float:
        """Starve the child of its own CPU (event loop and heartbeat threads) for ~`seconds`."""
        return await self.request(("hold_gil", seconds), "hold_gil")
