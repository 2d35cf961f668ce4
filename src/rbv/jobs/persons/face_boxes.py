"""A face's box moved or resized by hand (``rbv faces box FACE X1 Y1 X2 Y2``, or the
photo page of ``rbv serve``): one logged edit.

The face keeps its id, its person (and who placed it there) and every decision about it
(links, rejections, a cover); it is aligned and embedded again at the new box as a face
drawn by hand is (:func:`rbv.jobs.library.drawing.draw`), and marked drawn, so the box
is the user's from then on: no scan redoes it. After a pixel edit it is carried as a
face drawn by hand is: to the face the scan of the new content finds there (with that
scan's box), else drawn again at its place. ``rbv persons undo`` writes the old box
and embedding back (schema 27).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from rbv.config import Settings
from rbv.errors import PersonNotFound, Refused, Remedy, printable
from rbv.formats.regions import iou
from rbv.jobs.library.drawing import decode, draw
from rbv.jobs.persons.drawn import MOSTLY_FOUND, check_box, image_and_size, pack_analyzer
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.shown import Shown
from rbv.store import Database
from rbv.store.queries.drawn_faces import found_faces
from rbv.store.queries.face_boxes import BoxedFace, face_to_box, set_face_box
from rbv.store.queries.pack_lookup import pack_row

if TYPE_CHECKING:
    from rbv.faces.types import FaceAnalyzer

Box = tuple[int, int, int, int]
"""x1, y1, x2, y2: whole pixels of the upright photo."""


@dataclass(frozen=True)
class BoxMoved:
    """What ``rbv faces box`` did (would do, with ``dry_run``)."""

    face_id: int
    image_id: int
    path: str
    before: tuple[float, float, float, float]  # x1, y1, x2, y2
    box: Box
    drawn: str  # 'detector': landmarks from the detector run in the box; 'box': placed
    edit_id: int | None  # None: a dry run, or the box it had already

    def as_dict(self) -> dict[str, object]:
        return {"face": self.face_id, "image": self.image_id, "path": printable(self.path),
                "before": [round(v, 1) for v in self.before], "box": list(self.box),
                "drawn": self.drawn, "edit": self.edit_id}


def move_box(db: Database, settings: Settings, face_id: int, box: Box, *,
             dry_run: bool = False, shown: Shown | None = None,
             analyzer: FaceAnalyzer | None = None) -> BoxMoved:
    """Move face ``face_id``'s box to ``box`` (x1, y1, x2, y2), embedding it again there,
    as one logged edit. Refused, changing nothing: an unknown face, one marked not a
    face, a box too small or reaching outside the photo, a box that is mostly another
    face of the photo, a photo whose file changed since it was indexed, a pack rbv
    cannot embed with here; ``shown``: a page that showed the face otherwise."""
    x1, y1, x2, y2 = box
    with db.connect() as conn:
        face = _face(conn, face_id)
        where, size = image_and_size(conn, face.image_id)
        check_box((x1, y1, x2 - x1, y2 - y1), size, where)
        _refuse_others(conn, face, box)
        pack = pack_row(conn, face.pack_id)
    local = pack_analyzer(db, settings, pack, analyzer)
    with db.connect() as conn:
        image = decode(conn, settings, local, face.image_id)
    drawn = draw(local, image, (float(x1), float(y1), float(x2), float(y2)))
    parameters = {"face": face_id, "box": list(box), "before": list(face.box)}
    with logged_edit(db, face.pack_id, "faces box", parameters, dry_run=dry_run,
                     shown=shown) as (conn, edit):
        now = _face(conn, face_id)  # again, under the lock
        _refuse_others(conn, now, box)
        set_face_box(conn, face_id, drawn.new_face(face.image_id, face.pack_id))
        edit.summary = (f"moved the box of face {face_id} on {printable(where)} to "
                        f"{x1},{y1}–{x2},{y2} (from {_corners(now.box)})")
    return BoxMoved(face_id, face.image_id, where, face.box, box, drawn.drawn,
                    edit.logged_id)


def _corners(box: tuple[float, float, float, float]) -> str:
    x1, y1, x2, y2 = (round(v) for v in box)
    return f"{x1},{y1}–{x2},{y2}"


def _face(conn: psycopg.Connection, face_id: int) -> BoxedFace:
    face = face_to_box(conn, face_id)
    if face is None:
        raise PersonNotFound(f"no face with id {face_id} in this database")
    if face.marked:
        raise Refused(f"face {face_id} is marked not a face: take the mark back first, "
                      "then move its box", kind="marked", faces=[face_id],
                      remedies=[Remedy("is_a_face", {"faces": [face_id]}, "it is a face")])
    return face


def _refuse_others(conn: psycopg.Connection, face: BoxedFace, box: Box) -> None:
    """A box mostly over another face of the photo would make two rows of one face."""
    for other, ox1, oy1, ox2, oy2, _marked in found_faces(conn, face.image_id, face.pack_id):
        if other != face.id and iou(box, (ox1, oy1, ox2, oy2)) >= MOSTLY_FOUND:
            raise Refused(f"the box is mostly face {other}, another face of the photo; "
                          "move it less far", kind="box_over_face", faces=[other])
