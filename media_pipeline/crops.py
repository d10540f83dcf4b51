"""Crops for every surface: a square grid thumbnail, a 4:5 feed and a 9:16 story rendition.

A surface's rendition is cut from the upright picture only where the source's aspect ratio
differs from the surface's (by more than 1%); elsewhere the full variants already fit. The
crop keeps the largest box of the surface's aspect, centred on the focal point the client sent
with the upload (fractions of the upright picture, (0.5, 0.5) when none), moved inside the
picture where the point is near an edge. Crops are never upscaled and carry no metadata.
Blocking: runs in a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from config.settings import MediaSettings
from media_pipeline.rendered import RenderedFile, flatten

# surface -> (aspect width, aspect height)
SURFACES: dict[str, tuple[int, int]] = {"square": (1, 1), "feed": (4, 5), "story": (9, 16)}
_SAME_ASPECT = 0.01


@dataclass(frozen=True)
class FocalPoint:
    """Where the subject is, as fractions of the upright picture's width and height."""

    x: float = 0.5
    y: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
            raise ValueError("a focal point's x and y are fractions between 0 and 1")


def crop_box(width: int, height: int, aspect: tuple[int, int], focal: FocalPoint) -> tuple[int, int, int, int] | None:
    """The (left, top, right, bottom) box of `aspect` in a `width`x`height` picture, or None
    when the picture already has that aspect."""
    target = aspect[0] / aspect[1]
    if abs((width / height) / target - 1) <= _SAME_ASPECT:
        return None
    if width / height > target:  # too wide: keep the full height
        cw, ch = max(1, round(height * target)), height
    else:  # too tall: keep the full width
        cw, ch = width, max(1, round(width / target))
    left = min(max(0, round(focal.x * width - cw / 2)), width - cw)
    top = min(max(0, round(focal.y * height - ch / 2)), height - ch)
    return left, top, left + cw, top + ch


def source_width_needed(display: tuple[int, int], focal: FocalPoint, settings: MediaSettings) -> int:
    """The upright width a decode must keep so that no crop is upscaled from it."""
    need = 0
    for surface, aspect in SURFACES.items():
        box = crop_box(display[0], display[1], aspect, focal)
        widths = settings.crop_widths.get(surface, [])
        if box is not None and widths:
            cw = box[2] - box[0]
            need = max(need, -(-min(max(widths), cw) * display[0] // cw))
    return need


def render_crops(upright: Image.Image, display: tuple[int, int], focal: FocalPoint, settings: MediaSettings,
                 out_dir: Path, prefix: str = "", icc: bytes | None = None) -> list[RenderedFile]:
    """JPEG + WebP of each surface's crop, at `settings.crop_widths[surface]` (clamped to the
    crop). `display` is the picture's full upright size; `upright` may be a reduced decode of it."""
    files: list[RenderedFile] = []
    scale = upright.width / display[0]
    for surface, aspect in SURFACES.items():
        box = crop_box(display[0], display[1], aspect, focal)
        if box is None:
            continue
        cw, ch = box[2] - box[0], box[3] - box[1]
        left, top, right, bottom = (round(c * scale) for c in box)
        cropped = upright.crop((left, top, right, bottom))
        for width in sorted({min(w, cw) for w in settings.crop_widths.get(surface, [])}, reverse=True):
            height = max(1, round(width * ch / cw))
            resized = (cropped if cropped.size == (width, height)
                       else cropped.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0))
            rgb = flatten(resized)
            name = f"{prefix}{surface}_{width}"
            jpeg = out_dir / f"jpeg_{name}.jpg"
            rgb.save(jpeg, "JPEG", quality=settings.jpeg_quality, optimize=True, progressive=True, icc_profile=icc)
            files.append(RenderedFile(f"jpeg_{name}", jpeg, width, height, "image/jpeg", "jpg"))
            webp = out_dir / f"webp_{name}.webp"
            (resized if resized.mode in ("RGB", "RGBA") else rgb).save(webp, "WEBP", quality=settings.webp_quality,
                                                                        method=4, icc_profile=icc)
            files.append(RenderedFile(f"webp_{name}", webp, width, height, "image/webp", "webp"))
    return files


def poster_crops(files: list[RenderedFile], settings: MediaSettings, focal: FocalPoint,
                 out_dir: Path) -> list[RenderedFile]:
    """A video's surface crops, cut from its poster (`jpeg_poster_square_320`, ...)."""
    poster = next((f for f in files if f.name == "poster"), None)
    if poster is None:
        return []
    with Image.open(poster.path) as img:
        img.load()
        return render_crops(img, img.size, focal, settings, out_dir, prefix="poster_")
