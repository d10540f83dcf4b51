"""Running one GraphQL read over HTTP and over a WebSocket (`graphql-transport-ws`) and comparing
what a client learns from each: the privacy tests over the socket (`test_privacy_ws_*`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.schema.client import GQL
from tests.wsclient import WSClient

PRIVATE = "mutation($p: Boolean!) { updateProfile(input: {isPrivate: $p}) { errors { code } } }"


def _comparable(body: dict) -> dict:
    """What a client learns from a result: its data and its errors' codes and paths (a request id
    or a message's wording may differ between the transports)."""
    errors = sorted((e.get("extensions", {}).get("code"), tuple(e.get("path") or ())) for e in body.get("errors", []))
    return {"data": body.get("data"), "errors": errors}


class Both:
    """One viewer's reads over HTTP and over one long-lived WebSocket."""

    def __init__(self, gql: GQL, token: str | None, sock: WSClient) -> None:
        self.gql, self.token, self.sock = gql, token, sock
        self._ops = 0

    async def ws(self, query: str, variables: dict | None = None) -> dict:
        self._ops += 1
        return await self.sock.execute(f"op{self._ops}", query, variables)

    async def read(self, query: str, variables: dict | None = None) -> dict:
        """The read's comparable result, asserted the same over HTTP and over the socket."""
        http = _comparable(await self.gql(query, variables, self.token))
        ws = _comparable(await self.ws(query, variables))
        assert ws == http, f"WebSocket and HTTP disagree\n  ws:   {ws}\n  http: {http}"
        return http


@asynccontextmanager
async def both(gql: GQL, token: str | None) -> AsyncIterator[Both]:
    sock = await WSClient.connect(gql.client, "/graphql", token)
    try:
        yield Both(gql, token, sock)
    finally:
        await sock.close()


def mentions(result: dict, *ids: str) -> bool:
    """Whether any of the ids appears anywhere in the result (data or errors)."""
    text = json.dumps(result)
    return any(i in text for i in ids)
