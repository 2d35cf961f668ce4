"""A photo's identity: a hash of its image data with its metadata left out.

Tags edited by any program (a rating, keywords, a caption, face regions, rbv's own
``export-xmp --write-into-files``) rewrite a photo's bytes but not its picture; this hash
stays the same through such edits, so the catalogue keeps the photo and its faces.
Modelled on exiftool's ``ImageDataHash``:

- JPEG: every segment but APPn (EXIF, XMP, ICC, IPTC, MPF, maker notes) and COM, i.e.
  the frame, quantization and Huffman tables, restart interval and the scans up to EOI.
  What follows EOI (a trailer, an MPF preview) is left out.
- PNG: the IHDR, PLTE, tRNS and IDAT chunks (and APNG's acTL, fcTL, fdAT); text, EXIF,
  time and colour-profile chunks are left out.
- WebP: the VP8, VP8L, ALPH, ANIM and ANMF chunks (VP8X, EXIF, XMP and ICCP left out).
- HEIF/HEIC: the item properties (``ipco``: codec configuration, size, rotation,
  mirroring) and the data of every item but the metadata ones (``Exif``, ``mime``: XMP,
  ``uri``), each by item id and type, wherever ``iloc`` says it lies.
- TIFF, GIF, BMP: the decoded pixels (their mode and size too). TIFF keeps tags and
  pixel strips in one directory, so a stream of pixels alone is the reliable identity.

Each hash is prefixed with the kind it covers, so two kinds never compare equal.
"""

from __future__ import annotations

import hashlib
import mmap
import re
import struct
from collections.abc import Callable
from pathlib import Path

from rbv.errors import ImageUnreadable

