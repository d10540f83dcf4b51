"""What a render step leaves in the job's work dir (not yet published), and the RGB flattening
every JPEG output shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class RenderedFile:
    """A file produced in the job's work dir, not yet published."""

    name: str
    path: Path
    width: int
    height: int
    content_type: str
    ext: str
    # Listed in MediaResult.variants; HLS segments and rung playlists are published but unlisted.
    listed: bool = True
    # RFC 6381 codecs of a video rendition ("avc1.640028,mp4a.40.2"); empty for images.
    codecs: str = ""


def flatten(img: Image.Image) -> Image.Image:
    """RGB for JPEG: transparent pixels over white (JPEG has no alpha)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")
