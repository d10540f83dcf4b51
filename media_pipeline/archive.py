"""A zip archive streamed into object storage part by part (S3 multipart upload).

`write_zip(store, key, members, part_size)` takes members as stream-zip's async member files
(name, modified, mode, method, async iterable of bytes) and uploads the archive as it is made:
at most one part (`part_size`, >= 5 MiB on S3 except the last) is held in memory, nothing is
written to local disk, and the object appears only when the upload completes (atomic), so a
crashed writer leaves no half archive (its multipart upload is aborted by the next attempt or
the store's lifecycle rule). `stored_chunks(store, key)` streams a stored object's bytes into
an archive member without holding it whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import datetime
from stat import S_IFREG
from typing import Any

from stream_zip import ZIP_64, async_stream_zip

from media_pipeline.store import CHUNK, ObjectStore, PartInfo

MODE = S_IFREG | 0o600


def member(name: str, chunks: AsyncIterable[bytes], modified: datetime | None = None) -> tuple:
    """One archive member for `write_zip`."""
    return (name, modified or datetime(2000, 1, 1), MODE, ZIP_64, chunks)


async def stored_chunks(store: ObjectStore, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
    """A stored object's bytes, a chunk at a time, read on the store's threads."""
    it = await store.run(store.blocking.iter_chunks, key, chunk_size)
    done = object()
    while True:
        chunk = await store.run(next, it, done)
        if chunk is done:
            return
        yield chunk


async def write_zip(store: ObjectStore, key: str, members: AsyncIterable[Any], part_size: int, *,
                    progress: Callable[[int, int], Awaitable[None]] | None = None) -> int:
    """Stream a zip of `members` into `key`; returns its size. `progress(parts, bytes)` runs
    after each uploaded part."""
    upload_id = await store.create_multipart(key, "application/zip", checksums=False)
    parts: list[PartInfo] = []
    buf = bytearray()
    total = 0
    try:
        async for chunk in async_stream_zip(members):
            buf += chunk
            while len(buf) >= part_size:
                with memoryview(buf) as view:  # one copy of the part, not a slice and then a copy
                    body = bytes(view[:part_size])
                del buf[:part_size]
                parts.append(await store.upload_part(key, upload_id, len(parts) + 1, body))
                total += len(body)
                if progress is not None:
                    await progress(len(parts), total)
        if buf or not parts:
            parts.append(await store.upload_part(key, upload_id, len(parts) + 1, bytes(buf)))
            total += len(buf)
        await store.complete_multipart(key, upload_id, parts)
    except BaseException:
        await asyncio.shield(store.abort_multipart(key, upload_id))
        raise
    if progress is not None:
        await progress(len(parts), total)
    return total
