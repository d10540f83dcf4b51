"""GraphiQL, served by the app, loads in a real browser with no internet access and runs a query.

The real aiohttp server (embedded default: SQLite, in-process cache) listens on a free port;
headless Chromium opens `/graphql`, and the test drives it over the DevTools protocol (its
websocket, with aiohttp's client): it waits for GraphiQL's editor, types a query into it, presses
the run button and waits until the result pane shows the server's answer. Every request the
page made must have gone to the app itself (the assets are vendored; nothing from a CDN).

Chromium is a dependency of the test suite (`scripts/ensure-deps.sh` installs it): a missing
browser fails this test, it is not skipped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from config import Settings
from server import create_app

STEP_TIMEOUT = 30.0  # seconds for any one browser step (the test box is shared and slow)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-default-apps",
                  "--disable-extensions", "--remote-debugging-port=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def _server(tmp_path) -> AsyncIterator[str]:
    s = Settings()
    s.store.sqlite_dir = str(tmp_path / "shards")
    s.jobs.in_process_worker = False
    runner = web.AppRunner(await asyncio.to_thread(create_app, s))
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def _chromium(tmp_path) -> AsyncIterator[str]:
    """Start headless Chromium; yields its browser-level DevTools websocket URL."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: run `make deps` (scripts/ensure-deps.sh installs it)"
    proc = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        url = await asyncio.wait_for(_devtools_url(proc), STEP_TIMEOUT)
        yield url
    finally:
        # Chromium runs helper processes (zygote, renderer, GPU): end the whole group it leads.
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), STEP_TIMEOUT)


async def _devtools_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    seen = []
    while True:
        line = (await proc.stderr.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"chromium exited before DevTools listened: {''.join(seen)[-2000:]}")
        seen.append(line)
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            return m.group(1)


class DevTools:
    """A minimal Chrome DevTools protocol client: commands with replies, and events collected."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self.pending.pop(data.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(data)
            elif "method" in data:
                self.events.append(data)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("DevTools connection closed"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        msg: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[msg["id"]] = fut
        await self.ws.send_str(json.dumps(msg))
        reply = await asyncio.wait_for(fut, STEP_TIMEOUT)
        assert "error" not in reply, reply
        return reply["result"]

    async def evaluate(self, expression: str, session: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True}, session)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def wait_for(self, expression: str, session: str, what: str) -> Any:
        """Poll a page expression until it is truthy; its value."""
        async def poll() -> Any:
            while True:
                value = await self.evaluate(expression, session)
                if value:
                    return value
                await asyncio.sleep(0.2)
        try:
            return await asyncio.wait_for(poll(), STEP_TIMEOUT)
        except TimeoutError:
            text = await self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''", session)
            raise AssertionError(f"timed out waiting for {what}; the page shows: {text!r}") from None


# GraphiQL 3 keeps CodeMirror 5 editors; their instances hang off the `.CodeMirror` elements.
_EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror')"
_RESULT = "document.querySelector('.result-window .CodeMirror')"
_RUN_BUTTON = "document.querySelector('.graphiql-execute-button')"


async def _run_query(dt: DevTools, session: str, query: str) -> str:
    """Type the query, press run, and return the result pane's text once it holds an answer.

    GraphiQL may ignore a click that comes before it has finished starting up (it fetches the
    schema first), and the run button turns into a stop button while a query runs, so: click,
    give the answer a few seconds to appear, and only then click again."""
    check = (f"(() => {{ const r = {_RESULT}; const v = r ? r.CodeMirror.getValue() : ''; "
             "return v.includes('\"data\"') ? v : ''; })()")
    while True:
        await dt.evaluate(f"{_EDITOR}.CodeMirror.setValue({json.dumps(query)}); {_RUN_BUTTON}.click()", session)
        for _ in range(15):
            await asyncio.sleep(0.2)
            shown = await dt.evaluate(check, session)
            if shown:
                return shown


async def test_graphiql_loads_and_runs_a_query(tmp_path):
    async with _server(tmp_path) as origin, _chromium(tmp_path) as browser_ws:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(browser_ws, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=STEP_TIMEOUT)) as ws,
        ):
            dt = DevTools(ws)
            target = (await dt.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
            session = (await dt.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
            await dt.send("Network.enable", {}, session)
            await dt.send("Page.enable", {}, session)
            await dt.send("Page.navigate", {"url": f"{origin}/graphql"}, session)

            await dt.wait_for(f"!!({_EDITOR} && {_RUN_BUTTON})", session, "GraphiQL's editor")
            assert "taogram GraphiQL" == await dt.evaluate("document.title", session)
            shown = await asyncio.wait_for(_run_query(dt, session, "query Probe { __typename }"), STEP_TIMEOUT)
            answer = json.loads(shown)
            assert answer["data"] == {"__typename": "Query"}
            assert answer["extensions"]["requestId"]  # the app's own response extensions

            urls = [e["params"]["request"]["url"] for e in dt.events if e.get("method") == "Network.requestWillBeSent"]
            assert f"{origin}/graphql" in urls
            assert any(u.startswith(f"{origin}/static/graphiql/graphiql.min.js") for u in urls), urls
            outside = [u for u in urls if not u.startswith((origin, "data:", "blob:", "about:"))]
            assert outside == [], f"GraphiQL fetched from outside the app: {outside}"
            await dt.send("Target.closeTarget", {"targetId": target})
            dt.reader.cancel()
