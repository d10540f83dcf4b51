"""A MemcachedCache in another OS process, driven over a pipe: the "other process" of the
cross-process tests (its own heartbeat, connections and view of which servers are suspect)."""

from __future__ import annotations

import asyncio
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
        finally:
            await tier.close()

    asyncio.run(main())


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
