"""A face drawn by hand (``rbv faces add PHOTO --box X,Y,W,H``, or a box drawn on
``rbv serve``'s photo page): a face the detector missed, added as a face like any other.

The face is aligned and embedded with the library's pack. Its five landmarks come from
the pack's detector run again inside the box (with a margin around it, at a lower score
than a scan takes: the user says a face is there), where it finds a face most of which
lies in the box (``drawn = 'detector'``); else they are placed where a detected face's
landmarks sit in its box, on average (``drawn = 'box'``). The box kept is the one drawn.
Its detection score is the detector's, or 0 when it found none.

The face is one logged edit (the row's INSERT is logged by the database, so ``rbv persons
undo`` deletes it), placed by hand in a person when one is given, else left to the next
``rbv cluster`` like any new face. No automatic run deletes it: a scan never redoes a
photo it has done, and a pixel edit's carry draws it again at its place in the new
content (:func:`redraw`) or says it is gone.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from rbv.config import Settings
from rbv.errors import ANY_PERSON, ConfigError, Refused, Remedy, printable
from rbv.faces.defaults import DEFAULT_MIN_FACE
from rbv.formats.atomic import Digest
from rbv.formats.regions import iou
from rbv.jobs.library.drawing import decode, draw, local_analyzer
from rbv.jobs.persons.edit_log import logged_edit
from rbv.store import Database
from rbv.store.queries import persons as store
from rbv.store.queries.drawn_faces import (
    found_faces,
    image_at,
    image_with_content,
    readable_size,
    scan_status,
)
from rbv.store.queries.faces import insert_faces_ids
from rbv.store.queries.images import image_paths_of
from rbv.store.queries.pack_lookup import find_pack, pack_folders
from rbv.store.queries.packs import PackRow, pack_fingerprint
from rbv.store.queries.paths import path_bytes
from rbv.store.queries.person_lookup import existing_person, name_of

if TYPE_CHECKING:
    from rbv.faces.analyzer import LocalFaceAnalyzer
    from rbv.faces.types import FaceAnalyzer

MOSTLY_FOUND = 0.5
"""A box whose IoU with a face already found reaches this is that face (refused)."""


@dataclass(frozen=True)
class Added:
    """What ``rbv faces add`` did (would do, with ``dry_run``)."""

    face_id: int | None  # None: a dry run
    image_id: int
    path: str
    box: tuple[int, int, int, int]  # x, y, width, height as given
    drawn: str  # 'detector': landmarks from the detector; 'box': from the box
    person: uuid.UUID | None
    person_name: str | None
    edit_id: int | None
    det_score: float

    def as_dict(self) -> dict[str, object]:
        return {"face": self.face_id, "image": self.image_id, "path": printable(self.path),
                "box": list(self.box), "drawn": self.drawn,
                "person": None if self.person is None else str(self.person),
                "person_name": self.person_name, "edit": self.edit_id,
                "det_score": round(self.det_score, 4)}


_LOADED: dict[str, LocalFaceAnalyzer] = {}
_LOADING = threading.Lock()


def pack_analyzer(db: Database, settings: Settings, pack: PackRow,
                  analyzer: FaceAnalyzer | None = None) -> LocalFaceAnalyzer:
    """A local analyzer of ``pack``: ``analyzer`` when it is one, else loaded from the
    folder the pack last ran from (or by name) once per process. Refused for a remote
    server's pack and for models that are not the pack's."""
    if pack.name.startswith("remote:") and analyzer is None:
        raise Refused(
            f"the faces are of {pack.name}, a remote server's model: rbv cannot align and "
            "embed a face drawn by hand with it (the server takes whole photos); give the "
            "same models as a folder, or draw it in Immich", kind="pack_remote",
            remedies=[Remedy("model_pack", {}, "the pack's folder")])
    if analyzer is None:
        with db.connect() as conn:
            folder = pack_folders(conn).get(pack.name)
        where = folder if folder and Path(folder).is_dir() else (
            settings.model_pack if settings.model_pack and os.path.isdir(settings.model_pack)
            else pack.name)
        with _LOADING:
            if where not in _LOADED:
                from rbv.faces.analyzer import load_analyzer

                _LOADED[where] = load_analyzer(
                    where, device=settings.device, det_size=settings.det_size,
                    det_threshold=settings.det_threshold, min_face=settings.min_face)
            analyzer = _LOADED[where]
    local = local_analyzer(analyzer)
    if local is None:
        raise Refused(
            f"the library's pack {pack.name} runs on a remote server here: rbv cannot align "
            "and embed a face drawn by hand with it; run it here instead",
            kind="pack_remote", remedies=[Remedy("no_ml_server", {}, "run it here")])
    if pack_fingerprint(local.pack.files) != pack.fingerprint:
        raise Refused(f"the models loaded ({local.pack.name}) are not those of the pack "
                      f"{pack.name} that found the photo's faces; name its folder",
                      kind="pack_differs",
                      remedies=[Remedy("model_pack", {}, "the pack's folder")])
    return local


# -- the edit -----------------------------------------------------------------------------

def find_photo(conn: psycopg.Connection, settings: Settings, photo: str) -> int:
    """The catalogued image a path given by the user shows: as ``rbv index`` stores it
    (absolute, symlinks kept), else with its symlinks resolved, else by its bytes (the
    file indexed under another path: through a symlinked folder, say)."""
    given = os.path.abspath(os.path.expanduser(photo))
    for candidate in (given, os.path.realpath(given)):
        image = image_at(conn, path_bytes(settings.path_map.to_stored(candidate)))
        if image is not None:
            return image
    try:
        image = image_with_content(conn, Digest.of_file(Path(given)).sha256)
    except OSError:  # not there, not a regular file, unreadable: not a photo of it
        image = None
    if image is not None:
        return image
    raise Refused(f"{printable(photo)} is not a photo of the library (not catalogued, "
                  "or marked missing): index it first", kind="not_catalogued",
                  remedies=[Remedy("index", {"paths": [photo]}, "index it")])


def add_face(db: Database, settings: Settings, *, photo: str | None = None,
             image_id: int | None = None, box: tuple[int, int, int, int],
             person: uuid.UUID | None = None, dry_run: bool = False,
             analyzer: FaceAnalyzer | None = None) -> Added:
    """Add the face in ``box`` (x, y, width, height in pixels of the upright photo) of a
    photo given by path or image id, as one logged edit; in ``person`` by hand when one
    is given. Refused, changing nothing: a box outside the photo or too small, a photo
    not catalogued or not scanned by the pack, a photo whose file changed since it was
    indexed (the face would be cut from another picture), a box that is mostly a face
    found already,
    a person that has a face of the photo, a pack rbv cannot embed with here."""
    x, y, w, h = box
    with db.connect() as conn:
        if image_id is None:
            assert photo is not None
            image_id = find_photo(conn, settings, photo)
        pack = _pack(conn, settings, person)
        where, size = image_and_size(conn, image_id)
        check_box(box, size, where)
        _refuse_scanned(conn, pack, image_id, where)
        _refuse_found(conn, pack, image_id, box)
        target = existing_person(conn, person) if person is not None else None
        if target is not None and store.pack_of(conn, target) != pack.id:
            raise ConfigError(f"person {target} is of another model pack than {pack.name}")
    local = pack_analyzer(db, settings, pack, analyzer)
    with db.connect() as conn:
        image = decode(conn, settings, local, image_id)
    face = draw(local, image, (float(x), float(y), float(x + w), float(y + h)))
    parameters: dict[str, Any] = {"image": image_id, "box": list(box),
                                  "person": None if target is None else str(target)}
    with logged_edit(db, pack.id, "faces add", parameters, dry_run=dry_run) as (conn, edit):
        _refuse_found(conn, pack, image_id, box)  # again, under the lock
        (face_id,) = insert_faces_ids(conn, [face.new_face(image_id, pack.id)])
        name = None
        if target is not None:
            from rbv.jobs.persons.person_edit import refuse_photo_clashes

            refuse_photo_clashes(conn, target, [face_id])
            store.move_faces(conn, [face_id], target)
            name = name_of(conn, target)
        edit.summary = (f"drew face {face_id} on {printable(where)} at {x},{y} {w}×{h} "
                        f"(landmarks from the {face.drawn})"
                        + ("" if target is None else f", placed in {target}"))
    return Added(None if dry_run else face_id, image_id, where, box, face.drawn, target,
                 name, edit.logged_id, face.det_score)


def _pack(conn: psycopg.Connection, settings: Settings, person: uuid.UUID | None
          ) -> PackRow:
    """The pack the face is added to: the one named, the person's, or the only one."""
    if settings.model_pack is None and person is not None:
        from rbv.store.queries.pack_lookup import pack_row

        return pack_row(conn, store.pack_of(conn, existing_person(conn, person)))
    return find_pack(conn, settings.model_pack)


