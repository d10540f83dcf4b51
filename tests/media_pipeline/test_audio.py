"""Voice notes: the audio-only probe and the AAC transcode (run in-process here: they are plain functions)."""

from __future__ import annotations

import av
import pytest

from config.settings import MediaSettings
from media_pipeline.audio import probe_audio, transcode_audio
from media_pipeline.errors import CorruptMediaError, MediaTooLargeError, UnsupportedMediaError
from tests.media_pipeline.factory import make_video


def test_probe_and_transcode_to_aac_mono(tmp_path):
    src = make_video(tmp_path / "voice.m4a", seconds=2.0, video=False)
    settings = MediaSettings()
    probe = probe_audio(src, settings)
    assert probe.kind == "audio" and abs(probe.duration - 2.0) < 0.1
    (out_dir := tmp_path / "out").mkdir()
    (f,) = transcode_audio(src, probe, settings, out_dir)
    assert f.name == "aac" and f.content_type == "audio/mp4"
    with av.open(str(f.path)) as c:
        (a,) = c.streams.audio
        assert not c.streams.video and a.codec_context.name == "aac" and a.codec_context.channels == 1
        assert a.codec_context.sample_rate == 48000
        assert abs(float(c.duration / av.time_base) - 2.0) < 0.15


def test_probe_refuses_video_long_and_garbage(tmp_path):
    settings = MediaSettings(max_audio_seconds=1.0)
    with pytest.raises(UnsupportedMediaError, match="audio only"):
        probe_audio(make_video(tmp_path / "clip.mp4", width=64, height=48, seconds=0.5), settings)
    with pytest.raises(MediaTooLargeError):
        probe_audio(make_video(tmp_path / "long.m4a", seconds=1.5, video=False), settings)
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"\x00not audio" * 100)
    with pytest.raises((CorruptMediaError, UnsupportedMediaError)):
        probe_audio(junk, settings)
