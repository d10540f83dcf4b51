"""The upload protocol over S3 (moto server) and the local store: real parts, real files."""

from __future__ import annotations

import io
import os
import time

import pytest
from PIL import Image

from media_pipeline import (
    ChecksumMismatchError,
    CorruptMediaError,
    DecompressionBombError,
    InvalidUploadError,
    LocalStore,
    MediaTooLargeError,
    MissingPartsError,
    UnsupportedMediaError,
    UploadAlreadyCompletedError,
    UploadFailedError,
    UploadNotFoundError,
)
from tests.media_pipeline.conftest import MIN_PART, part_hashes, put_part, sha256_hex, upload_all
from tests.media_pipeline.factory import make_image, make_video


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: big enough for several S3 parts, still a real image."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "PNG", compress_level=1)
    return out.getvalue()


async def test_image_upload_round_trip(uploads, store):
    data = make_image(400, 300)
    ticket = await uploads.start_upload("image", len(data), "image/jpeg", sha256_hex(data))
    assert [p.number for p in ticket.parts] == [1]
    await upload_all(store, ticket, data)
    status = await uploads.upload_status(ticket.upload_id)
    assert (status.state, status.parts_present, status.missing) == ("open", [1], [])
    done = await uploads.complete_upload(ticket.upload_id)
    assert (done.kind, done.content_type, done.width, done.height, done.byte_size) == (
        "image",
        "image/jpeg",
        400,
        300,
        len(data),
    )
    assert await store.get_bytes(done.media_key) == data
    assert (await uploads.upload_status(ticket.upload_id)).state == "completed"


async def test_detected_type_wins_over_declared(uploads, store):
    data = make_image(64, 48, fmt="PNG")
    ticket = await uploads.start_upload("image", len(data), "image/jpeg", sha256_hex(data))
    await upload_all(store, ticket, data)
    assert (await uploads.complete_upload(ticket.upload_id)).content_type == "image/png"


async def test_resume_after_dropped_connection_parts_out_of_order(uploads, store):
    data = noise_png(1400, 1400)  # ~5.9 MB: two parts
    ticket = await uploads.start_upload("image", len(data), "image/png", sha256_hex(data), part_hashes(data, MIN_PART))
    assert len(ticket.parts) == 2 and ticket.part_size == MIN_PART
    await upload_all(store, ticket, data, skip={1})  # part 2 first, then the "connection drops"

    status = await uploads.upload_status(ticket.upload_id)
    assert status.parts_present == [2]
    assert [p.number for p in status.missing] == [1]
    with pytest.raises(MissingPartsError) as err:
        await uploads.complete_upload(ticket.upload_id)
    assert err.value.missing == [1]

    # Resume with the fresh URL the status handed out.
    assert await put_part(store, status.missing[0], data[:MIN_PART]) == 200
    done = await uploads.complete_upload(ticket.upload_id)
    assert done.byte_size == len(data) and (done.width, done.height) == (1400, 1400)
    assert await store.get_bytes(done.media_key) == data


async def test_part_of_wrong_size_counts_as_missing(uploads, store):
    data = noise_png(1400, 1400)
    ticket = await uploads.start_upload("image", len(data), "image/png", sha256_hex(data))
    await put_part(store, ticket.parts[0], data[: MIN_PART - 1])
    await put_part(store, ticket.parts[1], data[MIN_PART:])
    with pytest.raises(MissingPartsError) as err:
        await uploads.complete_upload(ticket.upload_id)
    assert err.value.missing == [1]


async def test_part_urls_are_signed_with_their_checksum(uploads, store):
    data = make_image(200, 100)
    ticket = await uploads.start_upload("image", len(data), "image/jpeg", sha256_hex(data), part_hashes(data, MIN_PART))
    part = ticket.parts[0]
    assert "x-amz-checksum-sha256" in part.headers
    if isinstance(store, LocalStore):
        # The local store verifies the body against the signed checksum.
        assert await put_part(store, part, b"X" + data[1:]) == 400
        assert await put_part(store, part, data, {"x-amz-checksum-sha256": "AAAA"}) == 400
    else:
        # S3 verifies it server-side (moto does not): the header is part of the signature.
        assert "x-amz-checksum-sha256" in part.url.lower()
    assert await put_part(store, part, data) == 200
    await uploads.complete_upload(ticket.upload_id)


async def test_whole_file_checksum_mismatch_fails_the_upload(uploads, store):
    data = make_image(200, 100)
    ticket = await uploads.start_upload("image", len(data), "image/jpeg", sha256_hex(b"something else"))
    await upload_all(store, ticket, data)
    with pytest.raises(ChecksumMismatchError):
        await uploads.complete_upload(ticket.upload_id)
    status = await uploads.upload_status(ticket.upload_id)
    assert status.state == "failed" and "sha256" in status.error
    assert await store.head(f"media/{ticket.upload_id}/source") is None
    with pytest.raises(UploadFailedError):
        await uploads.complete_upload(ticket.upload_id)


async def test_completing_twice_is_an_error_carrying_the_first_result(uploads, store):
    data = make_image(120, 90)
    ticket = await uploads.start_upload("image", len(data), "image/jpeg", sha256_hex(data))
    await upload_all(store, ticket, data)
    first = await uploads.complete_upload(ticket.upload_id)
    with pytest.raises(UploadAlreadyCompletedError) as err:
        await uploads.complete_upload(ticket.upload_id)
    assert err.value.result == first


