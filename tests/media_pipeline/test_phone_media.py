"""What phones make: HEIC photos, HEVC Main 10 in MOV, files nothing here decodes; and the AV1 rung."""

from __future__ import annotations

import io
import json
import struct

import av
import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageStat

from media_pipeline import CorruptMediaError, ProcessOptions, UnsupportedMediaError, process_media
from media_pipeline.process import result_key
from tests.media_pipeline.factory import GPS_IFD, ORIENTATION, make_heic, make_video
from tests.media_pipeline.test_processing import inspect_mp4, is_red, seed

pillow_heif.register_heif_opener()
# The GPS latitude the factory writes, as the EXIF rationals (48/1, 51/1) appear in the file.
LATITUDE_BYTES = struct.pack(">IIII", 48, 1, 51, 1)


async def test_heic_is_made_upright_and_its_original_loses_the_location(store, media_settings):
    source = make_heic(400, 300, orientation=6, gps=True, xmp_location=True)
    assert LATITUDE_BYTES in source and b"GPSLatitude" in source
    key = await seed(store, source)
    result = await process_media(media_settings, key, "image")

    assert (result.type, result.width, result.height) == ("image", 300, 400), "the quarter turn applied"
    original = result.variant("original")
    assert original.content_type == "image/heic"
    data = await store.get_bytes(original.key)
    assert len(data) == len(source), "the original is rewritten in place, not re-encoded"
    assert LATITUDE_BYTES not in data and b"GPSLatitude" not in data, "no coordinates left in the bytes"
    img = Image.open(io.BytesIO(data))
    assert img.format == "HEIF" and not img.getexif().get_ifd(GPS_IFD)
    assert img.getexif()[0x010F] == "TestCam", "other EXIF survives"
    assert img.tobytes() == Image.open(io.BytesIO(source)).tobytes(), "the picture itself is untouched"

    full = [v for v in result.variants if v.name.count("_") == 1]
    assert [v.name for v in full] == ["jpeg_300", "webp_300"]
    for v in full:
        variant = Image.open(io.BytesIO(await store.get_bytes(v.key)))
        assert variant.format in ("JPEG", "WEBP") and not variant.getexif()
        assert variant.size == (v.width, round(v.width * 400 / 300))
        rgb = variant.convert("RGB")
        # Orientation 6 is a quarter turn clockwise: the red top-left goes to the top-right.
        assert is_red(rgb.getpixel((v.width - 5, 5))) and not is_red(rgb.getpixel((5, 5)))


async def test_heic_keeps_its_location_when_the_user_shares_it(store, media_settings):
    source = make_heic(200, 100, gps=True)
    key = await seed(store, source)
    result = await process_media(media_settings, key, "image", ProcessOptions(share_location=True))
    assert await store.get_bytes(result.variant("original").key) == source


async def test_a_truncated_heic_fails_with_a_reason(store, media_settings):
    source = make_heic(640, 480)
    key = await seed(store, source[: len(source) * 2 // 3])
    with pytest.raises(CorruptMediaError, match="upload it again"):
        await process_media(media_settings, key, "image")
    assert json.loads(await store.get_bytes(result_key(key)))["status"] == "failed"


async def test_hevc_main10_mov_from_a_phone_is_laddered_upright(store, media_settings, tmp_path):
    src = make_video(tmp_path / "in.mov", width=320, height=240, rotation=90, codec="libx265", container="mov")
    with av.open(str(src)) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == (
            "hevc",
            "yuv420p10le",
        )
    key = await seed(store, src.read_bytes())
    result = await process_media(media_settings, key, "video")

    assert (result.width, result.height) == (240, 320)
    for v in [v for v in result.variants if v.content_type == "video/mp4"]:
        info = inspect_mp4(await store.get_bytes(v.key))
        assert info["size"] == (v.width, v.height) and v.height > v.width
        assert info["frames"] == 48 and info["audio"] == "aac"
        assert info["codec"] in ("h264", "libdav1d", "av1")
    poster = Image.open(io.BytesIO(await store.get_bytes(result.variant("poster").key))).convert("RGB")
    assert is_red(poster.getpixel((3, poster.height - 4))), "turned as the display matrix says"


def _swap_sample_entry(data: bytes, old: bytes, new: bytes) -> bytes:
    at = data.index(old, data.index(b"stsd"))  # the codec's sample entry, not the ftyp brand
    return data[:at] + new + data[at + 4 :]


async def test_a_video_whose_codec_nothing_here_decodes_fails_with_a_reason(store, media_settings, tmp_path):
    data = _swap_sample_entry(make_video(tmp_path / "in.mp4", seconds=1).read_bytes(), b"avc1", b"zzzz")
    key = await seed(store, data)
    with pytest.raises(UnsupportedMediaError, match="codec cannot be decoded here; export it as H.264"):
        await process_media(media_settings, key, "video")
    manifest = json.loads(await store.get_bytes(result_key(key)))
    assert manifest["status"] == "failed" and manifest["code"] == UnsupportedMediaError.code
    with pytest.raises(UnsupportedMediaError):  # a retry fails the same way at once: never stuck
        await process_media(media_settings, key, "video")


def _frames(data: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(data)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def _psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(ImageStat.Stat(diff).sum2) / (3 * a.width * a.height)
    return 99.0 if mse == 0 else 10 * __import__("math").log10(255**2 / mse)


async def test_the_av1_rung_decodes_back_close_to_its_source(store, media_settings, tmp_path):
    src = make_video(tmp_path / "in.mp4", width=320, height=240, seconds=1)
    key = await seed(store, src.read_bytes())
    result = await process_media(media_settings, key, "video")
    av1 = result.variant("av1_240")
    assert av1.codecs.startswith("av01.0.") and av1.codecs.endswith(".08,mp4a.40.2")
    data = await store.get_bytes(av1.key)
    with av.open(io.BytesIO(data)) as c:
        assert c.streams.video[0].codec_context.name in ("libdav1d", "av1")
        assert c.streams.audio[0].codec_context.name == "aac"
    decoded, source = _frames(data), _frames(src.read_bytes())
    assert len(decoded) == len(source) == 24, "every source frame, once"
    psnrs = [_psnr(d, s) for d, s in zip(decoded, source)]
    assert min(psnrs) > 30, f"the AV1 rung is a faithful copy of its source (PSNR {min(psnrs):.1f} dB)"
    assert av1.bytes < result.variant("mp4_240").bytes, "and smaller than the H.264 rung of the same size"


async def test_the_av1_rung_can_be_turned_off(store, media_settings, tmp_path):
    media_settings.av1 = False
    key = await seed(store, make_video(tmp_path / "in.mp4", seconds=1).read_bytes())
    result = await process_media(media_settings, key, "video")
    assert not [v for v in result.variants if v.name.startswith("av1_")]
    assert all(v.codecs.startswith("avc1") for v in result.variants if v.content_type == "video/mp4")


def test_heic_exif_orientation_agrees_with_the_decoded_picture():
    """libheif turns the picture by the file's irot box and reports EXIF orientation 1, so the
    pipeline must not turn it again (probe reports the upright size, orientation 1)."""
    img = Image.open(io.BytesIO(make_heic(400, 300, orientation=6)))
    assert img.size == (300, 400) and img.getexif().get(ORIENTATION, 1) == 1
