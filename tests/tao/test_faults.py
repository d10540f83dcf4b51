"""Faults under load, on MariaDB + memcached: a paused (SIGSTOP) or killed memcached, a killed
MariaDB server, and a worker killed in the middle of a job.

What must hold (DESIGN.md §3 "What we promise", §4):
- memcached paused or killed: no call fails, none takes much longer than the cache timeout, and
  no read, from this process or another one, returns a value older than the last acknowledged
  write;
- a MariaDB server killed: the other server's shards keep serving; calls on the dead shards fail
  with ShardUnavailableError within the store's timeouts; after the restart every acknowledged
  write is there, the outbox drains and inverse edges converge (including inverses whose id2
  lives on the dead server, which the writer had to leave to the outbox);
- a worker killed mid-job: another worker runs the job once its lease ends; the effect happens
  once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tao import ShardUnavailableError, open_tao
from tao.repair import verify_shard
from tao.testing import TaoTestHooks as hooks
from tests.tao.job_handlers import HANG_ENV, runs
from tests.tao.job_handlers import register as register_test_jobs
from tests.tao.procs import RemoteTao, Writer, expected_state, write_config
from tests.waiting import until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CACHE_TIMEOUT = 0.5
# A correctness bound, not a benchmark: a call that waited for the paused server to come back
# would take the whole pause (PAUSE_SECONDS); one that only timed out on it takes about one
# cache timeout plus its SQL. 5x leaves room for a loaded 2-core box.
CALL_BOUND = 5 * CACHE_TIMEOUT
PAUSE_SECONDS = 4.0


async def make_objects(tao, n: int, where=lambda id_: True) -> list[int]:
    """n fresh objects whose ids satisfy `where` (e.g. on a given server)."""
    out: list[int] = []
    while len(out) < n:
        id_ = await tao.obj_add("TEST_NODE", {})
        if where(id_):
            out.append(id_)
    return out


async def sql_lists(tao, id1s: list[int], atype: str) -> dict[tuple, tuple]:
    """{(id1, atype, id2): (time, data)} straight from SQL, plus each list's stored count."""
    code = hooks(tao).atype(atype).code
    edges, counts = {}, {}
    for id1 in id1s:
        async with hooks(tao).read(tao.shard(id1)) as conn:
            rows = await conn.fetchall(
                "SELECT id2, time, data FROM {assocs} WHERE id1 = %s AND atype = %s", (id1, code)
            )
            head = await conn.fetchall("SELECT count FROM {assoc_counts} WHERE id1 = %s AND atype = %s", (id1, code))
        edges.update({(id1, atype, r[0]): (r[1], json.loads(r[2])) for r in rows})
        counts[id1] = head[0][0] if head else 0
    return edges, counts


def assert_acked_writes_hold(ops, edges: dict, objs: dict) -> None:
    """Every key is in one of the states its writer's acknowledgements allow."""
    expected = expected_state(op for op in ops if op.kind != "obj")
    for key, acceptable in expected.items():
        assert edges.get(key) in acceptable, (key, edges.get(key), acceptable)
    assert set(edges) <= set(expected), "an edge no writer wrote"
    for (obj_id, k), acceptable in expected_state(op for op in ops if op.kind == "obj").items():
        assert objs[obj_id].data.get(k) in acceptable, (obj_id, k, objs[obj_id].data.get(k), acceptable)


# ---- memcached paused or killed ------------------------------------------------------------

