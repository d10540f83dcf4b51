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


@dataclass(frozen=True)
class MediaResult:
    """A processed media: its display size, duration (0 for images) and variants."""

    type: str  # "image" | "video" | "audio"
    width: int
    height: int
    duration: float
    variants: list[Variant] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MediaResult:
        return cls(d["type"], d["width"], d["height"], d["duration"], [Variant(**v) for v in d["variants"]])

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


@dataclass(frozen=True)
class ProcessOptions:
    # Keep GPS/location metadata in the published original (the user chose to share it).
    share_location: bool = False
