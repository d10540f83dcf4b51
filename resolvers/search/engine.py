"""The search engine: tantivy indexes, one per partition, with one writer each and readers everywhere.

A document's partition is a hash of its id (`partition_of`), so partitions stay even whatever
the id layout. Partition n is the tantivy index in `<search.index_dir>/v<SCHEMA_VERSION>/p<n>`:
- Exactly one process writes it: the writer holds tantivy's directory lock for as long as it
  lives, so a second writer cannot open. Index jobs of partition n are outbox jobs named
  `search.index.p<n>` (resolvers/search/indexer.py); a process that cannot take the lock (or
  whose `search.writer_partitions` leaves n out) `declare`s that name, so it writes such jobs
  but never claims them, and the one writer runs them all.
- Every process reads it: a reader re-opens its searcher when the partition has a newer commit
  (checked at most every `search.reload_interval` seconds, before a query), so a commit is
  visible everywhere within that interval.
- The writer groups what concurrent jobs bring into one commit (`commit_delay_ms`): a job
  returns (and the outbox deletes its row) only after the commit that holds its change, so a
  crash loses nothing; an uncommitted change is redone when its job runs again.

tantivy calls block (disk, CPU): they run in one thread per partition writer and in the
default executor for searches, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tantivy

from config import SearchSettings
from config.settings import resolve_path
from tao import Tao

log = logging.getLogger("resolvers.search")

KINDS = ("user", "hashtag", "place", "post")
_PREFIX = {"user": "u", "hashtag": "h", "place": "l", "post": "p"}


def doc_key(kind: str, id_: int) -> str:
    return f"{_PREFIX[kind]}:{id_}"


def partition_of(id_: int, partitions: int) -> int:
    """The partition of a document: a 64-bit multiplicative hash of its id (ids carry time and
    shard bits in fixed places; the hash spreads them)."""
    return (((id_ * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 40) % partitions


# The schema's version names the partitions' directory (`<index_dir>/v<N>/p<n>`): tantivy refuses
# to open an index with another schema, so a new version starts beside the old one, empty, and
# `search-rebuild` fills it (docs/search.md, "Changing the schema").
SCHEMA_VERSION = 3


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("key", stored=True, tokenizer_name="raw")      # "u:<id>": upserts and deletes
    sb.add_text_field("kind", tokenizer_name="raw")                  # user | hashtag | place | post
    sb.add_unsigned_field("id", stored=True, fast=True)
    sb.add_text_field("handle", stored=True, tokenizer_name="raw")   # the whole name as one term
    sb.add_text_field("names", stored=True, tokenizer_name="whitespace")  # name words (not posts)
    sb.add_text_field("text", tokenizer_name="whitespace")           # full name, caption
    sb.add_text_field("author", tokenizer_name="raw")                # a post's author id (purges, filters)
    sb.add_unsigned_field("author_id", fast=True)                    # the same, read per hit (v2)
    sb.add_unsigned_field("pop", stored=True, fast=True)             # followers, public posts
    sb.add_unsigned_field("time", fast=True)                         # a post's time (ms)
    sb.add_unsigned_field("hlen", fast=True)                         # len(handle): ranks with no doc read (v3)
    return sb.build()


SCHEMA = build_schema()


@dataclass
class Doc:
    """What the index holds of one user, hashtag, place or post (text already normalised)."""
    kind: str
    id: int
    handle: str = ""
    names: str = ""
    text: str = ""
    author: int | None = None
    pop: int = 0
    time: int = 0

    def tantivy(self) -> tantivy.Document:
        d = tantivy.Document()
        d.add_text("key", doc_key(self.kind, self.id))
        d.add_text("kind", self.kind)
        d.add_unsigned("id", self.id)
        if self.handle:
            d.add_text("handle", self.handle)
        if self.names:
            d.add_text("names", self.names)
        if self.text:
            d.add_text("text", self.text)
        if self.author is not None:
            d.add_text("author", str(self.author))
            d.add_unsigned("author_id", self.author)
        d.add_unsigned("pop", max(0, self.pop))
        d.add_unsigned("time", max(0, self.time))
        d.add_unsigned("hlen", len(self.handle))
        return d


@dataclass
class Ops:
    """Changes to one partition: upserts (replace by key), deletes by key, purges of an author's posts."""
    upserts: list[Doc] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    purge_authors: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.purge_authors)


