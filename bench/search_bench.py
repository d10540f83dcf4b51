"""Search on MariaDB + memcached at scale: the engine (tantivy partitions) against SQL `LIKE '%q%'`
in the same run, typo recall, freshness through the outbox, and indexing throughput.

    .venv/bin/python -m bench.search_bench [--users 100000] [--posts 1000000] [--concurrency 8]

Steps, one run, one set of servers (2 MariaDB + 2 memcached started here unless `--services-json`):
1. load `--users` accounts through `resolvers.bulk.do_add_users_bulk` (username claims and all),
   follows for the querying viewers, and `--posts` posts through the store's bulk verb
   (`obj_add_many`, the POST data `resolvers.posts.post_data` writes; no feed jobs);
2. index them with the rebuild (`resolvers.search.indexer.rebuild_partitions`, one scan):
   indexing throughput;
3. start the partitions' writer in its own process (`search-indexer`'s loop: it claims only the
   index jobs), as production runs it; this process only reads;
4. prefix, typo and caption queries, `--concurrency` at a time, through `resolvers.search.query.search`
   (engine, graph re-rank, block exclusion, the authoritative privacy check) as a signed-in viewer;
   then the baselines over the same data: `data LIKE '%q%' LIMIT 20` on the objects' rows (every
   shard in parallel; unordered, so it stops at its 20th match), and Pixelfed's own account
   searches verbatim on a table shaped like its `profiles` (`PIXELFED_QUERIES`: the current
   prefix query ordered by followers, its 2022 `'%q%'` one, the older web search's);
5. typo recall: single-edit misspellings (not themselves usernames) of random usernames, found in
   the top 3;
6. freshness: profile edits and new posts through the domain actions, each polled (every 20 ms)
   until a search finds it: write returned -> searchable;
7. `--fulltext`: MariaDB FULLTEXT (InnoDB, boolean mode, `word*` prefixes) over the same users,
   for the engine choice (docs/search.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import GcWatch, percentile, run_on_services, service_arguments
from config import MySQLServer, Settings
from config.runtime import tune_gc

MAX_BULK = 5000
SYL = ["ka", "lo", "mi", "ra", "ne", "to", "sa", "vi", "de", "ri", "an", "el", "or", "us", "ta", "ni", "jo", "be",
       "lu", "ma", "co", "di", "fe", "ga", "ha", "is", "ki", "le", "mo", "na", "pe", "qu", "ro", "si", "tu", "va",
       "we", "xi", "ya", "zo", "ch", "sh", "th", "br", "tr", "st"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def word(rng: random.Random, lo: int = 2, hi: int = 4) -> str:
    return "".join(rng.choice(SYL) for _ in range(rng.randint(lo, hi)))


def settings_for(services: Any, run_id: str, index_dir: str, partitions: int) -> Settings:
    s = Settings()
    s.store.backend, s.store.logical_shards, s.store.database_prefix = "mysql", 8, run_id
    s.store.mysql_servers = [MySQLServer(host=m.host, port=m.port, unix_socket=m.unix_socket) for m in services.mysql]
    s.store.query_timeout = s.store.acquire_timeout = 60.0  # bulk statements on a shared box
    s.store.pool_max = 20
    s.cache.backend, s.cache.servers, s.cache.key_prefix = "memcached", list(services.memcached), run_id
    s.cache.timeout = 2.0
    s.jobs.in_process_worker = False
    s.search.index_dir, s.search.partitions = index_dir, partitions
    return s


# ---- data ---------------------------------------------------------------------------------------

def make_people(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    firsts = list(dict.fromkeys(word(rng, 2, 3) for _ in range(600)))
    lasts = list(dict.fromkeys(word(rng, 2, 4) for _ in range(3000)))
    out: dict[str, str] = {}
    while len(out) < n:
        f, last = rng.choice(firsts), rng.choice(lasts)
        style = rng.random()
        name = (f + rng.choice(["", "_", "."]) + last if style < 0.6 else
                f + last[:3] + str(rng.randint(1, 999)) if style < 0.85 else f + "_" + str(rng.randint(10, 9999)))
        name = name[:30].strip("._")
        if name and name not in out:
            out[name] = f"{f.title()} {last.title()}"
    return list(out.items())


def make_vocab(seed: int) -> list[str]:
    rng = random.Random(seed)
    return list(dict.fromkeys(word(rng, 2, 4) for _ in range(20000)))


def caption(rng: random.Random, vocab: list[str], zipf: list[float]) -> str:
    words = rng.choices(vocab, cum_weights=zipf, k=rng.randint(4, 14))
    if rng.random() < 0.3:
        words.append("#" + rng.choice(vocab[:500]))
    return " ".join(words)


async def load(tao: Any, a: argparse.Namespace) -> dict[str, Any]:
    from resolvers.bulk import do_add_follows_bulk, do_add_users_bulk
    from resolvers.posts import post_data

    out: dict[str, Any] = {}
    people = make_people(a.users, 1)
    t0 = time.perf_counter()
    ids: list[int] = []
    for i in range(0, len(people), MAX_BULK):
        ids += [u for u in await do_add_users_bulk(tao, people[i:i + MAX_BULK]) if u is not None]
        log(f"users {len(ids)}/{len(people)}")
    out["users"], out["user_load_s"] = len(ids), round(time.perf_counter() - t0, 1)
    rng = random.Random(2)
    viewers = rng.sample(ids, 20)
    pairs = [(v, u) for v in viewers for u in rng.sample(ids, 100)]
    followees = list({b for _, b in pairs})
    pairs += [(f, u) for f in rng.sample(followees, 300) for u in rng.sample(ids, 20)]
    pairs += [(rng.choice(ids), u) for u in rng.sample(ids, 2000) for _ in range(rng.randint(1, 30))]  # popular ones
    for i in range(0, len(pairs), MAX_BULK):
        await do_add_follows_bulk(tao, pairs[i:i + MAX_BULK], backfill=False)
    out["follows"] = len(pairs)
    vocab = make_vocab(3)
    cum, acc = [], 0.0
    for r in range(1, len(vocab) + 1):
        acc += 1 / r ** 0.9
        cum.append(acc)
    t0 = time.perf_counter()
    made = 0
    post_ids: list[int] = []
    post_authors: list[int] = []  # the Explore phase's graph (AUTHORED, likes) names them
    while made < a.posts:
        k = min(MAX_BULK, a.posts - made)
        authors = [rng.choice(ids) for _ in range(k)]
        post_ids += await tao.obj_add_many([("POST", post_data(au, caption(rng, vocab, cum)), None)
                                            for au in authors])
        post_authors += authors
        made += k
        if made % 50_000 < MAX_BULK:
            log(f"posts {made}/{a.posts} ({made / (time.perf_counter() - t0):.0f}/s)")
    out["posts"], out["post_load_s"] = made, round(time.perf_counter() - t0, 1)
    out["_people"], out["_ids"], out["_viewers"], out["_vocab"] = people, ids, viewers, vocab
    out["_posts"], out["_post_authors"] = post_ids, post_authors
    return out


# ---- the writer process -------------------------------------------------------------------------

def _writer_main(settings: Settings, ready: Any) -> None:
    async def run() -> None:
        from resolvers.jobs import register_job_handlers
        from resolvers.search.engine import indexes_for
        from resolvers.search.indexer import job_name
        from tao import open_tao

        tao = await open_tao(settings, start_worker=False)
        register_job_handlers(tao)
        parts = list(range(settings.search.partitions))
        tao.outbox.only = {job_name(p) for p in parts}
        for p in parts:
            await indexes_for(tao).partitions[p].take_writer()
        ready.set()
        await tao.outbox.work(max_idle=settings.search.indexer_max_idle)  # as `search-indexer` does
    asyncio.run(run())


# ---- measuring ----------------------------------------------------------------------------------

def misspell(rng: random.Random, w: str) -> str:
    i = rng.randrange(len(w))
    op = rng.choice("sdit")
    letters = "abcdefghijklmnopqrstuvwxyz"
    if op == "s":
        return w[:i] + rng.choice([c for c in letters if c != w[i]]) + w[i + 1:]
    if op == "d" and len(w) > 3:
        return w[:i] + w[i + 1:]
    if op == "t" and i + 1 < len(w) and w[i] != w[i + 1]:
        return w[:i] + w[i + 1] + w[i] + w[i + 2:]
    return w[:i] + rng.choice(letters) + w[i:]


async def timed_many(fn: Any, items: list[Any], concurrency: int) -> tuple[list[float], list[Any]]:
    lat: list[float] = []
    results: list[Any] = [None] * len(items)
    queue = list(enumerate(items))

    async def worker() -> None:
        while queue:
            i, item = queue.pop()
            t0 = time.perf_counter()
            results[i] = await fn(item)
            lat.append(time.perf_counter() - t0)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(lat), results


def stats(lat: list[float]) -> dict[str, float]:
    return {"n": len(lat), "p50_ms": round(percentile(lat, 50) * 1000, 2),
            "p99_ms": round(percentile(lat, 99) * 1000, 2)}


async def like_query(tao: Any, otype: str, q: str) -> list[int]:
    """Pixelfed's search: `LIKE '%q%'` (here over the object's JSON data), every shard at once."""
    from tao.testing import TaoTestHooks
    hooks = TaoTestHooks(tao)
    code = tao.registry.otype(otype).code
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

    async def one(shard: int) -> list[int]:
        async with hooks.read(shard) as conn:
            rows = await conn.fetchall("SELECT id FROM {objects} WHERE otype = %s AND data LIKE %s LIMIT 20",
                                       (code, pattern))
        return [r[0] for r in rows]
    found = await asyncio.gather(*(one(s) for s in range(tao.n_shards)))
    return [i for f in found for i in f][:20]


# Pixelfed's account search, as it runs (pixelfed/pixelfed; docs/search.md "The baselines"):
# its `profiles` table with the columns these queries read and the indexes its migrations make
# (username, domain, status, webfinger unique, followers_count; unique (domain, username)),
# narrower than Pixelfed's (no bio, keys or URLs), so a scan here is if anything cheaper. Local
# accounts: `domain`, `status` and `webfinger` NULL. Laravel binds the text unescaped (`_` and `%`
# typed are wildcards there too), and the server's collation is case-insensitive, as MySQL's.
PIXELFED_QUERIES = {
    # SearchApiV2Service::accounts since 4d1f281 (2022-12-31; the web UI's search box, /api/v2/search)
    "pixelfed_v2": ("SELECT username, id, followers_count, domain FROM {t} WHERE username LIKE %s OR webfinger "
                    "LIKE %s ORDER BY followers_count DESC LIMIT 20 OFFSET 0", lambda q: (q + "%", "@" + q + "%")),
    # SearchApiV2Service::accounts from fbaed93 (2021-12-04) until 4d1f281 changed it to the prefix
    "pixelfed_v2_2022": ("SELECT username, id, followers_count, domain FROM {t} WHERE username LIKE %s "
                         "ORDER BY followers_count DESC LIMIT 20 OFFSET 0", lambda q: ("%" + q + "%",)),
    # SearchController::getProfiles (/api/search, the older web search; still routed)
    "pixelfed_legacy": ("SELECT status, domain, username, name, id FROM {t} WHERE status IS NULL AND username LIKE %s "
                        "ORDER BY domain LIMIT 20", lambda q: ("%" + q + "%",)),
}


async def pixelfed_table(tao: Any, people: list[tuple[str, str]], ids: list[int]) -> tuple[str, dict[str, Any]]:
    """Pixelfed's `profiles` (the columns its account search reads) in shard 0's database, filled
    with the same accounts and their follower counts; kept across runs on the same data."""
    from tao.testing import TaoTestHooks
    hooks = TaoTestHooks(tao)
    table = ""

    async def ddl(conn: Any) -> int:
        nonlocal table
        table = conn._conn._prefix + "pf_profiles"
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT UNSIGNED PRIMARY KEY, "
                           "domain VARCHAR(255) NULL, username VARCHAR(255) NULL, status VARCHAR(255) NULL, "
                           "name VARCHAR(255) NULL, followers_count INT UNSIGNED NULL DEFAULT 0, "
                           "webfinger VARCHAR(255) NULL, KEY profiles_username_index (username), "
                           "KEY profiles_domain_index (domain), KEY profiles_status_index (status), "
                           "UNIQUE KEY profiles_webfinger_unique (webfinger), "
                           "KEY profiles_followers_count_index (followers_count), "
                           "UNIQUE KEY profiles_domain_username_unique (domain, username)) ENGINE=InnoDB")
        return int((await conn.fetchall(f"SELECT COUNT(*) FROM {table}"))[0][0])
    have = await hooks.write(0, ddl)
    info: dict[str, Any] = {"rows": len(ids)}
    if have != len(ids):
        t0 = time.perf_counter()
        code = tao.registry.atype("FOLLOWED_BY").code
        followers: dict[int, int] = {}
        for shard in range(tao.n_shards):
            async with hooks.read(shard) as conn:
                for id1, n in await conn.fetchall("SELECT id1, count FROM {assoc_counts} WHERE atype = %s", (code,)):
                    followers[int(id1)] = int(n)
        rows = [(i, u, n, followers.get(i, 0)) for i, (u, n) in zip(ids, people)]

        async def fill(conn: Any) -> None:
            await conn.execute(f"DELETE FROM {table}")
            for k in range(0, len(rows), 2000):
                chunk = rows[k:k + 2000]
                await conn.execute(f"INSERT INTO {table} (id, username, name, followers_count) VALUES "
                                   + ",".join(["(%s, %s, %s, %s)"] * len(chunk)), [x for r in chunk for x in r])
        await hooks.write(0, fill)
        await hooks.write(0, lambda conn: conn.execute(f"ANALYZE TABLE {table}"))
        info["load_s"] = round(time.perf_counter() - t0, 1)
    return table, info


async def pixelfed_search(tao: Any, table: str, name: str, q: str) -> list[int]:
    from tao.testing import TaoTestHooks
    sql, params = PIXELFED_QUERIES[name]
    async with TaoTestHooks(tao).read(0) as conn:
        rows = await conn.fetchall(sql.format(t=table), params(q))
    return [int(r[1] if name.startswith("pixelfed_v2") else r[4]) for r in rows]


async def pixelfed_plans(tao: Any, table: str, q: str) -> dict[str, list[str]]:
    """MariaDB's plan of each query (EXPLAIN): what it scans."""
    from tao.testing import TaoTestHooks
    out: dict[str, list[str]] = {}
    async with TaoTestHooks(tao).read(0) as conn:
        for name, (sql, params) in PIXELFED_QUERIES.items():
            rows = await conn.fetchall("EXPLAIN " + sql.format(t=table), params(q))
            out[name] = [f"type={r[3]} key={r[5]} rows={r[8]} extra={r[9]}" for r in rows]
    return out


