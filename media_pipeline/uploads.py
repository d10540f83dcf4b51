"""The upload protocol: start, upload parts straight to the store, check status/resume, complete.

State lives in the object store itself, so the pipeline needs no database: per upload a JSON
manifest `media/<id>/upload.json` (what was declared, the multipart id, state), the store's own
multipart state (which parts arrived), and a marker `uploads/pending/<id>` while it is open
(what `abort_stale_uploads` scans). The source lands at `media/<id>/source`, which is the
`media_key` processing takes.

States: open -> completed | failed. `complete_upload` verifies the whole file (size, sha256),
then probes it by real decode and checks every limit before anything is processed. Each step
is safe to repeat: a crash after S3 assembled the parts but before the manifest said
"completed" is finished by the next call. Completing a completed upload raises
`UploadAlreadyCompletedError` carrying the first call's result.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from config.settings import MediaSettings
from media_pipeline.audio import AUDIO_CONTENT_TYPES
from media_pipeline.errors import (
    ChecksumMismatchError,
    InvalidUploadError,
    MediaError,
    MediaTooLargeError,
    MissingPartsError,
    UnsupportedMediaError,
    UploadAlreadyCompletedError,
    UploadFailedError,
    UploadNotFoundError,
)
from media_pipeline.probe import IMAGE_CONTENT_TYPES, VIDEO_CONTENT_TYPES, probe_file
from media_pipeline.process import in_worker, work_root
from media_pipeline.store import ObjectStore, PartInfo

CHECKSUM_HEADER = "x-amz-checksum-sha256"
PENDING_PREFIX = "uploads/pending/"
MAX_PARTS = 10_000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # secrets.token_hex(16), made by start_upload


@dataclass(frozen=True)
class PartUrl:
    """Where to `PUT` one part, and the headers the request must carry."""

    number: int
    url: str
    expires_at: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadTicket:
    upload_id: str
    part_size: int
    parts: list[PartUrl]


@dataclass(frozen=True)
class UploadStatus:
    upload_id: str
    state: str  # "open" | "completed" | "failed"
    part_size: int
    parts_present: list[int]
    missing: list[PartUrl]  # fresh URLs for the parts still to send (open uploads only)
    error: str | None = None


@dataclass(frozen=True)
class CompletedUpload:
    """What the caller needs to record the media and enqueue `process_media(settings, media_key, kind)`."""

    upload_id: str
    media_key: str
    kind: str
    content_type: str  # as detected by decoding, not as declared
    byte_size: int
    sha256: str
    width: int
    height: int
    duration: float


def is_upload_id(text: str) -> bool:
    """Whether `text` has the shape of an upload id (callers look nothing up for other strings)."""
    return isinstance(text, str) and _UPLOAD_ID.fullmatch(text) is not None


def source_key(upload_id: str) -> str:
    return f"media/{upload_id}/source"


def manifest_key(upload_id: str) -> str:
    return f"media/{upload_id}/upload.json"


class UploadService:
    """The upload protocol over one `ObjectStore` (async; blocking work runs on threads/workers)."""

    def __init__(self, store: ObjectStore, settings: MediaSettings) -> None:
        self.store = store
        self.settings = settings

    # -- start
    async def start_upload(
        self,
        kind: str,
        byte_size: int,
        content_type: str,
        sha256: str,
        part_sha256s: list[str] | None = None,
    ) -> UploadTicket:
        """Open an upload of `byte_size` bytes hashing to `sha256` (hex).

        `part_sha256s` (hex, one per part of `part_size_for(byte_size)` bytes) is optional but
        recommended: each part URL is then signed with its checksum and the store refuses a
        corrupted part at once, so only that part is re-sent.
        """
        sha256 = (sha256 or "").lower()
        part_sha256s = [(h or "").lower() for h in part_sha256s] if part_sha256s is not None else None
        self._check_declared(kind, byte_size, content_type, sha256)
        part_size = self.part_size_for(byte_size)
        count = math.ceil(byte_size / part_size)
        part_b64 = None
        if part_sha256s is not None:
            if len(part_sha256s) != count or not all(_HEX64.match(s or "") for s in part_sha256s):
                raise InvalidUploadError(
                    "part_sha256s",
                    f"must hold {count} hex sha256 digests (parts of {part_size} bytes, the last one shorter)")
            part_b64 = [_b64(s) for s in part_sha256s]
        upload_id = secrets.token_hex(16)
        key = source_key(upload_id)
        multipart_id = await self.store.create_multipart(key, content_type, part_b64 is not None)
        manifest = {
            "upload_id": upload_id,
            "kind": kind,
            "byte_size": byte_size,
            "content_type": content_type,
            "sha256": sha256,
            "part_size": part_size,
            "part_count": count,
            "part_sha256_b64": part_b64,
            "multipart_id": multipart_id,
            "created_at": time.time(),
            "state": "open",
        }
        await self._save(manifest)
        await self.store.put_bytes(PENDING_PREFIX + upload_id, str(manifest["created_at"]).encode())
        urls = await self._part_urls(manifest, range(1, count + 1))
        return UploadTicket(upload_id, part_size, urls)

    def part_size_for(self, byte_size: int) -> int:
        """Parts are `media.part_size` bytes, larger only if the file needs more than 10 000 parts."""
        return max(self.settings.part_size, math.ceil(byte_size / MAX_PARTS))

    def _check_declared(self, kind: str, byte_size: int, content_type: str, sha256: str) -> None:
        allowed = {"image": IMAGE_CONTENT_TYPES, "video": VIDEO_CONTENT_TYPES, "audio": AUDIO_CONTENT_TYPES}.get(kind)
        if allowed is None:
            raise UnsupportedMediaError(f"kind must be 'image', 'video' or 'audio', got {kind!r}")
        if content_type not in allowed:
            raise UnsupportedMediaError(
                f"content type {content_type!r} is not accepted for {kind}s; use one of {sorted(allowed)}")
        limit = {"image": self.settings.max_image_bytes, "video": self.settings.max_video_bytes,
                 "audio": self.settings.max_audio_bytes}[kind]
        if byte_size <= 0:
            raise InvalidUploadError("byte_size", "must be at least 1: declare the file's exact size in bytes")
        if byte_size > limit:
            raise MediaTooLargeError(
                f"{kind}s may be at most {limit} bytes, this one is {byte_size}; compress or trim it")
        if not _HEX64.match(sha256 or ""):
            raise InvalidUploadError("sha256", "must be the file's SHA-256 as 64 hex digits")

    async def _part_urls(self, manifest: dict, numbers) -> list[PartUrl]:
        ttl = self.settings.url_ttl_seconds
        expires_at = int(time.time()) + ttl
        key, mp = source_key(manifest["upload_id"]), manifest["multipart_id"]
        checks = manifest["part_sha256_b64"]

        def sign_all() -> list[PartUrl]:  # one executor hop for all parts (presigning is local CPU)
            urls = []
            for n in numbers:
                sha = checks[n - 1] if checks else None
                url = self.store.blocking.presign_part(key, mp, n, ttl, sha)
                urls.append(PartUrl(n, url, expires_at, {CHECKSUM_HEADER: sha} if sha else {}))
            return urls

        return await self.store.run(sign_all)

    # -- status / resume
    async def upload_status(self, upload_id: str) -> UploadStatus:
        """Which parts arrived, and fresh URLs for the rest (a client resumes from this)."""
        m = await self._load(upload_id)
        if m["state"] != "open":
            present = list(range(1, m["part_count"] + 1)) if m["state"] == "completed" else []
            error = (m.get("error") or {}).get("message")
            return UploadStatus(upload_id, m["state"], m["part_size"], present, [], error)
        parts = await self.store.list_parts(source_key(upload_id), m["multipart_id"])
        if parts is None:  # assembled by a completion that has not finished yet
            return UploadStatus(upload_id, "open", m["part_size"], list(range(1, m["part_count"] + 1)), [])
        good = {p.number for p in self._valid_parts(m, parts)}
        missing = [n for n in range(1, m["part_count"] + 1) if n not in good]
        return UploadStatus(upload_id, "open", m["part_size"], sorted(good), await self._part_urls(m, missing))

    def _valid_parts(self, m: dict, parts: list[PartInfo]) -> list[PartInfo]:
        """Parts with an expected number and exactly the expected size."""
        count, size = m["part_count"], m["part_size"]
        last = m["byte_size"] - size * (count - 1)
        return [p for p in parts if 1 <= p.number <= count and p.size == (last if p.number == count else size)]

    # -- complete
    async def complete_upload(self, upload_id: str) -> CompletedUpload:
        """Assemble the parts, verify size and sha256, probe by decoding, check limits.

        Raises MissingPartsError (send the parts it names, then call again), ChecksumMismatchError,
        UnsupportedMediaError/CorruptMediaError/MediaTooLargeError (the upload is failed; start a new
        one), UploadAlreadyCompletedError (carries the earlier result).
        """
        m = await self._load(upload_id)
        if m["state"] == "completed":
            raise UploadAlreadyCompletedError(
                "this upload was already completed; use the result it returned", CompletedUpload(**m["result"])
            )
        if m["state"] == "failed":
            raise UploadFailedError(f"this upload failed: {m['error']['message']}; start a new upload")
        key = source_key(upload_id)
        parts = await self.store.list_parts(key, m["multipart_id"])
        if parts is not None:
            valid = self._valid_parts(m, parts)
            missing = sorted(set(range(1, m["part_count"] + 1)) - {p.number for p in valid})
            if missing:
                raise MissingPartsError(
                    f"parts {missing} are missing or have the wrong size; "
                    "upload them (upload_status gives fresh URLs) and complete again",
                    missing,
                )
            await self.store.complete_multipart(key, m["multipart_id"], valid)
        elif await self.store.head(key) is None:
            raise UploadNotFoundError("this upload was aborted; start a new upload")
        try:
            result = await self._verify_and_probe(m)
        except MediaError as exc:
            if exc.retryable:
                raise
            await self._fail(m, exc)
            raise
        m.update(state="completed", result=asdict(result))
        await self._save(m)
        await self.store.delete([PENDING_PREFIX + upload_id])
        return result

    async def _verify_and_probe(self, m: dict) -> CompletedUpload:
        key = source_key(m["upload_id"])
        path, size, digest = await self.store.run(self._copy_and_hash, key)
        try:
            if size != m["byte_size"]:
                raise ChecksumMismatchError(
                    f"received {size} bytes but {m['byte_size']} were declared; upload the file again")
            if digest != m["sha256"]:
                raise ChecksumMismatchError(
                    "the file's sha256 does not match the declared one; it was corrupted in transit, upload it again")
            probe = await in_worker(self.settings, probe_file, path, m["kind"], self.settings)
        finally:
            await self.store.run(path.unlink, missing_ok=True)
        return CompletedUpload(
            m["upload_id"], key, m["kind"], probe.content_type, size, digest, probe.width, probe.height,
            round(probe.duration, 3),
        )

    def _copy_and_hash(self, key: str) -> tuple[Path, int, str]:
        """Stream the object once: hash it and keep a local copy for the probe (blocking)."""
        root = work_root(self.settings)
        root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=root)
        h, size = hashlib.sha256(), 0
        try:
            with open(fd, "wb") as f:
                for chunk in self.store.blocking.iter_chunks(key):
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name), size, h.hexdigest()

    async def _fail(self, m: dict, exc: MediaError) -> None:
        m.update(state="failed", error={"code": exc.code, "message": str(exc)})
        await self._save(m)
        await self.store.delete([source_key(m["upload_id"]), PENDING_PREFIX + m["upload_id"]])

    # -- abort / cleanup
    async def abort_upload(self, upload_id: str) -> None:
        """Drop an open upload and everything it stored (idempotent)."""
        m = await self.store.get_bytes(manifest_key(upload_id))
        if m is not None:
            manifest = json.loads(m)
            if manifest["state"] != "open":
                await self.store.delete([PENDING_PREFIX + upload_id])
                return
            await self.store.abort_multipart(source_key(upload_id), manifest["multipart_id"])
        await self.store.delete([source_key(upload_id), manifest_key(upload_id), PENDING_PREFIX + upload_id])

    async def abort_stale_uploads(self, older_than: float | None = None, now: float | None = None) -> int:
        """Abort uploads opened more than `older_than` seconds ago (default `abandoned_upload_seconds`)
        and never completed, plus orphaned multipart uploads with no open manifest. Returns how many."""
        now = time.time() if now is None else now
        cutoff = now - (self.settings.abandoned_upload_seconds if older_than is None else older_than)
        aborted = 0
        for marker in await self.store.list_keys(PENDING_PREFIX):
            upload_id = marker[len(PENDING_PREFIX):]
            raw = await self.store.get_bytes(manifest_key(upload_id))
            if raw is None or json.loads(raw)["created_at"] < cutoff:
                await self.abort_upload(upload_id)
                aborted += 1
        # A crash between creating the multipart upload and writing its manifest leaves an orphan.
        for mp in await self.store.list_multipart("media/"):
            if mp.initiated >= cutoff:
                continue
            upload_id = mp.key.split("/")[1]
            raw = await self.store.get_bytes(manifest_key(upload_id))
            if raw is None or json.loads(raw).get("multipart_id") != mp.multipart_id:
                await self.store.abort_multipart(mp.key, mp.multipart_id)
                aborted += 1
        return aborted

    # -- manifest I/O
    async def _load(self, upload_id: str) -> dict:
        if not is_upload_id(upload_id):
            raise UploadNotFoundError("no such upload; check the upload id or start a new upload")
        raw = await self.store.get_bytes(manifest_key(upload_id))
        if raw is None:
            raise UploadNotFoundError("no such upload (never started, aborted or expired); start a new upload")
        return json.loads(raw)

    async def _save(self, m: dict) -> None:
        await self.store.put_bytes(manifest_key(m["upload_id"]), json.dumps(m).encode(), "application/json")


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()
