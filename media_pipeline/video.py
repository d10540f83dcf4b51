"""The video ladder (PyAV): H.264/AAC MP4 rungs, an AV1 rung, a poster and thumbnails, in one decode pass.

Each source frame is decoded once, turned upright if the source carries rotation metadata,
scaled to every rung and fed to that rung's encoder (libx264, or libsvtav1 for the AV1 rung
`av1_<n>` when `media.av1` is on); audio is decoded once and encoded per rung. Rungs are never
upscaled, use the same encoder settings as the `ffmpeg` CLI commands in `bench/media_bench.py`,
and are written with `+faststart` (index first, so playback starts before the download ends).
Output goes to the job's work dir only; `process.py` publishes it.
Blocking and CPU-bound: runs in a worker process.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter

from config.settings import MediaSettings
from media_pipeline.codecs import rfc6381
from media_pipeline.errors import CorruptMediaError
from media_pipeline.probe import ProbeResult
from media_pipeline.rendered import RenderedFile

# SVT-AV1 logs its configuration to stderr on every encoder open: errors only (its own variable).
os.environ.setdefault("SVT_LOG", "2")

# Peak bitrate caps per rung (kbit/s for a 1080/720/480 short side); CRF decides below the cap.
_MAXRATE_KBPS = {1080: 6000, 720: 3500, 480: 1500}
_TRANSPOSE = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
# A decode that stops this far before the declared end means the file was truncated.
_TRUNCATION_SLACK = 0.9


@dataclass(frozen=True)
class Rung:
    name: str
    width: int
    height: int
    short_side: int
    encoder: str = "libx264"


def ladder(width: int, height: int, short_sides: list[int]) -> list[Rung]:
    """Rungs for a `width`x`height` (upright) source: short side clamped to the source's, even dims."""
    short = min(width, height)
    rungs = []
    for target in sorted({min(s, short) for s in short_sides}, reverse=True):
        w = max(2, round(width * target / short / 2) * 2)
        h = max(2, round(height * target / short / 2) * 2)
        rungs.append(Rung(f"mp4_{target}", w, h, target))
    return rungs


def av1_rung(width: int, height: int, settings: MediaSettings) -> Rung | None:
    """The AV1 rung (`av1_<short side>`, at most `media.av1_short_side`), or None with `media.av1` off."""
    if not settings.av1:
        return None
    top = ladder(width, height, [settings.av1_short_side])[0]
    return Rung(f"av1_{top.short_side}", top.width, top.height, top.short_side, "libsvtav1")


def svtav1_options(settings: MediaSettings, gop: int) -> dict[str, str]:
    """libsvtav1 options for the AV1 rung; the bench passes the same values to the ffmpeg CLI."""
    return {"preset": str(settings.av1_preset), "crf": str(settings.av1_crf), "g": str(gop)}


def encoder_options(settings: MediaSettings, rung: Rung, gop: int) -> dict[str, str]:
    return svtav1_options(settings, gop) if rung.encoder == "libsvtav1" else x264_options(settings, rung, gop)


def x264_options(settings: MediaSettings, rung: Rung, gop: int) -> dict[str, str]:
    """libx264 options for one rung; the bench passes the same values to the ffmpeg CLI."""
    cap = _MAXRATE_KBPS.get(rung.short_side) or max(800, int(6000 * rung.width * rung.height / (1920 * 1080)))
    opts = {
        "preset": settings.x264_preset,
        "crf": str(settings.x264_crf),
        "profile": settings.x264_profile,
        "g": str(gop),
        "maxrate": f"{cap}k",
        "bufsize": f"{cap * 2}k",
    }
    if settings.x264_threads:
        opts["threads"] = str(settings.x264_threads)
    return opts


def transcode_video(
    src: Path,
    probe: ProbeResult,
    settings: MediaSettings,
    out_dir: Path,
    progress: Callable[[float], None] | None = None,
) -> list[RenderedFile]:
    """Write the ladder, poster and thumbnails for `src` into `out_dir`; return what was written."""
    rungs = ladder(probe.width, probe.height, settings.video_heights)
    av1 = av1_rung(probe.width, probe.height, settings)
    rungs += [av1] if av1 is not None else []
    try:
        with av.open(str(src)) as inp:
            return _transcode(inp, probe, settings, rungs, out_dir, progress)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"video does not decode ({exc}); the file is corrupt, upload it again") from exc


