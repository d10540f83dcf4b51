"""Real media files made in the tests: PyAV-encoded videos and Pillow images with EXIF."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def make_video(
    path: Path,
    *,
    width: int = 320,
    height: int = 240,
    seconds: float = 2.0,
    fps: int = 24,
    rotation: int = 0,
    audio: bool = True,
    video: bool = True,
    container: str = "mp4",
    faststart: bool = False,
    codec: str = "libx264",
    intra_only: bool = False,
) -> Path:
    """An H.264/AAC clip: a moving gradient (so frames differ) plus a tone; `rotation` is written
    as display-matrix metadata, the way phones record portrait video. `codec="libx265"` makes
    what an iPhone records: HEVC Main 10 tagged `hvc1` (pass `container="mov"`)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as oc:
        vs = None
        if video:
            vs = oc.add_stream(codec, rate=fps)
            hevc = codec == "libx265"
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p10le" if hevc else "yuv420p"
            vs.codec_context.options = ({"preset": "ultrafast"} | ({"x265-params": "log-level=error"} if hevc else {})
                                        | ({"g": "1"} if intra_only else {}))  # every frame a keyframe
            if hevc:
                vs.codec_context.codec_tag = "hvc1"  # Apple's tag (parameter sets in the sample entry)
            if rotation:
                vs.set_display_rotation(rotation)
        aus = oc.add_stream("aac", rate=48000, layout="stereo") if audio else None
        n = int(seconds * fps)
        if vs is not None:
            for i in range(n):
                img = Image.new("RGB", (width, height), (0, (i * 7) % 256, 128))
                draw = ImageDraw.Draw(img)
                draw.rectangle((0, 0, width // 4, height // 4), fill=(255, 0, 0))  # marks the top-left
                x = (i * 4) % max(1, width - 20)
                draw.rectangle((x, height // 2, x + 20, height // 2 + 20), fill=(255, 255, 255))
                frame = av.VideoFrame.from_image(img).reformat(format=vs.pix_fmt)
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for p in vs.encode(frame):
                    oc.mux(p)
            for p in vs.encode(None):
                oc.mux(p)
        if aus is not None:
            samples = int(seconds * 48000)
            for start in range(0, samples, 1024):
                frame = av.AudioFrame(format="s16", layout="stereo", samples=1024)
                tone = b"".join(
                    int(6000 * math.sin(2 * math.pi * 440 * (start + k) / 48000)).to_bytes(2, "little", signed=True) * 2
                    for k in range(1024)
                )
                frame.planes[0].update(tone)
                frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
                for p in aus.encode(frame):
                    oc.mux(p)
            for p in aus.encode(None):
                oc.mux(p)
    return path


def make_image(
    width: int = 400,
    height: int = 300,
    *,
    fmt: str = "JPEG",
    orientation: int | None = None,
    gps: bool = False,
    mode: str = "RGB",
) -> bytes:
    """An image with a red top-left quadrant (to check orientation) and optional EXIF orientation + GPS."""
    img = Image.new(mode, (width, height), (0, 128, 255) if mode == "RGB" else (0, 128, 255, 128))
    img.paste((255, 0, 0) if mode == "RGB" else (255, 0, 0, 255), (0, 0, width // 2, height // 2))
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif[0x010F] = "TestCam"  # Make: must survive location stripping
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    out = io.BytesIO()
    kwargs = {"exif": exif.tobytes()} if len(exif) or gps else {}
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def mp4_top_level_boxes(data: bytes) -> list[str]:
    """The MP4's top-level box types in file order (to check `+faststart`: moov before mdat)."""
    boxes, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        boxes.append(kind)
        if size < 8:
            break
        i += size
    return boxes


def make_heic(width: int = 400, height: int = 300, *, orientation: int | None = None, gps: bool = False,
              xmp_location: bool = False) -> bytes:
    """A HEIC (HEVC still, libheif/x265 via pillow-heif) with a red top-left quadrant. With
    `orientation`, libheif records the turn in the file's `irot`/`imir` boxes, and the EXIF keeps
    it too, as an iPhone writes it."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    img = Image.new("RGB", (width, height), (0, 128, 255))
    img.paste((255, 0, 0), (0, 0, width // 2, height // 2))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    if orientation:
        exif[ORIENTATION] = orientation
    if gps:
        exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    kwargs = {}
    if xmp_location:
        kwargs["xmp"] = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                         b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.4N"/>'
                         b"</rdf:RDF></x:xmpmeta>")
    out = io.BytesIO()
    img.save(out, "HEIF", quality=90, exif=exif.tobytes(), **kwargs)
    return out.getvalue()
