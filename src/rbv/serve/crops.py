"""Face crops and downsized photos for ``rbv serve``, cached under the data directory.

A crop is a face tile (:func:`rbv.pictures.pixels.face_tile`: centred on the face,
outlined when another face of the photo shows in it). Its file name hashes the photo's
content (its sha256), the face box it is cut from, the boxes of the photo's other faces
and the tile rule (:data:`~rbv.pictures.pixels.TILE_RULE`), and a downsized photo's name
is its content hash, so both are made lazily on first request and are never stale: a
face whose box changed, a face found or removed beside it, a re-indexed photo, a new
tile rule, or an id that names another photo than before (a database made again,
another database served with the same data folder) gets a new name. Nothing is ever
written beside the user's photos; images are found by face or photo id only.
"""

from __future__ import annotations

import os
import re
import threading
from io import BytesIO
from pathlib import Path

from PIL import Image

from rbv.errors import ImageUnreadable
from rbv.pictures.contact_sheet import DECODE_LONG_EDGE
from rbv.pictures.pixels import FACE_PAD, PhotoSource, face_tile, missing_tile, tile_key
from rbv.private_files import private_file, private_folder
from rbv.store.queries.images import photo_files
from rbv.store.queries.review import neighbour_boxes, shown_faces
from rbv.store.queries.review_pages import image_digest
from rbv.store.server.connection import Database

CROP = 160
PHOTO_LONG_EDGE = 1600
JPEG_QUALITY = 84
_HEX = re.compile(r"^[0-9a-f]{64}$")  # a file name from the database: checked


class CropCache:
    """JPEG face crops and photos, made on demand and kept under ``folder``."""

    def __init__(self, db: Database, folder: Path, max_pixels: int) -> None:
        self.db = db
        self.folder = folder
        self.max_pixels = max_pixels
        # Decoding takes a core and a photo's memory: as many at once as cores, at most 4.
        self._lock = threading.BoundedSemaphore(min(4, os.cpu_count() or 1))
        for kind in (folder, folder / "faces", folder / "photos"):
            private_folder(kind)
        self._missing = _jpeg(Image.fromarray(missing_tile(CROP)))

    def face(self, face_id: int) -> bytes | None:
        """The tile of face ``face_id`` ("photo missing" when its photo cannot be read);
        None when there is no such face."""
        with self.db.connect() as conn:
            found = shown_faces(conn, [face_id])
            if not found:
                return None
            f = found[0]
            digest = image_digest(conn, f.image_id)
            others = neighbour_boxes(conn, [face_id]).get(face_id, [])
            key = tile_key(digest, f.bbox, others, FACE_PAD, CROP)[:12]
            target = self.folder / "faces" / f"{int(face_id)}_{key}.jpg"
            if target.is_file():
                return target.read_bytes()
            with self._lock:
                try:
                    image = PhotoSource(photo_files(conn), self.max_pixels,
                                        long_edge=DECODE_LONG_EDGE).load(f.image_id)
                except ImageUnreadable:
                    return self._missing
                data = _jpeg(Image.fromarray(face_tile(image, f.bbox, FACE_PAD, CROP, others)))
        _write(target, data)
        return data

    def photo(self, image_id: int) -> bytes | None:
        """The photo, upright, at most PHOTO_LONG_EDGE pixels long; None when it cannot
        be read (or there is no such photo)."""
        with self.db.connect() as conn:
            digest = image_digest(conn, image_id)
        if digest is None or not _HEX.match(digest):
            return None
        target = self.folder / "photos" / f"{digest}_{PHOTO_LONG_EDGE}.jpg"
        if target.is_file():
            return target.read_bytes()
        with self.db.connect() as conn, self._lock:
            try:
                image = PhotoSource(photo_files(conn), self.max_pixels,
                                    long_edge=PHOTO_LONG_EDGE).load(image_id)
            except ImageUnreadable:
                return None
        data = _jpeg(Image.fromarray(image.rgb))
        _write(target, data)
        return data


def _jpeg(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    """Atomically (a crash or a second thread never leaves half a file), 0600."""
    with private_file(path) as f:
        f.write(data)