async def fulltext(tao: Any, people: list[tuple[str, str]], ids: list[int], queries: dict[str, list[str]],
                   concurrency: int) -> dict[str, Any]:
    """MariaDB's InnoDB FULLTEXT over the same usernames and names (one table on shard 0's server)."""
    from tao.testing import TaoTestHooks
    hooks = TaoTestHooks(tao)

    table = ""

    async def ddl(conn: Any) -> None:
        nonlocal table
        table = conn._conn._prefix + "ft_users"  # in shard 0's database (its `db.` prefix)
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT, FULLTEXT KEY ft (body)) "
                           "ENGINE=InnoDB")
    await hooks.write(0, ddl)
    t0 = time.perf_counter()
    rows = [(i, f"{u.replace('.', ' ').replace('_', ' ')} {u} {n}") for i, (u, n) in zip(ids, people)]
    for k in range(0, len(rows), 2000):
        chunk = rows[k:k + 2000]

        async def ins(conn: Any, chunk: list = chunk) -> None:
            await conn.execute(f"INSERT INTO {table} (id, body) VALUES " + ",".join(["(%s, %s)"] * len(chunk)),
                               [x for r in chunk for x in r])
        await hooks.write(0, ins)
    load_s = time.perf_counter() - t0

    async def ft(q: str) -> list[int]:
        term = "".join(c for c in q if c.isalnum())
        async with hooks.read(0) as conn:
            got = await conn.fetchall(f"SELECT id FROM {table} WHERE MATCH(body) AGAINST (%s IN BOOLEAN MODE) "
                                      "LIMIT 20", (term + "*",))
        return [r[0] for r in got]
    out: dict[str, Any] = {"rows": len(rows), "load_s": round(load_s, 1)}
    for kind in ("prefix", "typo"):
        lat, res = await timed_many(ft, queries[kind], concurrency)
        out[kind] = stats(lat)
        out[kind]["empty_share"] = round(sum(1 for r in res if not r) / max(1, len(res)), 3)
    return out


