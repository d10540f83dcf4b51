"""Phone media and rendition choice through GraphQL: a HEIC becomes READY without its GPS, crops
and placeholders are served, `url(aspect:, codecs:)` picks the rendition, an undecodable video
is refused with a reason. Same app, stores and helpers as test_media_api."""

from __future__ import annotations

import asyncio
import io
import struct

import pytest
from PIL import Image

from resolvers.media import pick_variant
from tests.media_pipeline.factory import GPS_IFD, make_heic, make_video
from tests.resolvers.test_media_api import (  # noqa: F401  (fixtures)
    _stop_workers,
    api,
    complete,
    media_settings,
    node,
    part_size,
    start,
    upload,
)

COMPLETE_AT = """mutation($i: UploadCompleteInput!) { completeUpload(input: $i) {
  media { id status } errors { code field message } } }"""
SURFACES = """query($id: ID!) { node(id: $id) { ... on Media { status width height blurhash dominantColor
  variants { name width height contentType codecs url }
  grid: url(aspect: "1:1", width: 300) feed: url(aspect: "4:5", width: 1080) story: url(aspect: "9:16")
  plain: url(width: 300) h264: url av1: url(codecs: ["av01.0.08M.08", "avc1"]) } } }"""


def _named(m: dict) -> dict[str, dict]:
    return {v["name"]: v for v in m["variants"]}


def _which(m: dict, url: str) -> str:
    return next(v["name"] for v in m["variants"] if v["url"].split("?")[0] == url.split("?")[0])


async def test_a_heic_photo_becomes_ready_without_gps_with_crops_and_a_placeholder(api, media_settings):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    data = await asyncio.to_thread(make_heic, 800, 600, orientation=6, gps=True)
    p = await upload(gql, http, ta, data, "IMAGE", "image/heic", part_size=part_size(media_settings))
    done = (await gql.ok(COMPLETE_AT, {"i": {"uploadId": p["upload"]["id"], "focalPoint": {"x": 0.5, "y": 0.2}}},
                         ta))["completeUpload"]
    assert done["errors"] == [] and done["media"]["status"] == "PROCESSING"
    await gql.tao.run_jobs_until_idle()

    m = await node(gql, ta, done["media"]["id"], SURFACES)
    assert m["status"] == "READY" and (m["width"], m["height"]) == (600, 800)
    assert m["blurhash"] and m["dominantColor"].startswith("#")
    names = _named(m)
    assert names["original"]["contentType"] == "image/heic"
    async with http.get(names["original"]["url"]) as r:
        original = await r.read()
    assert struct.pack(">IIII", 48, 1, 51, 1) not in original
    exif = await asyncio.to_thread(lambda: Image.open(io.BytesIO(original)).getexif())
    assert not exif.get_ifd(GPS_IFD)
    # each surface gets its shape; with no aspect, the full picture
    assert (_which(m, m["grid"]), _which(m, m["feed"]), _which(m, m["story"])) == (
        "jpeg_square_320", "jpeg_feed_600", "jpeg_story_450")
    assert _which(m, m["plain"]) == "jpeg_320"
    async with http.get(m["grid"]) as r:
        grid = await r.read()
    assert await asyncio.to_thread(lambda: Image.open(io.BytesIO(grid)).size) == (320, 320)


async def test_url_codecs_chooses_the_av1_rung_for_clients_that_play_it(api, media_settings, tmp_path):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    clip = await asyncio.to_thread(make_video, tmp_path / "clip.mov", width=160, height=120, seconds=1.0,
                                   codec="libx265", container="mov")
    p = await upload(gql, http, ta, clip.read_bytes(), "VIDEO", "video/quicktime", part_size(media_settings))
    done = await complete(gql, ta, p["upload"]["id"])
    assert done["errors"] == []
    await gql.tao.run_jobs_until_idle()
    m = await node(gql, ta, done["media"]["id"], SURFACES)
    assert m["status"] == "READY" and m["blurhash"]
    names = _named(m)
    assert names["av1_120"]["codecs"].startswith("av01.0.") and names["mp4_120"]["codecs"].startswith("avc1.")
    assert names["poster"]["codecs"] is None
    assert _which(m, m["h264"]) == "mp4_120", "clients that did not ask get H.264"
    assert _which(m, m["av1"]) == "av1_120"
    async with http.get(m["av1"]) as r:
        assert r.status == 200 and (await r.read())[4:8] == b"ftyp"


async def test_a_video_nothing_here_decodes_is_refused_with_a_reason(api, media_settings, tmp_path):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    raw = (await asyncio.to_thread(make_video, tmp_path / "clip.mp4", width=160, height=120, seconds=1.0)).read_bytes()
    at = raw.index(b"avc1", raw.index(b"stsd"))
    data = raw[:at] + b"zzzz" + raw[at + 4:]
    p = await upload(gql, http, ta, data, "VIDEO", "video/mp4", part_size(media_settings))
    done = await complete(gql, ta, p["upload"]["id"])
    assert done["media"] is None
    (err,) = done["errors"]
    assert err["code"] == "UNSUPPORTED_TYPE" and "codec cannot be decoded here" in err["message"]