def _transcode(inp, probe, settings, rungs, out_dir, progress) -> list[RenderedFile]:
    vin = inp.streams.video[0]
    vin.thread_type = "AUTO"  # frame + slice threads in the decoder
    ain = inp.streams.audio[0] if inp.streams.audio else None
    rate = vin.average_rate or vin.guessed_rate or Fraction(30)
    gop = max(1, round(float(rate) * settings.gop_seconds))
    outs = []
    for rung in rungs:
        path = out_dir / f"{rung.name}.mp4"
        oc = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        vs = oc.add_stream(rung.encoder, rate=rate)
        vs.width, vs.height, vs.pix_fmt = rung.width, rung.height, "yuv420p"
        vs.codec_context.time_base = vin.time_base
        vs.codec_context.options = encoder_options(settings, rung, gop)
        aus = None
        if ain is not None:
            aus = oc.add_stream("aac", rate=48000, layout="stereo")
            aus.bit_rate = settings.audio_bitrate
        outs.append((rung, path, oc, vs, aus))

    try:
        return _encode_all(inp, vin, ain, probe, settings, outs, out_dir, progress)
    except BaseException:
        for _, _, oc, _, _ in outs:
            try:
                oc.close()
            except av.FFmpegError:
                pass  # the job's scratch dir is deleted anyway; the error that matters is the first one
        raise


def _encode_all(inp, vin, ain, probe, settings, outs, out_dir, progress) -> list[RenderedFile]:
    """Decode once here; scale, encode and mux each rung on a thread of its own. PyAV releases
    the GIL in sws_scale and in the encoder calls, so the rungs' scaling runs in parallel, as
    ffmpeg's filter threads do (serially, this ladder took 1.46x the ffmpeg CLI's wall time on
    an idle 2-core box: docs/BENCHMARKS.md, "Media")."""
    graph = _rotation_graph(vin, probe.rotation)
    grab_at = _grab_times(probe.duration, settings.thumbnails)
    grabbed: dict[int, av.VideoFrame] = {}
    small_grabs: dict[int, av.VideoFrame] = {}
    workers = []
    # The poster comes from the biggest H.264 rung, the thumbnails from the smallest.
    h264 = [i for i, (rung, *_) in enumerate(outs) if rung.encoder == "libx264"] or list(range(len(outs)))
    for i, (rung, _, oc, vs, aus) in enumerate(outs):
        grabs = ([grabbed] if i == h264[0] else []) + ([small_grabs] if i == h264[-1] else [])
        workers.append(_RungWorker(rung, oc, vs, aus, grab_at, grabs))
    threads = [threading.Thread(target=w.run, name=f"ladder-{w.rung.name}", daemon=True) for w in workers]
    for t in threads:
        t.start()
    last_time, decoded = 0.0, False
    try:
        last_time = _decode_into(inp, vin, ain, graph, probe, workers, progress)
        decoded = True
    finally:
        for w in workers:  # an aborted job (an error, the deadline) does not flush its encoders
            w.finish(flush=decoded)
        for t in threads:
            t.join()
    for w in workers:
        if w.error is not None:
            raise w.error
    if probe.duration and last_time < probe.duration * _TRUNCATION_SLACK - 1.0:
        raise CorruptMediaError(
            f"video stops at {last_time:.1f}s of a declared {probe.duration:.1f}s; "
            "the file is truncated, upload it again"
        )
    files = []
    for rung, path, oc, _video, _audio in outs:
        oc.close()
        files.append(RenderedFile(rung.name, path, rung.width, rung.height, "video/mp4", "mp4", codecs=rfc6381(path)))
    files.extend(_stills(grabbed, small_grabs, settings, out_dir))
    return files


def _decode_into(inp, vin, ain, graph, probe, workers, progress) -> float:
    """Demux and decode the source, handing every frame to every rung; returns the last frame's
    time in seconds since the first (to detect truncation)."""
    last_time = 0.0
    t0: float | None = None
    streams = [vin] + ([ain] if ain is not None else [])
    for packet in inp.demux(streams):
        for frame in packet.decode():
            if isinstance(frame, av.AudioFrame):
                for w in workers:
                    w.put(("a", frame, 0.0))
                continue
            for upright in _upright(graph, frame):
                # The decoder labels each frame with the source's picture type, and libx264 and
                # libsvtav1 obey a labelled type: a source's keyframes (every frame of an
                # all-intra file) would be forced on every rung. Unlabelled, each encoder makes
                # its own GOP, as the ffmpeg CLI does (it clears the type too).
                upright.pict_type = av.video.frame.PictureType.NONE
                # Seconds since the first frame (sources may start at a non-zero timestamp).
                t = last_time
                if upright.pts is not None:
                    at = float(upright.pts * upright.time_base)
                    t0 = at if t0 is None else t0
                    t = at - t0
                last_time = max(last_time, t)
                for w in workers:
                    w.put(("v", upright, t))
                if progress is not None and probe.duration:
                    progress(min(1.0, t / probe.duration))
    return last_time