@pytest.mark.parametrize("fault", ["pause", "kill"])
async def test_memcached_fault_during_writes(mysql_settings, services, tmp_path, fault):
    s = mysql_settings
    s.cache.timeout = s.cache.connect_timeout = CACHE_TIMEOUT
    s.cache.heartbeat_interval = 0.05
    tao = await open_tao(s, migrate=True, start_worker=False)
    remote = None
    try:
        remote = RemoteTao(await asyncio.to_thread(write_config, s, tmp_path / "taogram.toml"))
        down = services.memcached[0]
        on_down = await make_objects(tao, 4, lambda i: hooks(tao).cache.server_of(hooks(tao).obj_key(i)) == down)
        on_up = await make_objects(tao, 4, lambda i: hooks(tao).cache.server_of(hooks(tao).obj_key(i)) != down)
        objs = on_down + on_up
        hot = (await make_objects(tao, 1))[0]
        id2s = await make_objects(tao, 8)
        acked: dict[int, int] = {}  # object -> highest acknowledged version

        # Both processes cache every value before the fault, so a stale entry would be there to find.
        for o in objs:
            acked[o] = (await tao.obj_update(o, {"k": 0})).version
        for reads in (tao.obj_get(objs), remote.call("obj_get", objs)):
            assert {i: o.version for i, o in (await reads).items()} == acked
        await tao.assoc_range(hot, "TEST_LINK", 0, 100)

        writers = [Writer(f"w{i}") for i in range(4)]
        stop = asyncio.Event()
        read_times: list[float] = []

        async def write_loop(w: Writer, mine: list[int], my_id2s: list[int]) -> None:
            seq = 0
            while not stop.is_set():
                seq += 1
                for o in mine:
                    op = await w.obj_set(tao, o, "k", seq)
                    if op.ok:
                        acked[o] = max(acked[o], op.version)
                id2 = my_id2s[seq % len(my_id2s)]
                if seq % 3:
                    await w.add(tao, hot, "TEST_LINK", id2, {"seq": seq})
                else:
                    await w.delete(tao, hot, "TEST_LINK", id2)
                await asyncio.sleep(0.01)

        async def read_loop(who: str, read) -> None:
            """No read returns a version older than one acknowledged before it was issued."""
            while not stop.is_set():
                floor = dict(acked)
                t0 = time.monotonic()
                got = await read(objs)
                read_times.append(time.monotonic() - t0)
                for o in objs:
                    assert got[o].version >= floor[o], (
                        f"{who} read v{got[o].version} of {o} (on {hooks(tao).cache.server_of(hooks(tao).obj_key(o))}) "
                        f"{t0 - events['fault']:.3f}s after the fault, {t0 - events.get('back', 1e12):.3f}s after "
                        f"the server was back; v{floor[o]} was acknowledged before the read")
                await asyncio.sleep(0.02)

        events = {"fault": 1e12}  # monotonic times of the fault and of the server's return
        tasks = [asyncio.create_task(write_loop(w, objs[i::4], id2s[i::4])) for i, w in enumerate(writers)]
        tasks += [asyncio.create_task(read_loop("this process", tao.obj_get)),
                  asyncio.create_task(read_loop("the other process", lambda ids: remote.call("obj_get", ids)))]
        try:
            await asyncio.sleep(0.5)
            events["fault"] = time.monotonic()
            if fault == "pause":
                services.pause_memcached(0)
                await asyncio.sleep(PAUSE_SECONDS)
                services.resume_memcached(0)
            else:
                services.kill_memcached(0)
                await asyncio.sleep(PAUSE_SECONDS)
                services.start_memcached(0)
            events["back"] = time.monotonic()
            await asyncio.sleep(2.0)  # writes and reads go on after the server is back
        finally:
            stop.set()
            done = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [e for e in done if isinstance(e, BaseException)]
        assert not errors, errors[0]

        ops = [op for w in writers for op in w.log]
        failed = [op for op in ops if not op.ok]
        assert not failed, f"{len(failed)} writes failed, e.g. {failed[0].error}"
        slow = max(op.elapsed for op in ops)
        assert slow <= CALL_BOUND, f"a write took {slow:.2f}s; the cache timeout is {CACHE_TIMEOUT}s"
        assert max(read_times) <= CALL_BOUND + 1.0  # the remote reads also cross a pipe
        assert tao.stats()["cache_faults"] >= 1, "the fault was never seen: the test proved nothing"

        # After the fault: both processes read the last acknowledged state, lists included.
        edges, counts = await sql_lists(tao, [hot], "TEST_LINK")
        for reader in (tao.obj_get, lambda ids: remote.call("obj_get", ids)):
            got = await reader(objs)
            assert {o: got[o].version for o in objs} == acked
        assert_acked_writes_hold(ops, edges, await tao.obj_get(objs))
        want = sorted(((t, id2, d) for (_, _, id2), (t, d) in edges.items()), reverse=True)
        for rng in (tao.assoc_range, lambda *a: remote.call("assoc_range", *a)):
            assert [(e.time, e.id2, e.data) for e in await rng(hot, "TEST_LINK", 0, 100)] == want
        assert await remote.call("assoc_count", hot, "TEST_LINK") == counts[hot] == len(want)
    finally:
        if remote is not None:
            await remote.close()
        await tao.close()


# ---- a MariaDB server killed -----------------------------------------------------------------

