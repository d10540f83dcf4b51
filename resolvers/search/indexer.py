"""What the index holds and how writes reach it: documents read from the store, index jobs
through the outbox, one writer per partition, and the rebuild of a partition.

A write that changes something searchable commits index jobs with its change (`index_jobs`):
`search.index.p<n>` with payload `{"docs": [[kind, id], ...], "authors": [user id, ...]}`, one
job per partition the documents fall in. The partition's writer runs it by reading each named
object *now* from the store and upserting or deleting its document, so a job is idempotent and
order does not matter: whatever runs last reads the newest state. `authors` re-syncs every post
of those accounts in the partition (an account going private or public, or its deletion).

What is indexed (docs/search.md, "What is indexed"):
- a user: username and full name, popularity = followers; every account, private or not (the
  profile is findable, as on Instagram);
- a hashtag or place with at least one public post: its name, popularity = public posts;
- a post: its caption, only while it is visible and its author exists and is public. A private
  account's posts are never in the index.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from resolvers.job_context import JobContext
from resolvers.records import Hashtag, Location, Post, User, record_of
from resolvers.search import text
from resolvers.search.engine import KINDS, Doc, Ops, SearchIndexes, WriterBusyError, doc_key, indexes_for, partition_of
from tao import Tao

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("resolvers.search")

JOB_PREFIX = "search.index.p"
PAGE = 500
# Hashtag and place documents carry their public post count, which the post write's edge sync
# changes just after the commit: their jobs wait this long so they read the synced count.
LISTING_DELAY_MS = 1000
# Every index job waits this long. A write commits its jobs with its SQL change and installs the
# new version in the cache just after; an indexer in another process that claimed the job in
# between would read the cached old version and index it, and nothing would correct it until the
# object changed again (seen once in ~250 timed edits on a loaded box: a name never searchable).
# The pause lets the writer's install land first; it narrows that window, it does not close it
# (a version-checked read in the job would: docs/search.md, "What is indexed, and when").
SETTLE_MS = 100


def job_name(partition: int) -> str:
    return f"{JOB_PREFIX}{partition}"


def index_jobs(tao: Tao, docs: Iterable[tuple[str, int]] = (), *, authors: Iterable[int] = (),
               delay_ms: int = 0) -> list[tuple]:
    """The outbox jobs that bring these documents (and these authors' posts) up to date: commit
    them with the write that changes them (`jobs=`), or `enqueue_index`."""
    n = tao.settings.search.partitions
    by_part: dict[int, list[list[Any]]] = {}
    for kind, id_ in docs:
        assert kind in KINDS, kind
        by_part.setdefault(partition_of(id_, n), []).append([kind, int(id_)])
    authors = sorted({int(a) for a in authors})
    jobs: list[tuple] = []
    for p in range(n):
        payload: dict[str, Any] = {}
        if by_part.get(p):
            payload["docs"] = by_part[p]
        if authors:
            payload["authors"] = authors
        if payload:
            jobs.append((job_name(p), payload, max(delay_ms, SETTLE_MS)))
    return jobs


def post_jobs(tao: Tao, post: Post | None, post_id: int) -> list[tuple]:
    """A post's document now, its hashtags' and place's after their counts settle."""
    jobs = index_jobs(tao, [("post", post_id)])
    if post is not None:
        listings = [("hashtag", h) for h in post.hashtag_ids] + ([("place", post.location)] if post.location else [])
        jobs += index_jobs(tao, listings, delay_ms=LISTING_DELAY_MS)
    return jobs


async def enqueue_index(tao: Tao, near_id: int, docs: Iterable[tuple[str, int]] = (), *,
                        authors: Iterable[int] = (), delay_ms: int = 0) -> None:
    """Enqueue index jobs on `near_id`'s shard (for writes that cannot carry `jobs=`)."""
    for name, payload, delay in index_jobs(tao, docs, authors=authors, delay_ms=delay_ms):
        await tao.enqueue(near_id, name, payload, delay_ms=delay)


def deindex_user_jobs(tao: Tao, user_id: int) -> list[tuple]:
    """Jobs that take an account out of search (its profile and every post): commit them with
    the deactivation or deletion. The writer re-reads the account: if it still exists and is
    not deactivated, it is indexed again (idempotent, whatever the order)."""
    return index_jobs(tao, [("user", user_id)], authors=[user_id])


async def deindex_user(tao: Tao, user_id: int) -> None:
    """Take an account out of search through the outbox (account deactivation and deletion call
    this, or commit `deindex_user_jobs` with their write)."""
    for name, payload, delay in deindex_user_jobs(tao, user_id):
        await tao.enqueue(user_id, name, payload, delay_ms=delay)


# Documents from the store -----------------------------------------------------------------

def _inactive(obj: Any) -> bool:
    """An account search must not show: deletion requested (`deletion` in its data, what
    resolvers.account_data's deactivation writes), or a stored `status` other than "active"."""
    if obj is None:
        return False
    status = obj.data.get("status")
    return bool(obj.data.get("deletion")) or (status is not None and status != "active")


async def _counts(tao: Tao, keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    if not keys:
        return {}
    got = await tao.assoc_count_many(keys)
    return {k: int(v) for k, v in got.items()}


async def build_ops(tao: Tao, refs: list[tuple[str, int]], authors: list[int], partition: int,
                    partitions: int, objs: dict[int, Any] | None = None,
                    author_objs: dict[int, Any] | None = None) -> Ops:
    """The partition's changes that bring `refs` (and `authors`' posts) up to date (`objs`: the
    objects, when the caller has just read them, as a rebuild has)."""
    ops = Ops()
    if objs is None:
        objs = await tao.obj_get([i for _, i in refs]) if refs else {}
    records = {i: record_of(o) for i, o in objs.items()}
    want_counts: list[tuple[int, str]] = []
    for kind, i in refs:
        r = records.get(i)
        if kind == "user" and isinstance(r, User):
            want_counts.append((i, "FOLLOWED_BY"))
        elif kind == "hashtag" and isinstance(r, Hashtag):
            want_counts.append((i, "PUBLIC_TAGS"))
        elif kind == "place" and isinstance(r, Location):
            want_counts.append((i, "PUBLIC_LOCATION_OF"))
    post_authors = {r.author for r in records.values() if isinstance(r, Post)}
    if author_objs is None:
        author_objs = await tao.obj_get(list(post_authors)) if post_authors else {}
    counts = await _counts(tao, want_counts)
    for kind, i in refs:
        r = records.get(i)
        doc = None
        if kind == "user" and isinstance(r, User) and not _inactive(objs.get(i)):
            doc = user_doc(r, counts.get((i, "FOLLOWED_BY"), 0))
        elif kind == "hashtag" and isinstance(r, Hashtag) and counts.get((i, "PUBLIC_TAGS"), 0) > 0:
            doc = Doc("hashtag", i, handle=text.handle(r.name), names=" ".join(text.tokens(r.name)),
                      pop=counts[(i, "PUBLIC_TAGS")])
        elif kind == "place" and isinstance(r, Location) and counts.get((i, "PUBLIC_LOCATION_OF"), 0) > 0:
            doc = Doc("place", i, handle=text.handle(r.name), names=" ".join(text.tokens(r.name)),
                      pop=counts[(i, "PUBLIC_LOCATION_OF")])
        elif kind == "post" and isinstance(r, Post):
            author_obj = author_objs.get(r.author)
            author = record_of(author_obj) if author_obj is not None and not _inactive(author_obj) else None
            doc = post_doc(r, author)
        if doc is None:
            ops.deletes.append(doc_key(kind, i))
        else:
            ops.upserts.append(doc)
    for author in authors:
        await _author_posts(tao, author, partition, partitions, ops)
    return ops


def user_doc(user: User, followers: int) -> Doc:
    return Doc("user", user.id, handle=text.handle(user.username),
               names=" ".join(text.tokens(user.username) + text.tokens(user.full_name)),
               text=" ".join(text.tokens(user.full_name)), pop=followers)


def post_doc(post: Post, author: Any) -> Doc | None:
    """The post's document, or None while it must not be searchable (processing, failed, by a
    private or missing account; pass None for a deactivated one)."""
    if not post.is_visible or not isinstance(author, User) or author.is_private:
        return None
    words = text.tokens(post.caption)
    if not words:
        return None
    return Doc("post", post.id, text=" ".join(words), author=post.author, time=post.time)


async def _author_posts(tao: Tao, author_id: int, partition: int, partitions: int, ops: Ops) -> None:
    """Every post of the author in this partition, or none of them (private or gone)."""
    author_obj = (await tao.obj_get([author_id])).get(author_id)
    author = record_of(author_obj) if author_obj is not None else None
    ops.purge_authors.append(author_id)
    if not isinstance(author, User) or author.is_private or _inactive(author_obj):
        return
    after: tuple[int, int] | None = None
    while True:
        page = await tao.assoc_time_range(author_id, "AUTHORED", limit=PAGE, after=after)
        if not page:
            return
        mine = [a.id2 for a in page if partition_of(a.id2, partitions) == partition]
        found = await tao.obj_get(mine) if mine else {}
        for pid in mine:
            post = record_of(found[pid]) if pid in found else None
            doc = post_doc(post, author) if isinstance(post, Post) else None
            if doc is not None:
                ops.upserts.append(doc)
        after = (page[-1].time, page[-1].id2)


# The writer: jobs of the partitions this process owns --------------------------------------

def _handler(partition: int) -> Callable[[JobContext, dict], Any]:
    async def index_job(job: JobContext, payload: dict) -> None:
        tao = job.tao
        indexes = indexes_for(tao)
        refs = [(str(k), int(i)) for k, i in payload.get("docs", ())]
        ops = await build_ops(tao, refs, [int(a) for a in payload.get("authors", ())], partition,
                              len(indexes.partitions))
        part = indexes.partitions[partition]
        try:
            await part.apply(ops)
        except WriterBusyError:
            # Another process owns this partition: stop claiming its jobs; this one runs again there.
            tao.outbox.declare(job_name(partition))
            log.info("search partition %d is written by another process; leaving its jobs to it", partition)
            raise
    index_job.__qualname__ = f"search.index_job[p{partition}]"
    return index_job


def handlers(tao: Tao, settings: Any) -> dict[str, Callable[[JobContext, dict], Any]]:
    """The index job handlers this process may run (its writer partitions); the others are
    declared on the outbox as run elsewhere."""
    n = settings.search.partitions
    indexes = indexes_for(tao)
    mine = {job_name(p): _handler(p) for p in range(n) if indexes.may_write(p)}
    for p in range(n):
        if job_name(p) not in mine:
            tao.outbox.declare(job_name(p))
    return mine


# Rebuild ---------------------------------------------------------------------------------

async def rebuild_partition(tao: Tao, partition: int, *,
                            progress: Callable[[int, int], None] | None = None) -> int:
    """`rebuild_partitions` of one partition."""
    return await rebuild_partitions(tao, [partition], progress=progress)


async def rebuild_partitions(tao: Tao, partitions: list[int], *,
                             progress: Callable[[int, int], None] | None = None) -> int:
    """Re-index these partitions from the store: every user, hashtag, place and post whose id
    falls in one of them, in one scan of every shard (`obj_scan`). Takes their writers (stop
    their indexer first), clears them and commits once at the end, so readers see the old index
    until the new one is whole; index jobs written meanwhile wait in the outbox and apply after.
    `progress(shard, objects read)` is called after each page. Returns the documents indexed."""
    indexes: SearchIndexes = indexes_for(tao)
    n = len(indexes.partitions)
    parts = {p: indexes.partitions[p] for p in partitions}
    loop = asyncio.get_running_loop()
    for part in parts.values():
        await part.take_writer()
        await loop.run_in_executor(part._executor(), part.clear)
    done = total = 0
    kinds = (("USER", "user"), ("HASHTAG", "hashtag"), ("LOCATION", "place"), ("POST", "post"))
    authors: dict[int, Any] = {}  # a rebuild reads each author once, not once per post
    absent: set[int] = set()
    pending: list[asyncio.Future] = []
    for shard in range(tao.n_shards):
        for otype, kind in kinds:
            after = 0
            while True:
                objs = await tao.obj_scan(shard, otype, after=after, limit=PAGE)
                if not objs:
                    break
                after = objs[-1].id
                if kind == "post":
                    missing = [a for a in {int(o.data.get("author") or 0) for o in objs} - authors.keys() - absent if a]
                    if missing:
                        authors.update(await tao.obj_get(missing))
                        absent.update(a for a in missing if a not in authors)
                by_id = {o.id: o for o in objs}
                for p, part in parts.items():
                    refs = [(kind, o.id) for o in objs if partition_of(o.id, n) == p]
                    if not refs:
                        continue
                    ops = await build_ops(tao, refs, [], p, n, by_id, authors if kind == "post" else None)
                    done += len(ops.upserts)
                    # The tantivy write overlaps the next page's reads (one writer thread each).
                    pending.append(loop.run_in_executor(part._executor(),
                                                        functools.partial(part.write_now, ops, commit=False)))
                total += len(objs)
                if len(pending) > 8:
                    await asyncio.gather(*pending)
                    pending = []
                if progress is not None:
                    progress(shard, total)  # (the shard being read, objects read so far)
    await asyncio.gather(*pending)
    for part in parts.values():
        await loop.run_in_executor(part._executor(), part.commit)
    return done
