"""Plain, picklable values the pipeline returns (they cross process boundaries and JSON manifests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Variant:
    """One published rendition. `name` is stable (e.g. "jpeg_640", "mp4_720", "poster")."""

    name: str
    width: int
    height: int
    content_type: str
    key: str
    bytes: int
    # RFC 6381 codecs of a video rendition ("avc1.640028,mp4a.40.2", "av01.0.08M.08"); "" for images.
    codecs: str = ""


@dataclass(frozen=True)
class MediaResult:
    """A processed media: its display size, duration (0 for images) and variants."""

    type: str  # "image" | "video" | "audio"
    width: int
    height: int
    duration: float
    variants: list[Variant] = field(default_factory=list)
    # Drawn before the first byte arrives (see placeholder.py); "" when none could be made.
    blurhash: str = ""
    dominant_color: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MediaResult:
        return cls(d["type"], d["width"], d["height"], d["duration"], [Variant(**v) for v in d["variants"]],
                   d.get("blurhash", ""), d.get("dominant_color", ""))

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


@dataclass(frozen=True)
class ProcessOptions:
    # Keep GPS/location metadata in the published original (the user chose to share it).
    share_location: bool = False
    # Where the subject is (fractions of the upright picture), for the surface crops; None: centred.
    focal_point: tuple[float, float] | None = None