async def test_mysql_server_killed_during_writes(mysql_settings, services):
    s = mysql_settings
    tao = await open_tao(s, migrate=True, start_worker=False)
    try:
        server_of = lambda id_: hooks(tao).shard_map.server_of_shard[tao.shard(id_)]  # noqa: E731
        dead_server = 1
        live = await make_objects(tao, 3, lambda i: server_of(i) != dead_server)
        dead = await make_objects(tao, 3, lambda i: server_of(i) == dead_server)
        dead_shards = set(hooks(tao).shard_map.shards_on(dead_server))
        fail_bound = s.store.connect_timeout + s.store.acquire_timeout + s.store.query_timeout
        stop = asyncio.Event()
        phase = {"name": "before"}
        writers = {o: Writer(f"w{o}") for o in live + dead}
        live_reads = {"ok": 0}

        async def write_loop(owner: int) -> None:
            """Edges from `owner` to objects on both servers, and the owner's own data."""
            w, seq = writers[owner], 0
            targets = [o for o in live + dead if o != owner]
            while not stop.is_set():
                seq += 1
                target = targets[seq % len(targets)]
                if seq % 4 == 3:
                    op = await w.delete(tao, owner, "TEST_LINK", target)
                elif seq % 4 == 2:
                    op = await w.obj_set(tao, owner, "k", seq)
                else:
                    op = await w.add(tao, owner, "TEST_LINK", target, {"seq": seq})
                op.phase = phase["name"]
                await asyncio.sleep(0.01 if op.ok else 0.1)

        async def live_read_loop() -> None:
            """The healthy server's shards keep serving reads throughout."""
            while not stop.is_set():
                await tao.obj_get(live)
                await tao.assoc_range_many([(o, "TEST_LINK") for o in live], 0, 100)
                live_reads["ok"] += 1
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(write_loop(o)) for o in live + dead]
        tasks.append(asyncio.create_task(live_read_loop()))
        try:
            await asyncio.sleep(0.5)
            phase["name"] = "dead"
            await asyncio.to_thread(services.kill_mysql, dead_server)
            reads_before = live_reads["ok"]
            await asyncio.sleep(2.0)
            # New objects with no owner go to shards that have not just failed.
            placed = [await tao.obj_add("TEST_NODE", {"placed": i}) for i in range(10)]
            assert all(server_of(i) != dead_server for i in placed), "a new object was placed on the dead server"
            phase["name"] = "restarting"
            await asyncio.to_thread(services.start_mysql, dead_server)
            assert live_reads["ok"] > reads_before, "the healthy shards stopped serving reads"
            phase["name"] = "after"
            await asyncio.sleep(1.5)
        finally:
            stop.set()
            done = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [e for e in done if isinstance(e, BaseException)]
        assert not errors, errors[0]

        ops = [op for w in writers.values() for op in w.log]
        on_live = [op for op in ops if op.key[0] in live]
        on_dead = [op for op in ops if op.key[0] in dead]
        # The healthy server's shards never failed a write, even for edges to the dead server.
        assert all(op.ok for op in on_live), next(op.error for op in on_live if not op.ok)
        assert any(op.kind == "add" and op.key[2] in dead and op.phase == "dead" for op in on_live)
        assert tao.stats().get("inverse_sync_deferred", 0) >= 1
        # The dead shards failed fast and clearly, and served again after the restart.
        failed = [op for op in on_dead if not op.ok]
        assert failed, "no call reached the dead server: the test proved nothing"
        for op in failed:
            assert isinstance(op.exc, ShardUnavailableError), op.error
            assert op.exc.shard in dead_shards and f"shard {op.exc.shard} is unavailable" in str(op.exc)
            assert op.elapsed <= fail_bound, f"{op.error} after {op.elapsed:.1f}s (bound {fail_bound}s)"
        assert all(op.ok for op in on_dead if op.phase == "before")
        assert any(op.ok for op in on_dead if op.phase == "after"), "the restarted server's shards never served"

        # Every acknowledged write survived; the outbox drains and the inverses converge.
        await tao.run_jobs_until_idle()
        assert await tao.outbox.pending() == 0
        edges, counts = await sql_lists(tao, live + dead, "TEST_LINK")
        assert_acked_writes_hold(ops, edges, await tao.obj_get(live + dead))
        for o in live + dead:
            assert counts[o] == sum(1 for k in edges if k[0] == o)
        await hooks(tao).cache.flush()
        inverses = await tao.assoc_get_many([(k[2], "TEST_LINK_OF", k[0]) for k in edges])
        for (id1, _, id2), (t, d) in edges.items():
            inv = inverses[(id2, "TEST_LINK_OF", id1)]
            assert inv is not None and (inv.time, inv.data) == (t, d), (id1, id2)
        all_nodes = live + dead
        inv_counts = await tao.assoc_count_many([(o, "TEST_LINK_OF") for o in all_nodes])
        assert sum(inv_counts.values()) == len(edges)
        for shard in range(tao.n_shards):
            report = await verify_shard(tao, shard)
            assert report.ok, report
    finally:
        await tao.close()


