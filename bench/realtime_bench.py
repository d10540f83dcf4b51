"""Real-time delivery: push over WebSockets against polling, on two real server processes.

    PYTHONPATH=. .venv/bin/python bench/realtime_bench.py [--clients 1000] [--rate 200] [--seconds 20]

Starts MariaDB x2, memcached x2 and Redis (tests.harness), then two `server.py` processes
(MariaDB store, memcached, Redis broker, each with its in-process outbox worker) on two ports.
Signs up `--clients` recipients and `--senders` senders and opens one 1:1 conversation per
recipient (the recipient follows its sender, `u<i>` with sender `i mod senders`, and the sender's
first message opens the thread in the recipient's inbox: a conversation already under way, as
most real message traffic is), then:

1. push: every recipient opens a graphql-transport-ws socket (half on each process) and
   subscribes to `inboxEvents` (which carries `NewMessageEvent`). Memory per idle connection =
   the growth of the two servers' RSS divided by the sockets. Senders then write at a steady
   `--rate` for `--seconds` (open loop: the i-th write starts at i/rate whatever happened to the
   others), alternating between the processes, each a `sendMessage` into a random recipient's
   thread. Latency = from the send's HTTP response to the recipient's frame. Lost = acknowledged
   sends (a message id returned) never delivered within 30 s of the end (an event the writer
   could not deliver comes from its outbox job 5 s later); duplicated = an event id seen twice
   on one subscription (frames are deduplicated by event id before they count as delivered).
2. poll: the sockets close; every recipient polls its inbox (its thread's newest 10 messages)
   over HTTP every second (staggered), with the same send traffic. Latency = from the send's
   response to the first poll answer that shows it.

Each phase reports the CPU seconds (from /proc/<pid>/stat) of the two servers, the MariaDB,
memcached and Redis servers, per acknowledged message, and the MariaDB statements and commits
per message (SHOW GLOBAL STATUS on both servers). The push phase also measures each group's
CPU with the sockets connected and no traffic (`--idle-seconds`) and reports the CPU per
message net of that idle rate (heartbeats, idle outbox polls, cache probes), which at a low
rate is a large part of the gross figure. The messages spam limits are set far above
the bench's traffic (`settings_for`): 50 senders each sending to 20 people a second would be
refused by the production limits, by design. The load generator runs in this one process; its
measured sends go through `LeanPoster` (kept-alive HTTP/1.1, no client library), since it shares
the box's cores with what it measures. The push phase also prints a second-by-second timeline
of the deliveries (sends, p50, p99, max), which tells a tail spread over the run from spells.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import box_speed_ms, cpu_seconds, user_system_seconds
from config import MySQLServer, Settings
from config.settings import LogFormat
from tao import open_tao
from tests.harness import start_services
from tests.schema.client import password_of
from tests.serverproc import ServerProcess

SUBSCRIPTION = "subscription { inboxEvents { eventId ... on NewMessageEvent { message { id } } } }"
POLL = "{ inbox { threads(first: 10) { edges { node { messages(first: 10) { edges { node { id } } } } } } } }"
SEND = ("mutation($i: MessageSendInput!) { sendMessage(input: $i) "
        "{ message { id } thread { id } errors { code message } } }")


def settings_for(services, prefix: str, tmp: Path, shedding: bool = True) -> Settings:
    s = Settings()
    s.store.backend, s.store.logical_shards, s.store.database_prefix = "mysql", 8, prefix
    # MariaDB runs on this box: talk over its unix socket (as bench/tao_bench.py does), which
    # costs the server less CPU per statement than loopback TCP, closer to a remote database.
    s.store.mysql_servers = [MySQLServer(host=m.host, port=m.port, unix_socket=m.unix_socket) for m in services.mysql]
    # A transaction holds its connection for a round trip per statement, each waiting for a
    # turn of a busy event loop: 10 connections per MariaDB server per process (the default)
    # cap the transactions in flight below what the bench offers. 40 x 2 processes x 2
    # servers stays far under MariaDB's max_connections (500 in the harness).
    s.store.pool_max = 40
    s.cache.backend, s.cache.servers, s.cache.key_prefix = "memcached", list(services.memcached), prefix
    s.broker.backend, s.broker.url, s.broker.channel_prefix = "redis", services.redis_url, prefix
    s.jobs.in_process_worker = True
    s.server.graphiql = False
    # Logs as production writes them (config/examples/production.toml): a JSON line a request,
    # no aiohttp access line besides it.
    s.logging.format = LogFormat.JSON
    if not shedding:  # the code before admission.py, for a side-by-side run
        s.server.shed_loop_lag_ms, s.server.max_requests_in_flight = 0, 0
    s.media.local_dir = str(tmp / "media")
    # Cheap password hashing: the bench signs up a thousand accounts; the cost is a setting.
    s.auth.argon2_time_cost, s.auth.argon2_memory_cost_kib, s.auth.argon2_parallelism = 1, 1024, 1
    s.limits.cost_budget = 1_000_000  # the bench measures delivery, not the per-viewer budget
    s.throttle.enabled = False  # nor the per-user action limits
    s.realtime.messages_per_second = 1000.0
    # Every simulated client connects from 127.0.0.1: the per-address socket cap (a flood guard,
    # 100 a process by default) would refuse all but the first hundred of each process's 500.
    s.realtime.max_sockets_per_address = 100_000
    # The spam limits bound one person's first messages to strangers; the bench's 50 senders
    # open 1 000 conversations in its setup, which the production limits refuse by design.
    m = s.messages
    m.requests_per_hour = m.new_recipients_per_day = 1_000_000
    m.new_account_requests_per_hour = m.new_account_new_recipients_per_day = 1_000_000
    return s


class LeanPoster:
    """POSTs over kept-alive HTTP/1.1 connections to one server, with no client library: the
    measured sends' client. The load generator shares the box's two cores with the servers it
    measures, and aiohttp's client cost it ~0.45 ms of CPU a send (two thirds of the bench's
    own CPU, profiled with perf): a request here is a few writes and reads of bytes."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, token: str | None) -> tuple[int, dict[bytes, bytes], bytes]:
        reader, writer = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
        try:
            writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n%s"
                         b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), self.port, auth,
                                                             len(body), body))
            head = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            status = int(head[0].split(b" ", 2)[1])
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                data = b""
                while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
                    data += (await reader.readexactly(size + 2))[:-2]
                await reader.readuntil(b"\r\n")
            else:
                data = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        except BaseException:
            writer.close()
            raise
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, headers, data


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base
        self.lean = LeanPoster(base)

    async def gql_lean(self, query: str, variables: dict, token: str) -> dict:
        """One POST through `LeanPoster`, not retried (the measured sends: a refusal is an error)."""
        status, _, data = await self.lean.post("/graphql", orjson.dumps({"query": query, "variables": variables}),
                                               token)
        body = orjson.loads(data) if data else {}
        if "errors" in body or status != 200:
            raise RuntimeError(body.get("errors") or f"HTTP {status}")
        return body["data"]

    async def gql(self, query: str, variables: dict | None = None, token: str | None = None, *,
                  retry_busy: bool = True) -> dict:
        """`retry_busy`: a 503 from the load shedder (nothing ran) is retried after its
        Retry-After, as an app does; the measured sends are not retried (a refusal is an error)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(30):
            async with self.http.post(self.base + "/graphql", json={"query": query, "variables": variables or {}},
                                      headers=headers) as resp:
                body = await resp.json()
                busy = resp.status == 503 and "Retry-After" in resp.headers
            if not (busy and retry_busy):
                break
            await asyncio.sleep(float(resp.headers["Retry-After"]) * (0.5 + random.random()))
        if "errors" in body:
            raise RuntimeError(body["errors"])
        return body["data"]


async def sign_up(api: Api, name: str) -> dict:
    d = await api.gql("mutation($i: AccountSignUpInput!) { signUp(input: $i) { token user { id } errors { code } } }",
                      {"i": {"username": name, "password": password_of(name), "fullName": name}})
    p = d["signUp"]
    assert not p["errors"], p
    return {"name": name, "token": p["token"], "id": p["user"]["id"]}


async def follow(api: Api, who: dict, whom: dict) -> None:
    d = await api.gql("mutation($i: ID!) { follow(input: {userId: $i}) { errors { code } } }", {"i": whom["id"]},
                      who["token"])
    assert not d["follow"]["errors"], d


async def send_message(api: Api, sender: dict, target: dict, text: str, *, retry_busy: bool = True,
                       lean: bool = False) -> dict:
    """One `sendMessage` (`target`: {"threadId": ...} or {"recipientIds": [...]}); returns the payload.
    `lean`: through `Api.gql_lean` (never retried)."""
    variables = {"i": {"clientMessageId": os.urandom(8).hex(), "text": text, **target}}
    d = (await api.gql_lean(SEND, variables, sender["token"]) if lean else
         await api.gql(SEND, variables, sender["token"], retry_busy=retry_busy))
    p = d["sendMessage"]
    if p["errors"]:
        raise RuntimeError(p["errors"])
    return p


async def open_threads(apis: list[Api], senders: list[dict], recipients: list[dict]) -> None:
    """recipient i follows sender i mod len(senders), who then opens their 1:1 thread; recipient["thread"]."""
    async def one(i: int, r: dict) -> None:
        s = senders[i % len(senders)]
        await follow(apis[i % 2], r, s)
        p = await send_message(apis[(i + 1) % 2], s, {"recipientIds": [r["id"]]}, "hello")
        r["thread"], r["sender"] = p["thread"]["id"], s
    await bounded([one(i, r) for i, r in enumerate(recipients)], 16)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def bounded(coros, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c
    return await asyncio.gather(*(one(c) for c in coros))


ERROR_CODES: Counter = Counter()  # the sends' failures by kind, over the run


async def traffic(apis: list[Api], recipients: list[dict], rate: float, seconds: float, seed: int,
                  sent: dict) -> tuple[int, int]:
    """Open-loop sends at `rate`/s, each into a random recipient's thread by its sender;
    sent[(recipient index, message id)] = time the send returned."""
    n = int(rate * seconds)
    rng = random.Random(seed)
    errors = 0
    start = time.monotonic()

    async def one(i: int) -> None:
        nonlocal errors
        r = rng.randrange(len(recipients))
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        try:
            p = await send_message(apis[i % len(apis)], recipients[r]["sender"], {"threadId": recipients[r]["thread"]},
                                   f"message {i}", retry_busy=False, lean=True)
        except Exception as exc:  # counted, and the first few reported
            errors += 1
            ERROR_CODES["UNAVAILABLE (busy: shed)" if "server is busy" in str(exc) else
                        "UNAVAILABLE" if "UNAVAILABLE" in str(exc) else "other"] += 1
            if errors <= 3:
                print(f"  send failed: {str(exc)[:200]}", file=sys.stderr)
            return
        sent[(r, p["message"]["id"])] = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n, errors


COUNTED = ("taogram_sql_seconds_count", "taogram_cache_seconds_count", "taogram_store_calls_total",
           "taogram_requests_total", "taogram_job_seconds_count", "taogram_gc_pause_seconds_sum",
           "taogram_gc_pause_seconds_count")


async def counts(apis, redis_url: str) -> dict[str, float]:
    """The servers' own counters (their `/metrics`, summed over both processes: SQL statements,
    cache tier calls by op, store verbs, GraphQL operations, jobs) and Redis' commands by name."""
    out: dict[str, float] = defaultdict(float)
    for api in apis:
        async with api.http.get(api.base + "/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith(COUNTED):
                key, _, value = line.rpartition(" ")
                out[key] += float(value)
    import redis
    client = redis.Redis.from_url(redis_url)
    try:
        for name, stat in (await asyncio.to_thread(client.info, "commandstats")).items():
            out[f"redis:{name.removeprefix('cmdstat_')}"] += stat["calls"]
    finally:
        client.close()
    return out


def per_message(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    return {k: round((after[k] - before.get(k, 0.0)) / max(1, messages), 2) for k in sorted(after)
            if after[k] != before.get(k, 0.0)}


class Meter:
    """CPU seconds of each server process and MariaDB's statement counters, over one phase."""

    STATUS = ("Questions", "Com_commit", "Com_begin", "Com_select", "Com_insert", "Com_update", "Com_delete",
              "Com_insert_select", "Com_replace", "Innodb_row_lock_waits", "Innodb_row_lock_time", "Innodb_deadlocks",
              "Created_tmp_tables", "Created_tmp_disk_tables")

    def __init__(self, servers, services) -> None:
        self.pids = {"server": [s.proc.pid for s in servers], "mariadb": [m.pid for m in services._mysql],
                     "memcached": [m.pid for m in services._memcached], "redis": [services._redis.pid],
                     # the load generator itself (1 000 sockets, the senders' HTTP): it shares the cores
                     "bench": [os.getpid()]}
        self.mysql = services.mysql

    def _status(self) -> dict[str, int]:
        total: dict[str, int] = defaultdict(int)
        for m in self.mysql:
            conn = pymysql.connect(host=m.host, port=m.port, user=m.user, password=m.password)
            try:
                with conn.cursor() as cur:
                    marks = ",".join(["%s"] * len(self.STATUS))
                    cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({marks})", self.STATUS)
                    for name, value in cur.fetchall():
                        total[name] += int(value)
            finally:
                conn.close()
        return total

    def _cpu(self) -> dict[str, float]:
        return {k: sum(cpu_seconds(p) for p in pids) for k, pids in self.pids.items()}

    async def idle(self, seconds: float) -> None:
        """Measure each process group's CPU per second with no traffic (the sockets' heartbeats,
        the outbox worker's idle polls, the cache health probes): `stop` reports the CPU per
        message net of it too, which at a low rate is a large part of the gross figure."""
        cpu0, t0 = self._cpu(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = self._cpu(), time.monotonic()
        self.idle_rate = {k: (cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu1}

    def _kernel(self) -> dict[str, float]:
        return {k: sum(user_system_seconds(p)[1] for p in pids) for k, pids in self.pids.items()}

    def start(self) -> None:
        self.cpu0, self.sql0, self.t0 = self._cpu(), self._status(), time.monotonic()
        self.kernel0 = self._kernel()

    def stop(self, messages: int) -> dict:
        cpu, sql, elapsed = self._cpu(), self._status(), time.monotonic() - self.t0
        per = max(1, messages)
        out: dict[str, Any] = {f"cpu_ms_per_msg_{k}": round((cpu[k] - self.cpu0[k]) * 1000 / per, 2) for k in cpu}
        idle = getattr(self, "idle_rate", None)
        if idle is not None:
            out["idle_cpu_ms_per_s"] = {k: round(v * 1000, 1) for k, v in idle.items()}
            out["cpu_ms_per_msg_net_of_idle"] = {
                k: round((cpu[k] - self.cpu0[k] - idle[k] * elapsed) * 1000 / per, 2) for k in cpu}
        out["cpu_s_total"] = {k: round(cpu[k] - self.cpu0[k], 1) for k in cpu}
        kernel = self._kernel()
        out["kernel_share_of_cpu"] = {k: round((kernel[k] - self.kernel0[k]) / max(1e-9, cpu[k] - self.cpu0[k]), 2)
                                      for k in cpu}
        out["sql_per_msg"] = {k: round((sql[k] - self.sql0[k]) / per, 1) for k in self.STATUS}
        return out


def profile_args(args, i: int) -> tuple[str, ...]:
    """`--cprofile DIR`: run server i under bench/profiled_server.py, which profiles the push
    phase's traffic only (signalled): deterministic call counts and own times, for where a
    message's CPU goes (at roughly twice the CPU: the figures are shares, not milliseconds)."""
    if not args.cprofile:
        return ()
    Path(args.cprofile).mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_PROFILE_DIR"] = str(Path(args.cprofile).resolve())
    return (str(Path(__file__).resolve().parent / "profiled_server.py"),)


def signal_profilers(servers, args, signum: int) -> None:
    if args.cprofile:
        for s in servers:
            os.kill(s.proc.pid, signum)


def start_profilers(servers, args) -> list:
    """`--py-spy DIR`: sample each server process (the GIL holder only, `--gil`, so close to its
    CPU) for the push phase's traffic, as raw folded stacks, one file a process."""
    if not args.py_spy:
        return []
    import subprocess
    out = Path(args.py_spy)
    out.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    return [subprocess.Popen([str(py_spy), "record", "--gil", "--format", "raw", "--rate", "100",
                              "-d", str(int(args.seconds)), "-p", str(s.proc.pid), "-o", str(out / f"server{i}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i, s in enumerate(servers)]


async def push_phase(apis, servers, senders, recipients, args) -> dict:
    received: dict[tuple[int, str], float] = {}
    dupes = error_frames = refused_subscribes = 0
    seen: dict[int, set] = defaultdict(set)
    rss_before = sum(rss_kib(s.proc.pid) for s in servers)
    sockets = []

    async def connect(i: int, who: dict):
        for attempt in range(5):  # a busy server refuses (503) or closes with 1013 (try again later): retried
            try:
                ws = await apis[i % 2].http.ws_connect(apis[i % 2].base + "/graphql",
                                                       protocols=["graphql-transport-ws"])
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 503:
                    raise
                await asyncio.sleep(1 + attempt)
                continue
            await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {who['token']}"}})
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                assert json.loads(msg.data)["type"] == "connection_ack", msg
                await ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": SUBSCRIPTION}})
                return ws
            await ws.close()
            await asyncio.sleep(1 + attempt)
        raise RuntimeError(f"socket {i} refused five times: {msg}")

    subscribed = recipients[:args.sockets]
    sockets = await bounded([connect(i, r) for i, r in enumerate(subscribed)], 50)
    await asyncio.sleep(3)  # subscriptions acknowledged, memory settled
    rss_after = sum(rss_kib(s.proc.pid) for s in servers)

    closed: dict[int, tuple[float, int | None]] = {}  # socket -> (when, close code) if the server closed it

    frames = 0

    async def read(i: int, ws) -> None:
        nonlocal dupes, error_frames, frames, refused_subscribes
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frames += 1
            data = json.loads(msg.data)
            if data.get("type") == "error":  # the subscribe refused (load shedding since the 18th session: UNAVAILABLE)
                refused_subscribes += 1  # its socket then receives nothing: its messages count as lost
                continue
            if data.get("type") != "next":
                continue
            ev = (data["payload"].get("data") or {}).get("inboxEvents")
            if ev is None or "message" not in ev:  # an error frame (a field failed under load)
                error_frames += 1
                continue
            if ev["eventId"] in seen[i]:
                dupes += 1
                continue
            seen[i].add(ev["eventId"])
            received.setdefault((i, ev["message"]["id"]), time.monotonic())
        if not stopping:
            closed[i] = (time.monotonic(), ws.close_code)

    stopping = False
    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
    sent: dict = {}
    meter = Meter(servers, args.services)
    await meter.idle(args.idle_seconds)
    profilers = start_profilers(servers, args)
    counts0 = await counts(apis, args.services.redis_url)
    meter.start()
    signal_profilers(servers, args, signal.SIGUSR1)
    t0 = time.monotonic()
    n, errors = await traffic(apis, recipients, args.rate, args.seconds, 1, sent)
    for prof in profilers:
        await asyncio.to_thread(prof.wait)
    elapsed = time.monotonic() - t0
    # An event whose writer could not deliver it (a timed-out append under overload) comes
    # from its outbox job `realtime.redeliver_after_ms` later: wait long enough for those.
    deadline = time.monotonic() + 30
    watched = lambda k: k[0] < len(sockets)  # noqa: E731 (a recipient with a socket)
    while time.monotonic() < deadline and not all(k in received for k in sent if watched(k)):
        await asyncio.sleep(0.1)
    signal_profilers(servers, args, signal.SIGUSR2)
    costs = meter.stop(len(sent))  # the deliveries' work included
    costs["counts_per_msg"] = per_message(counts0, await counts(apis, args.services.redis_url), len(sent))
    costs["frames_per_msg"] = round(frames / max(1, len(sent)), 2)
    # A socket the server closed (1013: the store failed for seconds, or a slow consumer) is
    # not reconnected here, as a client would (resuming by cursor): what it missed after its
    # close is counted apart from the losses of sockets that stayed open.
    missing = [k for k in sent if watched(k) and k not in received]
    after_close = sum(1 for k in missing if k[0] in closed and closed[k[0]][0] <= sent[k] + 30)
    cpu = costs["cpu_s_total"]["server"]
    raw = [received[k] - t for k, t in sent.items() if k in received]
    # The writer publishes before it answers, so a frame can beat the write's own response to
    # this (busy) process: that delivery took no time after the write returned.
    early = sum(1 for x in raw if x < 0)
    lat = [max(0.0, x) for x in raw]
    late = sum(1 for x in lat if x > 10)
    # Second by second (by when the write returned): whether a tail is spread over the run
    # (the box saturated) or comes in bursts (a stall of something periodic).
    by_second: dict[int, list[float]] = defaultdict(list)
    for k, t in sent.items():
        if k in received:
            by_second[int(t - t0)].append(max(0.0, received[k] - t))
    timeline = [f"{sec:3d}s n={len(xs)} p50={pct(xs, 50) * 1000:.0f} p99={pct(xs, 99) * 1000:.0f} "
                f"max={max(xs) * 1000:.0f}" for sec, xs in sorted(by_second.items())]
    stopping = True
    for ws in sockets:
        await ws.close()
    for t in readers:
        t.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "writes": n,
        "write_errors": errors,
        "write_errors_by_kind": dict(ERROR_CODES),
        "writes_per_s": len(sent) / elapsed,
        "delivered": len(lat),
        "lost": len(missing),
        "lost_on_open_sockets": len(missing) - after_close,
        "sockets_closed_by_server": len(closed),
        "close_codes": sorted({c for _, c in closed.values() if c is not None}),
        "before_write_returned": early,
        "later_than_10s": late,
        "duplicated": dupes,
        "error_frames": error_frames,
        "refused_subscribes": refused_subscribes,
        "p50_ms": pct(lat, 50) * 1000,
        "p90_ms": pct(lat, 90) * 1000,
        "p99_ms": pct(lat, 99) * 1000,
        "max_ms": max(lat, default=float("nan")) * 1000,
        "timeline_ms": timeline,
        "server_cpu_s": cpu,
        "sockets": len(sockets),
        "idle_conn_kib": (rss_after - rss_before) / max(1, len(sockets)),
        **costs,
    }


async def poll_phase(apis, servers, senders, recipients, args) -> dict:
    sent: dict = {}
    shown: dict[tuple[int, str], float] = {}
    polls = poll_errors = 0
    stop = asyncio.Event()

    async def poller(i: int, who: dict) -> None:
        nonlocal polls, poll_errors
        api = apis[i % 2]
        await asyncio.sleep(random.random())  # staggered over the second
        nxt = time.monotonic()
        while not stop.is_set():
            try:
                d = await api.gql(POLL, token=who["token"])
                now = time.monotonic()
                polls += 1
                for t in d["inbox"]["threads"]["edges"]:
                    for e in t["node"]["messages"]["edges"]:
                        shown.setdefault((i, e["node"]["id"]), now)
            except Exception:
                poll_errors += 1
            nxt += 1.0
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    tasks = [asyncio.create_task(poller(i, r)) for i, r in enumerate(recipients)]
    await asyncio.sleep(3)
    polls = 0
    cpu0 = sum(cpu_seconds(s.proc.pid) for s in servers)
    t0 = time.monotonic()
    n, errors = await traffic(apis, recipients, args.rate, args.seconds, 2, sent)
    elapsed = time.monotonic() - t0
    await asyncio.sleep(3)
    cpu = sum(cpu_seconds(s.proc.pid) for s in servers) - cpu0
    poll_rate = polls / (time.monotonic() - t0)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    # A poll shows the thread's newest 10 messages: a send followed by 10 newer ones within a second is
    # never shown ("not_shown", not lost). A poll can show a write before its HTTP response
    # reaches the writer: latency 0 then.
    lat = [max(0.0, shown[k] - t) for k, t in sent.items() if k in shown]
    return {"writes": n, "write_errors": errors, "writes_per_s": len(sent) / elapsed, "shown": len(lat),
            "not_shown": len(sent) - len(lat), "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "polls_per_s": poll_rate, "poll_errors": poll_errors, "server_cpu_s": cpu}


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    print(f"server logs in {tmp}", flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    services = start_services(2, 2, s3=False, redis=True)
    prefix = "rtb" + os.urandom(3).hex()
    settings = settings_for(services, prefix, tmp, not args.no_shedding)
    if args.max_in_flight is not None:
        settings.server.max_requests_in_flight = args.max_in_flight
    pre = await open_tao(settings, migrate=True, start_worker=False)
    await pre.close()
    servers = [ServerProcess(settings, tmp / f"server{i}.log", python_args=profile_args(args, i)) for i in range(2)]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as http:
            apis = [Api(http, s.base) for s in servers]
            print("server pids:", [s.proc.pid for s in servers], flush=True)
            t = time.monotonic()
            people = await bounded([sign_up(apis[i % 2], f"u{i}") for i in range(args.clients + args.senders)], 16)
            print(f"signed up {len(people)} accounts in {time.monotonic() - t:.1f}s", flush=True)
            recipients, senders = people[:args.clients], people[args.clients:]
            t = time.monotonic()
            await open_threads(apis, senders, recipients)
            print(f"opened {len(recipients)} conversations in {time.monotonic() - t:.1f}s", flush=True)
            args.services = services
            speed_before = box_speed_ms()
            push = await push_phase(apis, servers, senders, recipients, args)
            push["box_speed_ms"] = {"before": speed_before, "after": box_speed_ms()}
            print("push:", json.dumps(push, indent=1), flush=True)
            print(f"load average: {os.getloadavg()}", flush=True)
            if not args.no_poll:
                poll = await poll_phase(apis, servers, senders, recipients, args)
                print("poll:", json.dumps(poll, indent=1), flush=True)
            print(f"load average after: {os.getloadavg()}", flush=True)
    finally:
        for s in servers:
            s.terminate()
        services.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-poll", action="store_true", help="skip the polling phase")
    parser.add_argument("--sockets", type=int, default=None,
                        help="only the first N recipients subscribe (default: all): the sends' cost without "
                        "the deliveries' when 0")
    parser.add_argument("--py-spy", metavar="DIR", help="record py-spy samples (--gil, raw) of each server "
                        "process during the push phase's traffic into DIR")
    parser.add_argument("--cprofile", metavar="DIR", help="run each server under cProfile, its stats written "
                        "to DIR/server<i>.prof when it stops")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="server.max_requests_in_flight of each server (default: the setting's own)")
    parser.add_argument("--no-shedding", action="store_true",
                        help="turn the servers' load shedding off (admission.py), as the code before it")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="measure the processes' idle CPU this long before the push phase")
    args = parser.parse_args()
    if args.sockets is None:
        args.sockets = args.clients
    # The load generator shares the box's cores with what it measures: on uvloop (as the
    # servers) its 1 000 sockets and the senders take less of them.
    import uvloop
    asyncio.run(run(args), loop_factory=uvloop.new_event_loop)


if __name__ == "__main__":
    main()
