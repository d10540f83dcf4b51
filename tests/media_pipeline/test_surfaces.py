"""Crops for every surface, placeholders, and HLS that a player library accepts."""

from __future__ import annotations

import io
import math

import av
import blurhash
import m3u8
import pytest
from PIL import Image

from media_pipeline import ProcessOptions, process_media
from media_pipeline.crops import FocalPoint, crop_box
from tests.media_pipeline.factory import make_image, make_video
from tests.media_pipeline.test_processing import is_red, seed


@pytest.mark.parametrize(
    ("size", "aspect", "focal", "box"),
    [
        ((1000, 500), (1, 1), FocalPoint(), (250, 0, 750, 500)),  # centred
        ((1000, 500), (1, 1), FocalPoint(0.95, 0.5), (500, 0, 1000, 500)),  # pushed back inside
        ((1000, 500), (1, 1), FocalPoint(0.3, 0.5), (50, 0, 550, 500)),
        ((333, 1001), (4, 5), FocalPoint(0.5, 0.0), (0, 0, 333, 416)),  # too tall: full width
        ((1080, 1920), (9, 16), FocalPoint(), None),  # already 9:16
        ((1081, 1920), (9, 16), FocalPoint(), None),  # within 1%
        ((1, 999), (1, 1), FocalPoint(), (0, 499, 1, 500)),
    ],
)
def test_crop_box(size, aspect, focal, box):
    assert crop_box(*size, aspect, focal) == box


def test_a_focal_point_is_a_pair_of_fractions():
    with pytest.raises(ValueError):
        FocalPoint(1.5, 0.5)


async def test_crops_of_a_rotated_odd_sized_photo_follow_the_focal_point(store, media_settings):
    # 1001x333 stored, orientation 8 (a quarter turn anticlockwise): shown 333 wide, 1001 high,
    # the red quadrant at the bottom-left. A focal point low in the picture keeps the red.
    key = await seed(store, make_image(1001, 333, orientation=8))
    result = await process_media(media_settings, key, "image", ProcessOptions(focal_point=(0.5, 0.9)))
    crops = {v.name: v for v in result.variants if v.name.split("_")[1:2] in (["square"], ["feed"], ["story"])}
    assert sorted(crops) == ["jpeg_feed_333", "jpeg_square_320", "jpeg_square_333", "jpeg_story_333",
                             "webp_feed_333", "webp_square_320", "webp_square_333", "webp_story_333"]
    for v in crops.values():
        img = Image.open(io.BytesIO(await store.get_bytes(v.key))).convert("RGB")
        assert img.size == (v.width, v.height)
        surface = v.name.split("_")[1]
        aspect = {"square": 1, "feed": 4 / 5, "story": 9 / 16}[surface]
        assert abs(img.width / img.height - aspect) < 0.01
        assert is_red(img.getpixel((3, img.height - 4))), f"{v.name}: the focal point's corner is in the crop"
        assert not is_red(img.getpixel((img.width - 4, img.height - 4)))


async def test_a_square_photo_gets_no_square_crop(store, media_settings):
    key = await seed(store, make_image(500, 500))
    result = await process_media(media_settings, key, "image")
    names = [v.name for v in result.variants]
    assert not [n for n in names if "square" in n]
    assert "jpeg_feed_400" in names and "jpeg_story_281" in names


async def test_a_photo_placeholder_decodes_to_its_colours(store, media_settings):
    # Red top-left quadrant on blue: the blurhash's top-left is reddish, its bottom-right blue.
    key = await seed(store, make_image(400, 300))
    result = await process_media(media_settings, key, "image")
    assert result.dominant_color == "#0080ff"
    assert blurhash.components(result.blurhash) == (4, 3)
    pixels = blurhash.decode(result.blurhash, 8, 6)
    r, g, b = pixels[0][0]
    assert r > 150 and b < 150
    r, g, b = pixels[5][7]
    assert b > 200 and r < 60


async def test_a_video_gets_a_placeholder_and_poster_crops(store, media_settings, tmp_path):
    key = await seed(store, make_video(tmp_path / "in.mp4", seconds=1).read_bytes())
    result = await process_media(media_settings, key, "video")
    assert result.blurhash and result.dominant_color.startswith("#")
    names = [v.name for v in result.variants]
    assert {"jpeg_poster_square_240", "jpeg_poster_feed_192", "jpeg_poster_story_135"} <= set(names)


async def test_hls_is_accepted_by_a_player_library(store, media_settings, tmp_path):
    """Parse the playlists with `m3u8` (as a player does), then check what they declare against
    the media: every rendition's first segment decodes with PyAV at the declared resolution and
    codec, and BANDWIDTH is at least the peak bit rate of its segments (RFC 8216 4.3.4.2)."""
    media_settings.hls = True
    media_settings.gop_seconds = 0.5
    key = await seed(store, make_video(tmp_path / "in.mp4", seconds=2).read_bytes())
    result = await process_media(media_settings, key, "video")
    master_key = result.variant("hls").key
    base = master_key.rsplit("/", 1)[0]
    master = m3u8.loads((await store.get_bytes(master_key)).decode())
    assert master.is_variant and len(master.playlists) == 3
    assert not [p for p in master.playlists if "av01" in p.stream_info.codecs], "AV1 is served as MP4, not in TS"
    bandwidths = []
    for playlist in master.playlists:
        info = playlist.stream_info
        media_key = f"{base}/{playlist.uri}"
        rung = m3u8.loads((await store.get_bytes(media_key)).decode())
        assert rung.is_endlist and rung.playlist_type == "vod" and len(rung.segments) >= 2
        assert all(s.duration <= rung.target_duration for s in rung.segments)
        peak, total, seconds = 0.0, 0, 0.0
        for i, seg in enumerate(rung.segments):
            data = await store.get_bytes(media_key.rsplit("/", 1)[0] + "/" + seg.uri)
            peak, total, seconds = (
                max(peak, len(data) * 8 / seg.duration),
                total + len(data) * 8,
                seconds + seg.duration,
            )
            if i == 0:
                with av.open(io.BytesIO(data), format="mpegts") as c:
                    v = c.streams.video[0]
                    frame = next(c.decode(v))
                    assert (frame.width, frame.height) == info.resolution
                    profile_level = bytes(
                        [{"High": 0x64, "Main": 0x4D}[v.codec_context.profile], 0, v.codec_context.level]
                    ).hex()
                    assert info.codecs == f"avc1.{profile_level},mp4a.40.2"
                    assert c.streams.audio[0].codec_context.name == "aac"
        assert info.bandwidth >= math.floor(peak), "BANDWIDTH is the peak segment bit rate"
        assert info.average_bandwidth == pytest.approx(total / seconds, rel=0.01)
        assert info.frame_rate == pytest.approx(24.0)
        bandwidths.append(info.bandwidth)
    assert bandwidths == sorted(bandwidths, reverse=True), "the bigger rungs declare more bandwidth"
