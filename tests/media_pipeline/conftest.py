"""Media fixtures: settings, stores and upload helpers, each over S3 (moto server) and a local dir.

`media_settings` is parametrized over both backends, so every test that uses it runs against
both; the S3 bucket is unique per test. Videos are tiny (320x240, 2 s) and the ladder is scaled
down to match (short sides 240/180/120), so the single-decode, three-rung path runs in tests
without 1080p work.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from config.settings import MediaSettings
from media_pipeline import LocalStore, ObjectStore, UploadService, handle_local_request, open_store, shutdown_workers
from media_pipeline.uploads import PartUrl, UploadTicket

# S3's minimum part size (every part but the last); moto enforces it too.
MIN_PART = 5 * 1024 * 1024


@pytest.fixture(scope="session", autouse=True)
def _stop_workers():
    yield
    shutdown_workers()


@pytest.fixture(params=["s3", "local"])
def media_settings(request: pytest.FixtureRequest, tmp_path: Path, test_id: str) -> MediaSettings:
    common = dict(
        work_dir=str(tmp_path / "work"),
        part_size=MIN_PART,
        video_heights=[240, 180, 120],
        image_widths=[1080, 640, 320],
        thumbnails=2,
        workers=2,
    )
    if request.param == "local":
        return MediaSettings(
            backend="local", local_dir=str(tmp_path / "store"), local_base_url="http://media.test/media", **common
        )
    services = request.getfixturevalue("services")
    return MediaSettings(
        backend="s3",
        s3_endpoint_url=services.s3_endpoint,
        s3_bucket=f"tg-media-{test_id}",
        s3_access_key="testing",
        s3_secret_key="testing",
        s3_read_timeout=10.0,
        **common,
    )


@pytest.fixture
async def store(media_settings: MediaSettings) -> AsyncIterator[ObjectStore]:
    s = open_store(media_settings)
    await s.ensure_ready()
    yield s
    s.close()


@pytest.fixture
def uploads(store: ObjectStore, media_settings: MediaSettings) -> UploadService:
    return UploadService(store, media_settings)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_hashes(data: bytes, part_size: int) -> list[str]:
    return [sha256_hex(data[i : i + part_size]) for i in range(0, len(data), part_size)]


async def put_part(store: ObjectStore, part: PartUrl, body: bytes, headers: dict[str, str] | None = None) -> int:
    """PUT one part the way a client would; returns the HTTP status.

    S3 URLs go over HTTP to the moto server; local-store URLs go through `handle_local_request`
    (what the app's route calls) with the URL's path and query.
    """
    hdrs = {"Content-Type": "application/octet-stream", **part.headers, **(headers or {})}
    if isinstance(store, LocalStore):
        url = urlsplit(part.url)
        key = url.path.removeprefix("/media/")
        status, _, _ = await handle_local_request(store, "PUT", key, dict(parse_qsl(url.query)), body, hdrs)
        return status
    return await asyncio.to_thread(_http_put, part.url, body, hdrs)


def _http_put(url: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def upload_all(store: ObjectStore, ticket: UploadTicket, data: bytes, skip: set[int] = frozenset()) -> None:
    for part in ticket.parts:
        if part.number in skip:
            continue
        start = (part.number - 1) * ticket.part_size
        status = await put_part(store, part, data[start : start + ticket.part_size])
        assert status == 200, f"part {part.number} upload failed with HTTP {status}"


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
