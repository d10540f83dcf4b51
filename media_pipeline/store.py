"""The object-store interface: a blocking backend plus the async facade the app uses.

Two layers, one contract:
- `BlockingStore` (S3 via boto3 in `s3.py`, a directory in `local.py`) does the I/O and blocks.
  Worker processes call it directly (they have no event loop to protect).
- `ObjectStore` wraps a backend and runs every call on its own thread pool, so code on an
  event loop only ever awaits. `S3Store` and `LocalStore` are the two concrete stores.

Invariant every backend keeps: an object under a key is either absent or complete. Writes
appear atomically (S3 PUT and multipart completion are atomic; the local store writes a temp
file and renames it), which is what lets a killed job leave nothing half-written behind.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from config.settings import MediaSettings

T = TypeVar("T")

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    sha256_b64: str | None = None  # the part's checksum when the upload was started with checksums


@dataclass(frozen=True)
class PendingMultipart:
    key: str
    multipart_id: str
    initiated: float  # unix seconds


class BlockingStore(abc.ABC):
    """Blocking object-store operations. Missing keys read as None; failures raise StorageError."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    @abc.abstractmethod
    def put_file(self, key: str, path: Path, content_type: str) -> None: ...

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream an object's bytes; raises StorageError if it does not exist."""

    @abc.abstractmethod
    def download(self, key: str, path: Path) -> None: ...

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abc.abstractmethod
    def delete(self, keys: list[str]) -> None: ...

    @abc.abstractmethod
    def list_keys(self, prefix: str) -> list[str]: ...

    @abc.abstractmethod
    def presign_get(self, key: str, expires_in: int) -> str: ...

    # Multipart uploads (S3's protocol; the local store imitates it).
    @abc.abstractmethod
    def create_multipart(self, key: str, content_type: str, checksums: bool) -> str:
        """Start a multipart upload; with `checksums`, every part must carry its sha256."""

    @abc.abstractmethod
    def presign_part(self, key: str, multipart_id: str, number: int, expires_in: int, sha256_b64: str | None) -> str:
        """A URL accepting `PUT` of part `number`; with `sha256_b64`, the part must carry header
        `x-amz-checksum-sha256: <sha256_b64>` and the store rejects a body that does not match."""

    @abc.abstractmethod
    def upload_part(self, key: str, multipart_id: str, number: int, body: bytes) -> PartInfo:
        """Upload part `number` from this process (server-side writers such as the export
        archive; clients use `presign_part`)."""

    @abc.abstractmethod
    def list_parts(self, key: str, multipart_id: str) -> list[PartInfo] | None:
        """Parts received so far, by number; None if the multipart upload does not exist."""

    @abc.abstractmethod
    def complete_multipart(self, key: str, multipart_id: str, parts: list[PartInfo]) -> None: ...

    @abc.abstractmethod
    def abort_multipart(self, key: str, multipart_id: str) -> None: ...

    @abc.abstractmethod
    def list_multipart(self, prefix: str) -> list[PendingMultipart]: ...

    def ensure_ready(self) -> None:  # noqa: B027  (optional: a store with nothing to create keeps this)
        """Create the bucket/directory if missing (idempotent)."""


class ObjectStore:
    """Async facade over a `BlockingStore`: each method runs the blocking call on a thread pool."""

    def __init__(self, blocking: BlockingStore, threads: int = 8, cdn_base_url: str = "",
                 url_ttl_seconds: int = 3600) -> None:
        self.blocking = blocking
        self.cdn_base_url = cdn_base_url
        self.url_ttl_seconds = url_ttl_seconds
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="media-io")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run any blocking callable on this store's threads (used for streaming reads too)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def ensure_ready(self) -> None:
        await self.run(self.blocking.ensure_ready)

    async def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        await self.run(self.blocking.put_bytes, key, data, content_type)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await self.run(self.blocking.put_file, key, path, content_type)

    async def get_bytes(self, key: str) -> bytes | None:
        return await self.run(self.blocking.get_bytes, key)

    async def download(self, key: str, path: Path) -> None:
        await self.run(self.blocking.download, key, path)

    async def head(self, key: str) -> ObjectInfo | None:
        return await self.run(self.blocking.head, key)

    async def delete(self, keys: list[str]) -> None:
        await self.run(self.blocking.delete, keys)

    async def list_keys(self, prefix: str) -> list[str]:
        return await self.run(self.blocking.list_keys, prefix)

    async def presign_get(self, key: str, expires_in: int) -> str:
        return await self.run(self.blocking.presign_get, key, expires_in)

    async def url_for(self, key: str) -> str:
        """Where a client fetches a published variant: under `cdn_base_url` when one is
        configured, else a signed URL valid for `url_ttl_seconds`."""
        if self.cdn_base_url:
            return f"{self.cdn_base_url.rstrip('/')}/{quote(key)}"
        return await self.presign_get(key, self.url_ttl_seconds)

    async def create_multipart(self, key: str, content_type: str, checksums: bool = True) -> str:
        return await self.run(self.blocking.create_multipart, key, content_type, checksums)

    async def presign_part(self, key: str, multipart_id: str, number: int, expires_in: int,
                           sha256_b64: str | None = None) -> str:
        return await self.run(self.blocking.presign_part, key, multipart_id, number, expires_in, sha256_b64)

    async def list_parts(self, key: str, multipart_id: str) -> list[PartInfo] | None:
        return await self.run(self.blocking.list_parts, key, multipart_id)

    async def upload_part(self, key: str, multipart_id: str, number: int, body: bytes) -> PartInfo:
        return await self.run(self.blocking.upload_part, key, multipart_id, number, body)

    async def complete_multipart(self, key: str, multipart_id: str, parts: list[PartInfo]) -> None:
        await self.run(self.blocking.complete_multipart, key, multipart_id, parts)

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        await self.run(self.blocking.abort_multipart, key, multipart_id)

    async def list_multipart(self, prefix: str) -> list[PendingMultipart]:
        return await self.run(self.blocking.list_multipart, prefix)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def open_blocking_store(settings: MediaSettings) -> BlockingStore:
    """The backend `settings.backend` names (for worker processes and threads)."""
    if settings.backend == "s3":
        from media_pipeline.s3 import S3Backend

        return S3Backend(settings)
    if settings.backend == "local":
        from media_pipeline.local import LocalBackend

        return LocalBackend(settings)
    raise ValueError(f"media.backend must be 's3' or 'local', got {settings.backend!r}")


def open_store(settings: MediaSettings) -> ObjectStore:
    """The async store for `settings` (call `await store.ensure_ready()` once at startup)."""
    if settings.backend == "s3":
        from media_pipeline.s3 import S3Store

        return S3Store(settings)
    if settings.backend == "local":
        from media_pipeline.local import LocalStore

        return LocalStore(settings)
    raise ValueError(f"media.backend must be 's3' or 'local', got {settings.backend!r}")
