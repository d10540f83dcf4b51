"""Placeholders drawn before the first byte of a rendition arrives: a BlurHash and a dominant colour.

Both come from the upright picture (a photo's smallest variant, a video's poster), made small
first: the BlurHash (4x3 components, https://blurha.sh) from a 32-pixel-wide copy, whose
aspect ratio the client takes from `Media.width`/`height`; the dominant colour is the most
common of 8 median-cut colours of a 64x64 copy, as `#rrggbb`. Blocking: runs in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import blurhash
from PIL import Image

from media_pipeline.rendered import RenderedFile, flatten

_COMPONENTS = (4, 3)


@dataclass(frozen=True)
class Placeholder:
    blurhash: str
    dominant_color: str


def placeholder_for(files: list[RenderedFile]) -> Placeholder | None:
    """The placeholder of a render's output: from its smallest full JPEG (a photo's narrowest
    variant, else a video's poster); None if it has none."""
    stills = [f for f in files if f.content_type == "image/jpeg" and (f.name.startswith("jpeg_") or f.name == "poster")
              and f.name.count("_") <= 1]
    if not stills:
        return None
    return placeholder_of(min(stills, key=lambda f: f.width).path)


def placeholder_of(path: Path) -> Placeholder:
    with Image.open(path) as img:
        rgb = flatten(img)
        w = min(32, rgb.width)
        small = rgb.resize((w, max(1, round(rgb.height * w / rgb.width))), Image.Resampling.BOX)
        pixels = list(small.getdata())
        rows = [pixels[y * small.width : (y + 1) * small.width] for y in range(small.height)]
        hashed = blurhash.encode(rows, components_x=_COMPONENTS[0], components_y=_COMPONENTS[1])
        return Placeholder(hashed, dominant_color(rgb))


def dominant_color(rgb: Image.Image) -> str:
    quantized = rgb.resize((64, 64), Image.Resampling.BOX).quantize(colors=8, method=Image.Quantize.MEDIANCUT)
    # A palette ("P") image: its colors are (count, palette index) pairs, and it has a palette.
    colors = cast(list[tuple[int, int]], quantized.getcolors())
    palette = quantized.getpalette()
    assert palette is not None
    count, index = max(colors)
    r, g, b = palette[index * 3 : index * 3 + 3]
    return f"#{r:02x}{g:02x}{b:02x}"
