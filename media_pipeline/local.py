"""The local-directory object store (the embedded default) and the HTTP handler that serves it.

Layout under `MediaSettings.local_dir`: objects at `<root>/<key>`; multipart uploads in
`<root>/.multipart/<id>/` (a `meta.json`, one file per part); temp files in `<root>/.tmp/`.
Every write goes to a temp file first and is renamed into place, so an object is either absent
or complete, the same promise S3 makes. Clients reach the store through URLs signed by
`signing.py`; `handle_local_request` checks them and is mounted by the app with a thin route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from config.settings import MediaSettings, resolve_path
from media_pipeline.errors import InvalidSignatureError, StorageError
from media_pipeline.signing import sign_url, verify_signed_request
from media_pipeline.store import CHUNK, BlockingStore, ObjectInfo, ObjectStore, PartInfo, PendingMultipart

CHECKSUM_HEADER = "x-amz-checksum-sha256"
MAX_PART_NUMBER = 10_000


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalBackend(BlockingStore):
    def __init__(self, settings: MediaSettings) -> None:
        self.root = resolve_path(settings.local_dir)
        self.base_url = settings.local_base_url
        self.signing_key = settings.signing_key

    # -- plumbing
    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def _mp_dir(self, multipart_id: str) -> Path:
        if not multipart_id.isalnum():
            raise ValueError("invalid multipart id")
        return self.root / ".multipart" / multipart_id

    def _atomic_write(self, target: Path, chunks: Iterator[bytes] | list[bytes]) -> None:
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / secrets.token_hex(8)
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"local store write failed: {exc}") from exc

    @staticmethod
    def _file_chunks(path: Path, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def ensure_ready(self) -> None:
        (self.root / ".tmp").mkdir(parents=True, exist_ok=True)
        (self.root / ".multipart").mkdir(parents=True, exist_ok=True)

    # -- objects
    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._atomic_write(self._path(key), [data])

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self._atomic_write(self._path(key), self._file_chunks(path))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise StorageError(f"object {key!r} does not exist")
        yield from self._file_chunks(path, chunk_size)

    def download(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError as exc:
            raise StorageError(f"object {key!r} does not exist") from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        ctype = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return ObjectInfo(key, path.stat().st_size, ctype)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            rel = path.relative_to(self.root).as_posix()
            if path.is_file() and not rel.startswith(".") and rel.startswith(prefix):
                keys.append(rel)
        return sorted(keys)

    def presign_get(self, key: str, expires_in: int) -> str:
        return sign_url(self.signing_key, "GET", self.base_url, _check_key(key), int(time.time()) + expires_in)

    # -- multipart
    def _meta(self, multipart_id: str) -> dict | None:
        try:
            return json.loads((self._mp_dir(multipart_id) / "meta.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def create_multipart(self, key: str, content_type: str, checksums: bool) -> str:
        multipart_id = secrets.token_hex(16)
        meta = {"key": _check_key(key), "content_type": content_type, "checksums": checksums, "initiated": time.time()}
        d = self._mp_dir(multipart_id)
        d.mkdir(parents=True)
        self._atomic_write(d / "meta.json", [json.dumps(meta).encode()])
        return multipart_id

    def presign_part(self, key: str, multipart_id: str, number: int, expires_in: int, sha256_b64: str | None) -> str:
        params = {"uploadId": multipart_id, "partNumber": str(number)}
        if sha256_b64:
            params["sha256"] = sha256_b64
        return sign_url(self.signing_key, "PUT", self.base_url, _check_key(key), int(time.time()) + expires_in, params)

    def upload_part(self, key: str, multipart_id: str, number: int, body: bytes) -> PartInfo:
        etag = self.store_part(key, multipart_id, number, body, None)
        return PartInfo(number, len(body), etag, None)

    def store_part(self, key: str, multipart_id: str, number: int, body: bytes, sha256_b64: str | None) -> str:
        """Store one part (the handler has checked the URL); returns its ETag."""
        meta = self._meta(multipart_id)
        if meta is None or meta["key"] != key:
            raise FileNotFoundError("no such multipart upload")
        actual = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if sha256_b64 is not None and actual != sha256_b64:
            raise ValueError("part body does not match its x-amz-checksum-sha256")
        d = self._mp_dir(multipart_id)
        self._atomic_write(d / f"part-{number:05d}", [body])
        self._atomic_write(d / f"part-{number:05d}.sha256", [actual.encode()])
        return hashlib.md5(body, usedforsecurity=False).hexdigest()

    def list_parts(self, key: str, multipart_id: str) -> list[PartInfo] | None:
        meta = self._meta(multipart_id)
        if meta is None or meta["key"] != key:
            return None
        parts = []
        for path in sorted(self._mp_dir(multipart_id).glob("part-?????")):
            try:
                data = path.read_bytes()
                sha = (path.parent / (path.name + ".sha256")).read_text() if meta["checksums"] else None
            except FileNotFoundError:
                # The sweep aborted the upload (or a completion removed it) while this listed it:
                # no such upload, as S3 answers. Else a part being stored (its checksum not
                # written yet) is listed once it is.
                if self._meta(multipart_id) is None:
                    return None
                continue
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            parts.append(PartInfo(int(path.name[5:]), len(data), md5, sha))
        return parts

    def complete_multipart(self, key: str, multipart_id: str, parts: list[PartInfo]) -> None:
        d = self._mp_dir(multipart_id)
        if self._meta(multipart_id) is None:
            raise StorageError("no such multipart upload")
        files = [d / f"part-{p.number:05d}" for p in parts]
        self._atomic_write(self._path(key), (c for f in files for c in self._file_chunks(f)))
        shutil.rmtree(d, ignore_errors=True)

    def abort_multipart(self, key: str, multipart_id: str) -> None:
        shutil.rmtree(self._mp_dir(multipart_id), ignore_errors=True)

    def list_multipart(self, prefix: str) -> list[PendingMultipart]:
        out = []
        base = self.root / ".multipart"
        for d in base.iterdir() if base.is_dir() else []:
            meta = self._meta(d.name)
            if meta and meta["key"].startswith(prefix):
                out.append(PendingMultipart(meta["key"], d.name, meta["initiated"]))
        return out


class LocalStore(ObjectStore):
    """The async local store: `LocalBackend` on a thread pool."""

    blocking: LocalBackend

    def __init__(self, settings: MediaSettings) -> None:
        super().__init__(
            LocalBackend(settings), settings.io_threads, settings.cdn_base_url, settings.url_ttl_seconds
        )


Response = tuple[int, dict[str, str], bytes | Path]


async def handle_local_request(
    store: LocalStore,
    method: str,
    key: str,
    query: Mapping[str, str],
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> Response:
    """Serve one request to a local-store URL: `GET` an object or `PUT` a part.

    `key` is the URL path after the mount point (`MediaSettings.local_base_url`). Returns
    (status, headers, body); a `Path` body is a file the route should stream (e.g. with
    aiohttp's `FileResponse`, which also answers range requests).
    """
    backend = store.blocking
    now = time.time() if now is None else now
    try:
        _check_key(key)
        verify_signed_request(backend.signing_key, method, key, query, now)
    except InvalidSignatureError as exc:
        return 403, {"Content-Type": "text/plain"}, str(exc).encode()
    except ValueError as exc:
        return 400, {"Content-Type": "text/plain"}, str(exc).encode()
    if method == "GET":
        info = await store.head(key)
        if info is None:
            return 404, {"Content-Type": "text/plain"}, b"no such object"
        return 200, {"Content-Type": info.content_type, "Cache-Control": "private, max-age=3600"}, backend._path(key)
    if method == "PUT" and "uploadId" in query:
        try:
            number = int(query.get("partNumber", ""))
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_PART_NUMBER:
            return 400, {"Content-Type": "text/plain"}, b"partNumber must be 1..10000"
        lowered = {k.lower(): v for k, v in headers.items()}
        expected = query.get("sha256")
        if expected is not None and lowered.get(CHECKSUM_HEADER) != expected:
            return 400, {"Content-Type": "text/plain"}, f"send header {CHECKSUM_HEADER}: {expected}".encode()
        try:
            etag = await store.run(backend.store_part, key, query["uploadId"], number, body, expected)
        except FileNotFoundError:
            return 404, {"Content-Type": "text/plain"}, b"no such upload; start a new one"
        except ValueError as exc:
            return 400, {"Content-Type": "text/plain", "X-Error-Code": "BadDigest"}, str(exc).encode()
        return 200, {"ETag": f'"{etag}"'}, b""
    return 405, {"Content-Type": "text/plain"}, b"method not allowed"