async def profile_kind(kind: str, qs: list[str], fn: Any) -> str:
    """`fn` over `qs` one at a time under cProfile (this thread only: the engine's searches run
    in threads and show as the wait for them); the top functions by own time."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    c0 = time.process_time()
    prof.enable()
    for q in qs:
        await fn(q)
    prof.disable()
    cpu_ms = (time.process_time() - c0) * 1000 / len(qs)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
    text = f"{kind}: {len(qs)} queries one at a time, {cpu_ms:.2f} ms process CPU per query (profiled)\n"
    text += out.getvalue()
    log(text)
    return text


async def explore_phase(tao: Any, a: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """Explore over the same users and posts (bench/_explore_scale.py): its graph loaded once per
    `--state`, then the pool job and first/next pages for sampled viewers."""
    from bench import _explore_scale as ex

    out: dict[str, Any] = {}
    if "explore_graph" not in data:
        if "_posts" not in data:
            raise SystemExit("this --state has no post ids (made before the Explore phase existed): load again")
        log("loading the Explore graph (AUTHORED, follows, likes) ...")
        data["explore_graph"] = await ex.load_graph(tao, data["_ids"], data["_posts"], data["_post_authors"],
                                                    a.explore_active, a.explore_follows, a.explore_likes,
                                                    a.explore_popular)
        if a.state:
            Path(a.state).write_text(json.dumps(data))
    out["graph"] = {k: v for k, v in data["explore_graph"].items() if k != "actors"}
    log(f"Explore graph {out['graph']}")
    # Viewers new to Explore each run: a served page is never shown again (EXPLORE_SEEN), so a
    # second run on the same viewers would measure pools emptied by the first.
    seed = a.explore_seed if a.explore_seed is not None else int(time.time())
    viewers = await ex.pick_viewers(tao, data["explore_graph"]["actors"], a.explore_viewers, seed)
    out["viewers"], out["viewer_seed"] = len(viewers), seed
    out |= await ex.measure(tao, viewers, a.explore_reads)
    log(f"Explore {out}")
    return out


def size_memcached(servers: list[str], megabytes: int) -> None:
    """Raise each memcached's memory limit at run time (`cache_memlimit`): the harness starts
    them with 64 MB, a third of this data set's objects, so every read evicted another and the
    figures were of a cache that cannot hold the working set (1.4 million evictions per server
    in one run). A cache tier is sized to its working set; 0 leaves them as they are."""
    import socket

    for server in servers if megabytes else []:
        host, port = server.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(f"cache_memlimit {megabytes}\r\n".encode())
            if not conn.recv(64).startswith(b"OK"):
                raise SystemExit(f"memcached {server} refused cache_memlimit {megabytes}")


async def run(a: argparse.Namespace, services: Any) -> dict[str, Any]:
    from resolvers.actor import acting_as
    from resolvers.search import query as sq
    from resolvers.search.engine import close_indexes, indexes_for
    from resolvers.search.indexer import rebuild_partitions
    from resolvers.users import do_update_profile
    from tao import open_tao

    tmp = Path(tempfile.mkdtemp(prefix="search-bench-"))
    state = json.loads(Path(a.state).read_text()) if a.state and Path(a.state).exists() else None
    run_id = state["run_id"] if state else f"sb{int(time.time()) % 100000}"
    index_dir = Path(a.reuse_index or a.index_dir or tmp / "index")
    settings = settings_for(services, run_id, str(index_dir), a.partitions)
    size_memcached(list(services.memcached), a.memcached_mb)
    tao = await open_tao(settings, migrate=True, start_worker=False)
    from resolvers.jobs import register_job_handlers
    register_job_handlers(tao)
    result: dict[str, Any] = {"users_asked": a.users, "posts_asked": a.posts, "partitions": a.partitions,
                              "concurrency": a.concurrency}
    if state is None:
        data = await load(tao, a)
        if a.state:  # a later run measures the same data again (`--state` with the same file)
            Path(a.state).write_text(json.dumps({"run_id": run_id, **data}))
    else:
        data = state
        log(f"reusing the data of {a.state} ({run_id})")
    people, ids, viewers, vocab = data["_people"], data["_ids"], data["_viewers"], data["_vocab"]
    people = [tuple(p) for p in people]
    result["load"] = {k: v for k, v in data.items() if not k.startswith("_") and k != "run_id"}
    if a.load_only:
        await tao.close()
        return result
    if a.skip_search:  # Explore reads no search index
        result["explore"] = await explore_phase(tao, a, data)
        await tao.close()
        return result
    log(f"loaded {result['load']}; indexing (rebuild of every partition) ...")
    if a.reuse_index:
        log(f"reusing the index in {a.reuse_index} (no indexing measured)")
    else:
        t0 = time.perf_counter()
        docs = await rebuild_partitions(tao, list(range(a.partitions)))
        secs = time.perf_counter() - t0
        result["indexing"] = {"documents": docs, "seconds": round(secs, 1), "docs_per_s": round(docs / secs)}
        log(f"indexed {result['indexing']} into {index_dir}")
    if a.index_only:
        close_indexes(tao)
        await tao.close()
        return result
    close_indexes(tao)  # hand the writers to their own process
    tao.settings.search.writer_partitions = ""
    await tao.close()
    tao = await open_tao(settings, start_worker=False)
    register_job_handlers(tao)  # declares the index jobs as run elsewhere
    ready = mp.get_context("spawn").Event()
    writer_settings = settings.model_copy(deep=True)
    writer_settings.search.writer_partitions = "any"
    writer = mp.get_context("spawn").Process(target=_writer_main, args=(writer_settings, ready), daemon=True)
    writer.start()
    try:
        await asyncio.to_thread(ready.wait, 120)
        rng = random.Random(5)
        sample = rng.sample(range(len(ids)), a.queries)
        existing = {u.lower() for u, _ in people}
        queries = {
            "prefix": [people[i][0][:rng.randint(3, 5)] for i in sample],
            "typo": [],
            "caption": [" ".join(rng.sample(vocab[50:3000], rng.choice([1, 1, 2]))) for _ in sample],
        }
        typo_targets: list[tuple[str, int]] = []
        for i in rng.sample(range(len(ids)), a.recall):
            u = people[i][0].lower()
            m = misspell(rng, u)
            if m != u and m not in existing:
                typo_targets.append((m, ids[i]))
        queries["typo"] = [m for m, _ in typo_targets[:a.queries]]

        async def engine(kind: str, q: str, viewer: int) -> list[Any]:
            kinds = ("post",) if kind == "caption" else ("user",)
            page = await sq.search(acting_as(tao, viewer), q, kinds, 20, None)
            return [r for _, r in page.items]
        result["engine"] = {}
        if a.server_gc:
            # As server.py does once up (config/runtime.py): this process stands in for a server
            # process; it also holds the load's 100 000 ids and names, which a server does not.
            tune_gc()
        gc_passes = GcWatch()
        gc.callbacks.append(gc_passes)
        for kind, qs in queries.items():
            await timed_many(lambda q, kind=kind: engine(kind, q, rng.choice(viewers)), qs[:20], a.concurrency)  # warm
            la, c0, g0 = os.getloadavg()[0], time.process_time(), list(gc_passes.passes)
            lat, res = await timed_many(lambda q, kind=kind: engine(kind, q, rng.choice(viewers)), qs, a.concurrency)
            # Process CPU (every thread: the engine's searches too) per query: what a query costs
            # whatever else the box runs, unlike its wall-clock latency.
            cpu_ms = (time.process_time() - c0) * 1000 / len(qs)
            result["engine"][kind] = stats(lat) | {"empty_share": round(sum(1 for r in res if not r) / len(res), 3),
                                                   "cpu_ms_per_query": round(cpu_ms, 2),
                                                   "gc_passes_gen0_1_2": [x - y for x, y in
                                                                          zip(gc_passes.passes, g0)],
                                                   "load_average": [round(la, 1), round(os.getloadavg()[0], 1)]}
            log(f"engine {kind}: {result['engine'][kind]}")
        gc.callbacks.remove(gc_passes)
        if a.profile:
            result["profile"] = await profile_kind(a.profile, queries[a.profile], lambda q: engine(a.profile, q,
                                                                                                   rng.choice(viewers)))
        if a.engine_only:
            return result
        result["like"] = {}
        for kind, qs in queries.items():
            otype = "POST" if kind == "caption" else "USER"
            lat, res = await timed_many(lambda q, otype=otype: like_query(tao, otype, q), qs[:a.like_queries],
                                        a.concurrency)
            result["like"][kind] = stats(lat) | {"empty_share": round(sum(1 for r in res if not r) / len(res), 3)}
            log(f"LIKE {kind}: {result['like'][kind]}")
        # Pixelfed's own account search (prefix and typo queries are account searches; it has no
        # caption search over others' posts: docs/search.md, "The baselines").
        table, result["pixelfed_table"] = await pixelfed_table(tao, people, ids)
        result["pixelfed_plans"] = await pixelfed_plans(tao, table, queries["prefix"][0])
        log(f"Pixelfed profiles {result['pixelfed_table']}, plans {result['pixelfed_plans']}")
        for name in PIXELFED_QUERIES:
            result[name] = {}
            for kind in ("prefix", "typo"):
                lat, res = await timed_many(lambda q, name=name: pixelfed_search(tao, table, name, q),
                                            queries[kind][:a.pixelfed_queries], a.concurrency)
                result[name][kind] = stats(lat) | {"empty_share": round(sum(1 for r in res if not r) / len(res), 3)}
                log(f"{name} {kind}: {result[name][kind]}")
        result["speedup"] = {base: {k: {p: round(result[base][k][p] / max(result["engine"][k][p], 1e-6), 1)
                                        for p in ("p50_ms", "p99_ms")} for k in result[base]}
                             for base in ("like", *PIXELFED_QUERIES)}
        # Typo recall: the misspelt user in the top 3 (anonymous: no graph to help).
        hits = 0
        for m, target in typo_targets:
            page = await sq.search(acting_as(tao, None), m, ("user",), 3, None)
            hits += any(r.id == target for _, r in page.items)
        result["typo_recall"] = {"n": len(typo_targets), "top3": round(hits / max(1, len(typo_targets)), 4)}
        log(f"typo recall {result['typo_recall']}")
        # Freshness: write -> searchable, the writer in its own process.
        fresh: list[float] = []
        for k in range(a.fresh):
            uid = rng.choice(ids)
            token = f"fresh{k}{word(random.Random(), 3, 3)}{int(time.time() * 1000) % 1_000_000}"  # new every run
            t0 = time.perf_counter()
            await do_update_profile(tao, uid, full_name=f"Fresh {token}")
            while True:
                page = await sq.search(acting_as(tao, None), token, ("user",), 3, None)
                if any(r.id == uid for _, r in page.items):
                    break
                if time.perf_counter() - t0 > 10:
                    break
                await asyncio.sleep(0.02)
            fresh.append(time.perf_counter() - t0)
        result["freshness"] = stats(sorted(fresh))
        log(f"freshness {result['freshness']}")
        if a.fulltext:
            result["fulltext"] = await fulltext(tao, people, ids, queries, a.concurrency)
            log(f"FULLTEXT {result['fulltext']}")
        idx = indexes_for(tao)
        result["index_bytes"] = sum(f.stat().st_size for f in index_dir.rglob("*") if f.is_file())
        del idx
        if a.explore:
            result["explore"] = await explore_phase(tao, a, data)
    finally:
        writer.terminate()
        writer.join(10)
        close_indexes(tao)
        await tao.close()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    service_arguments(p)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--posts", type=int, default=1_000_000)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--queries", type=int, default=300, help="measured engine queries per kind")
    p.add_argument("--like-queries", type=int, default=40, help="measured LIKE queries per kind")
    p.add_argument("--pixelfed-queries", type=int, default=100, help="measured queries per kind of each of "
                   "Pixelfed's account searches")
    p.add_argument("--recall", type=int, default=400, help="misspellings tried for typo recall")
    p.add_argument("--fresh", type=int, default=40, help="writes timed until searchable")
    p.add_argument("--fulltext", action="store_true", help="also measure MariaDB FULLTEXT on the users")
    p.add_argument("--state", help="keep the loaded data's ids here; a later run with it skips the load")
    p.add_argument("--load-only", action="store_true", help="load (and write --state), measure nothing")
    p.add_argument("--index-dir", help="build the index here (default: a new temporary directory)")
    p.add_argument("--index-only", action="store_true", help="build the index (measured), measure nothing else")
    p.add_argument("--reuse-index", help="the index directory of an earlier run on the same --state: no rebuild")
    p.add_argument("--explore", action="store_true", help="also measure Explore over the same data "
                   "(its follow and like graph is loaded once per --state)")
    p.add_argument("--skip-search", action="store_true", help="with --explore: measure Explore only")
    p.add_argument("--explore-active", type=int, default=20_000, help="users who follow and like")
    p.add_argument("--explore-follows", type=float, default=10.0, help="mean follows per active user (log-normal)")
    p.add_argument("--explore-likes", type=float, default=10.0, help="mean likes per active user (Poisson)")
    p.add_argument("--explore-popular", type=int, default=5000, help="accounts whose posts get AUTHORED lists")
    p.add_argument("--explore-viewers", type=int, default=40)
    p.add_argument("--explore-reads", type=int, default=5, help="warm first pages per viewer")
    p.add_argument("--explore-seed", type=int, help="which active users are the viewers (default: new each run)")
    p.add_argument("--profile", choices=["prefix", "typo", "caption"], help="then profile this kind's queries")
    p.add_argument("--engine-only", action="store_true", help="measure the engine's queries only (no LIKE, "
                   "recall, freshness: profiling runs)")
    p.add_argument("--memcached-mb", type=int, default=1024, help="each memcached's memory limit, set at "
                   "run time (the harness starts them with 64 MB; 0: leave it)")
    p.add_argument("--quick", action="store_true", help="2000 users, 10000 posts (smoke run)")
    p.add_argument("--no-server-gc", dest="server_gc", action="store_false",
                   help="measure without the server's GC tuning (config.runtime.tune_gc)")
    a = p.parse_args(argv)
    if a.quick:
        a.users, a.posts, a.queries, a.like_queries, a.recall, a.fresh = 2000, 10_000, 60, 20, 100, 10
    return run_on_services(run, a, log)


if __name__ == "__main__":
    sys.exit(main())