def image_and_size(conn: psycopg.Connection, image_id: int) -> tuple[str, tuple[int, int]]:
    """A path of the photo (for messages) and its size as shown (after EXIF)."""
    size = readable_size(conn, image_id)
    if size is None:
        raise ConfigError(f"no readable photo {image_id} in the library")
    paths = image_paths_of(conn, [image_id]).get(image_id) or [f"image {image_id}"]
    return paths[0], size


def check_box(box: tuple[int, int, int, int], size: tuple[int, int], where: str) -> None:
    """Refuse a box (x, y, width, height) too small for a face or reaching outside the
    photo of ``size``."""
    x, y, w, h = box
    width, height = size
    if w < DEFAULT_MIN_FACE or h < DEFAULT_MIN_FACE:
        raise ConfigError(f"the box {w}×{h} is too small: a face needs at least "
                          f"{DEFAULT_MIN_FACE}×{DEFAULT_MIN_FACE} pixels")
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise ConfigError(f"the box {x},{y} {w}×{h} reaches outside the photo "
                          f"{printable(where)} ({width}×{height} pixels as shown, after its "
                          "EXIF orientation)")


def _refuse_scanned(conn: psycopg.Connection, pack: PackRow, image_id: int,
                    where: str) -> None:
    if scan_status(conn, image_id, pack.id) != "done":
        raise Refused(f"{printable(where)} has not been scanned by {pack.name} yet: index "
                      "it first, then draw the faces it missed", kind="not_scanned",
                      remedies=[Remedy("index", {"paths": [where]}, "index it")])


def _refuse_found(conn: psycopg.Connection, pack: PackRow, image_id: int,
                  box: tuple[int, int, int, int]) -> None:
    x, y, w, h = box
    for face_id, fx1, fy1, fx2, fy2, marked in found_faces(conn, image_id, pack.id):
        if iou((x, y, x + w, y + h), (fx1, fy1, fx2, fy2)) < MOSTLY_FOUND:
            continue
        if marked:  # the user said it is none: a face drawn over it contradicts that
            raise Refused(
                f"the box is mostly face {face_id}, which was marked not a face; take the "
                "mark back, then put it in a person", kind="drawn_over_found",
                faces=[face_id],
                remedies=[Remedy("is_a_face", {"faces": [face_id]}, "it is a face"),
                          Remedy("move", {"faces": [face_id], "to": ANY_PERSON}, "put it in a "
                                 "person")])
        raise Refused(
            f"the box is mostly face {face_id}, which is there already; put that face in a "
            "person instead", kind="drawn_over_found", faces=[face_id],
            remedies=[Remedy("move", {"faces": [face_id], "to": ANY_PERSON}, "put it in a person")])
