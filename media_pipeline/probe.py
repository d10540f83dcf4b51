"""Probe and validate an uploaded file by really decoding it (Pillow for images, PyAV for video).

The declared content type and file name are never trusted: the format is what the decoder
recognises. Limits are checked from headers before anything is decoded (an image's pixel
count before its pixels are allocated, a video's dimensions and duration before its frames),
so a small file cannot make a worker allocate gigabytes. Blocking and CPU-bound: run it in a
worker process (see `process.py`).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
import pillow_heif
from PIL import Image, UnidentifiedImageError

from config.settings import MediaSettings
from media_pipeline.errors import (
    CorruptMediaError,
    DecompressionBombError,
    MediaTooLargeError,
    UnsupportedMediaError,
)

# HEIF (iPhones' HEIC) decodes through pillow-heif's Pillow plugin; libheif applies the file's
# rotation/mirror boxes while decoding and reports EXIF orientation 1, so a HEIC is upright as decoded.
pillow_heif.register_heif_opener()
IMAGE_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
               "HEIF": "image/heic"}
VIDEO_CONTENT_TYPES = {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska"}
# Declared types a client may start an image upload with (image/heif: other HEIF brands).
IMAGE_CONTENT_TYPES = set(IMAGE_TYPES.values()) | {"image/heif"}
_VIDEO_FORMATS = ("mov", "mp4", "matroska", "webm")
# EXIF orientations that turn the picture a quarter turn (width and height swap on display).
_QUARTER_TURNS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ProbeResult:
    """What the decoder found. Width and height are as displayed (orientation/rotation applied)."""

    kind: str  # "image" | "video" | "audio"
    format: str
    content_type: str
    width: int
    height: int
    duration: float = 0.0
    fps: float = 0.0
    rotation: int = 0  # video: clockwise degrees to display upright; image: 0 (EXIF handled)
    orientation: int = 1  # image EXIF orientation
    has_audio: bool = False
    has_location: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def probe_file(path: Path, kind: str, settings: MediaSettings) -> ProbeResult:
    """Validate `path` as a `kind` ("image" or "video"); raise a `MediaError` subclass if it is not one."""
    if kind == "image":
        return probe_image(path, settings)
    if kind == "video":
        return probe_video(path, settings)
    if kind == "audio":
        from media_pipeline.audio import probe_audio  # audio builds on this module's ProbeResult

        return probe_audio(path, settings)
    raise UnsupportedMediaError(f"unknown media kind {kind!r}; use 'image', 'video' or 'audio'")


def open_image_checked(path: Path, settings: MediaSettings) -> Image.Image:
    """Open an image lazily (header only) and refuse it if its pixel count is over the limit."""
    # Pillow's own guard raises past 2x this and warns past 1x; we treat the warning as an error.
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBombError(
            f"image declares more than {settings.max_image_pixels} pixels; upload a smaller image"
        ) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError(
            "not a supported image (JPEG, PNG, WebP, GIF or HEIC); upload it as a video if it is one") from exc
    except OSError as exc:
        raise CorruptMediaError(f"image header is unreadable ({exc}); re-export the file and upload it again") from exc
    if img.format not in IMAGE_TYPES:
        img.close()
        raise UnsupportedMediaError(f"image format {img.format} is not supported; use JPEG, PNG, WebP, GIF or HEIC")
    w, h = img.size
    if w * h > settings.max_image_pixels:
        img.close()
        raise DecompressionBombError(
            f"image is {w}x{h} ({w * h} pixels), over the {settings.max_image_pixels}-pixel limit; "
            "upload a smaller image"
        )
    return img


def probe_image(path: Path, settings: MediaSettings) -> ProbeResult:
    with open_image_checked(path, settings) as img:
        fmt = img.format
        assert fmt is not None  # open_image_checked refuses an image of any format not in IMAGE_TYPES
        exif = img.getexif()
        orientation = int(exif.get(0x0112, 1) or 1)
        has_location = bool(exif.get_ifd(0x8825))
        try:
            img.load()  # a full decode: truncated or corrupt data fails here, not in a later job
        except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # RuntimeError: libheif's
            raise CorruptMediaError(
                f"image does not decode ({exc}); the file is corrupt or truncated, upload it again") from exc
        w, h = img.size
    if orientation in _QUARTER_TURNS:
        w, h = h, w
    return ProbeResult("image", fmt, IMAGE_TYPES[fmt], w, h, orientation=orientation, has_location=has_location)


def probe_video(path: Path, settings: MediaSettings, content_type: str = "") -> ProbeResult:
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"not a readable video ({exc}); the file is corrupt, truncated or not a video") from exc
    with container:
        fmt = container.format.name
        if not any(name in fmt.split(",") for name in _VIDEO_FORMATS):
            raise UnsupportedMediaError(f"container {fmt!r} is not supported; upload MP4, MOV or WebM")
        if not container.streams.video:
            raise UnsupportedMediaError(
                "the file has no video stream; upload a video (audio-only files are not accepted)")
        stream = container.streams.video[0]
        # A stream whose codec this build cannot decode has no codec context (PyAV): say so,
        # rather than fail later on a missing attribute (which a job would retry until parked).
        if stream.codec_context is None:
            raise UnsupportedMediaError(
                "the video's codec cannot be decoded here; export it as H.264, HEVC, VP9 or AV1 and upload again")
        if container.streams.audio and container.streams.audio[0].codec_context is None:
            raise UnsupportedMediaError(
                "the video's sound track uses a codec that cannot be decoded here; "
                "export it with AAC, Opus or MP3 audio")
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise CorruptMediaError("video stream has no dimensions; the file is corrupt")
        if max(width, height) > settings.max_video_dimension:
            raise MediaTooLargeError(
                f"video is {width}x{height}, over the {settings.max_video_dimension}px limit; upload at most 4K"
            )
        duration = _duration(container, stream)
        if duration <= 0:
            raise CorruptMediaError("video has no duration; the file is corrupt or truncated")
        if duration > settings.max_video_seconds:
            raise MediaTooLargeError(
                f"video lasts {duration:.1f}s, over the {settings.max_video_seconds:.0f}s limit; "
                "trim it and upload again"
            )
        rotation = _first_frame_rotation(container, stream)
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        has_audio = bool(container.streams.audio)
        tags = {k.lower() for k in container.metadata}
    if rotation in (90, 270):
        width, height = height, width
    if "video/webm" == content_type or "webm" in fmt and stream.codec_context.name in ("vp8", "vp9", "av1"):
        ctype = "video/webm"
    else:
        ctype = content_type if content_type in VIDEO_CONTENT_TYPES else "video/mp4"
    has_location = any("location" in t for t in tags)
    return ProbeResult("video", fmt, ctype, width, height, duration, float(rate), rotation, has_audio=has_audio,
                       has_location=has_location)


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Decode the first frame (proving the stream decodes) and return its display rotation."""
    try:
        for frame in container.decode(stream):
            return normalize_rotation(frame.rotation)
    except av.FFmpegError as exc:
        raise CorruptMediaError(f"video does not decode ({exc}); the file is corrupt, upload it again") from exc
    raise CorruptMediaError("video has no decodable frames; the file is corrupt or truncated")


def normalize_rotation(rotation: float | int | None) -> int:
    """PyAV reports the display matrix angle counter-clockwise; return clockwise degrees in {0, 90, 180, 270}."""
    return int(round(-(rotation or 0) / 90.0)) % 4 * 90
