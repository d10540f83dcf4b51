"""The server's CPU a delivered event, apart from the send that caused it.

    PYTHONPATH=. .venv/bin/python bench/delivery_cost.py [--subscribers 100] [--rate 200] [--seconds 10]

One `server.py` (uvloop, the bench's settings) on its own store (MariaDB x2, memcached x2,
Redis; or `TAOGRAM_TEST_SERVICES`). Each subscriber has a 1:1 thread with one sender, one real
message in it, and an `inboxEvents` subscription. Then the message's stored event is published
again and again straight into Redis, as the writer publishes it (ids only; each copy the next
position of the subscriber's stream, `prev` the one before, a new event id), round robin at
`--rate`: every copy makes the server do a live delivery's whole work (the broker's read, the
session's check and the event's build through fresh loaders and privacy, GraphQL execution, the
frame) and nothing of a send's. Reports the server's CPU (from /proc) a frame received, also
net of what it spends idle (measured for `--idle-seconds` first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.serverproc as serverproc
from bench.common import cpu_seconds
from bench.realtime_bench import Api, follow, send_message, settings_for, sign_up
from schema.relay import from_global_id
from tao import open_tao
from tests.harness import attach_services, start_services

SUBSCRIPTION = "subscription { inboxEvents { eventId cursor ... on NewMessageEvent { message { id } } } }"


async def subscribe(http: aiohttp.ClientSession, base: str, token: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(base.replace("http", "ws", 1) + "/graphql", protocols=["graphql-transport-ws"])
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    ack = json.loads((await ws.receive()).data)
    assert ack["type"] == "connection_ack", ack
    await ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": SUBSCRIPTION}})
    return ws


async def run(args) -> None:
    own = None
    if os.environ.get("TAOGRAM_TEST_SERVICES"):
        services = attach_services(os.environ["TAOGRAM_TEST_SERVICES"])
    else:
        services = own = start_services(2, 2, s3=False, redis=True)
    tmp = Path(tempfile.mkdtemp(prefix="delivery-cost-"))
    prefix = "dc" + os.urandom(3).hex()
    settings = settings_for(services, prefix, tmp)
    tao = await open_tao(settings, migrate=True, start_worker=False)
    server = serverproc.ServerProcess(settings, tmp / "server.log").start()
    redis = aioredis.Redis.from_url(services.redis_url)
    frames = 0
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            api = Api(http, server.base)
            sender = await sign_up(api, "sender")
            recipients = await asyncio.gather(*(sign_up(api, f"r{i}") for i in range(args.subscribers)))
            await asyncio.gather(*(follow(api, r, sender) for r in recipients))
            sockets = [await subscribe(http, server.base, r["token"]) for r in recipients]
            await asyncio.sleep(1)  # every subscription live
            streams = []
            for r, ws in zip(recipients, sockets):
                await send_message(api, sender, {"recipientIds": [r["id"]]}, "hello")
                await ws.receive()  # the real event's frame
                user = from_global_id(r["id"], settings.store.logical_shards, "User")[1]
                newest = (await tao.assoc_time_range(user, "STREAM_EVENT", limit=1))[0]
                data = newest.data if isinstance(newest.data, dict) else orjson.loads(newest.data)
                streams.append({"user": user, "position": newest.time, "kind": data["k"], "ids": data["i"],
                                "event": newest.id2})

            async def read(ws: aiohttp.ClientWebSocketResponse, real: int) -> None:
                nonlocal frames
                async for msg in ws:
                    payload = json.loads(msg.data).get("payload") or {}
                    event = (payload.get("data") or {}).get("inboxEvents")
                    if event and int(event["cursor"][1:]) > real:  # not the real send's own events
                        frames += 1
            readers = [asyncio.create_task(read(ws, s["position"])) for ws, s in zip(sockets, streams)]
            total = int(args.rate * args.seconds)
            idle0, idle_start = cpu_seconds(server.proc.pid), time.monotonic()
            await asyncio.sleep(args.idle_seconds)  # what the process spends with nothing to deliver
            idle_per_s = (cpu_seconds(server.proc.pid) - idle0) / (time.monotonic() - idle_start)
            cpu0, start = cpu_seconds(server.proc.pid), time.monotonic()
            for n in range(total):
                s = streams[n % len(streams)]
                prev, s["position"] = s["position"], s["position"] + 1
                message = {"u": s["user"], "k": s["kind"], "i": s["ids"], "c": s["position"], "p": prev,
                           "e": s["event"] + n + 1}
                await redis.publish(f"{prefix}:u:{s['user']}", orjson.dumps(message))
                await asyncio.sleep(max(0.0, start + (n + 1) / args.rate - time.monotonic()))
            deadline = time.monotonic() + 10
            while frames < total and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            cpu, elapsed = cpu_seconds(server.proc.pid) - cpu0, time.monotonic() - start
            for task in readers:
                task.cancel()
        net = cpu - idle_per_s * elapsed
        print(f"{frames} of {total} frames in {elapsed:.1f} s; {1000 * cpu / max(frames, 1):.3f} ms of server CPU "
              f"a frame, {1000 * net / max(frames, 1):.3f} net of idle ({1000 * idle_per_s:.1f} ms/s)")
    finally:
        server.terminate()
        await redis.aclose()
        await tao.close()
        if own is not None:
            own.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200, help="events published a second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--idle-seconds", type=float, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
