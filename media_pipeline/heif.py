"""HEIF/HEIC originals without location: the GPS IFD and XMP blanked in place, the image untouched.

A HEIF file stores its EXIF (a TIFF block) and XMP as items whose bytes sit verbatim in the
file. Removing location rewrites those bytes at the same length, so the published original
keeps the exact HEVC data the phone wrote (re-encoding would lose quality and cost seconds of
x265): the GPS IFD becomes an empty IFD and its out-of-line values (the coordinates) zeros;
an XMP packet becomes an empty one padded with spaces (XMP packets are padded by design).
If a block cannot be found verbatim (an item split over several extents), the image is
re-encoded with the EXIF minus GPS instead. Blocking: runs in a worker process.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Literal

import pillow_heif
from PIL import Image

_GPS_IFD = 0x8825
# TIFF field type -> bytes per value (types 1-12 of the TIFF 6.0 / EXIF spec).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_EMPTY_XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
              b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/><?xpacket end="w"?>')


def strip_heif_location(data: bytes) -> bytes:
    """The same HEIF file without GPS EXIF and XMP in any of its images."""
    heif = pillow_heif.open_heif(io.BytesIO(data))  # parses the boxes; decodes nothing
    out = bytearray(data)
    for image in heif:
        exif = _info_bytes(image.info, "exif")
        tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        if tiff and not _patch(out, tiff, _without_gps):
            return _reencoded_without_gps(data)
        xmp = _info_bytes(image.info, "xmp")
        if xmp and not _patch(out, xmp, _empty_xmp):
            return _reencoded_without_gps(data)
    return bytes(out)


def _info_bytes(info: Mapping[str, object], key: str) -> bytes:
    """A metadata block of an image's `info`, empty when the image has none."""
    value = info.get(key)
    return value if isinstance(value, bytes) else b""


def _patch(out: bytearray, block: bytes, rewrite) -> bool:
    """Replace every verbatim copy of `block` in `out` by `rewrite(block)` (same length)."""
    at = out.find(block)
    if at < 0:
        return False
    new = rewrite(block)
    while at >= 0:
        out[at : at + len(block)] = new
        at = out.find(block, at + len(block))
    return True


def _empty_xmp(xmp: bytes) -> bytes:
    if len(xmp) < len(_EMPTY_XMP):
        return b" " * len(xmp)
    return _EMPTY_XMP + b" " * (len(xmp) - len(_EMPTY_XMP))


def _without_gps(tiff: bytes) -> bytes:
    """The TIFF block with its GPS IFD emptied and the GPS values zeroed, at the same length."""
    buf = bytearray(tiff)
    order: Literal["little", "big"] = "little" if buf[:2] == b"II" else "big"

    def u16(o: int) -> int:
        return int.from_bytes(buf[o : o + 2], order)

    def u32(o: int) -> int:
        return int.from_bytes(buf[o : o + 4], order)

    try:
        ifd0 = u32(4)
        for i in range(u16(ifd0)):
            entry = ifd0 + 2 + 12 * i
            if u16(entry) != _GPS_IFD:
                continue
            gps = u32(entry + 8)
            count = u16(gps)
            if gps + 2 + 12 * count > len(buf):
                raise IndexError("GPS IFD past the block")
            for j in range(count):
                field = gps + 2 + 12 * j
                size = _TYPE_SIZES.get(u16(field + 2), 1) * u32(field + 4)
                if size > 4:  # stored out of line: zero the coordinates themselves
                    at = u32(field + 8)
                    buf[at : at + size] = bytes(len(buf[at : at + size]))
            # count 0, and the next-IFD offset that now follows it is 0 too.
            buf[gps : gps + 2 + 12 * count] = bytes(2 + 12 * count)
    except IndexError:
        return bytes(len(buf))  # unparseable EXIF: drop all of it rather than risk keeping GPS
    return bytes(buf)


def _reencoded_without_gps(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        exif.pop(_GPS_IFD, None)
        out = io.BytesIO()
        img.save(out, "HEIF", quality=90, exif=exif.tobytes(), icc_profile=img.info.get("icc_profile"))
        return out.getvalue()
