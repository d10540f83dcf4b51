"""A graphql-transport-ws test client over aiohttp (in-process test servers and real server
processes alike): connect with a token, subscribe, read frames, see how the server closed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

PROTOCOL = "graphql-transport-ws"


class WSClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.close_code: int | None = None
        self.close_reason: str = ""

    @classmethod
    async def connect(cls, session: Any, url: str, token: str | None, *, expect_ack: bool = True) -> WSClient:
        """`session` is an aiohttp ClientSession or TestClient; `url` its /graphql."""
        ws = await session.ws_connect(url, protocols=[PROTOCOL], autoclose=False)
        client = cls(ws)
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await ws.send_json({"type": "connection_init", "payload": payload})
        if expect_ack:
            msg = await client.receive()
            assert msg is not None and msg["type"] == "connection_ack", (msg, client.close_code, client.close_reason)
        return client

    async def subscribe(self, op_id: str, query: str, variables: dict | None = None) -> None:
        await self.ws.send_json({"type": "subscribe", "id": op_id,
                                 "payload": {"query": query, "variables": variables or {}}})

    async def receive(self, timeout: float = 10.0) -> dict | None:
        """The next protocol message; None once the server closed (then see close_code)."""
        msg = await asyncio.wait_for(self.ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            return msg.json()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            if msg.type == aiohttp.WSMsgType.CLOSE:
                self.close_code, self.close_reason = msg.data, msg.extra or ""
            else:
                self.close_code = self.close_code or self.ws.close_code
            await self.ws.close()
            return None
        raise AssertionError(f"unexpected frame {msg.type}: {msg.data!r}")

    async def next_data(self, op_id: str, timeout: float = 10.0) -> dict:
        """The data of the next `next` message of operation `op_id` (other ops' frames are skipped)."""
        while True:
            msg = await self.receive(timeout)
            assert msg is not None, f"closed {self.close_code} {self.close_reason!r} while waiting for {op_id}"
            if msg.get("id") != op_id:
                continue
            assert msg["type"] == "next", msg
            assert "errors" not in msg["payload"], msg["payload"]
            return msg["payload"]["data"]

    async def execute(self, op_id: str, query: str, variables: dict | None = None,
                      timeout: float = 10.0) -> dict:
        """Run a query or mutation as operation `op_id`: its one result as an HTTP body would
        carry it (`data`, `errors`), or `{"errors": [...]}` for a protocol `error` message."""
        await self.subscribe(op_id, query, variables)
        result: dict | None = None
        while True:
            msg = await self.receive(timeout)
            assert msg is not None, f"closed {self.close_code} {self.close_reason!r} while running {op_id}"
            if msg.get("id") != op_id:
                continue
            if msg["type"] == "error":
                return {"errors": msg["payload"]}
            if msg["type"] == "complete":
                assert result is not None, f"{op_id} completed with no result"
                return result
            assert msg["type"] == "next" and result is None, msg  # a query has exactly one result
            result = msg["payload"]

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        async with asyncio.timeout(timeout):
            while await self.receive(timeout) is not None:
                pass
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()

    def drop(self) -> None:
        """End this client's connection at once, with no close handshake, as a client that died
        would: for a test's client that stopped reading (`pause_reading`), whose close (the test
        client's, at its teardown, when the test did not close it) would otherwise wait aiohttp's
        `ws_close` timeout, 10 s, for a close frame it never reads."""
        self.ws._writer.transport.abort()


VIEWER_EVENTS = """subscription($after: String) { viewerEvents(after: $after) {
  __typename cursor eventId
  ... on NewFollowerEvent { follower { username } }
  ... on FollowRequestEvent { requester { username } }
} }"""