_JPEG_MARKER = re.compile(rb"\xff[^\x00\xff\xd0-\xd7]")  # a marker, not stuffing or RSTn
_JPEG_NO_LENGTH = {0xD8, 0x01} | set(range(0xD0, 0xD8))  # SOI, TEM, RSTn
_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"acTL", b"fcTL", b"fdAT"}
_WEBP_KEPT = {b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"}
_STREAM_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF"}
_HEIF_METADATA_ITEMS = {b"Exif", b"mime", b"uri "}


def image_data_hash(path: Path, fmt: str, max_pixels: int) -> str:
    """The hash of ``path``'s image data (see the module's docstring), as
    ``KIND:HEX``. Raises :class:`ImageUnreadable` for a file whose structure is broken
    and OSError when it cannot be read."""
    if fmt in _STREAM_FORMATS:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            view = memoryview(data)
            try:
                if fmt == "JPEG":
                    return "jpeg:" + _jpeg(view, data)
                if fmt == "PNG":
                    return "png:" + _chunks(view, 8, _png_chunk, _PNG_KEPT)
                if fmt == "HEIF":
                    return "heif:" + _heif(view)
                return "webp:" + _chunks(view, 12, _webp_chunk, _WEBP_KEPT)
            finally:
                view.release()
    return "pixels:" + _pixels(path, fmt, max_pixels)


def _jpeg(view: memoryview, data: mmap.mmap) -> str:
    h = hashlib.sha256()
    pos, end, scanned = 2, len(view), False
    while pos < end:
        if view[pos] != 0xFF:
            # Entropy-coded data of a scan: up to the next marker.
            if not scanned:
                raise ImageUnreadable("the JPEG file is damaged (bytes outside a segment)")
            found = _JPEG_MARKER.search(data, pos)
            stop = found.start() if found else end
            h.update(view[pos:stop])
            pos = stop
            continue
        marker = view[pos + 1] if pos + 1 < end else 0xD9
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            h.update(b"\xff\xd9")
            return h.hexdigest()
        if marker in _JPEG_NO_LENGTH:
            h.update(view[pos:pos + 2])
            pos += 2
            continue
        if pos + 4 > end:
            break
        length = struct.unpack_from(">H", view, pos + 2)[0]
        stop = pos + 2 + length
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            pos = stop  # APPn, COM: metadata
            continue
        h.update(view[pos:min(stop, end)])
        scanned = scanned or marker == 0xDA
        pos = stop
    if not scanned:
        raise ImageUnreadable("the JPEG file is truncated or damaged (no image data)")
    return h.hexdigest()  # truncated after its scans: hash what there is


_ChunkReader = Callable[[memoryview, int], tuple[bytes, int, int]]
"""At a chunk's start: its type, where its data starts, where the next chunk starts."""


def _png_chunk(view: memoryview, pos: int) -> tuple[bytes, int, int]:
    length = struct.unpack_from(">I", view, pos)[0]
    return bytes(view[pos + 4:pos + 8]), pos + 8, pos + 12 + length


def _webp_chunk(view: memoryview, pos: int) -> tuple[bytes, int, int]:
    length = struct.unpack_from("<I", view, pos + 4)[0]
    return bytes(view[pos:pos + 4]), pos + 8, pos + 8 + length + (length & 1)


def _chunks(view: memoryview, start: int, chunk: _ChunkReader, kept: set[bytes]) -> str:
    """Hash the kept chunks (their type and data) of a PNG or a WebP file."""
    h = hashlib.sha256()
    pos, end, any_data = start, len(view), False
    while pos + 8 <= end:
        kind, data_at, nxt = chunk(view, pos)
        if kind in kept:
            h.update(kind)
            h.update(view[data_at:min(nxt, end)])
            any_data = True
        if kind == b"IEND":
            break
        pos = nxt
    if not any_data:
        raise ImageUnreadable("the file is truncated or damaged (no image data)")
    return h.hexdigest()


def _boxes(view: memoryview, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """ISO-BMFF boxes between ``start`` and ``end``: type → (payload start, box end)."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", view, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", view, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ImageUnreadable("the HEIF file is damaged (a box of a bad size)")
        found.setdefault(kind, (pos + header, min(pos + size, end)))
        pos += size
    return found


def _uint(view: memoryview, pos: int, size: int) -> int:
    return int.from_bytes(view[pos:pos + size], "big") if size else 0


def _heif(view: memoryview) -> str:
    top = _boxes(view, 0, len(view))
    if b"meta" not in top:
        raise ImageUnreadable("the HEIF file has no meta box")
    meta = _boxes(view, top[b"meta"][0] + 4, top[b"meta"][1])  # a FullBox
    if b"iinf" not in meta or b"iloc" not in meta:
        raise ImageUnreadable("the HEIF file has no item list")
    types = _heif_item_types(view, *meta[b"iinf"])
    h = hashlib.sha256()
    if b"iprp" in meta:
        ipco = _boxes(view, *meta[b"iprp"]).get(b"ipco")
        if ipco:
            h.update(view[ipco[0]:ipco[1]])
    idat = meta.get(b"idat", (0, 0))[0]
    for item_id, method, extents in _heif_locations(view, *meta[b"iloc"]):
        kind = types.get(item_id, b"????")
        if kind in _HEIF_METADATA_ITEMS:
            continue
        h.update(struct.pack(">I4s", item_id, kind))
        base = idat if method == 1 else 0
        for offset, length in extents:
            h.update(view[base + offset:base + offset + length])
    return h.hexdigest()


def _heif_item_types(view: memoryview, start: int, end: int) -> dict[int, bytes]:
    version = view[start]
    pos = start + 4 + (2 if version == 0 else 4)
    types: dict[int, bytes] = {}
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", view, pos)
        if size < 8:
            break
        if kind == b"infe" and view[pos + 8] >= 2:
            id_size = 2 if view[pos + 8] == 2 else 4
            item_id = _uint(view, pos + 12, id_size)
            types[item_id] = bytes(view[pos + 14 + id_size:pos + 18 + id_size])
        pos += size
    return types


def _heif_locations(view: memoryview, start: int, end: int
                    ) -> list[tuple[int, int, list[tuple[int, int]]]]:
    version = view[start]
    sizes = view[start + 4], view[start + 5]
    offset_size, length_size = sizes[0] >> 4, sizes[0] & 15
    base_size, index_size = sizes[1] >> 4, (sizes[1] & 15) if version in (1, 2) else 0
    pos = start + 6
    count_size = 4 if version == 2 else 2
    count, pos = _uint(view, pos, count_size), pos + count_size
    items = []
    for _ in range(count):
        item_id, pos = _uint(view, pos, count_size), pos + count_size
        method = 0
        if version in (1, 2):
            method, pos = _uint(view, pos, 2) & 15, pos + 2
        pos += 2  # data reference index
        base, pos = _uint(view, pos, base_size), pos + base_size
        extents = []
        n, pos = _uint(view, pos, 2), pos + 2
        for _ in range(n):
            pos += index_size
            offset, pos = _uint(view, pos, offset_size), pos + offset_size
            length, pos = _uint(view, pos, length_size), pos + length_size
            extents.append((base + offset, length))
        if pos > end:
            raise ImageUnreadable("the HEIF file is damaged (its item locations)")
        items.append((item_id, method, extents))
    return items


def _pixels(path: Path, fmt: str, max_pixels: int) -> str:
    from rbv.media.decode import open_image

    h = hashlib.sha256()
    with open_image(path, fmt, max_pixels) as im:
        frames = getattr(im, "n_frames", 1)
        for index in range(frames):
            if frames > 1:
                im.seek(index)
            try:
                im.load()
            except (OSError, ValueError, SyntaxError) as exc:
                raise ImageUnreadable(f"cannot decode {fmt}: {exc}") from None
            h.update(f"{im.mode} {im.size[0]}x{im.size[1]};".encode())
            h.update(im.tobytes())
    return h.hexdigest()