class WriterBusyError(RuntimeError):
    """Another process holds this partition's writer lock."""


class Partition:
    """One partition's index as this process sees it: a reader always, a writer if it owns it."""

    def __init__(self, path: Path, number: int, settings: SearchSettings) -> None:
        self.path, self.number, self._s = path, number, settings
        self._index: tantivy.Index | None = None
        self._writer: Any = None
        self._checked = 0.0
        self._warned = False
        self._meta_mtime = 0.0
        self._open_lock = threading.Lock()
        self._pending: list[tuple[Ops, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ---- reading (any thread) -----------------------------------------------------------------

    def _open(self, create: bool) -> tantivy.Index | None:
        with self._open_lock:
            if self._index is None:
                if create:
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._index = tantivy.Index(SCHEMA, path=str(self.path), reuse=True)
                elif (self.path / "meta.json").exists():
                    self._index = tantivy.Index.open(str(self.path))
                elif not self._warned:
                    self._warned = True
                    base = self.path.parent.parent
                    if any(base.glob("p*/meta.json")) or any(m.parent.parent != self.path.parent
                                                             for m in base.glob("v*/p*/meta.json")):
                        log.warning("search: %s holds an index of an older schema; version %d is empty until "
                                    "`python -m resolvers search-rebuild --partition all` fills it", base,
                                    SCHEMA_VERSION)
            return self._index

    def searcher(self) -> tantivy.Searcher | None:
        """The newest committed state (reloaded when another process committed since). Blocking."""
        index = self._open(create=False)
        if index is None:
            return None
        now = time.monotonic()
        if self._writer is None and now - self._checked >= self._s.reload_interval:
            self._checked = now
            try:
                mtime = os.stat(self.path / "meta.json").st_mtime
            except OSError:
                mtime = 0.0
            if mtime != self._meta_mtime:
                self._meta_mtime = mtime
                index.reload()
        return index.searcher()

    # ---- writing (the owner only) -------------------------------------------------------------

    def _writer_or_open(self) -> Any:
        if self._writer is None:
            index = self._open(create=True)
            assert index is not None
            try:
                self._writer = index.writer(heap_size=self._s.writer_heap_bytes, num_threads=1)
            except ValueError as exc:
                if "LockBusy" in str(exc):
                    raise WriterBusyError(f"search partition {self.number}: another process writes it") from None
                raise
        return self._writer

    def write_now(self, ops: Ops, *, commit: bool = True) -> None:
        """Apply `ops` (and commit). Blocking: the writer thread, or a rebuild."""
        w = self._writer_or_open()
        for key in ops.deletes:
            w.delete_documents_by_term("key", key)
        for author in ops.purge_authors:
            w.delete_documents_by_query(tantivy.Query.boolean_query([
                (tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, "author", str(author))),
                (tantivy.Occur.Must, tantivy.Query.term_query(SCHEMA, "kind", "post"))]))
        for doc in ops.upserts:
            w.delete_documents_by_term("key", doc_key(doc.kind, doc.id))
            w.add_document(doc.tantivy())
        if commit:
            self.commit()

    def commit(self) -> None:
        self._writer_or_open().commit()
        assert self._index is not None
        self._index.reload()

    def clear(self) -> None:
        self._writer_or_open().delete_all_documents()

    def close_writer(self) -> None:
        if self._writer is not None:
            try:
                self._writer.wait_merging_threads()
            except Exception:
                pass
            self._writer = None

    async def take_writer(self) -> None:
        """Open the writer (take the lock) in the writer thread; WriterBusyError if another has it."""
        await asyncio.get_running_loop().run_in_executor(self._executor(), self._writer_or_open)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"search-p{self.number}")
        return self._pool

    async def apply(self, ops: Ops) -> None:
        """Apply `ops` in the next group commit; returns once that commit is durable."""
        if not ops:
            return
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((ops, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(self._s.commit_delay_ms / 1000)
            batch, self._pending = self._pending, []
            merged = Ops()
            for ops, _ in batch:
                merged.deletes += ops.deletes
                merged.purge_authors += ops.purge_authors
                merged.upserts += ops.upserts
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor(), self.write_now, merged)
            except BaseException as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)


