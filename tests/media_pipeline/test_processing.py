"""Processing jobs end to end over both stores: real images and PyAV-encoded videos."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest
from PIL import Image

from media_pipeline import CorruptMediaError, MediaRejectedError, ProcessOptions, process_media
from media_pipeline.process import job_dir, result_key
from tests.media_pipeline.factory import GPS_IFD, ORIENTATION, make_image, make_video, mp4_top_level_boxes

REPO = Path(__file__).resolve().parents[2]


async def seed(store, data: bytes, name: str = "0" * 32) -> str:
    key = f"media/{name}/source"
    await store.put_bytes(key, data)
    return key


def is_red(pixel) -> bool:
    r, g, b = pixel[:3]
    return r > 200 and g < 60 and b < 60


async def test_image_variants_apply_orientation_and_strip_location(store, media_settings):
    source = make_image(1200, 900, orientation=6, gps=True)  # displayed 900 wide, 1200 high
    key = await seed(store, source)
    result = await process_media(media_settings, key, "image")

    assert (result.type, result.width, result.height, result.duration) == ("image", 900, 1200, 0)
    names = [v.name for v in result.variants]
    assert names[:7] == ["original", "jpeg_900", "webp_900", "jpeg_640", "webp_640", "jpeg_320", "webp_320"]
    assert {n for n in names[7:] if not any(s in n for s in ("square", "feed", "story"))} == set(), "then the crops"
    for v in result.variants[1:7]:
        data = await store.get_bytes(v.key)
        assert len(data) == v.bytes
        img = Image.open(io.BytesIO(data))
        assert img.format == ("JPEG" if v.name.startswith("jpeg") else "WEBP")
        assert img.size == (v.width, v.height) == (v.width, round(1200 * v.width / 900))
        assert not img.getexif(), "derived variants carry no metadata"
        rgb = img.convert("RGB")
        # Orientation 6 turns the picture a quarter turn clockwise: the red top-left goes top-right.
        assert is_red(rgb.getpixel((v.width - 5, 5))) and not is_red(rgb.getpixel((5, 5)))

    original = Image.open(io.BytesIO(await store.get_bytes(result.variant("original").key)))
    exif = original.getexif()
    assert not exif.get_ifd(GPS_IFD) and GPS_IFD not in exif
    assert exif[0x010F] == "TestCam" and exif[ORIENTATION] == 6, "other EXIF survives"
    # The original's pixels are untouched (JPEG segments rewritten, not re-encoded).
    assert original.tobytes() == Image.open(io.BytesIO(source)).tobytes()


async def test_location_kept_when_the_user_shares_it(store, media_settings):
    key = await seed(store, make_image(300, 200, gps=True))
    result = await process_media(media_settings, key, "image", ProcessOptions(share_location=True))
    original = Image.open(io.BytesIO(await store.get_bytes(result.variant("original").key)))
    assert original.getexif().get_ifd(GPS_IFD)[1] == "N"


async def test_small_png_with_alpha_is_never_upscaled(store, media_settings):
    key = await seed(store, make_image(200, 100, fmt="PNG", mode="RGBA"))
    result = await process_media(media_settings, key, "image")
    assert [(v.name, v.width, v.height) for v in result.variants] == [
        ("original", 200, 100), ("jpeg_200", 200, 100), ("webp_200", 200, 100),
        # the crops: no wider than the box they are cut from
        ("jpeg_square_100", 100, 100), ("webp_square_100", 100, 100), ("jpeg_feed_80", 80, 100),
        ("webp_feed_80", 80, 100), ("jpeg_story_56", 56, 100), ("webp_story_56", 56, 100),
    ]
    webp = Image.open(io.BytesIO(await store.get_bytes(result.variant("webp_200").key)))
    assert webp.mode == "RGBA"
    jpeg = Image.open(io.BytesIO(await store.get_bytes(result.variant("jpeg_200").key)))
    assert jpeg.mode == "RGB"


def inspect_mp4(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = sum(1 for _ in c.decode(v))
        return {
            "codec": v.codec_context.name,
            "profile": v.codec_context.profile,
            "size": (v.codec_context.width, v.codec_context.height),
            "frames": frames,
            "audio": a.codec_context.name if a else None,
            "duration": c.duration / av.time_base,
        }


@pytest.mark.parametrize(
    ("width", "height", "fps", "rotation", "display", "rungs"),
    [
        (320, 240, 24, 0, (320, 240), [("mp4_240", 320, 240), ("mp4_180", 240, 180), ("mp4_120", 160, 120)]),
        (320, 240, 30, 90, (240, 320), [("mp4_240", 240, 320), ("mp4_180", 180, 240), ("mp4_120", 120, 160)]),
        (160, 120, 15, 0, (160, 120), [("mp4_120", 160, 120)]),  # below the top rungs: never upscaled
    ],
)
async def test_video_ladder(store, media_settings, tmp_path, width, height, fps, rotation, display, rungs):
    src = make_video(tmp_path / "in.mp4", width=width, height=height, fps=fps, rotation=rotation)
    key = await seed(store, src.read_bytes())
    result = await process_media(media_settings, key, "video")

    assert (result.type, (result.width, result.height)) == ("video", display)
    assert result.duration == pytest.approx(2.0, abs=0.05)
    mp4s = [v for v in result.variants if v.name.startswith("mp4_")]
    assert [(v.name, v.width, v.height) for v in mp4s] == rungs
    av1 = [v for v in result.variants if v.name.startswith("av1_")]
    assert [(v.name, v.width, v.height) for v in av1] == [("av1" + rungs[0][0][3:], *rungs[0][1:])], "AV1 at the top"
    for v in mp4s:
        data = await store.get_bytes(v.key)
        info = inspect_mp4(data)
        assert info["codec"] == "h264" and info["profile"] == "High" and info["audio"] == "aac"
        assert v.codecs.startswith("avc1.6400") and v.codecs.endswith(",mp4a.40.2")
        assert info["size"] == (v.width, v.height)
        assert info["frames"] == 2 * fps, "every source frame is encoded once per rung"
        assert info["duration"] == pytest.approx(2.0, abs=0.1)
        boxes = mp4_top_level_boxes(data)
        assert boxes.index("moov") < boxes.index("mdat"), "+faststart puts the index first"

    poster = result.variant("poster")
    assert (poster.width, poster.height) == (rungs[0][1], rungs[0][2])
    img = Image.open(io.BytesIO(await store.get_bytes(poster.key))).convert("RGB")
    # The red marker is the stored frame's top-left; shown upright (as ffmpeg does) a
    # rotation of 90 puts it bottom-left.
    corner = (3, img.height - 4) if rotation == 90 else (3, 3)
    assert is_red(img.getpixel(corner))
    thumbs = [v for v in result.variants if v.name.startswith("thumb_")]
    assert len(thumbs) == 2 and all(t.content_type == "image/jpeg" for t in thumbs)


async def test_rungs_make_their_own_gop_whatever_the_sources_frame_types(store, media_settings, tmp_path):
    """An all-intra source (every decoded frame labelled I) must not force a keyframe per frame
    on the rungs: each encoder makes its GOP of `gop_seconds`, as the ffmpeg CLI does."""
    src = make_video(tmp_path / "in.mp4", seconds=2, fps=24, intra_only=True)
    with av.open(str(src)) as c:
        assert all(p.is_keyframe for p in c.demux(video=0) if p.size)
    key = await seed(store, src.read_bytes())
    result = await process_media(media_settings, key, "video")
    for v in result.variants:
        if v.content_type == "video/mp4":
            with av.open(io.BytesIO(await store.get_bytes(v.key))) as c:
                keys = sum(1 for p in c.demux(video=0) if p.size and p.is_keyframe)
            # one GOP of 2 s in a 2 s clip, plus at most a scene cut (the factory's colour wraps)
            assert keys <= 2, f"{v.name}: {keys} keyframes in 48 frames"


async def test_processing_is_idempotent(store, media_settings, tmp_path):
    key = await seed(store, make_video(tmp_path / "in.mp4", seconds=1).read_bytes())
    first = await process_media(media_settings, key, "video")
    assert await process_media(media_settings, key, "video") == first


async def test_truncated_video_fails_and_the_failure_is_recorded(store, media_settings, tmp_path):
    data = make_video(tmp_path / "in.mp4", faststart=True).read_bytes()  # index first: truncation keeps it
    key = await seed(store, data[: len(data) // 2])
    with pytest.raises(CorruptMediaError, match="upload it again"):
        await process_media(media_settings, key, "video")
    assert json.loads(await store.get_bytes(result_key(key)))["status"] == "failed"
    with pytest.raises(CorruptMediaError):
        await process_media(media_settings, key, "video")
    assert await store.list_keys(key.rsplit("/", 1)[0] + "/v/") == []


async def test_moderation_rejection_fails_the_media(store, media_settings):
    media_settings.moderation_hook = "tests.media_pipeline.hooks:reject_landscape"
    key = await seed(store, make_image(300, 200))
    with pytest.raises(MediaRejectedError) as err:
        await process_media(media_settings, key, "image")
    assert err.value.reason == "landscape media is not allowed here"
    # The decision is recorded: a retry fails the same way without asking the hook again.
    media_settings.moderation_hook = "media_pipeline.moderation:allow_all"
    with pytest.raises(MediaRejectedError):
        await process_media(media_settings, key, "image")
    portrait = await seed(store, make_image(200, 300), "1" * 32)
    media_settings.moderation_hook = "tests.media_pipeline.hooks:reject_landscape"
    assert (await process_media(media_settings, portrait, "image")).width == 200


async def test_worker_killed_mid_transcode_publishes_nothing_and_the_retry_finishes(store, media_settings, tmp_path):
    key = await seed(store, make_video(tmp_path / "in.mp4", seconds=2).read_bytes())
    marker = tmp_path / "mid-transcode"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.media_pipeline.kill_helper", media_settings.model_dump_json(), key, str(marker)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        for _ in range(600):
            if await asyncio.to_thread(marker.exists) or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert marker.exists(), f"the job never reached mid-transcode (exit code {proc.poll()})"
        scratch = job_dir(media_settings, key)
        assert sorted(p.name for p in (scratch / "out").iterdir()) == [
            "av1_240.mp4",
            "mp4_120.mp4",
            "mp4_180.mp4",
            "mp4_240.mp4",
        ]
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 30)
    assert proc.returncode == -signal.SIGKILL

    prefix = key.rsplit("/", 1)[0]
    assert await store.get_bytes(result_key(key)) is None
    assert await store.list_keys(prefix + "/v/") == [], "nothing half-done is published"

    result = await process_media(media_settings, key, "video")
    assert not scratch.exists(), "the retry cleared the killed attempt's scratch files"
    assert sorted(await store.list_keys(prefix + "/v/")) == sorted(v.key for v in result.variants)
    for v in result.variants:
        if v.content_type == "video/mp4":
            assert inspect_mp4(await store.get_bytes(v.key))["frames"] == 48


async def test_a_second_run_of_a_running_job_on_the_same_host_is_refused(store, media_settings):
    import fcntl

    from media_pipeline import JobBusyError

    key = await seed(store, make_image(100, 100))
    lock = job_dir(media_settings, key).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(JobBusyError) as err:
            await process_media(media_settings, key, "image")
        assert err.value.retryable
    assert (await process_media(media_settings, key, "image")).width == 100


async def test_a_job_past_its_deadline_is_aborted_without_publishing(store, media_settings, tmp_path):
    from media_pipeline import JobTimeoutError

    key = await seed(store, make_video(tmp_path / "in.mp4").read_bytes())
    media_settings.job_timeout_seconds = 0.001
    with pytest.raises(JobTimeoutError) as err:
        await process_media(media_settings, key, "video")
    assert err.value.retryable
    assert await store.get_bytes(result_key(key)) is None, "a timeout is not recorded as a permanent failure"
    assert await store.list_keys(key.rsplit("/", 1)[0] + "/v/") == []
    media_settings.job_timeout_seconds = 600
    assert (await process_media(media_settings, key, "video")).type == "video"


async def test_hls_packaging_publishes_every_playlist_and_segment(store, media_settings, tmp_path):
    media_settings.hls = True
    media_settings.gop_seconds = 0.5  # 1 s segments: several per 2 s clip
    key = await seed(store, make_video(tmp_path / "in.mp4").read_bytes())
    result = await process_media(media_settings, key, "video")
    master = result.variant("hls")
    assert master.content_type == "application/vnd.apple.mpegurl"
    base = master.key.rsplit("/", 1)[0]
    text = (await store.get_bytes(master.key)).decode()
    rung_lists = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rung_lists == ["hls/mp4_240/index.m3u8", "hls/mp4_180/index.m3u8", "hls/mp4_120/index.m3u8"]
    assert "RESOLUTION=320x240" in text
    for rel in rung_lists:
        playlist_key = f"{base}/{rel}"
        playlist = (await store.get_bytes(playlist_key)).decode()
        segments = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        assert len(segments) >= 2 and "#EXT-X-ENDLIST" in playlist
        frames = 0
        for seg in segments:
            data = await store.get_bytes(playlist_key.rsplit("/", 1)[0] + "/" + seg)
            with av.open(io.BytesIO(data), format="mpegts") as c:
                frames += sum(1 for _ in c.decode(video=0))
        assert frames == 48, "the segments hold every frame of the rung"
    assert not any(v.name.startswith("hls/") for v in result.variants), "segments are published, not listed"


def test_a_rung_that_fails_mid_ladder_fails_the_whole_ladder(media_settings, tmp_path, monkeypatch):
    """Each rung encodes on its own thread: an error there reaches the caller (the job then
    publishes nothing), and the decoding thread never blocks on the dead rung's full queue."""
    from media_pipeline import video
    from media_pipeline.probe import probe_file

    src = make_video(tmp_path / "in.mp4", width=640, height=480, seconds=2.0)
    probe = probe_file(src, "video", media_settings)
    real_encode, calls = video._RungWorker._encode, {"n": 0}

    def failing_encode(self, kind, frame, t):
        if self.rung.short_side == 240 and kind == "v":
            calls["n"] += 1
            if calls["n"] == 5:
                raise RuntimeError("encoder exploded")
        return real_encode(self, kind, frame, t)
    monkeypatch.setattr(video._RungWorker, "_encode", failing_encode)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="encoder exploded"):
        video.transcode_video(src, probe, media_settings, out)
    assert calls["n"] == 5  # the rung stopped encoding at its error
