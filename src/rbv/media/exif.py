"""EXIF: capture time, GPS, camera and orientation, plus the whole block as JSON.

piexif reads the raw block first (it knows every tag's type, so rationals are told
apart from pairs of integers); Pillow's own reader is the fallback for blocks piexif
rejects or formats it cannot take (TIFF headers, some HEIF/PNG variants).

A PNG may keep its metadata after its pixels, where Pillow looks only by decoding them
all: reading a PNG's EXIF cost as much as decoding it (2.6 against 2.8 ms a photo of
``data/family``), once when it is catalogued and again when it is analysed. Its chunks'
headers say first whether anything is there.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

import piexif
from PIL import Image

_IFDS = {"0th": None, "Exif": 0x8769, "GPS": 0x8825}
_RATIONAL_TYPES = (5, 10)
_MAX_BLOB = 64  # longer binary values (MakerNote, thumbnails) are summarised
_SKIP_TAGS = {37500, 59932}  # MakerNote, Padding: vendor blobs, no use to users

TAG_ORIENTATION = 274
TAG_MAKE = 271
TAG_MODEL = 272
TAG_DATETIME = 306
TAG_DATETIME_ORIGINAL = 36867
TAG_DATETIME_DIGITIZED = 36868


@dataclass(frozen=True)
class ExifInfo:
    """The EXIF facts rbv stores; every field may be missing."""

    taken_at: datetime | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    orientation: int | None = None
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)  # JSON-safe, by tag name


def read_exif(image: Image.Image) -> ExifInfo:
    """The EXIF of an opened image (header read only; pixels are not decoded)."""
    tags = _tags_from_piexif(image.info.get("exif"))
    if tags is None:
        tags = _tags_from_pillow(image)
    return _interpret(tags)


Tags = dict[str, dict[int, Any]]  # IFD name -> tag id -> plain value


def _tags_from_piexif(block: object) -> Tags | None:
    if not isinstance(block, bytes | bytearray) or not block:
        return None
    data = bytes(block)
    if not data.startswith(b"Exif\x00\x00") and data[:4] in (b"II*\x00", b"MM\x00*"):
        data = b"Exif\x00\x00" + data
    try:
        loaded = piexif.load(data)
    except Exception:  # piexif raises bare ValueError/struct.error/KeyError on odd blocks
        return None
    tags: Tags = {}
    for ifd in _IFDS:
        known = piexif.TAGS.get(ifd, {})
        tags[ifd] = {
            tag: _plain(value, rational=known.get(tag, {}).get("type") in _RATIONAL_TYPES)
            for tag, value in (loaded.get(ifd) or {}).items()
            if tag not in _SKIP_TAGS
        }
    return tags


def _tags_from_pillow(image: Image.Image) -> Tags:
    try:
        if image.format == "PNG" and not _png_metadata_after_pixels(image):
            # what the header's chunks gave is all there is: no need to decode
            exif = Image.Image.getexif(image)
        else:
            exif = image.getexif()
    except Exception:  # a damaged block: no EXIF rather than no image
        return {}
    tags: Tags = {}
    for ifd, pointer in _IFDS.items():
        try:
            values = dict(exif) if pointer is None else dict(exif.get_ifd(pointer))
        except Exception:
            values = {}
        tags[ifd] = {tag: _plain(v, rational=False) for tag, v in values.items()
                     if tag not in _SKIP_TAGS and tag not in (0x8769, 0x8825)}
    return tags


_PNG_METADATA = {b"eXIf", b"tEXt", b"zTXt", b"iTXt"}  # where Pillow's getexif looks
_PNG_CHUNKS_MAX = 1_000_000


def _png_metadata_after_pixels(image: Image.Image) -> bool:
    """Whether a PNG has a chunk that Pillow reads EXIF or orientation from (``eXIf``,
    the text chunks: a raw EXIF profile, XMP) after its first pixel chunk: read only
    when the pixels are decoded. The chunks' headers are read from the file, their data
    skipped; True (decode, as Pillow would) when the file cannot be walked to its end."""
    name = getattr(image, "filename", None)
    if not name:
        return True
    try:
        with open(name, "rb") as fp:
            fp.seek(8)  # the signature
            pixels = False
            for _ in range(_PNG_CHUNKS_MAX):
                head = fp.read(8)
                if len(head) < 8:
                    return True  # no IEND: damaged; let Pillow say what it finds
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IEND":
                    return False
                pixels = pixels or kind == b"IDAT"
                if pixels and kind in _PNG_METADATA:
                    return True
                fp.seek(length + 4, 1)  # the data and its CRC
    except OSError:
        return True
    return True


def _plain(value: Any, *, rational: bool) -> Any:
    """A JSON-safe version of a piexif/Pillow tag value."""
    if rational and isinstance(value, tuple):
        if len(value) == 2 and all(isinstance(v, int) for v in value):
            return _ratio(value[0], value[1])
        return [_plain(v, rational=True) for v in value]
    if isinstance(value, bytes | bytearray):
        text = bytes(value).rstrip(b"\x00")
        if len(text) <= _MAX_BLOB * 4 and all(32 <= b < 127 or b in (9, 10, 13) for b in text):
            return text.decode("ascii")
        if len(value) <= _MAX_BLOB:
            return value.hex()
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value.replace("\x00", "").strip()
    if isinstance(value, tuple | list):
        return [_plain(v, rational=rational) for v in value]
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float | Fraction) or hasattr(value, "numerator"):
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _interpret(tags: Tags) -> ExifInfo:
    zeroth, exif, gps = (tags.get(k, {}) for k in _IFDS)
    taken = None
    for tag in (TAG_DATETIME_ORIGINAL, TAG_DATETIME_DIGITIZED):
        taken = taken or _datetime(exif.get(tag))
    taken = taken or _datetime(zeroth.get(TAG_DATETIME))
    orientation = zeroth.get(TAG_ORIENTATION)
    lat = _degrees(gps.get(2), gps.get(1), negative="S")
    lon = _degrees(gps.get(4), gps.get(3), negative="W")
    alt = _number(gps.get(6))
    if alt is not None and gps.get(5) in (1, "1", b"\x01", "01"):
        alt = -alt
    raw = {
        ifd: {_tag_name(ifd, tag): value for tag, value in values.items()}
        for ifd, values in tags.items() if values
    }
    return ExifInfo(
        taken_at=taken,
        gps_lat=lat if lat is not None and abs(lat) <= 90 else None,
        gps_lon=lon if lon is not None and abs(lon) <= 180 else None,
        gps_alt=alt,
        camera_make=_text(zeroth.get(TAG_MAKE)),
        camera_model=_text(zeroth.get(TAG_MODEL)),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8
        else None,
        raw=raw,
    )


def _tag_name(ifd: str, tag: int) -> str:
    return str(piexif.TAGS.get(ifd, {}).get(tag, {}).get("name", tag))


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()[:19]
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None  # "0000:00:00 00:00:00" and other camera placeholders


def _number(value: Any) -> float | None:
    if isinstance(value, list) and value:
        value = value[0]
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _degrees(dms: Any, ref: Any, *, negative: str) -> float | None:
    """Degrees/minutes/seconds to signed decimal degrees."""
    if not isinstance(dms, list) or not dms or any(_number(v) is None for v in dms):
        return None
    parts = [float(v) for v in dms] + [0.0, 0.0]
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    if isinstance(ref, str) and ref.strip().upper().startswith(negative):
        degrees = -degrees
    return degrees


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None
