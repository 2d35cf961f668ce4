"""Estimated ages and genders for the faces that have none (``enrich``'s second part).

Incremental like the quality scores: only faces without a ``face_attributes`` row are
estimated, each photo decoded once (at the size a scan decodes it, so that ``enrich``
and ``index`` estimate from the same pixels). A photo that cannot be read is one line
in ``failed``, and its faces wait for the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

from rbv.errors import ImageUnreadable
from rbv.faces.attributes import AttributeModel
from rbv.faces.estimates import FaceEstimate
from rbv.pictures.pixels import PhotoSource
from rbv.store import Database
from rbv.store.queries.attributes import faces_without_attributes, save_attributes
from rbv.store.queries.images import photo_files

Progress = Callable[[int, int], None]


def fill_estimates(db: Database, pack_id: int, model: AttributeModel, *, max_pixels: int,
                   long_edge: int, failed: list[str],
                   progress: Progress = lambda done, total: None) -> int:
    """Estimate every face of the pack that has no estimate yet; returns how many were
    stored. Unreadable photos are added to ``failed``, one line each."""
    stored = done = 0
    with db.connect(autocommit=True) as conn:
        todo = faces_without_attributes(conn, pack_id)
        source = PhotoSource(photo_files(conn), max_pixels, long_edge)
        progress(0, len(todo))
        for image_id, group in groupby(todo, key=lambda f: f.image_id):
            faces = list(group)
            done += len(faces)
            try:
                image = source.load(image_id)
            except ImageUnreadable as exc:
                failed.append(str(exc))
                progress(done, len(todo))
                continue
            boxes = [tuple(v / image.scale for v in f.bbox) for f in faces]
            found = model.estimate(image.rgb, boxes)  # type: ignore[arg-type]
            rows: list[tuple[int, FaceEstimate]] = [
                (f.id, e) for f, e in zip(faces, found, strict=True) if e is not None]
            with conn.transaction():
                stored += save_attributes(conn, rows)
            progress(done, len(todo))
    return stored
