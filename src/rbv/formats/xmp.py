"""Reading and writing face regions in XMP, through exiv2 (the ``pyexiv2`` wheel).

rbv never writes XML by hand: exiv2 parses what is there, rbv adds or names regions by
their flattened keys, and exiv2 serialises the result, so every other tag of a sidecar
or photo stays as it was (and a sidecar's XML comments, which exiv2 drops, are put back:
:mod:`rbv.formats.xmp_comments`). Files are read and written by Python (``open``), so names that
are not UTF-8 work, and written atomically (:mod:`rbv.formats.atomic`) over only
what was read (:mod:`rbv.formats.replace_if_unchanged`).

exiv2 reads a packet it cannot parse (a DOCTYPE, malformed XML) as one without tags, and
says nothing: a packet that is not empty yet yields no tag is reported as unreadable
(:class:`XmpUnreadable`), never taken for an empty one and written over.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyexiv2

from rbv.bounds import MAX_PIXELS_PER_SIDE, OutsideNumber, finite, pixel_size
from rbv.errors import RbvError
from rbv.formats.names import shown_name
from rbv.formats.regions import Region, RegionPlan, from_top_left
from rbv.formats.replace_if_unchanged import Seen, read_seen
from rbv.formats.xmp_comments import comments_kept
from rbv.regular_files import NotRegular, read_regular

pyexiv2.set_log_level(4)  # exiv2 would print warnings itself; rbv reports through errors

_EMPTY_PACKET = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                 b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
                 b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>\n'
                 b'</x:xmpmeta>\n<?xpacket end="w"?>')
_ROOT = "Xmp.mwg-rs.Regions"
_LIST = f"{_ROOT}/mwg-rs:RegionList"
_DIMS = f"{_ROOT}/mwg-rs:AppliedToDimensions"
_MWG = re.compile(r"^Xmp\.mwg-rs\.Regions/mwg-rs:RegionList\[(\d+)\]/mwg-rs:"
                  r"(Name|Type|Area/stArea:(?:x|y|w|h|unit))$")
_MP = re.compile(r"^Xmp\.MP\.RegionInfo/MPRI:Regions\[(\d+)\]/MPReg:"
                 r"(PersonDisplayName|Rectangle)$")
WRITABLE_FORMATS = frozenset({"JPEG", "PNG", "TIFF", "WEBP"})
"""Formats exiv2 writes XMP into (HEIF, for one, it only reads)."""
MAX_SIDECAR_BYTES = 16 << 20
"""The largest sidecar rbv reads or merges into (real ones hold kilobytes; digiKam's and
darktable's with long edit histories a few megabytes)."""
MAX_REGIONS_READ = 1_000
"""The most face regions rbv reads from one file when it imports names (the largest group
photos show a few hundred faces; more is a broken or hostile file): the rest are
skipped and counted (:attr:`RegionsOf.skipped`)."""
BACKUP_SUFFIX = "_original"  # exiftool's name for the untouched copy
_SKELETON_TAG = re.compile(r"</?(?:x:xmpmeta|x:xapmeta|rdf:RDF|rdf:Description)"
                           r"((?:\s+[\w:.-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*/?>")
_SKELETON_ATTR = re.compile(r"([\w:.-]+)\s*=")
_SKELETON_NOISE = re.compile(r"<\?.*?\?>|<!--.*?-->", re.DOTALL)


class XmpError(RbvError):
    """One file's XMP cannot be read or written (reported per file; the run goes on)."""


class XmpUnreadable(XmpError):
    """A file holds an XMP packet exiv2 cannot parse (it would read as empty)."""


@dataclass(frozen=True)
class RegionsOf:
    """The regions one XMP packet holds (MWG first, then Microsoft Photo's), and whether
    it has an MWG region list at all."""

    mwg: list[Region]
    mp: list[Region]
    dims: tuple[int, int] | None
    mwg_items: tuple[int, ...] = ()  # the RegionList item number of each ``mwg`` region
    malformed: tuple[str, ...] = ()  # why each region that could not be read was left out
    skipped: int = 0  # regions past the most that were to be read, not read

    @property
    def all(self) -> list[Region]:
        return [*self.mwg, *self.mp]


def sidecar_for(photo: Path) -> Path:
    """The sidecar of a photo: ``photo.jpg.xmp`` (digiKam, darktable, Immich), or the
    ``photo.xmp`` that is already there (Lightroom) when no other photo of the folder
    shares its stem."""
    full = photo.with_name(photo.name + ".xmp")
    if os.path.lexists(full):
        return full
    short = photo.with_suffix(".xmp")
    if photo.suffix and os.path.lexists(short) and not _stem_shared(photo):
        return short
    return full


def _stem_shared(photo: Path) -> bool:
    with contextlib.suppress(OSError):
        for entry in os.scandir(photo.parent):
            if (entry.name != photo.name and Path(entry.name).stem == photo.stem
                    and not entry.name.lower().endswith(".xmp")):
                return True
    return False


def sidecars_of(photo: Path) -> list[Path]:
    """Every sidecar name other programs use for ``photo`` that exists."""
    names = [photo.with_name(photo.name + ".xmp")]
    if photo.suffix:
        names.append(photo.with_suffix(".xmp"))
    return [p for p in names if p.is_file()]


def _keys_of(data: bytes, what: Path) -> dict[str, object]:
    try:
        image = pyexiv2.ImageData(data)
    except Exception as exc:  # exiv2 raises RuntimeError with its own message
        raise XmpError(f"{what}: cannot read its metadata ({exc})") from None
    try:
        keys = dict(image.read_xmp())
        raw = "" if keys else image.read_raw_xmp()
    except Exception as exc:
        raise XmpError(f"{what}: cannot read its XMP ({exc})") from None
    finally:
        image.close()
    if not keys and not _empty_packet(raw):
        raise XmpUnreadable(f"{what}: its XMP cannot be parsed (a DOCTYPE, or not well-formed "
                            "XML?); rbv reads no names from it and never writes over it")
    return keys


def _empty_packet(raw: str) -> bool:
    """Whether a packet exiv2 found no tag in is truly empty: nothing but the xpacket
    wrapper, ``x:xmpmeta``, ``rdf:RDF`` and ``rdf:Description`` elements whose only
    attributes are namespaces, ``rdf:about`` and ``x:xmptk``."""
    rest = _SKELETON_NOISE.sub("", raw)
    for match in _SKELETON_TAG.finditer(rest):
        for name in _SKELETON_ATTR.findall(match[1]):
            if not (name == "xmlns" or name.startswith("xmlns:")
                    or name in ("rdf:about", "x:xmptk")):
                return False
    return not _SKELETON_TAG.sub("", rest).strip(" \t\r\n\ufeff\0")


def read_regions(path: Path, most: int | None = None) -> RegionsOf:
    """The regions of a photo's own XMP or of a sidecar file (``*.xmp``, read only up
    to :data:`MAX_SIDECAR_BYTES`); with ``most``, only that many (see
    :func:`regions_in`)."""
    try:
        data = read_sidecar(path) if path.suffix.lower() == ".xmp" else read_regular(path)
    except NotRegular as exc:
        raise XmpUnreadable(f"{path}: {exc.strerror}; not read") from None
    except OSError as exc:
        raise XmpError(f"{path}: {exc.strerror or exc}") from None
    return regions_in(_keys_of(data, path), most)


def read_sidecar(path: Path) -> bytes:
    """A sidecar's bytes; :class:`XmpError` for one over :data:`MAX_SIDECAR_BYTES` (exiv2
    holds ~12 times a packet's size while parsing it, so one huge file would take
    gigabytes), never read past the limit."""
    return _sidecar_sized(read_regular(path, MAX_SIDECAR_BYTES + 1), path)


def _sidecar_sized(data: bytes, path: Path) -> bytes:
    if len(data) > MAX_SIDECAR_BYTES:
        raise XmpError(f"{path}: the sidecar is larger than the {MAX_SIDECAR_BYTES >> 20} MiB "
                       "rbv reads from an XMP file; not read (is it really a sidecar?)")
    return data


def regions_in(keys: dict[str, object], most: int | None = None) -> RegionsOf:
    """Parse MWG and Microsoft Photo regions out of exiv2's flattened XMP keys.

    A region whose numbers are not finite or out of range (``inf``, ``1e400``) is left
    out and said in ``malformed``; so is an ``AppliedToDimensions`` that is not a size.
    With ``most``, the regions past the first ``most`` (MWG first, each list in order)
    are not read, only counted in ``skipped``."""
    mwg: dict[int, dict[str, str]] = {}
    mp: dict[int, dict[str, str]] = {}
    for key, value in keys.items():
        if m := _MWG.match(key):
            mwg.setdefault(int(m[1]), {})[m[2].rsplit(":", 1)[-1]] = str(value)
        elif m := _MP.match(key):
            mp.setdefault(int(m[1]), {})[m[2]] = str(value)
    skipped = 0
    if most is not None and len(mwg) + len(mp) > most:
        skipped = len(mwg) + len(mp) - most
        mwg = dict(sorted(mwg.items())[:most])
        mp = dict(sorted(mp.items())[:most - len(mwg)])
    malformed: list[str] = []
    try:
        dims = _dims(keys)
    except OutsideNumber as exc:
        dims = None
        malformed.append(f"AppliedToDimensions: {exc}; it was ignored")
    parsed: list[tuple[int, Region]] = []
    for item, fields in sorted(mwg.items()):
        try:
            region = _mwg_region(fields, dims)
        except OutsideNumber as exc:
            malformed.append(_malformed("MWG region", item, fields.get("Name"), fields, exc))
            continue
        if region is None:
            malformed.append(_malformed("MWG region", item, fields.get("Name"), fields))
        else:
            parsed.append((item, region))
    out_mp: list[Region] = []
    for item, fields in sorted(mp.items()):
        name = fields.get("PersonDisplayName")
        try:
            region = _mp_region(fields)
        except OutsideNumber as exc:
            malformed.append(_malformed("Microsoft Photo region", item, name, fields, exc))
            continue
        if region is None:
            malformed.append(_malformed("Microsoft Photo region", item, name, fields))
        else:
            out_mp.append(region)
    return RegionsOf([r for _, r in parsed], out_mp, dims, tuple(i for i, _ in parsed),
                     tuple(malformed), skipped)


def _malformed(kind: str, item: int, name: str | None, fields: dict[str, str],
               why: OutsideNumber | None = None) -> str:
    area = {k: v for k, v in fields.items() if k not in ("Name", "PersonDisplayName", "Type")}
    return (f"{kind} {item}" + (f" ({shown_name(name.strip())})" if name and name.strip()
                                else "")
            + (f": {why}" if why else f" has no usable rectangle {area}") + "; it was skipped")


def _dims(keys: dict[str, object]) -> tuple[int, int] | None:
    """The AppliedToDimensions size (None when absent; :class:`OutsideNumber` when it is
    not a size)."""
    w, h = keys.get(f"{_DIMS}/stDim:w"), keys.get(f"{_DIMS}/stDim:h")
    if w is None or h is None:
        return None
    return pixel_size(_whole(w), "stDim:w"), pixel_size(_whole(h), "stDim:h")


def _whole(value: object) -> float:
    """A pixel count as written (``"4000"``, ``"4000.0"``, digiKam's ``"4000.5"`` after a
    resize), rounded down as rbv always read it."""
    number = finite(value, "stDim", 0, MAX_PIXELS_PER_SIDE)
    return float(int(number))


# A region's normalised centre may lie a little outside the image (a face cut by the
# edge); anything farther out, or bigger than twice the image, is not a region.
_CENTRE = (-1.0, 2.0)
_SIZE = (0.0, 2.0)


def _mwg_region(fields: dict[str, str], dims: tuple[int, int] | None) -> Region | None:
    try:
        x, y, w, h = (float(fields[k]) for k in ("x", "y", "w", "h"))
    except (KeyError, ValueError):
        return None
    if not _rectangle(x, y, w, h):
        return None
    if fields.get("unit", "normalized").lower() == "pixel":
        if not dims:
            return None
        x, w, y, h = x / dims[0], w / dims[0], y / dims[1], h / dims[1]
    name = fields.get("Name", "").strip() or None
    return Region(name, *_area(x, y, w, h), fields.get("Type", "Face") or "Face")


def _mp_region(fields: dict[str, str]) -> Region | None:
    try:
        left, top, w, h = (float(v) for v in fields["Rectangle"].split(","))
    except (KeyError, ValueError):
        return None
    if not _rectangle(left, top, w, h):
        return None
    region = from_top_left(fields.get("PersonDisplayName", "").strip() or None, left, top, w, h)
    _area(region.x, region.y, region.w, region.h)
    return region


def _area(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """A normalised area, checked (:class:`OutsideNumber` when a value is out of range)."""
    return (finite(x, "x", *_CENTRE), finite(y, "y", *_CENTRE),
            finite(w, "w", *_SIZE), finite(h, "h", *_SIZE))


def _rectangle(*values: float) -> bool:
    """Finite numbers, and a size that is not negative."""
    return all(math.isfinite(v) for v in values) and values[2] >= 0 and values[3] >= 0


def _plan_keys(plan: RegionPlan, regions: RegionsOf, keys: dict[str, object],
               size: tuple[int, int]) -> dict[str, str]:
    """exiv2 keys that apply ``plan`` to a packet whose MWG regions are ``regions``."""
    out: dict[str, str] = {}
    if not any(k.startswith(_ROOT) for k in keys):
        out[_ROOT] = 'type="Struct"'
    if regions.dims is None or not dims_match(regions.dims, size):
        if not any(k.startswith(_DIMS) for k in keys):
            out[_DIMS] = 'type="Struct"'
        out.update({f"{_DIMS}/stDim:w": str(size[0]), f"{_DIMS}/stDim:h": str(size[1]),
                    f"{_DIMS}/stDim:unit": "pixel"})
        if regions.dims is not None:  # the photo's real size now: pixel areas follow it
            out.update(_rescaled_pixel_areas(keys, regions.dims, size))
    indexes = sorted({int(m[1]) for k in keys if (m := _MWG.match(k))})
    if not any(k.startswith(_LIST) for k in keys):
        out[_LIST] = 'type="Bag"'
    for position, name in plan.name.items():
        out[f"{_LIST}[{regions.mwg_items[position]}]/mwg-rs:Name"] = name
    start = max(indexes, default=0)
    for k, region in enumerate(plan.add, start + 1):
        item = f"{_LIST}[{k}]"
        out.update({
            item: 'type="Struct"',
            f"{item}/mwg-rs:Name": region.name or "",
            f"{item}/mwg-rs:Type": "Face",
            f"{item}/mwg-rs:Area": 'type="Struct"',
            f"{item}/mwg-rs:Area/stArea:x": _number(region.x),
            f"{item}/mwg-rs:Area/stArea:y": _number(region.y),
            f"{item}/mwg-rs:Area/stArea:w": _number(region.w),
            f"{item}/mwg-rs:Area/stArea:h": _number(region.h),
            f"{item}/mwg-rs:Area/stArea:unit": "normalized",
        })
    return out


def dims_match(dims: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether an ``AppliedToDimensions`` fits a photo of this displayed size (either
    way round: some programs record a turned photo's size as stored)."""
    return dims in (size, (size[1], size[0]))


def pixel_regions(keys: dict[str, object]) -> int:
    """How many MWG regions give their area in pixels (of ``AppliedToDimensions``)."""
    return sum(1 for k, v in keys.items() if (m := _MWG.match(k))
               and m[2].endswith(":unit") and str(v).lower() == "pixel")


def _rescaled_pixel_areas(keys: dict[str, object], dims: tuple[int, int],
                          size: tuple[int, int]) -> dict[str, str]:
    """Areas in pixels of ``dims`` rescaled to ``size``, so that every region stays
    where it was on the photo once ``AppliedToDimensions`` says ``size`` (normalised
    areas need no change)."""
    units = {m[1]: str(v).lower() for k, v in keys.items()
             if (m := _MWG.match(k)) and m[2].endswith(":unit")}
    out: dict[str, str] = {}
    for key, value in keys.items():
        m = _MWG.match(key)
        if not m or units.get(m[1]) != "pixel" or not m[2].startswith("Area/"):
            continue
        axis = m[2].rsplit(":", 1)[-1]
        if axis in ("x", "w", "y", "h"):
            scale = size[0] / dims[0] if axis in ("x", "w") else size[1] / dims[1]
            with contextlib.suppress(ValueError):
                out[key] = _number(float(str(value)) * scale)
    return out


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


@dataclass(frozen=True)
class Packet:
    """A file's XMP as read: its bytes (None: the sidecar does not exist yet), keys and
    MWG regions (only those are matched: a program that wrote MP regions alone
    gets MWG ones beside them)."""

    data: bytes | None
    keys: dict[str, object]
    regions: RegionsOf
    seen: Seen | None = None  # the file the bytes were read from
    sidecar: bool = False  # a sidecar file (its comments are kept), not a photo


def read_packet(path: Path, *, sidecar: bool) -> Packet:
    """What ``path`` holds now: a sidecar (maybe missing) or a photo's own XMP."""
    seen: Seen | None = None
    try:
        data: bytes | None
        data, seen = read_seen(path, MAX_SIDECAR_BYTES + 1 if sidecar else -1)
        if sidecar:
            data = _sidecar_sized(data, path)
    except NotRegular as exc:
        raise XmpError(f"{path}: {exc.strerror}; not read") from None
    except FileNotFoundError:
        if not sidecar:
            raise XmpError(f"{path}: the photo is gone") from None
        data = None
    except OSError as exc:
        raise XmpError(f"{path}: {exc.strerror or exc}") from None
    keys = _keys_of(data, path) if data is not None else {}
    return Packet(data, keys, regions_in(keys), seen, sidecar)


def apply_plan(packet: Packet, plan: RegionPlan, size: tuple[int, int], where: Path) -> bytes:
    """The bytes of ``packet`` with ``plan`` applied (the new sidecar or photo)."""
    try:
        image = pyexiv2.ImageData(packet.data if packet.data is not None else _EMPTY_PACKET)
    except Exception as exc:
        raise XmpError(f"{where}: cannot read its metadata ({exc})") from None
    try:
        image.modify_xmp(_plan_keys(plan, packet.regions, packet.keys, size))
        written = bytes(image.get_bytes())
    except Exception as exc:
        raise XmpError(f"{where}: exiv2 cannot write the regions ({exc})") from None
    finally:
        image.close()
    if not packet.sidecar or packet.data is None:
        return written  # a photo's packet is inside its file: exiv2 alone writes it
    return _with_comments(packet.data, written, where)


def _with_comments(old: bytes, written: bytes, where: Path) -> bytes:
    """exiv2's ``written`` sidecar with the comments of the ``old`` one put back, never
    at the cost of a tag: only if exiv2 reads from it what it wrote."""
    kept = comments_kept(old, written)
    if kept == written:
        return written
    try:
        return kept if _keys_of(kept, where) == _keys_of(written, where) else written
    except XmpError:
        return written


def verify_photo(data: bytes, where: Path) -> None:
    """Refuse to write a photo exiv2 produced unless exiv2 can read it back."""
    _keys_of(data, where)
