"""``rbv show``: a contact sheet of a person's or a faceset's faces."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from rbv.errors import ConfigError, Refused, Remedy
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.contact_sheet import Sheet, SheetFace, write_sheet
from rbv.store import Database
from rbv.store.queries.facesets import face_boxes, faceset_faces, pack_of_faceset
from rbv.store.queries.images import photo_files
from rbv.store.queries.person_lookup import existing_person, name_of, short_id
from rbv.store.queries.persons import faces_of
from rbv.store.queries.review import neighbour_boxes

_FACESET = re.compile(r"^faceset_(\d+)$")


def faceset_number(text: str) -> int | None:
    """The faceset ``text`` names as ``faceset_NNN`` (None: it names none)."""
    match = _FACESET.match(text.strip())
    return int(match.group(1)) if match else None


def contact_sheet(db: Database, target: uuid.UUID | int, out: Path | None, *, limit: int,
                  columns: int, tile: int,
                  max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Sheet:
    """Write the sheet of ``target`` (a person, or a faceset by its number), best
    detections first for a person, to ``out`` (default: ``<name>.png`` in the current
    folder, the person's name or ``faceset_NNN``)."""
    with db.connect() as conn:
        if isinstance(target, int):
            label = f"faceset_{target:03d}"
            packs = pack_of_faceset(conn, target)
            if not packs:
                raise Refused(f"no {label} in the database; make the facesets first",
                              kind="no_faceset",
                              remedies=[Remedy("refine", {}, "make the facesets")])
            ids = (faceset_faces(conn, packs[-1], target) or [])[:limit]
            title = shown = label
        else:
            person = existing_person(conn, target)
            ids = [f.id for f in faces_of(conn, person, limit)]
            name = name_of(conn, person)
            label = name or f"person_{str(person)[:8]}"
            title = f"{name or person}"
            shown = name or f"person {short_id(person)}"
        title += f": {len(ids)} faces"
        faces = [SheetFace(f, i, b) for f, i, b in face_boxes(conn, ids)]
    if not faces:
        raise ConfigError(f"{shown} has no faces to show")
    # Without -o: the current folder, said as a whole path (a bare "Ada.png" left users
    # looking for it).
    stem = re.sub(r"[^\w.-]+", "_", label).strip("._") or "contact_sheet"
    path = out or Path.cwd() / f"{stem}.png"
    with db.connect() as conn:
        return write_sheet(photo_files(conn), faces, title, path, tile=tile, columns=columns,
                           max_pixels=max_pixels,
                           beside=neighbour_boxes(conn, [f.face_id for f in faces]))
