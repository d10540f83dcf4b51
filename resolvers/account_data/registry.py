"""The registry of user-data kinds: what every domain declares so accounts can be exported and purged.

A *kind* is one family of a user's data ("posts", "likes", "messages", ...). A domain registers
each of its kinds once, at import, with `register_kind(DataKind(...))`:

- `export(ctx, user_id)`: an async iterator of JSON-able records (dicts), in a stable order,
  read a page at a time (never the whole list in memory). Each record's fields are documented
  in `fields` (they become the archive's `README` and the HTML page's columns).
- `files(ctx, user_id)` (optional): an async iterator of `ExportFile`s (object-store keys of the
  originals the user uploaded), streamed into the archive under `media/`.
- `purge(ctx, user_id)`: remove ONE bounded batch (at most `ctx.batch` items) of this kind's data
  and return how many items it removed; 0 means the kind is done. It must be idempotent and
  resumable (a crash at any point, then calling it again, converges), read what is left from the
  store each time (no cursor kept elsewhere), and correct every count on others' objects
  (going through the store's verbs, which keep counts exact, or the domain's own delete path).
  After deleting objects it calls `await ctx.erase(ids)` (the store's traces of them go too).
- `residue(ctx, user_id)` (optional): descriptions of anything of this kind still present
  (an empty list when clean). The store-wide scan (`tao.residue`) runs after every kind's own
  check, so a kind only needs one for traces the scan cannot see (object-store keys, say).

Kinds are purged in ascending `order` (content that others' counts depend on before the edges
that find it; the profile last), and exported in the same order. The registry is the contract
of docs/accounts.md ("Registering a kind").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from tao import Tao


@dataclass
class ExportFile:
    """One stored object to copy into the archive as `media/<name>`."""

    name: str
    key: str
    sha256: str | None = None


@dataclass
class DataContext:
    """What an exporter, purger or residue check is given."""

    tao: Tao
    settings: Settings
    media: Any = None   # resolvers.media.MediaServices (its `store`), or None where no media is served
    batch: int = 200    # purge: the most items one call may remove
    erased: list[int] = field(default_factory=list)

    async def erase(self, ids: list[int]) -> None:
        """A purger calls this with the ids of objects it deleted: the store's own traces of them
        (count rows, inverse tombstones, cache entries) go now, and again once every job their
        deletes queued has run (those jobs may read them back into the cache)."""
        await self.tao.erase_rows(ids)
        self.erased += ids


Exporter = Callable[[DataContext, int], AsyncIterator[dict]]
FileLister = Callable[[DataContext, int], AsyncIterator[ExportFile]]
Purger = Callable[[DataContext, int], Awaitable[int]]
ResidueCheck = Callable[[DataContext, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class DataKind:
    name: str
    title: str
    order: int
    fields: dict[str, str] = field(default_factory=dict)
    export: Exporter | None = None
    purge: Purger | None = None
    files: FileLister | None = None
    residue: ResidueCheck | None = None


async def job_media(job: Any) -> Any:
    """The media services of a job's process (`JobContext.media`), opened once on first use by a
    worker started without them (`python -m tao worker`)."""
    if job.media is None:
        import asyncio

        import media_pipeline as mp
        from resolvers.media import MediaServices
        store = await asyncio.to_thread(mp.open_store, job.settings.media)
        await store.ensure_ready()
        job.media = MediaServices(job.settings.media, store, mp.UploadService(store, job.settings.media))
    return job.media


_KINDS: dict[str, DataKind] = {}
_SCHEDULED: set[str] = set()


def register_scheduled_handler(name: str) -> None:
    """Declare a job handler whose jobs are scheduled far ahead (a story's expiry, 24 h on) and
    never write anything naming another user: the purge's barrier ("every job queued before the
    profile's delete has run") does not wait for them. A kind deletes its own user's such jobs."""
    _SCHEDULED.add(name)


def scheduled_handlers() -> tuple[str, ...]:
    return tuple(sorted(_SCHEDULED))


def register_kind(kind: DataKind) -> DataKind:
    """Declare a kind (once per name; a second registration of the same name is an error)."""
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ValueError(f"user-data kind {kind.name!r} is registered twice")
    if not kind.name.replace("_", "").isalnum():
        raise ValueError(f"user-data kind name {kind.name!r} must be letters, digits and underscores")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> list[DataKind]:
    """Every registered kind, in purge/export order."""
    import resolvers.account_data.builtin  # registers the built-in kinds
    import resolvers.account_data.export  # registers the export archives
    import resolvers.account_data.two_factor  # noqa: F401  (pending log-in challenges)
    return sorted(_KINDS.values(), key=lambda k: (k.order, k.name))
