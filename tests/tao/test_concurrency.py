"""Concurrent writers on one hot list, from several OS processes, on MariaDB + memcached.

32 writers (2 processes x 16 tasks, each process with its own `Tao`, pools and cache tier) add
and delete edges of one hot list (id1 fixed) and update one hot object, while readers in the test
process read the list and the object the whole time. Each writer owns its id2s and its data key
of the hot object, so the final state is computable from what each writer was acknowledged.
Afterwards the store must agree with that state and with itself: SQL rows and counts, the
cached list and object (read here, read by a fresh `Tao` in another process, and read again
after a flush), and the inverse edges once the outbox is drained.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tao import open_tao
from tao.repair import verify_shard
from tao.testing import TaoTestHooks as hooks
from tests.tao.procs import Op, RemoteTao, expected_state, write_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROCESSES = 2
WRITERS_PER_PROCESS = 16
ID2S_PER_WRITER = 3
OPS_PER_WRITER = 15
ATYPE = "TEST_LINK"


async def start_writers(config: Path, specs: list[Path], logs: list[Path]) -> list[asyncio.subprocess.Process]:
    procs = []
    for spec, log in zip(specs, logs):
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.tao.writer_proc", str(config), str(spec), str(log),
            cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
    for p in procs:  # every process has opened its store before any starts writing
        line = await asyncio.wait_for(p.stdout.readline(), 60)
        assert line.strip() == b"ready", f"writer process said {line!r}"
    for p in procs:
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    return procs


async def reader(tao, hot: int, hot_obj: int, universe: set[int], stop: asyncio.Event, stats: dict) -> None:
    """Reads while the writers write: each answer is a well-formed list, and the object's
    version never goes backwards for this reader."""
    last_version = 0
    while not stop.is_set():
        count = await tao.assoc_count(hot, ATYPE)
        edges = await tao.assoc_range(hot, ATYPE, 0, 1000)
        obj = (await tao.obj_get([hot_obj]))[hot_obj]
        assert 0 <= count <= len(universe)
        assert [(e.time, e.id2) for e in edges] == sorted(((e.time, e.id2) for e in edges), reverse=True)
        assert len({e.id2 for e in edges}) == len(edges) and {e.id2 for e in edges} <= universe
        assert obj.version >= last_version, "a reader saw the hot object's version go backwards"
        last_version = obj.version
        stats["reads"] += 1
        await asyncio.sleep(0.005)


async def sql_state(tao, hot: int, hot_obj: int) -> dict:
    """The truth, straight from the shards."""
    code = hooks(tao).atype(ATYPE).code
    async with hooks(tao).read(tao.shard(hot)) as conn:
        rows = await conn.fetchall("SELECT id2, time, version, data FROM {assocs} WHERE id1 = %s AND atype = %s",
                                   (hot, code))
        head = await conn.fetchall("SELECT count, version FROM {assoc_counts} WHERE id1 = %s AND atype = %s",
                                   (hot, code))
    async with hooks(tao).read(tao.shard(hot_obj)) as conn:
        (obj,) = await conn.fetchall("SELECT version, data FROM {objects} WHERE id = %s", (hot_obj,))
    edges = sorted(((r[1], r[0], r[2], json.loads(r[3])) for r in rows), reverse=True)
    return {"edges": [(id2, t, v, d) for t, id2, v, d in edges], "count": head[0][0],
            "obj": (obj[0], json.loads(obj[1]))}


async def store_view(tao, hot: int, hot_obj: int) -> dict:
    edges = await tao.assoc_range(hot, ATYPE, 0, 1000)
    obj = (await tao.obj_get([hot_obj]))[hot_obj]
    return {"edges": [(e.id2, e.time, e.version, e.data) for e in edges],
            "count": await tao.assoc_count(hot, ATYPE), "obj": (obj.version, obj.data)}


async def test_hot_list_under_32_writers_in_2_processes(mysql_settings, tmp_path):
    s = mysql_settings
    s.store.pool_max = 40                        # 16 writers and their inverse syncs, plus readers
    s.store.acquire_timeout = s.store.query_timeout = 20.0  # a loaded 2-core box; not under test here
    tao = await open_tao(s, migrate=True, start_worker=False)
    remote = None
    try:
        config = await asyncio.to_thread(write_config, s, tmp_path / "taogram.toml")
        hot, hot_obj = await tao.obj_add("TEST_NODE", {}), await tao.obj_add("TEST_NODE", {})
        n_writers = PROCESSES * WRITERS_PER_PROCESS
        id2s = list(await asyncio.gather(*(tao.obj_add("TEST_NODE", {})
                                           for _ in range(n_writers * ID2S_PER_WRITER))))
        universe = set(id2s)
        assert len({tao.shard(i) for i in id2s}) > 1  # inverses land on several shards
        # Cached before the writers start, so their in-place list updates run too.
        assert await tao.assoc_range(hot, ATYPE, 0, 1000) == []
        await tao.obj_get([hot_obj])

        specs, logs = [], []
        for p in range(PROCESSES):
            writers = [{"name": f"p{p}w{w}",
                        "id2s": id2s[(p * WRITERS_PER_PROCESS + w) * ID2S_PER_WRITER:][:ID2S_PER_WRITER]}
                       for w in range(WRITERS_PER_PROCESS)]
            spec = {"hot": hot, "atype": ATYPE, "hot_obj": hot_obj, "writers": writers, "ops": OPS_PER_WRITER,
                    "obj_share": 0.2, "seed": p}
            specs.append(tmp_path / f"spec{p}.json")
            specs[-1].write_text(json.dumps(spec))
            logs.append(tmp_path / f"log{p}.json")

        procs = await start_writers(config, specs, logs)
        stop, stats = asyncio.Event(), {"reads": 0}
        readers = [asyncio.create_task(reader(tao, hot, hot_obj, universe, stop, stats)) for _ in range(3)]
        try:
            codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 240)
        finally:
            stop.set()
            await asyncio.gather(*readers)
        assert codes == [0] * PROCESSES
        assert stats["reads"] > 0

        ops = [Op.from_json(d) for log in logs for d in json.loads(log.read_text())]
        assert len({op.writer for op in ops}) == n_writers
        failed = [op for op in ops if not op.ok]
        assert not failed, f"{len(failed)} calls failed, e.g. {failed[0].error}"

        # Every acknowledged write is in SQL, and nothing else is.
        truth = await sql_state(tao, hot, hot_obj)
        expected = expected_state(op for op in ops if op.kind != "obj")
        assert all(len(states) == 1 for states in expected.values())  # every call was acknowledged
        present = {key[2]: states[0] for key, states in expected.items() if states[0] is not None}
        assert {id2: (t, d) for id2, t, _, d in truth["edges"]} == {k: (t, d) for k, (t, d) in present.items()}
        assert truth["count"] == len(truth["edges"])
        obj_ops = [op for op in ops if op.kind == "obj"]
        want_data = {key[1]: states[0] for key, states in expected_state(obj_ops).items()}
        assert truth["obj"] == (1 + len(obj_ops), want_data)

        # The cache agrees with SQL: as another process reads it, as this one does, and after a flush.
        remote = RemoteTao(config)
        theirs = await remote.call("assoc_range", hot, ATYPE, 0, 1000)
        assert [(e.id2, e.time, e.version, e.data) for e in theirs] == truth["edges"]
        assert await remote.call("assoc_count", hot, ATYPE) == truth["count"]
        their_obj = (await remote.call("obj_get", [hot_obj]))[hot_obj]
        assert (their_obj.version, their_obj.data) == truth["obj"]
        assert await store_view(tao, hot, hot_obj) == truth
        await hooks(tao).cache.flush()
        assert await store_view(tao, hot, hot_obj) == truth

        # Inverse edges mirror the forward ones once the outbox is drained.
        await tao.run_jobs_until_idle()
        inverse = await tao.assoc_get_many([(id2, "TEST_LINK_OF", hot) for id2 in id2s])
        for id2 in id2s:
            inv = inverse[(id2, "TEST_LINK_OF", hot)]
            assert (None if inv is None else (inv.time, inv.data)) == present.get(id2), id2
        counts = await tao.assoc_count_many([(id2, "TEST_LINK_OF") for id2 in id2s])
        assert sum(counts.values()) == truth["count"]
        for shard in range(tao.n_shards):
            report = await verify_shard(tao, shard)
            assert report.ok, report
    finally:
        if remote is not None:
            await remote.close()
        await tao.close()
