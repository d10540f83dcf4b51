"""A generated-query fuzz of the GraphQL API, as an attacker or a careless client would send it.

Documents come from the printed schema through `hypothesis-graphql` (valid operations, and
operations with one schema violation each), with `ID` arguments drawn from the seeded data's
real ids and from garbage. Each document is sent over HTTP to the real app, with and without a
token. A finding is any answer a client must never get:

- an HTTP status of 500 or above;
- a GraphQL error whose code is `INTERNAL_SERVER_ERROR` (a fault: masked, but still a bug);
- an error message that leaks internals (a Python exception name, SQL, a driver's words).

    PYTHONPATH=. .venv/bin/python -m tests.fuzz.probe --requests 3000   # real servers, prints a summary

`tests/test_api_fuzz.py` runs a few hundred of these in CI and asserts no finding.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from schema import printed_schema
from tests.schema.client import password_of

# Words that only an unmasked internal error would put in a message.
LEAKS = re.compile(
    r"Traceback|File \"|\bError\(|Exception\b|KeyError|TypeError|ValueError|AttributeError|"
    r"UnicodeEncodeError|RecursionError|recursion depth|pymysql|aiomysql|sqlite|MariaDB|SELECT |INSERT |"
    r"object has no attribute|NoneType|unexpected keyword|positional argument",
)
GARBAGE_IDS = ["", "x", "VXNlcjox", "UG9zdDo5OTk5OTk5OTk5", "Tm9wZTox", "%%%", "0" * 300, "VXNlcjotMQ==",
               "Post:1", "VXNlcjo5MjIzMzcyMDM2ODU0Nzc1ODA4"]


@dataclass
class Seeded:
    tokens: list[str]
    ids: list[str]
    usernames: list[str]


@dataclass
class Findings:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    bad: list[tuple[str, int, Any]] = field(default_factory=list)

    def record(self, doc: str, status: int, body: Any) -> None:
        self.sent += 1
        self.statuses[status] += 1
        errors = body.get("errors") if isinstance(body, dict) else None
        problem = status >= 500 or not isinstance(body, dict)
        for err in errors or []:
            code = (err.get("extensions") or {}).get("code")
            self.codes[code] += 1
            if code in (None, "INTERNAL_SERVER_ERROR") or LEAKS.search(err.get("message", "")):
                problem = True
        if problem and len(self.bad) < 50:
            self.bad.append((doc, status, body))
        elif problem:
            self.bad.append((doc[:200], status, None))

    def summary(self) -> str:
        return (f"{self.sent} requests; HTTP statuses {dict(sorted(self.statuses.items()))}; "
                f"error codes {dict(self.codes.most_common())}; findings {len(self.bad)}")


async def seed(gql: Any) -> Seeded:
    """A small graph with every relation: public and private accounts, follows, a request, a
    block, a mute, posts with tags and a place, likes and comments."""
    users = {}
    for name, private in (("ada", False), ("bob", True), ("cyd", False), ("dan", False)):
        users[name] = await gql.sign_up(name, private=private)
    (ta, a), (tb, b), (tc, c), (td, d) = users["ada"], users["bob"], users["cyd"], users["dan"]
    ids = [a, b, c, d]
    await gql.mutate("follow", tc, a)
    await gql.mutate("follow", tc, b)  # a request to the private account
    await gql.mutate("follow", td, a)
    await gql.mutate("block", ta, d)
    await gql.mutate("mute", tc, a, "errors { code }")
    create = ("mutation($i: PostCreateInput!) { createPost(input: $i) { post { id } errors { code } } }")
    for token, caption in ((ta, "hello #sun @cyd"), (tb, "private #moon"), (tc, "third #sun")):
        data = await gql.ok(create, {"i": {"caption": caption,
                                           "location": {"name": "Quay", "latitude": 1.0, "longitude": 2.0}}}, token)
        post = data["createPost"]["post"]["id"]
        ids.append(post)
        await gql.ok("mutation($p: ID!) { likePost(input: {postId: $p}) { errors { code } } }", {"p": post}, tc)
        com = await gql.ok("mutation($p: ID!) { addComment(input: {postId: $p, text: \"nice\"}) "
                           "{ comment { id } errors { code } } }", {"p": post}, tc)
        if com["addComment"]["comment"]:
            ids.append(com["addComment"]["comment"]["id"])
    return Seeded(tokens=[ta, tb, tc, td], ids=ids, usernames=list(users))


async def log_in(gql: Any, username: str) -> str:
    """A fresh session for a seeded user (a fuzzed `logOut` may have ended the old one)."""
    data = await gql.ok("mutation($u: String!, $p: String!) { logIn(input: {username: $u, password: $p}) "
                        "{ token errors { code } } }", {"u": username, "p": password_of(username)})
    return data["logIn"]["token"]


def generate(n: int, ids: list[str], *, mode: Mode, seed: int = 0) -> list[str]:
    """`n` documents for the schema (drawn in a plain loop: no shrinking, no example database)."""
    schema = graphql.build_schema(printed_schema())
    id_values = st.sampled_from(ids + GARBAGE_IDS).map(nodes.String)
    strategy = from_schema(schema, custom_scalars={"ID": id_values}, mode=mode)
    out: list[str] = []

    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(doc=strategy)
    def collect(doc: str) -> None:
        out.append(doc)

    collect()
    return out


async def send(gql: Any, doc: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await gql.client.post("/graphql", json={"query": doc}, headers=headers)
    try:
        return resp.status, await resp.json(content_type=None)
    except ValueError:
        return resp.status, await resp.text()


async def run(gql: Any, documents: list[str], seeded: Seeded, findings: Findings | None = None) -> Findings:
    """Send each document once, in turn anonymous and as each seeded user (whose session is
    renewed when a fuzzed `logOut` ended it)."""
    findings = findings or Findings()
    names: list[str | None] = [None, *seeded.usernames]
    tokens: dict[str | None, str | None] = {None: None, **dict(zip(seeded.usernames, seeded.tokens))}
    for i, doc in enumerate(documents):
        name = names[i % len(names)]
        status, body = await send(gql, doc, tokens[name])
        if status == 401 and name is not None:
            tokens[name] = await log_in(gql, name)
            status, body = await send(gql, doc, tokens[name])
        findings.record(doc, status, body)
    return findings


# Raw requests that a parser must refuse with a 4xx in GraphQL shape: (method, path, headers, body).
BAD_REQUESTS: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("POST", "/graphql", {"Content-Type": "application/json"}, b'{"query": "{ viewer { id } }", "x": "\xff\xfe"}'),
    ("POST", "/graphql", {"Content-Type": "application/json"}, b'{"query": "{ user(username: \\"\xff\\") { id } }"}'),
    ("POST", "/graphql", {"Content-Type": "application/json"}, b'"just a string"'),
    ("POST", "/graphql", {"Content-Type": "application/json"}, b"null"),
    ("POST", "/graphql", {"Content-Type": "application/json"}, b"[]"),
    ("POST", "/graphql", {"Content-Type": "application/json"}, b"{"),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        b'{"query": "{ viewer { id } }", "variables": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        b'{"query": "{ viewer { id } }", "extensions": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
    ),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        b'{"query": "query A { viewer { id } } query B { viewer { id } }"}',
    ),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        b'{"query": "query($s: String!) { user(username: $s) { id } }", "variables": {"s": "x\\ud800y"}}',
    ),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        b'{"query": "{ uploadStatus(uploadId: "") { state } }"}',
    ),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json"},
        b'{"query": "' + b"{ viewer { id } }" * 1 + b'", "variables": 7}',
    ),
    ("POST", "/graphql", {"Content-Type": "application/json"}, b'{"query": "' + b"a" * (3 << 20) + b'"}'),
    ("POST", "/graphql", {"Content-Type": "text/plain"}, b"{ viewer { id } }"),
    ("GET", "/graphql?query=%7B%20viewer%20%7B%20id%20%7D%20%7D&variables=%7Bbad", {}, None),
    (
        "GET",
        "/graphql?query=mutation%20%7B%20logOut(input%3A%7B%7D)%20%7B%20errors%20%7B%20code%20%7D%20%7D%20%7D",
        {},
        None,
    ),
    (
        "POST",
        "/graphql",
        {"Content-Type": "application/json", "Authorization": "Bearer tgs_AAAA.BBBB"},
        b'{"query": "{ viewer { id } }"}',
    ),
    ("POST", "/graphql", {"Content-Type": "application/json", "X-Big": "x" * 20000}, b'{"query": "{ viewer { id } }"}'),
]


async def bad_requests(gql: Any, findings: Findings) -> None:
    for method, path, headers, body in BAD_REQUESTS:
        resp = await gql.client.request(method, path, headers=headers, data=body)
        text = await resp.text()
        try:
            import json
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        label = f"{method} {path[:60]} {str(body)[:80]}"
        findings.record(label, resp.status, parsed)
        if resp.status >= 500 or not isinstance(parsed, dict) or "errors" not in parsed:
            if (label, resp.status, parsed) not in findings.bad:
                findings.bad.append((label, resp.status, parsed))


def flush_memcached(addresses: list[str]) -> None:
    import socket

    for address in addresses:
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.sendall(b"flush_all\r\n")
            conn.recv(64)


async def shard_killed_under_load(gql: Any, services: Any, seeded: Seeded, documents: list[str],
                                  findings: Findings, seconds: float = 8.0) -> None:
    """Send generated documents from 4 concurrent clients while MariaDB server 0 is killed (and
    memcached flushed, so sessions and objects come from SQL) and, half-way, restarted: every
    answer must still be a masked, coded GraphQL response."""
    stop = asyncio.Event()
    tokens = [await log_in(gql, name) for name in seeded.usernames]  # the fuzz may have logged out

    async def client(k: int) -> None:
        i = k
        while not stop.is_set():
            doc = documents[i % len(documents)]
            status, body = await send(gql, doc, tokens[k % len(tokens)])
            findings.record(doc, status, body)
            i += 4

    tasks = [asyncio.create_task(client(k)) for k in range(4)]
    await asyncio.sleep(1.0)
    services.kill_mysql(0)
    await asyncio.to_thread(flush_memcached, services.memcached)  # a cold cache: sessions read SQL too
    await asyncio.sleep(seconds / 2)
    await asyncio.to_thread(services.start_mysql, 0)
    await asyncio.sleep(seconds / 2)
    stop.set()
    await asyncio.gather(*tasks)


async def _main(requests: int) -> None:
    import tempfile

    from tests.harness import start_services
    from tests.schema.client import graphql_settings, running_app

    services = start_services(n_mysql=2, n_memcached=2, s3=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s = graphql_settings("mysql", services, "fuzz" + str(int(time.time())), Path(tmp))
            s.limits.cost_budget = 10**9  # the budget is tested elsewhere; here it would hide faults
            async with running_app(s) as gql:
                seeded = await seed(gql)
                half = requests // 2
                started = time.perf_counter()
                docs = (generate(half, seeded.ids, mode=Mode.POSITIVE)
                        + generate(requests - half, seeded.ids, mode=Mode.NEGATIVE))
                print(f"generated {len(docs)} documents in {time.perf_counter() - started:.1f} s")
                fuzz = await run(gql, docs, seeded)
                bad = Findings()
                await bad_requests(gql, bad)
                killed = Findings()
                reads = generate(300, seeded.ids, mode=Mode.POSITIVE, seed=1)
                reads = [d for d in reads if not d.lstrip().startswith("mutation")] or reads
                await shard_killed_under_load(gql, services, seeded, reads, killed)
    finally:
        services.stop()
    for title, findings in (("fuzz", fuzz), ("bad requests", bad), ("shard killed under load", killed)):
        print(f"== {title}: {findings.summary()}")
        for doc, status, body in findings.bad[:15]:
            print("---", status, doc[:300], "\n   ", str(body)[:400])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    asyncio.run(_main(parser.parse_args().requests))