async def test_a_dead_server_fails_only_its_keys_in_the_per_key_error_mode(mysql_settings, services):
    """errors="return": each key held by a dead server's shards maps to its ShardUnavailableError,
    every other key to its value, in one call (what a DataLoader needs to fail only those keys)."""
    s = mysql_settings
    s.store.query_timeout = s.store.acquire_timeout = s.store.connect_timeout = 1.0
    tao = await open_tao(s, migrate=True, start_worker=False)
    try:
        server_of = lambda id_: hooks(tao).shard_map.server_of_shard[tao.shard(id_)]  # noqa: E731
        live = await make_objects(tao, 2, lambda i: server_of(i) == 0)
        dead = await make_objects(tao, 2, lambda i: server_of(i) == 1)
        for o in live + dead:
            await tao.assoc_add(o, "TEST_PLAIN", live[0], time=5)
            await tao.assoc_add(o, "TEST_UNCACHED", live[0], time=5)
        await hooks(tao).cache.flush()  # every read below goes to SQL
        await asyncio.to_thread(services.kill_mysql, 1)
        try:
            objs = await tao.obj_get(live + dead, errors="return")
            lists = [(o, "TEST_PLAIN") for o in live + dead] + [(o, "TEST_UNCACHED") for o in live + dead]
            answers = {
                "counts": await tao.assoc_count_many(lists, errors="return"),
                "ranges": await tao.assoc_range_many(lists, 0, 10, errors="return"),
                "ranges past the window": await tao.assoc_range_many(lists, 100, 10, errors="return"),
                "time ranges": await tao.assoc_time_range_many(lists, high=10, errors="return"),
                "edges": await tao.assoc_get_many([(*k, live[0]) for k in lists], errors="return"),
            }
            with pytest.raises(ShardUnavailableError):
                await tao.obj_get(dead)  # the default mode raises
        finally:
            await asyncio.to_thread(services.start_mysql, 1)
        for o in live:
            assert objs[o].id == o
        for o in dead:
            assert isinstance(objs[o], ShardUnavailableError) and server_of(o) == 1
        for name, answer in answers.items():
            for key, value in answer.items():
                if key[0] in dead:
                    assert isinstance(value, ShardUnavailableError), (name, key, value)
                else:
                    assert not isinstance(value, BaseException), (name, key, value)
        assert all(answers["counts"][(o, "TEST_PLAIN")] == 1 for o in live)
        assert all([e.id2 for e in answers["ranges"][(o, "TEST_UNCACHED")]] == [live[0]] for o in live)
        assert all(answers["edges"][(o, "TEST_PLAIN", live[0])].time == 5 for o in live)
    finally:
        await tao.close()


# ---- a worker killed mid-job -----------------------------------------------------------------

async def start_worker(config: Path, *, hang: bool) -> asyncio.subprocess.Process:
    env = dict(os.environ)
    env.pop(HANG_ENV, None)
    if hang:
        env[HANG_ENV] = "1"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tao", "--config", str(config), "worker", cwd=REPO, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_worker_killed_mid_job_is_retried_by_another_worker_with_one_effect(mysql_settings, tmp_path):
    s = mysql_settings
    s.jobs.lease_seconds = 1.0
    s.jobs.poll_interval = 0.05
    s.jobs.handler_modules = ["tests.tao.job_handlers"]
    tao = await open_tao(s, migrate=True, start_worker=False)
    register_test_jobs(tao)
    config = await asyncio.to_thread(write_config, s, tmp_path / "taogram.toml")
    first = second = None
    try:
        a, b = await tao.obj_add("TEST_NODE", {}), await tao.obj_add("TEST_NODE", {})
        log = tmp_path / "runs.log"
        await tao.enqueue(a, "tests.link", {"id1": a, "id2": b, "time": 1234, "job": "j1", "log": str(log)})

        first = await start_worker(config, hang=True)
        await until(lambda: runs(log), "the first worker started the job")
        first.kill()  # SIGKILL, mid-job: it ran the effect and never reported back
        assert await first.wait() == -signal.SIGKILL
        # (Its effect's inverse-sync job may be there too: done, but its deletion waited for a
        # commit to carry it, `Outbox.delete_soon`; it runs again, harmlessly.)
        still = await tao.outbox.pending_before(int(time.time() * 1000) + 60_000, excluding=("tao.sync_inverses",))
        assert still == 1, "the killed worker's job must still be there"

        second = await start_worker(config, hang=False)

        async def done():
            return await tao.outbox.pending() == 0
        await until(done, "the second worker finished the job after the lease ended")
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0

        assert runs(log) == [first.pid, second.pid]
        # Ran twice, took effect once: one edge, one inverse, exact counts.
        assert await tao.assoc_count(a, "TEST_LINK") == 1
        edge = (await tao.assoc_get(a, "TEST_LINK", [b]))[b]
        assert (edge.time, edge.data) == (1234, {"job": "j1"})
        await tao.run_jobs_until_idle()
        assert await tao.assoc_count(b, "TEST_LINK_OF") == 1
        for shard in {tao.shard(a), tao.shard(b)}:
            assert (await verify_shard(tao, shard)).ok
    finally:
        for p in (first, second):
            if p is not None and p.returncode is None:
                p.kill()
                await p.wait()
        await tao.close()
