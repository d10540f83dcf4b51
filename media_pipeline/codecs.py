"""RFC 6381 `codecs` strings of a rendition, read from what its encoder wrote (never assumed).

An HLS master playlist's CODECS and a client's choice between renditions (`Media.url(codecs:)`)
rest on these: H.264 as `avc1.PPCCLL` from the avcC record (profile, constraints, level), AV1
as `av01.P.LLT.DD` from the av1C record (profile, level, tier, bit depth), AAC-LC as
`mp4a.40.2`. Blocking: runs in the worker that rendered the file.
"""

from __future__ import annotations

from pathlib import Path

import av


def rfc6381(path: Path) -> str:
    """The codecs of an MP4's video (and audio) streams, comma-separated, video first."""
    with av.open(str(path)) as c:
        parts = [video_codec(s.codec_context.name, bytes(s.codec_context.extradata or b"")) for s in c.streams.video]
        parts += ["mp4a.40.2" for s in c.streams.audio if s.codec_context.name == "aac"]
    return ",".join(parts)


def video_codec(name: str, extradata: bytes) -> str:
    if name == "h264" and len(extradata) >= 4 and extradata[0] == 1:
        return f"avc1.{extradata[1:4].hex()}"
    if name in ("av1", "libdav1d", "libaom-av1") and len(extradata) >= 3 and extradata[0] & 0x80:
        profile, level = extradata[1] >> 5, extradata[1] & 0x1F
        tier = "H" if extradata[2] & 0x80 else "M"
        depth = 12 if extradata[2] & 0x20 else 10 if extradata[2] & 0x40 else 8
        return f"av01.{profile}.{level:02d}{tier}.{depth:02d}"
    raise ValueError(f"no RFC 6381 string for a {name} stream without its configuration record")