async def test_bad_focal_points_and_aspects_are_refused(api, media_settings):
    gql, http = api
    ta, _ = await gql.sign_up("ada")
    data = await asyncio.to_thread(make_heic, 64, 48)
    p = await upload(gql, http, ta, data, "IMAGE", "image/heic", part_size=part_size(media_settings))
    bad = (await gql.ok(COMPLETE_AT, {"i": {"uploadId": p["upload"]["id"], "focalPoint": {"x": 1.5, "y": 0}}},
                        ta))["completeUpload"]
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_UPLOAD", "focalPoint")]
    done = await complete(gql, ta, p["upload"]["id"])  # nothing changed: it still completes
    assert done["errors"] == []
    body = await gql('query($id: ID!) { node(id: $id) { ... on Media { url(aspect: "wide") } } }',
                    {"id": done["media"]["id"]}, ta)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def _v(name: str, w: int, h: int, ctype: str = "image/jpeg", codecs: str | None = None) -> dict:
    return {"name": name, "width": w, "height": h, "content_type": ctype, "key": name} | (
        {"codecs": codecs} if codecs else {}
    )


IMAGE = [_v("original", 4000, 3000), _v("jpeg_1080", 1080, 810), _v("webp_1080", 1080, 810, "image/webp"),
         _v("jpeg_320", 320, 240), _v("webp_320", 320, 240, "image/webp"), _v("jpeg_square_640", 640, 640),
         _v("jpeg_square_320", 320, 320), _v("jpeg_feed_1080", 1080, 1350), _v("jpeg_story_1080", 1080, 1920)]
VIDEO = [_v("mp4_1080", 1920, 1080, "video/mp4", "avc1.640028,mp4a.40.2"),
         _v("mp4_720", 1280, 720, "video/mp4", "avc1.64001f,mp4a.40.2"),
         _v("av1_720", 1280, 720, "video/mp4", "av01.0.05M.08,mp4a.40.2"),
         _v("poster", 1920, 1080), _v("jpeg_poster_square_640", 640, 640)]
LEGACY_VIDEO = [_v("mp4_720", 1280, 720, "video/mp4"), _v("poster", 1280, 720)]  # recorded before codecs were


@pytest.mark.parametrize(
    ("variants", "kwargs", "picked"),
    [
        (IMAGE, {}, "jpeg_1080"),
        (IMAGE, {"width": 300}, "jpeg_320"),
        (IMAGE, {"width": 300, "aspect": 1.0}, "jpeg_square_320"),
        (IMAGE, {"width": 400, "aspect": 1.0}, "jpeg_square_640"),
        (IMAGE, {"width": 2000, "aspect": 1.0}, "jpeg_square_640"),  # none that wide: the widest
        (IMAGE, {"aspect": 0.8}, "jpeg_feed_1080"),
        (IMAGE, {"aspect": 9 / 16}, "jpeg_story_1080"),
        (IMAGE, {"aspect": 3 / 4 * 1.01}, "jpeg_1080"),  # the source's own shape: the full picture
        (IMAGE, {"aspect": 2.0}, "jpeg_1080"),  # no such crop: the full picture
        (IMAGE, {"name": "original"}, "original"),
        (VIDEO, {}, "mp4_1080"),
        (VIDEO, {"codecs": ["av01", "avc1"]}, "mp4_1080"),  # wider than the AV1 rung
        (VIDEO, {"codecs": ["av01", "avc1"], "width": 1280}, "av1_720"),
        (VIDEO, {"codecs": ["AV01.0.05M.08"], "width": 1920}, "av1_720"),  # AV1 only: the widest AV1
        (VIDEO, {"codecs": ["avc1"], "width": 1280}, "mp4_720"),
        (VIDEO, {"aspect": 1.0}, "mp4_1080"),  # a video's picture is not cropped
        (VIDEO, {"codecs": ["hvc1"]}, None),
        (LEGACY_VIDEO, {}, "mp4_720"),
    ],
)
def test_pick_variant(variants, kwargs, picked):
    chosen = pick_variant(variants, kwargs.pop("name", None), kwargs.pop("width", None), **kwargs)
    assert (chosen["name"] if chosen else None) == picked


async def test_a_codecs_list_is_capped(gql):
    """`url(codecs:)` is resolved per media, and a scalar costs nothing in the static estimate:
    100 000 entries were read into a set for every media of a page. More than
    `MAX_CODECS` (16) is a clear BAD_USER_INPUT now."""
    from tests.resolvers.stories.helpers import ready_media

    MAX_CODECS = 16  # schema.media.MAX_CODECS

    ta, _ = await gql.sign_up("ada")
    media = await ready_media(gql, "ada")
    q = "query($id: ID!, $c: [String!]) { node(id: $id) { ... on Media { url(codecs: $c) } } }"
    assert "errors" not in await gql(q, {"id": media, "c": ["avc1"] * MAX_CODECS}, ta)
    for many in (MAX_CODECS + 1, 100_000):
        body = await gql(q, {"id": media, "c": ["avc1"] * many}, ta)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and "`codecs`" in error["message"], error
