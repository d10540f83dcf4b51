"""A MemcachedCache in another OS process, driven over a pipe: the "other process" of the
cross-process tests (its own heartbeat, connections and view of which servers are suspect)."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

from tao.cache import Install, MemcachedCache

_CALL_TIMEOUT = 30.0  # a hung child fails the test instead of hanging it


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


class RemoteTier:
    def __init__(self, servers: list[str], **kwargs: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, servers, kwargs), daemon=True)
        self._proc.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    async def _call(self, op: str, arg: Any) -> Any:
        def roundtrip() -> Any:
            self._conn.send((op, arg))
            if not self._conn.poll(_CALL_TIMEOUT):
                raise TimeoutError(f"remote tier did not answer {op} within {_CALL_TIMEOUT}s")
            return self._conn.recv()

        return await asyncio.to_thread(roundtrip)

    def send_get(self, keys: list[str]) -> None:
        """Queue a get without waiting (e.g. for a process that is stopped); see `receive`."""
        self._conn.send(("get", keys))

    async def receive(self) -> Any:
        def recv() -> Any:
            if not self._conn.poll(_CALL_TIMEOUT):
                raise TimeoutError(f"remote tier did not answer within {_CALL_TIMEOUT}s")
            return self._conn.recv()

        return await asyncio.to_thread(recv)

    async def install(self, items: list[tuple[str, int, dict]]) -> set[str]:
        return set(await self._call("install", items))

    async def get(self, keys: list[str]) -> dict:
        return await self._call("get", keys)

    async def stats(self) -> dict:
        return await self._call("stats", None)

    async def close(self) -> None:
        def stop() -> None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()

        await asyncio.to_thread(stop)