@pytest.mark.parametrize(
    ("kind", "ctype", "size", "error"),
    [
        ("image", "video/mp4", 100, UnsupportedMediaError),
        ("video", "image/jpeg", 100, UnsupportedMediaError),
        ("document", "application/pdf", 100, UnsupportedMediaError),
        ("audio", "image/jpeg", 100, UnsupportedMediaError),
        ("audio", "audio/mpeg", 51 * 1024 * 1024, MediaTooLargeError),
        ("image", "image/jpeg", 31 * 1024 * 1024, MediaTooLargeError),
        ("image", "image/jpeg", 0, InvalidUploadError),
    ],
)
async def test_declared_limits_are_checked_at_start(uploads, kind, ctype, size, error):
    with pytest.raises(error):
        await uploads.start_upload(kind, size, ctype, "0" * 64)


async def test_bad_part_checksum_list_is_rejected(uploads):
    with pytest.raises(InvalidUploadError, match="1 hex sha256"):
        await uploads.start_upload("image", 100, "image/jpeg", "0" * 64, ["ab", "cd"])


async def _upload_and_complete(uploads, store, data: bytes, kind: str, ctype: str):
    ticket = await uploads.start_upload(kind, len(data), ctype, sha256_hex(data))
    await upload_all(store, ticket, data)
    try:
        return await uploads.complete_upload(ticket.upload_id)
    finally:
        status = await uploads.upload_status(ticket.upload_id)
        assert status.state in ("completed", "failed")


async def test_video_bytes_declared_as_image_are_rejected(uploads, store, tmp_path):
    data = make_video(tmp_path / "v.mp4", seconds=0.5).read_bytes()
    with pytest.raises(UnsupportedMediaError, match="not a supported image"):
        await _upload_and_complete(uploads, store, data, "image", "image/jpeg")


async def test_image_bytes_declared_as_video_are_rejected(uploads, store):
    with pytest.raises(UnsupportedMediaError):
        await _upload_and_complete(uploads, store, make_image(64, 64), "video", "video/mp4")


async def test_truncated_image_is_rejected(uploads, store):
    data = make_image(640, 480)
    with pytest.raises(CorruptMediaError):
        await _upload_and_complete(uploads, store, data[: len(data) // 2], "image", "image/jpeg")


async def test_garbage_is_rejected(uploads, store):
    with pytest.raises(UnsupportedMediaError):
        await _upload_and_complete(uploads, store, os.urandom(5000), "image", "image/jpeg")


async def test_decompression_bomb_is_rejected_from_its_header(uploads, store):
    # 12 000 x 12 000 pixels of one colour: a ~400 KB PNG that would decode to 432 MB.
    out = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(out, "PNG")
    with pytest.raises(DecompressionBombError):
        await _upload_and_complete(uploads, store, out.getvalue(), "image", "image/png")


async def test_video_without_video_stream_is_rejected(uploads, store, tmp_path):
    data = make_video(tmp_path / "a.mp4", video=False).read_bytes()
    with pytest.raises(UnsupportedMediaError, match="no video stream"):
        await _upload_and_complete(uploads, store, data, "video", "video/mp4")


async def test_truncated_video_is_rejected(uploads, store, tmp_path):
    data = make_video(tmp_path / "v.mp4").read_bytes()  # index at the end: truncation loses it
    with pytest.raises(CorruptMediaError):
        await _upload_and_complete(uploads, store, data[: len(data) * 2 // 3], "video", "video/mp4")


async def test_too_long_video_is_rejected(uploads, store, tmp_path, media_settings):
    media_settings.max_video_seconds = 1.0
    data = make_video(tmp_path / "v.mp4", seconds=2.0).read_bytes()
    with pytest.raises(MediaTooLargeError, match="trim"):
        await _upload_and_complete(uploads, store, data, "video", "video/mp4")


async def test_video_upload_reports_probe(uploads, store, tmp_path):
    data = make_video(tmp_path / "v.mp4", rotation=90).read_bytes()
    done = await _upload_and_complete(uploads, store, data, "video", "video/mp4")
    assert (done.kind, done.content_type, done.width, done.height) == ("video", "video/mp4", 240, 320)
    assert done.duration == pytest.approx(2.0, abs=0.1)


async def test_abort_stale_uploads(uploads, store):
    data = make_image(64, 64)
    stale = await uploads.start_upload("image", len(data), "image/jpeg", sha256_hex(data))
    await upload_all(store, stale, data)
    done = await _upload_and_complete(uploads, store, data, "image", "image/jpeg")
    assert await uploads.abort_stale_uploads(older_than=3600) == 0
    assert await uploads.abort_stale_uploads(older_than=0, now=time.time() + 1) == 1
    with pytest.raises(UploadNotFoundError):
        await uploads.upload_status(stale.upload_id)
    assert await store.list_multipart("media/") == []
    # The completed upload is untouched.
    assert await store.head(done.media_key) is not None


async def test_orphaned_multipart_upload_is_aborted(uploads, store):
    await store.create_multipart("media/0123456789abcdef0123456789abcdef/source", "image/jpeg", False)
    assert await uploads.abort_stale_uploads(older_than=0, now=time.time() + 1) == 1
    assert await store.list_multipart("media/") == []


async def test_unknown_upload(uploads):
    with pytest.raises(UploadNotFoundError):
        await uploads.complete_upload("f" * 32)
    with pytest.raises(UploadNotFoundError):
        await uploads.upload_status("../etc/passwd")
