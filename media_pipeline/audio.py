"""Audio-only media (voice notes): probe an upload as audio, and transcode it to AAC in an M4A.

A voice note must decode as audio and carry no video stream (a video goes through the video
ladder instead). Limits are read from the container's header before decoding. The output is
one variant, `aac` (AAC-LC, mono, `audio_voice_bitrate`, 48 kHz, MP4 container with the index
first), whatever the source codec (Opus/WebM from browsers, AAC/M4A from phones, MP3, WAV).
Blocking and CPU-bound: runs in a worker process (see `process.py`).
"""

from __future__ import annotations

from pathlib import Path

import av

from config.settings import MediaSettings
from media_pipeline.errors import CorruptMediaError, MediaTooLargeError, UnsupportedMediaError
from media_pipeline.images import RenderedFile
from media_pipeline.probe import ProbeResult

AUDIO_CONTENT_TYPES = {"audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac", "audio/mpeg", "audio/ogg",
                       "audio/webm", "audio/wav", "audio/x-wav"}
OUTPUT_RATE = 48000
# A decode that stops this far before the declared end means the file was truncated.
_TRUNCATION_SLACK = 0.9


def probe_audio(path: Path, settings: MediaSettings) -> ProbeResult:
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"not readable audio ({exc}); the file is corrupt, truncated or not audio") from exc
    with container:
        if container.streams.video:
            raise UnsupportedMediaError("a voice message is audio only; upload a video as kind VIDEO")
        if not container.streams.audio:
            raise UnsupportedMediaError("the file has no audio stream; record the voice message again")
        stream = container.streams.audio[0]
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = container.duration / av.time_base if container.duration else 0.0
        if duration <= 0:
            raise CorruptMediaError("audio has no duration; the file is corrupt or truncated")
        if duration > settings.max_audio_seconds:
            raise MediaTooLargeError(f"audio lasts {duration:.1f}s, over the {settings.max_audio_seconds:.0f}s "
                                     "limit; record a shorter message")
        try:
            next(container.decode(stream))  # proves the stream decodes
        except (av.FFmpegError, StopIteration) as exc:
            raise CorruptMediaError("audio does not decode; the file is corrupt, upload it again") from exc
        fmt = container.format.name
    return ProbeResult("audio", fmt, "audio/mp4", 0, 0, duration, has_audio=True)


def transcode_audio(src: Path, probe: ProbeResult, settings: MediaSettings, out_dir: Path) -> list[RenderedFile]:
    path = out_dir / "aac.m4a"
    decoded = 0.0
    try:
        with av.open(str(src)) as inp, av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            ain = inp.streams.audio[0]
            aout = out.add_stream("aac", rate=OUTPUT_RATE, layout="mono")
            aout.bit_rate = settings.audio_voice_bitrate
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=OUTPUT_RATE)
            for frame in inp.decode(ain):
                if frame.pts is not None and frame.time_base is not None:
                    decoded = float(frame.pts * frame.time_base)
                for r in resampler.resample(frame):
                    out.mux(aout.encode(r))
            for r in resampler.resample(None):
                out.mux(aout.encode(r))
            out.mux(aout.encode(None))
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"audio does not decode to the end ({exc}); upload it again") from exc
    if probe.duration > 1 and decoded < probe.duration * _TRUNCATION_SLACK:
        raise CorruptMediaError(f"audio stops at {decoded:.1f}s of {probe.duration:.1f}s; the file is truncated")
    return [RenderedFile("aac", path, 0, 0, "audio/mp4", "m4a")]
