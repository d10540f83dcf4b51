"""A like's notification recorded by its writer right after the commit, with the outbox job as the
fallback (`record.promptly`), and records of one group coalesced into one batch (`record.record`).

The store-level actions run here directly (`do_like_post`), on both backends, with no worker:
what the list shows right after a like returns is what its writer recorded."""

from __future__ import annotations

import asyncio

from resolvers.accounts import user_data
from resolvers.likes import SETTLE_JOB, do_like_post, do_unlike_post
from resolvers.notifications import causes, record
from resolvers.notifications.model import Event
from resolvers.posts import do_create_post
from tao.models import now_ms


async def _setup(tao, n: int) -> tuple[int, int, list[int]]:
    author = await tao.obj_add("USER", user_data("ada", "", None))
    users = [await tao.obj_add("USER", user_data(f"u{i}", "", None)) for i in range(n)]
    post = (await do_create_post(tao, author, "p", [])).id
    await tao.run_jobs_until_idle()
    return author, post, users


async def _group(tao, author: int) -> tuple[int | None, int]:
    groups = await tao.assoc_range(author, "NOTIFIED", 0, 10)
    assert len(groups) <= 1
    if not groups:
        return None, 0
    return groups[0].id2, await tao.assoc_count(groups[0].id2, "NOTIF_ACTOR")


async def _notification_events(tao, user: int) -> list[dict]:
    return [e.data for e in await tao.assoc_range(user, "STREAM_EVENT", 0, 1000)
            if e.data.get("k") == record.KIND_NOTIFICATION]


async def test_a_like_is_listed_when_it_returns_and_its_job_then_adds_nothing(gql):
    tao = gql.tao
    author, post, [bob] = await _setup(tao, 1)
    await do_like_post(tao, bob, post)
    # No worker ran: the writer recorded it, and deleted the job rows it committed with the like
    # (the inverse sync's goes with a later commit on its shard: `Outbox.delete_soon`).
    nid, count = await _group(tao, author)
    assert nid is not None and count == 1
    await tao.outbox.flush_done()
    # Left queued: only the like's settle job, due a minute later (`likes.settle`, resolvers/likes.py).
    assert await tao.outbox.pending_before(now_ms() + 1, excluding=(SETTLE_JOB,)) == 0
    assert await tao.outbox.pending() == 1
    listed = (await tao.assoc_get(author, "NOTIFIED", [nid]))[nid]
    assert len(await _notification_events(tao, author)) == 1
    # The job runs anyway (its delete was lost, a worker claimed it first): nothing changes.
    like = (await tao.assoc_get(bob, "LIKES", [post]))[post]
    [(_, payload)] = causes.like_post(bob, post, author, like.time)
    await record.record(tao, Event.from_payload(payload))
    assert await _group(tao, author) == (nid, 1)
    assert (await tao.assoc_get(author, "NOTIFIED", [nid]))[nid].time == listed.time
    assert len(await _notification_events(tao, author)) == 1  # no second "new" event either


async def test_a_writer_that_dies_after_the_commit_is_covered_by_the_job(gql):
    tao = gql.tao
    author, post, [bob] = await _setup(tao, 1)
    # What `do_like_post` commits, without the record it does after the commit (the process died).
    at = now_ms()
    prompt = record.promptly(tao, causes.like_post(bob, post, author, at), near=bob)
    await tao.assoc_add(bob, "LIKES", post, time=at, jobs=prompt.jobs)
    assert await _group(tao, author) == (None, 0)
    # The job waits for its writer (record_grace_ms), then a worker records it, once.
    assert await tao.run_jobs_until_idle(include_delayed=False) == 0
    assert await _group(tao, author) == (None, 0)
    await tao.run_jobs_until_idle(include_delayed=True)
    nid, count = await _group(tao, author)
    assert nid is not None and count == 1
    assert await tao.outbox.pending() == 0
    # A second delivery of the same prompt (the writer was only slow) is a no-op.
    await prompt.deliver(tao)
    assert await _group(tao, author) == (nid, 1)


async def test_an_unlike_retracts_at_once_and_a_late_record_job_does_not_bring_it_back(gql):
    tao = gql.tao
    author, post, [bob, cy] = await _setup(tao, 2)
    await do_like_post(tao, bob, post)
    await do_like_post(tao, cy, post)
    like = (await tao.assoc_get(bob, "LIKES", [post]))[post]
    await do_unlike_post(tao, bob, post)
    nid, count = await _group(tao, author)
    assert count == 1  # retracted by the unlike's writer, before any job runs
    # Each writer deleted its job once done; on a saturated box a writer's record can time out
    # and leave its job (the fallback): whatever is left runs now and must change nothing.
    await tao.run_jobs_until_idle(include_delayed=True)
    assert await tao.outbox.pending() == 0 and await _group(tao, author) == (nid, 1)
    [(_, payload)] = causes.like_post(bob, post, author, like.time)
    await record.record(tao, Event.from_payload(payload))  # the like's job, run late: its cause is gone
    assert await _group(tao, author) == (nid, 1)


async def test_records_of_one_group_arriving_together_are_one_batch(gql):
    tao = gql.tao
    author, post, users = await _setup(tao, 20)
    blocked, unliked = users[0], users[1]
    await tao.assoc_add(author, "BLOCKS", blocked)
    at = now_ms()
    for u in users:
        await tao.assoc_add(u, "LIKES", post, time=at)  # the causes; their records below
    await tao.assoc_delete(unliked, "LIKES", post)
    await tao.run_jobs_until_idle()
    events = [Event.from_payload(causes.like_post(u, post, author, at)[0][1]) for u in users]
    got = await asyncio.gather(*(record.record(tao, e) for e in events))
    nid, count = await _group(tao, author)
    assert got[0] is None and got[1] is None and set(got[2:]) == {nid}
    assert count == 18 == len(users) - 2
    # One batch: one group, one "new" event on the recipient's stream for 18 actors.
    assert len(await _notification_events(tao, author)) == 1
    # Recording them all again (the jobs' retries) changes nothing.
    await asyncio.gather(*(record.record(tao, e) for e in events))
    assert await _group(tao, author) == (nid, 18)
    assert len(await _notification_events(tao, author)) == 1


PAGE = """query($n: Int) { viewer { notifications(first: $n) { edges { node {
  type actorCount unread preview actors { username } target { ... on Post { id } } } } } } }"""


async def test_the_list_read_costs_the_same_round_trips_for_20_notifications_as_for_2(gql):
    """Each phase of the read (the page, the groups with their actor heads and counts, the
    actors' and targets' visibility) is one batch: were a notification's target or actors
    loaded one at a time, 18 more notifications would cost at least 18 more round trips."""
    tao = gql.tao
    token, _ = await gql.sign_up("ada")
    ada = (await tao.key_get_many("username", ["ada"]))["ada"]
    fans = [await tao.obj_add("USER", user_data(f"fan{i}", "", None)) for i in range(4)]
    for i in range(20):
        post = (await do_create_post(tao, ada, f"p{i}", [])).id
        for fan in fans[:1 + i % 4]:
            await do_like_post(tao, fan, post)
    await tao.run_jobs_until_idle()
    costs = {}
    for n in (2, 20, 2, 20):  # the first two warm the cache
        data, costs[n] = await gql.measure_warm(PAGE, {"n": n}, token)
        assert len(data["viewer"]["notifications"]["edges"]) == n
    assert costs[2]["sql_queries"] == costs[20]["sql_queries"] == 0, costs
    assert costs[20]["cache_round_trips"] <= costs[2]["cache_round_trips"] + 2, costs
