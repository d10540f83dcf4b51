"""Signed URLs and the local store's request handler (what the app's route mounts)."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from config.settings import MediaSettings
from media_pipeline import InvalidSignatureError, LocalStore, handle_local_request, sign_url, verify_signed_request

KEY = "secret"


def split(url: str) -> tuple[str, dict[str, str]]:
    u = urlsplit(url)
    return u.path.removeprefix("/media/"), dict(parse_qsl(u.query))


def test_signature_round_trip_and_tampering():
    url = sign_url(KEY, "PUT", "http://h/media", "media/a/source", 1000, {"uploadId": "u1", "partNumber": "2"})
    key, query = split(url)
    verify_signed_request(KEY, "PUT", key, query, now=999)
    with pytest.raises(InvalidSignatureError, match="expired"):
        verify_signed_request(KEY, "PUT", key, query, now=1001)
    with pytest.raises(InvalidSignatureError):
        verify_signed_request(KEY, "GET", key, query, now=999)
    with pytest.raises(InvalidSignatureError):
        verify_signed_request(KEY, "PUT", "media/b/source", query, now=999)
    with pytest.raises(InvalidSignatureError):
        verify_signed_request(KEY, "PUT", key, {**query, "partNumber": "3"}, now=999)
    with pytest.raises(InvalidSignatureError):
        verify_signed_request("other", "PUT", key, query, now=999)
    with pytest.raises(InvalidSignatureError, match="not signed"):
        verify_signed_request(KEY, "PUT", key, {"partNumber": "2"}, now=999)


@pytest.fixture
async def local(tmp_path):
    store = LocalStore(MediaSettings(local_dir=str(tmp_path), local_base_url="http://h/media", signing_key=KEY))
    await store.ensure_ready()
    yield store
    store.close()


async def test_get_serves_the_file_only_with_a_valid_url(local):
    await local.put_bytes("media/x/v/jpeg_320.jpg", b"jpeg-bytes")
    key, query = split(await local.presign_get("media/x/v/jpeg_320.jpg", 60))
    status, headers, body = await handle_local_request(local, "GET", key, query, b"", {})
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert body.read_bytes() == b"jpeg-bytes"
    status, _, _ = await handle_local_request(local, "GET", key, query, b"", {}, now=time.time() + 120)
    assert status == 403
    status, _, _ = await handle_local_request(local, "GET", "media/x/v/other.jpg", query, b"", {})
    assert status == 403


async def test_path_traversal_is_refused(local):
    url = sign_url(KEY, "GET", "http://h/media", "media/ok", int(time.time()) + 60)
    _, query = split(url)
    status, _, _ = await handle_local_request(local, "GET", "../etc/passwd", query, b"", {})
    assert status in (400, 403)


async def test_part_upload_to_an_aborted_upload_is_404(local):
    mp = await local.create_multipart("media/y/source", "image/jpeg", False)
    key, query = split(await local.presign_part("media/y/source", mp, 1, 60))
    await local.abort_multipart("media/y/source", mp)
    status, _, _ = await handle_local_request(local, "PUT", key, query, b"abc", {})
    assert status == 404


async def test_url_for_uses_the_cdn_when_configured(tmp_path):
    signed = LocalStore(MediaSettings(local_dir=str(tmp_path), local_base_url="http://h/media", signing_key=KEY))
    cdn = LocalStore(MediaSettings(local_dir=str(tmp_path), cdn_base_url="https://cdn.example/"))
    try:
        assert await cdn.url_for("media/x/v/poster.jpg") == "https://cdn.example/media/x/v/poster.jpg"
        key, query = split(await signed.url_for("media/x/v/poster.jpg"))
        verify_signed_request(KEY, "GET", key, query, now=time.time())
    finally:
        signed.close()
        cdn.close()


def test_listing_parts_while_the_upload_is_aborted_answers_no_such_upload(tmp_path, monkeypatch):
    """`uploadStatus` racing the sweep of an abandoned upload: the parts vanish between the
    listing's look at the directory and its reads. It raised FileNotFoundError (an
    INTERNAL_SERVER_ERROR, seen in CI); now the upload is gone, as S3 answers NoSuchUpload. A
    part whose checksum is not written yet (being stored) is left out until it is."""
    from pathlib import Path

    from media_pipeline.local import LocalBackend

    backend = LocalBackend(MediaSettings(local_dir=str(tmp_path)))
    key = "media/a/source"
    mp = backend.create_multipart(key, "image/jpeg", True)
    for n in (1, 2):
        backend.store_part(key, mp, n, b"part %d" % n, None)
    (tmp_path / ".multipart" / mp / "part-00002.sha256").unlink()  # part 2 half stored
    assert [p.number for p in backend.list_parts(key, mp)] == [1]
    real_glob = Path.glob

    def glob_then_abort(self, pattern):
        found = list(real_glob(self, pattern))
        backend.abort_multipart(key, mp)
        return iter(found)
    monkeypatch.setattr(Path, "glob", glob_then_abort)
    assert backend.list_parts(key, mp) is None
