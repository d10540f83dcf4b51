"""Log-in flood benchmark: how much a flood of `logIn`s slows everyone else's requests.

    PYTHONPATH=. .venv/bin/python bench/login_flood_bench.py                       # this checkout
    PYTHONPATH=. .venv/bin/python bench/login_flood_bench.py --no-address-throttle # the pool alone
    PYTHONPATH=. .venv/bin/python bench/login_flood_bench.py --app-dir /path/to/other/checkout

Starts the server (`server.py` of `--app-dir`, the embedded default: SQLite shards and media in
a temp dir, production argon2 cost) in a subprocess, signs up one account, then measures a
trivial query (`{ user(username: "probe") { id } }`, one client, back to back) for
`--seconds`, first alone, then while `--flooders` connections send `logIn`s for random unknown
usernames as fast as they are answered (the flood issue 9 describes). Prints the probe's
median and p90 latency in both phases, and the flood's answers per second by kind. The query
budget is raised so that it does not refuse the flood: what is measured is what the password
pool and the log-in throttles leave of the event loop. `--no-address-throttle` lifts the
per-address throttle too (only for a checkout that has it), isolating the pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

PROBE = '{ user(username: "probe") { id } }'
LOG_IN = (
    "mutation($u: String!) { logIn(input: {username: $u, password: \"not the password\"}) { token errors { code } } }"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            async with session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not answer /healthz in time")


async def probe(session: aiohttp.ClientSession, url: str, seconds: float) -> list[float]:
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        async with session.post(url, json={"query": PROBE}) as r:
            body = await r.json()
        assert "errors" not in body, body
        latencies.append(time.perf_counter() - started)
    return latencies


async def flood(url: str, stop: asyncio.Event, answers: Counter) -> None:
    async with aiohttp.ClientSession() as session:  # its own connection
        while not stop.is_set():
            async with session.post(url, json={"query": LOG_IN, "variables": {"u": "u" + uuid.uuid4().hex[:12]}}) as r:
                body = await r.json()
            if body.get("errors"):
                answers[body["errors"][0].get("extensions", {}).get("code", "?")] += 1
            else:
                answers[(body["data"]["logIn"]["errors"] or [{"code": "OK"}])[0]["code"]] += 1


def summary(latencies: list[float]) -> str:
    xs = sorted(latencies)
    return (f"{len(xs)} requests, median {statistics.median(xs) * 1000:.1f} ms, "
            f"p90 {xs[int(len(xs) * 0.9)] * 1000:.1f} ms")


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        env = {**os.environ, "PYTHONPATH": args.app_dir, "TAOGRAM_SERVER__PORT": str(port),
               "TAOGRAM_STORE__SQLITE_DIR": f"{tmp}/shards", "TAOGRAM_MEDIA__LOCAL_DIR": f"{tmp}/media",
               "TAOGRAM_LIMITS__COST_BUDGET": str(10**9)}
        if args.no_address_throttle:
            env["TAOGRAM_AUTH__LOGIN_FAILURES_PER_ADDRESS"] = str(10**9)
        proc = subprocess.Popen([sys.executable, str(Path(args.app_dir) / "server.py")], env=env, cwd=tmp,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, url, proc)
                sign_up = ('mutation { signUp(input: {username: "probe", password: "a good password"}) '
                           '{ errors { code } } }')
                async with session.post(url + "/graphql", json={"query": sign_up}) as r:
                    assert (await r.json())["data"]["signUp"]["errors"] == []
                await probe(session, url + "/graphql", 2)  # warm up
                alone = await probe(session, url + "/graphql", args.seconds)
                stop, answers = asyncio.Event(), Counter()
                flooders = [asyncio.create_task(flood(url + "/graphql", stop, answers)) for _ in range(args.flooders)]
                await asyncio.sleep(1)
                answers.clear()
                started = time.monotonic()
                flooded = await probe(session, url + "/graphql", args.seconds)
                elapsed = time.monotonic() - started
                stop.set()
                await asyncio.gather(*flooders)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"app: {args.app_dir}; {args.flooders} flooding connections; {args.seconds:.0f} s per phase")
    print(f"  probe alone:        {summary(alone)}")
    print(f"  probe under flood:  {summary(flooded)}")
    rates = ", ".join(f"{code} {n / elapsed:.1f}/s" for code, n in answers.most_common())
    print(f"  flood answered:     {rates}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app-dir", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--flooders", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--no-address-throttle", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
