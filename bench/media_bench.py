"""Media pipeline benchmark: our single-decode ladder, AV1 rung and image variants vs the ffmpeg CLI.

    .venv/bin/python bench/media_bench.py [--seconds 10] [--repeat 2] [--av1-crfs 36,40,44] [--only quality,av1,...]

Generates a 1080p H.264/AAC clip (PyAV, libavfilter's testsrc2 + sine), a 4000x3000 JPEG photo
and the same photo as HEIC (pillow-heif), then, in the same run and on the same inputs:
- the AV1 rung's quality and size: our ladder's `av1_<n>` and `mp4_<n>` rungs of the same size,
  SSIM and PSNR against the source scaled to that size (ffmpeg's `ssim`/`psnr` filters), bytes;
  our AV1 rung at each of --av1-crfs too, to give its bytes at H.264's SSIM, and ffmpeg's AV1;
- times (best of --repeat, ours and ffmpeg's runs interleaved so both see the same load):
  the AV1 rung alone (ours: `transcode_video` with only that rung; ffmpeg: one scale and
  libsvtav1 with the same preset, crf and GOP, and the same AAC); the H.264 ladder without and
  with the AV1 rung (ffmpeg: one decode, a `split` into the scaled outputs, identical encoder
  settings); image variants of the JPEG and of the HEIC (JPEG + WebP at 1080/640/320, no
  crops: the outputs ffmpeg makes) against ffmpeg decoding the photo once into the same six;
  the crops' extra cost.
The ffmpeg CLI is imageio-ffmpeg's static build (ffmpeg 9, SVT-AV1 4.2 like PyAV's wheel), else
`ffmpeg` on the PATH; both versions are printed. Target: ladder <= 1.25x, AV1 rung <= 1.1x.
Then runs our ladder (3 s clip) and image variants once in a thread and once in a spawned
process while an event loop ticks every 5 ms, printing the loop's lag: the case for processes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import av.filter
from PIL import Image, ImageDraw

from config.settings import MediaSettings
from media_pipeline.images import render_image, target_widths
from media_pipeline.probe import probe_image, probe_video
from media_pipeline.video import av1_rung, ladder, svtav1_options, transcode_video, x264_options


def make_clip(path: Path, seconds: float, width: int = 1920, height: int = 1080, fps: int = 30) -> None:
    """A busy 1080p clip (testsrc2 moves and changes every frame) with a stereo tone, long-GOP
    H.264 at crf 18 as a camera would write it."""
    graph = av.filter.Graph()
    src = graph.add("testsrc2", f"size={width}x{height}:rate={fps}:duration={seconds}")
    sink = graph.add("buffersink")
    src.link_to(sink)
    graph.configure()
    with av.open(str(path), "w", format="mp4") as oc:
        vs = oc.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"preset": "veryfast", "crf": "18"}
        aus = oc.add_stream("aac", rate=48000, layout="stereo")
        while True:
            try:
                frame = sink.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            frame = frame.reformat(format="yuv420p")
            frame.pict_type = av.video.frame.PictureType.NONE  # lavfi marks every frame I: let x264 make its GOP
            for p in vs.encode(frame):
                oc.mux(p)
        for p in vs.encode(None):
            oc.mux(p)
        tone = b"".join(
            (int(8000 * ((i // 55) % 2 * 2 - 1))).to_bytes(2, "little", signed=True) * 2 for i in range(1024)
        )
        for start in range(0, int(seconds * 48000), 1024):
            frame = av.AudioFrame(format="s16", layout="stereo", samples=1024)
            frame.planes[0].update(tone)
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            for p in aus.encode(frame):
                oc.mux(p)
        for p in aus.encode(None):
            oc.mux(p)


def make_photo(path: Path, width: int = 4000, height: int = 3000) -> None:
    """A 12 MP photo-like JPEG: gradients, shapes and sensor-like noise."""
    base = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    img = Image.merge("RGB", (base, noise, base.rotate(180)))
    draw = ImageDraw.Draw(img)
    for i in range(0, width, 250):
        draw.ellipse((i, i * height // width, i + 400, i * height // width + 300), outline=(255, 255, 0), width=8)
    img.save(path, "JPEG", quality=92)


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return "ffmpeg"


FFMPEG = ffmpeg_exe()


def ffmpeg_ladder_cmd(src: Path, out: Path, settings: MediaSettings, probe) -> list[str]:
    """One decode, a split into every rung (the AV1 one too with `media.av1`), same encoder settings."""
    rungs = ladder(probe.width, probe.height, settings.video_heights)
    av1 = av1_rung(probe.width, probe.height, settings)
    rungs += [av1] if av1 is not None else []
    gop = max(1, round(probe.fps * settings.gop_seconds))
    labels = "".join(f"[s{i}]" for i in range(len(rungs)))
    graph = f"[0:v]split={len(rungs)}{labels};" + ";".join(
        f"[s{i}]scale={r.width}:{r.height}:flags=bicubic,format=yuv420p[v{i}]" for i, r in enumerate(rungs)
    )
    cmd = [FFMPEG, "-v", "error", "-y", "-i", str(src), "-filter_complex", graph]
    for i, r in enumerate(rungs):
        cmd += ["-map", f"[v{i}]", "-map", "0:a", *_video_args(settings, r, gop), *_audio_args(settings),
                "-movflags", "+faststart", str(out / f"ff_{r.name}.mp4")]
    return cmd


def _video_args(settings: MediaSettings, r, gop: int) -> list[str]:
    if r.encoder == "libsvtav1":
        o = svtav1_options(settings, gop)
        return ["-c:v", "libsvtav1", "-preset", o["preset"], "-crf", o["crf"], "-g", o["g"]]
    o = x264_options(settings, r, gop)
    args = ["-c:v", "libx264", "-preset", o["preset"], "-crf", o["crf"], "-profile:v", o["profile"], "-g", o["g"],
            "-maxrate", o["maxrate"], "-bufsize", o["bufsize"]]
    return args + (["-threads", o["threads"]] if "threads" in o else [])


def _audio_args(settings: MediaSettings) -> list[str]:
    return ["-c:a", "aac", "-b:a", str(settings.audio_bitrate), "-ar", "48000", "-ac", "2"]


def ffmpeg_av1_cmd(src: Path, out: Path, settings: MediaSettings, probe, crf: int | None = None) -> list[str]:
    """The AV1 rung alone, as our pipeline makes it: scaled once, libsvtav1 with our settings, AAC."""
    r = av1_rung(probe.width, probe.height, settings)
    gop = max(1, round(probe.fps * settings.gop_seconds))
    args = _video_args(settings, r, gop)
    if crf is not None:
        args[args.index("-crf") + 1] = str(crf)
    return [FFMPEG, "-v", "error", "-y", "-i", str(src), "-map", "0:v", "-map", "0:a",
            "-vf", f"scale={r.width}:{r.height}:flags=bicubic,format=yuv420p", *args, *_audio_args(settings),
            "-movflags", "+faststart", str(out)]


def quality(encoded: Path, source: Path, width: int, height: int) -> tuple[float, float]:
    """(SSIM, PSNR in dB) of `encoded` against `source` scaled to its size, by ffmpeg's filters."""
    scores = []
    for metric, pattern in (("ssim", r"All:([0-9.]+)"), ("psnr", r"average:([0-9.inf]+)")):
        graph = (
            f"[1:v]scale={width}:{height}:flags=bicubic,format=yuv420p[ref];[0:v]format=yuv420p[enc];[enc][ref]{metric}"
        )
        err = subprocess.run([FFMPEG, "-hide_banner", "-i", str(encoded), "-i", str(source), "-lavfi", graph,
                              "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
        scores.append(float(re.findall(pattern, err)[-1]))
    return scores[0], scores[1]


def bytes_at_ssim(points: list[tuple[int, int, float]], target: float) -> float | None:
    """Bytes at SSIM `target`, interpolated between the (crf, bytes, ssim) points that bracket it."""
    pts = sorted(points, key=lambda p: p[2])
    for (_, b0, s0), (_, b1, s1) in zip(pts, pts[1:]):
        if s0 <= target <= s1:
            return b0 + (b1 - b0) * ((target - s0) / (s1 - s0) if s1 > s0 else 0)
    return None


def ffmpeg_image_cmd(src: Path, out: Path, settings: MediaSettings, probe) -> list[str]:
    widths = target_widths(probe.width, settings.image_widths)
    n = 2 * len(widths)
    labels = "".join(f"[s{i}]" for i in range(n))
    graph = f"[0:v]split={n}{labels};" + ";".join(
        f"[s{i}]scale={widths[i // 2]}:-2:flags=lanczos[o{i}]" for i in range(n)
    )
    cmd = [FFMPEG, "-v", "error", "-y", "-i", str(src), "-filter_complex", graph]
    for i in range(n):
        w = widths[i // 2]
        if i % 2 == 0:
            cmd += ["-map", f"[o{i}]", "-q:v", "3", str(out / f"ff_jpeg_{w}.jpg")]
        else:
            cmd += [
                "-map",
                f"[o{i}]",
                "-c:v",
                "libwebp",
                "-quality",
                str(settings.webp_quality),
                str(out / f"ff_webp_{w}.webp"),
            ]
    return cmd


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def race(repeat: int, ours, theirs, theirs_in_child: bool = True) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best-of-`repeat` (wall, cpu) seconds for ours (this process) and ffmpeg (a child process,
    or this process too with `theirs_in_child=False`), interleaved so both see the same machine
    load. CPU time is the steadier figure on a shared box."""
    best = {"ours": (float("inf"), float("inf")), "theirs": (float("inf"), float("inf"))}
    who_theirs = resource.RUSAGE_CHILDREN if theirs_in_child else resource.RUSAGE_SELF
    for _ in range(repeat):
        for name, fn, who in (("theirs", theirs, who_theirs), ("ours", ours, resource.RUSAGE_SELF)):
            c, t = _cpu(who), time.perf_counter()
            fn()
            wall, cpu = time.perf_counter() - t, _cpu(who) - c
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    return best["ours"], best["theirs"]


def report(label: str, ours: tuple[float, float], theirs: tuple[float, float], target: str = "") -> None:
    print(f"{label:15s} wall: ours {ours[0]:6.2f}s ffmpeg {theirs[0]:6.2f}s ratio {ours[0] / theirs[0]:.2f}x | "
          f"cpu: ours {ours[1]:6.2f}s ffmpeg {theirs[1]:6.2f}s ratio {ours[1] / theirs[1]:.2f}x {target}")


def _ladder_job(clip: Path, probe, settings: MediaSettings, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    transcode_video(clip, probe, settings, out)


def _images_job(photo: Path, probe, settings: MediaSettings, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    render_image(photo, probe, settings, False, out)


async def _on_loop(executor, fn, *args) -> tuple[float, float, float]:
    """Run fn in `executor` while a 5 ms ticker measures how late the event loop wakes up."""
    lags: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    ticker = asyncio.create_task(tick())
    t = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    wall = time.perf_counter() - t
    done.set()
    await ticker
    lags.sort()
    return wall, lags[int(len(lags) * 0.99)] * 1000, lags[-1] * 1000


def compare_executors(jobs: list[tuple[str, object, tuple]]) -> None:
    """Thread vs (spawned) process for each job: wall time and the event loop's lag meanwhile."""
    with (
        ThreadPoolExecutor(1) as threads,
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as procs,
    ):
        procs.submit(int).result()  # start the worker before timing
        for label, fn, args in jobs:
            for name, ex in (("thread", threads), ("process", procs)):
                wall, p99, worst = asyncio.run(_on_loop(ex, fn, *args))
                print(
                    f"{label:15s} in a {name:7s}: wall {wall:6.2f}s, "
                    f"event-loop lag p99 {p99:6.1f} ms, max {worst:6.1f} ms"
                )


def _version(cmd: list[str], pattern: str) -> str:
    run = subprocess.run(cmd, capture_output=True, text=True)
    found = re.search(pattern, run.stdout + run.stderr)
    return found.group(1) if found else "?"


def make_heic(jpeg: Path, heic: Path) -> None:
    """The bench photo as a HEIC (libheif/x265 via pillow-heif), as a phone would store it."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(jpeg) as img:
        img.save(heic, "HEIF", quality=85)


def _fresh(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def bench_av1_quality(clip: Path, vprobe, settings: MediaSettings, work: Path, crfs: list[int]) -> None:
    """AV1 vs H.264 rungs of the same size: SSIM/PSNR against the source and bytes, for our AV1
    rung at the configured CRF and at each of `crfs` (AV1's bytes at H.264's SSIM), and for the
    ffmpeg CLI's AV1 at the configured settings."""
    out = _fresh(work / "quality")
    transcode_video(clip, vprobe, settings, out)
    r = av1_rung(vprobe.width, vprobe.height, settings)
    h264 = out / f"mp4_{r.short_side}.mp4"
    hs, hp = quality(h264, clip, r.width, r.height)
    hb = h264.stat().st_size
    print(
        f"{r.width}x{r.height} vs the source: H.264 mp4_{r.short_side} {hb / 1e3:6.0f} kB "
        f"SSIM {hs:.5f} PSNR {hp:.2f} dB"
    )
    points = []
    for crf in sorted({settings.av1_crf, *crfs}):
        path = out / f"{r.name}.mp4"
        if crf != settings.av1_crf:  # the AV1 rung alone, at another CRF
            transcode_video(
                clip, vprobe, settings.model_copy(update=dict(video_heights=[], av1_crf=crf)), _fresh(work / "q2")
            )
            path = work / "q2" / f"{r.name}.mp4"
        s_, p_ = quality(path, clip, r.width, r.height)
        b = path.stat().st_size
        points.append((crf, b, s_))
        mark = " <- media.av1_crf" if crf == settings.av1_crf else ""
        print(
            f"  ours AV1 {r.name} preset {settings.av1_preset} crf {crf:2d}: {b / 1e3:6.0f} kB "
            f"SSIM {s_:.5f} PSNR {p_:.2f} dB "
            f"= {b / hb:.2f}x H.264's bytes, SSIM {'>=' if s_ >= hs else '<'} H.264's{mark}"
        )
    at = bytes_at_ssim(points, hs)
    if at is not None:
        print(
            f"  our AV1 bytes at H.264's SSIM {hs:.5f} (interpolated): {at / 1e3:.0f} kB = {at / hb:.2f}x "
            "(target <= 0.75x)"
        )
    ff = work / "ff_av1.mp4"
    subprocess.run(ffmpeg_av1_cmd(clip, ff, settings, vprobe), check=True)
    s_, p_ = quality(ff, clip, r.width, r.height)
    print(
        f"  ffmpeg CLI AV1, same settings (crf {settings.av1_crf}): {ff.stat().st_size / 1e3:6.0f} kB "
        f"SSIM {s_:.5f} PSNR {p_:.2f} dB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--x264-threads", type=int, default=None, help="override media.x264_threads")
    parser.add_argument("--av1-crfs", default="36,40,44", help="CRFs of our AV1 rung for its bytes at H.264's SSIM")
    parser.add_argument("--only", default="quality,av1,ladder,images,executors", help="sections to run")
    args = parser.parse_args()
    only = set(args.only.split(","))
    settings = MediaSettings()
    if args.x264_threads is not None:
        settings.x264_threads = args.x264_threads
    work = Path(tempfile.mkdtemp(prefix="media-bench-"))
    try:
        clip, photo, heic = work / "clip.mp4", work / "photo.jpg", work / "photo.heic"
        t = time.perf_counter()
        make_clip(clip, args.seconds)
        make_photo(photo)
        make_heic(photo, heic)
        print(f"inputs: {args.seconds:.0f}s 1920x1080 30fps clip ({clip.stat().st_size / 1e6:.1f} MB), "
              f"4000x3000 JPEG ({photo.stat().st_size / 1e6:.1f} MB) and HEIC ({heic.stat().st_size / 1e6:.1f} MB), "
              f"made in {time.perf_counter() - t:.1f}s")
        print(
            f"cpus: {os.cpu_count()}, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
            f"x264: preset={settings.x264_preset} crf={settings.x264_crf} "
            f"profile={settings.x264_profile} gop={settings.gop_seconds}s threads={settings.x264_threads or 'auto'}; "
            f"AV1: libsvtav1 preset={settings.av1_preset} crf={settings.av1_crf} short side {settings.av1_short_side}"
        )
        print(f"ffmpeg CLI: {FFMPEG} (version {_version([FFMPEG, '-version'], r'version (\S+)')}); "
              f"PyAV {av.__version__} (libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})")

        vprobe = probe_video(clip, settings)
        out = work / "out"
        if "quality" in only:
            bench_av1_quality(clip, vprobe, settings, work, [int(c) for c in args.av1_crfs.split(",")])

        if "av1" in only:
            av1_only = settings.model_copy(update=dict(video_heights=[]))  # the ladder with the AV1 rung alone
            report("AV1 rung", *race(args.repeat, lambda: transcode_video(clip, vprobe, av1_only, _fresh(out)),
                                     lambda: subprocess.run(ffmpeg_av1_cmd(clip, work / "ff_av1.mp4", settings, vprobe),
                                                            check=True)), "(target: wall <= 1.1x)")

        if "ladder" in only:
            h264_only = settings.model_copy(update=dict(av1=False))
            for label, s_ in (("H.264 ladder", h264_only), ("ladder + AV1", settings)):
                report(
                    label,
                    *race(
                        args.repeat,
                        lambda s_=s_: transcode_video(clip, vprobe, s_, _fresh(out)),
                        lambda s_=s_: subprocess.run(ffmpeg_ladder_cmd(clip, work, s_, vprobe), check=True),
                    ),
                    "(target: wall <= 1.25x)",
                )

        iprobe = probe_image(photo, settings)
        if "images" in only:
            no_crops = settings.model_copy(update=dict(crop_widths={}))
            hprobe = probe_image(heic, settings)
            for label, src, probe in (("JPEG variants", photo, iprobe), ("HEIC variants", heic, hprobe)):
                report(
                    label,
                    *race(
                        args.repeat,
                        lambda src=src, probe=probe: render_image(src, probe, no_crops, False, _fresh(out)),
                        lambda src=src, probe=probe: subprocess.run(
                            ffmpeg_image_cmd(src, work, settings, probe), check=True
                        ),
                    ),
                )
            for label, src, probe in (("JPEG", photo, iprobe), ("HEIC", heic, hprobe)):
                with_crops, without = race(
                    args.repeat,
                    lambda src=src, probe=probe: render_image(src, probe, settings, False, _fresh(out)),
                    lambda src=src, probe=probe: render_image(src, probe, no_crops, False, _fresh(out)),
                    theirs_in_child=False,
                )
                print(f"{label} variants + crops: wall {with_crops[0]:6.2f}s vs {without[0]:6.2f}s without "
                      f"({with_crops[0] / without[0]:.2f}x), cpu {with_crops[1]:6.2f}s vs {without[1]:6.2f}s")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if "executors" in only:
            short = work / "short.mp4"
            make_clip(short, 3.0)
            compare_executors([
                ("ladder (3 s)", _ladder_job, (short, probe_video(short, settings), settings, work / "ex")),
                ("image variants", _images_job, (photo, iprobe, settings, work / "ex")),
            ])
        print("ffmpeg ladder command:", " ".join(ffmpeg_ladder_cmd(clip, Path("OUT"), settings, vprobe)))
        print("ffmpeg AV1 command:", " ".join(ffmpeg_av1_cmd(clip, Path("OUT.mp4"), settings, vprobe)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
