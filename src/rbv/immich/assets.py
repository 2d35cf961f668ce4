"""What rbv reads from Immich about one asset, and the pure geometry on it.

Immich reports face boxes in the pixel space of the asset's *preview*
(``imageWidth`` × ``imageHeight``, already upright); rbv's minimum face size is in the
pixels of the upright *original*, whose size comes from EXIF (``exifImageWidth`` ×
``exifImageHeight``, as stored in the file: before orientation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rbv.bounds import coordinate, pixel_size
from rbv.errors import printable

ASSET_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")
"""What an asset id may look like (Immich's are uuids). Ids go into request URLs and file
names, so one from a hostile server (``../../x``) is refused, never used."""

# EXIF orientations 5..8 turn the image by 90°, so width and height trade places.
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class ImmichAsset:
    """An image asset as listed by ``POST /api/search/metadata``."""

    id: str
    original_path: str
    original_file_name: str
    stored_size: tuple[int, int] | None  # EXIF width × height as stored, if known
    orientation: int | None
    file_created_at: str = ""  # ISO time: what search orders and filters by
    local_date_time: str = ""  # ISO time as the photo's clock showed it

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ImmichAsset:
        exif = item.get("exifInfo") or {}
        width, height = exif.get("exifImageWidth"), exif.get("exifImageHeight")
        # A size the server does not know is null or 0; any other value must be a size.
        stored = (pixel_size(width, "exifImageWidth"), pixel_size(height, "exifImageHeight")) \
            if width and height else None
        asset_id = item["id"]
        if not isinstance(asset_id, str) or not ASSET_ID.fullmatch(asset_id):
            raise ValueError(f"asset id {printable(repr(asset_id))[:80]} is not an Immich id")
        return cls(
            id=asset_id,
            original_path=str(item.get("originalPath") or ""),
            original_file_name=str(item.get("originalFileName") or asset_id),
            stored_size=stored,
            orientation=_orientation(exif.get("orientation")),
            file_created_at=str(item.get("fileCreatedAt") or ""),
            local_date_time=str(item.get("localDateTime") or item.get("fileCreatedAt") or ""),
        )

    @property
    def upright_size(self) -> tuple[int, int] | None:
        """The original's (width, height) once turned upright by its orientation."""
        if self.stored_size is None:
            return None
        width, height = self.stored_size
        if self.orientation in _SWAPPING_ORIENTATIONS:
            return height, width
        return width, height


@dataclass(frozen=True)
class FaceBox:
    """One face box from ``GET /api/faces`` in preview pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    image_width: int
    image_height: int

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> FaceBox:
        """One face of ``GET /api/faces``; :class:`~rbv.bounds.OutsideNumber` (a
        ``ValueError``) for a number that is not finite or out of range."""
        x1, y1, x2, y2 = (coordinate(item[k], k) for k in (
            "boundingBoxX1", "boundingBoxY1", "boundingBoxX2", "boundingBoxY2"))
        return cls(
            x1, y1, x2, y2,
            pixel_size(item["imageWidth"], "imageWidth"),
            pixel_size(item["imageHeight"], "imageHeight"),
        )


def face_short_edge(face: FaceBox, original: tuple[int, int] | None) -> float:
    """The face box's short edge in pixels of the upright original.

    With no known original size the preview's pixels are the best estimate.
    """
    sx = sy = 1.0
    if original is not None and face.image_width > 0 and face.image_height > 0:
        sx = original[0] / face.image_width
        sy = original[1] / face.image_height
    return min((face.x2 - face.x1) * sx, (face.y2 - face.y1) * sy)


def largest_face_short_edge(faces: list[FaceBox], original: tuple[int, int] | None) -> float:
    """The largest short edge over ``faces`` (0 when there are none)."""
    return max((face_short_edge(f, original) for f in faces), default=0.0)


def _orientation(value: object) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if 1 <= number <= 8 else None
