"""Contact sheets: one PNG grid of face tiles (:func:`rbv.pictures.pixels.face_tile`:
centred on the face, outlined when another face of its photo shows in the tile), each
captioned with its face id, so a person can check a person or a faceset by looking
instead of reading ids."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from rbv.errors import ImageUnreadable, writing
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.pixels import FACE_PAD, Box, PhotoLocator, PhotoSource, face_tile, missing_tile

HEADER = 28
CAPTION = 16
TITLE_SIZE = 15
CAPTION_SIZE = 11
DECODE_LONG_EDGE = 1280


@dataclass(frozen=True)
class SheetFace:
    face_id: int
    image_id: int
    bbox: Box


@dataclass(frozen=True)
class Sheet:
    path: Path
    tiles: int
    columns: int
    rows: int
    width: int
    height: int
    missing: list[int]  # faces whose photo could not be read ("photo missing" tiles)

    def as_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "tiles": self.tiles, "columns": self.columns,
                "rows": self.rows, "width": self.width, "height": self.height,
                "missing": self.missing}


@functools.cache
def sheet_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Noto Sans (the ``fontpkg-noto-sans`` dependency) at ``size`` pixels: person names
    are drawn in any Latin, Greek or Cyrillic script (Pillow's built-in font draws
    boxes for most letters past ASCII). Pillow's font only if the package is broken."""
    try:
        import fontpkg_noto_sans

        path = fontpkg_noto_sans.ROOT / "files" / "NotoSans[wdth,wght].ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):  # pragma: no cover - a broken install
        return ImageFont.load_default(size)


def sheet_size(tiles: int, columns: int, tile: int) -> tuple[int, int, int, int]:
    """(columns used, rows, width, height) of a sheet with ``tiles`` tiles."""
    cols = max(1, min(columns, tiles))
    rows = max(1, math.ceil(tiles / cols))
    return cols, rows, cols * tile, HEADER + rows * (tile + CAPTION)


def write_sheet(photos: PhotoLocator, faces: Sequence[SheetFace], title: str, out: Path, *,
                tile: int = 128, columns: int = 8,
                max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                beside: Mapping[int, Sequence[Box]] | None = None) -> Sheet:
    """Draw ``faces`` (in order) as a grid under ``title`` and save it as PNG at ``out``;
    ``beside``: per face id, the boxes of its photo's other faces
    (``rbv.store.queries.review.neighbour_boxes``), so a tile that shows one of them
    outlines the face meant."""
    source = PhotoSource(photos, max_pixels, long_edge=DECODE_LONG_EDGE)
    sheet, missing = draw_sheet(source, faces, title, tile=tile, columns=columns,
                                beside=beside)
    out.parent.mkdir(parents=True, exist_ok=True)
    with writing(out):
        sheet.save(out)
    cols, rows, width, height = sheet_size(len(faces), columns, tile)
    return Sheet(out, len(faces), cols, rows, width, height, missing)


def draw_sheet(source: PhotoSource, faces: Sequence[SheetFace], title: str, *,
               tile: int = 128, columns: int = 8, min_width: int = 0,
               beside: Mapping[int, Sequence[Box]] | None = None
               ) -> tuple[Image.Image, list[int]]:
    """The sheet of ``faces`` as an image (at least ``min_width`` wide), and the faces
    whose photo could not be read ("photo missing" tiles); ``beside`` as in
    :func:`write_sheet`."""
    cols, _, width, height = sheet_size(len(faces), columns, tile)
    width = max(width, min_width)
    sheet = Image.new("RGB", (width, height), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 5), title, fill=(240, 240, 240), font=sheet_font(TITLE_SIZE))
    font = sheet_font(CAPTION_SIZE)
    missing: list[int] = []
    for i, face in enumerate(faces):
        x, y = (i % cols) * tile, HEADER + (i // cols) * (tile + CAPTION)
        try:
            crop = Image.fromarray(face_tile(source.load(face.image_id), face.bbox, FACE_PAD,
                                             tile, (beside or {}).get(face.face_id, ())))
        except ImageUnreadable:
            missing.append(face.face_id)
            crop = Image.fromarray(missing_tile(tile))
        sheet.paste(crop, (x, y))
        draw.text((x + 4, y + tile + 2), f"face {face.face_id}", fill=(220, 220, 220),
                  font=font)
    return sheet, missing


def write_side_by_side(photos: PhotoLocator, left: tuple[str, Sequence[SheetFace]],
                       right: tuple[str, Sequence[SheetFace]], out: Path, *,
                       tile: int = 112, columns: int = 4,
                       max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                       beside: Mapping[int, Sequence[Box]] | None = None) -> list[int]:
    """Two sheets (title, faces) next to each other in one PNG at ``out``, so two
    persons can be compared at a glance (``beside`` as in :func:`write_sheet`). Returns
    the faces whose photo could not be read."""
    source = PhotoSource(photos, max_pixels, long_edge=DECODE_LONG_EDGE)
    side = columns * tile  # full width even for one face: the titles need the room
    a, missing_a = draw_sheet(source, left[1], left[0], tile=tile, columns=columns,
                              min_width=side, beside=beside)
    b, missing_b = draw_sheet(source, right[1], right[0], tile=tile, columns=columns,
                              min_width=side, beside=beside)
    gap = 12
    both = Image.new("RGB", (2 * side + gap, max(a.height, b.height)), (32, 32, 32))
    both.paste(a, (0, 0))
    both.paste(b, (side + gap, 0))
    ImageDraw.Draw(both).rectangle((side, 0, side + gap - 1, both.height), fill=(0, 0, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    with writing(out):
        both.save(out)
    return missing_a + missing_b