_END = object()
_QUEUE_FRAMES = 8  # decoded frames waiting per rung: bounds memory when one rung is slower


class _RungWorker:
    """One rung's scaler, encoders and muxer, fed decoded frames through a bounded queue. The
    thread owns its output container; on error it records the exception and keeps draining the
    queue, so the decoding thread never blocks on a dead rung."""

    def __init__(self, rung: Rung, oc, vs, aus, grab_at: list[float], grabs: list[dict]) -> None:
        self.rung, self._oc, self._vs, self._aus = rung, oc, vs, aus
        self._grab_at, self._grabs = grab_at, grabs
        self.queue: queue.Queue = queue.Queue(maxsize=_QUEUE_FRAMES)
        self.error: BaseException | None = None
        self._flush_at_end = False

    def put(self, item) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def finish(self, *, flush: bool) -> None:
        """No more frames: drain the queue, then flush the encoders if `flush`, and stop."""
        self._flush_at_end = flush
        self.queue.put(_END)

    def run(self) -> None:
        while (item := self.queue.get()) is not _END:
            if self.error is None:
                try:
                    self._encode(*item)
                except BaseException as exc:  # handed to the decoding thread (which re-raises)
                    self.error = exc
        if self.error is None and self._flush_at_end:
            try:
                self._flush()
            except BaseException as exc:
                self.error = exc

    def _encode(self, kind: str, frame, t: float) -> None:
        oc = self._oc
        if kind == "a":
            for p in self._aus.encode(frame):
                oc.mux(p)
            return
        rung = self.rung
        scaled = frame.reformat(rung.width, rung.height, "yuv420p", interpolation="BICUBIC")
        if scaled is not frame:  # (the source's own size and format: the shared frame, as it is)
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
        for p in self._vs.encode(scaled):
            oc.mux(p)
        for into in self._grabs:
            _maybe_grab(self._grab_at, t, scaled, into)

    def _flush(self) -> None:
        for p in self._vs.encode(None):
            self._oc.mux(p)
        if self._aus is not None:
            for p in self._aus.encode(None):
                self._oc.mux(p)


def _rotation_graph(vin, rotation: int):
    if rotation not in _TRANSPOSE:
        return None
    graph = av.filter.Graph()
    node = graph.add_buffer(template=vin)
    for spec in _TRANSPOSE[rotation]:
        name, _, args = spec.partition("=")
        nxt = graph.add(name, args or None)
        node.link_to(nxt)
        node = nxt
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    return graph


def _upright(graph, frame):
    if graph is None:
        yield frame
        return
    graph.vpush(frame)
    while True:
        try:
            yield graph.vpull()
        except (av.BlockingIOError, av.EOFError):
            return


def _grab_times(duration: float, thumbnails: int) -> list[float]:
    """Index 0: the poster (at 1 s or a tenth in); then thumbnails spread evenly."""
    poster = min(1.0, duration * 0.1)
    return [poster] + [duration * (i + 1) / (thumbnails + 1) for i in range(thumbnails)]


def _maybe_grab(grab_at: list[float], t: float, frame, into: dict) -> None:
    for i, when in enumerate(grab_at):
        if i not in into and t >= when:
            into[i] = frame


def _stills(grabbed: dict, small: dict, settings: MediaSettings, out_dir: Path) -> list[RenderedFile]:
    files = []
    if 0 in grabbed:
        img = grabbed[0].to_image()
        path = out_dir / "poster.jpg"
        img.save(path, "JPEG", quality=settings.jpeg_quality, optimize=True, progressive=True)
        files.append(RenderedFile("poster", path, img.width, img.height, "image/jpeg", "jpg"))
    for i in sorted(k for k in small if k > 0):
        img = small[i].to_image()
        if img.width > settings.thumbnail_width:
            height = max(1, round(img.height * settings.thumbnail_width / img.width))
            img = img.resize((settings.thumbnail_width, height))
        path = out_dir / f"thumb_{i}.jpg"
        img.save(path, "JPEG", quality=settings.jpeg_quality)
        files.append(RenderedFile(f"thumb_{i}", path, img.width, img.height, "image/jpeg", "jpg"))
    return files