class SearchIndexes:
    """This process's view of every partition (`indexes_for(tao)`)."""

    def __init__(self, settings: SearchSettings) -> None:
        self.settings = settings
        root = resolve_path(settings.index_dir) / f"v{SCHEMA_VERSION}"
        self.partitions = [Partition(root / f"p{n}", n, settings) for n in range(settings.partitions)]

    def partition(self, id_: int) -> Partition:
        return self.partitions[partition_of(id_, len(self.partitions))]

    def may_write(self, n: int) -> bool:
        wanted = self.settings.writer_set()
        return wanted is None or n in wanted

    def close(self) -> None:
        for p in self.partitions:
            p.close_writer()
            if p._pool is not None:
                p._pool.shutdown(wait=False)


_BY_STORE: weakref.WeakKeyDictionary[Tao, SearchIndexes] = weakref.WeakKeyDictionary()


def indexes_for(tao: Tao) -> SearchIndexes:
    """The process's indexes for this store (one per store, made on first use)."""
    found = _BY_STORE.get(tao)
    if found is None:
        found = _BY_STORE[tao] = SearchIndexes(tao.settings.search)
    return found


def close_indexes(tao: Tao) -> None:
    """Release this process's writers (their locks) and threads for this store (at shutdown)."""
    found = _BY_STORE.pop(tao, None)
    if found is not None:
        found.close()


@dataclass
class PartitionHits:
    """One partition's best hits for a query: scores, addresses (valid in `searcher` only) and
    the asked fast fields' values, in hit order."""
    number: int
    searcher: tantivy.Searcher
    scores: list[float]
    addrs: list[tantivy.DocAddress]
    cols: dict[str, list[Any]]

    def where(self) -> list[tuple[int, int]]:
        """Each hit's (segment, doc): comparable with another query's hits on the same searcher."""
        return [(a.segment_ord, a.doc) for a in self.addrs]

    def read(self, fast: tuple[str, ...]) -> None:
        """Read these fast fields of the hits into `cols`. Blocking."""
        for f in fast:
            self.cols[f] = self.searcher.fast_field_values(f, self.addrs) if self.addrs else []


def searchers(indexes: SearchIndexes) -> list[tuple[int, tantivy.Searcher]]:
    """Every partition's searcher as of now: queries that compare their hits' addresses must
    use the same ones (a reload renumbers segments). Blocking."""
    out = []
    for p in indexes.partitions:
        searcher = p.searcher()
        if searcher is not None:
            out.append((p.number, searcher))
    return out


def search_hits(snapshot: list[tuple[int, tantivy.Searcher]], query: tantivy.Query, limit: int,
                weight_by_popularity: bool, fast: tuple[str, ...]) -> list[PartitionHits]:
    """The best `limit` hits of every partition (of `searchers`) with their `fast` fields
    (columns: no stored document is read). Blocking."""
    out: list[PartitionHits] = []
    for number, searcher in snapshot:
        res = searcher.search(query, limit, count=False, weight_by_field="pop" if weight_by_popularity else None)
        ph = PartitionHits(number, searcher, [float(score) for score, _ in res.hits], [a for _, a in res.hits], {})
        ph.read(fast)
        out.append(ph)
    return out


def search_partitions(indexes: SearchIndexes, query: tantivy.Query, limit: int,
                      weight_by_popularity: bool, *, stored: bool = True,
                      fast: tuple[str, ...] = ("id",)) -> list[tuple[float, dict[str, Any], int]]:
    """(score, stored fields, partition) of the best `limit` hits of every partition. Blocking.
    With `stored=False` only the `fast` fields are read (columns: no document fetch)."""
    out: list[tuple[float, dict[str, Any], int]] = []
    for p in indexes.partitions:
        searcher = p.searcher()
        if searcher is None:
            continue
        res = searcher.search(query, limit, count=False,
                              weight_by_field="pop" if weight_by_popularity else None)
        if not stored:
            addrs = [addr for _, addr in res.hits]
            cols = {f: searcher.fast_field_values(f, addrs) if addrs else [] for f in fast}
            out += [(float(score), {f: [cols[f][k]] for f in fast}, p.number) for k, (score, _) in enumerate(res.hits)]
            continue
        for score, addr in res.hits:
            out.append((float(score), searcher.doc(addr).to_dict(), p.number))
    return out

