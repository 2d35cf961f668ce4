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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.config import Settings
from rbv.errors import ConfigError, ImageUnreadable, printable
from rbv.faces.defaults import DEFAULT_MIN_FACE
from rbv.jobs.persons.edit_log import logged_edit
from rbv.store import Database
from rbv.store.queries import persons as store
from rbv.store.queries.faces import NewFace, insert_faces_ids
from rbv.store.queries.images import image_formats, image_paths_of
from rbv.store.queries.pack_lookup import find_pack, pack_folders
from rbv.store.queries.packs import PackRow, pack_fingerprint
from rbv.store.queries.paths import path_bytes

if TYPE_CHECKING:
    from rbv.faces.analyzer import LocalFaceAnalyzer
    from rbv.faces.types import FaceAnalyzer
    from rbv.media.types import DecodedImage

DRAWN_DET_THRESHOLD = 0.3
"""The score a detection inside a drawn box needs (a scan takes 0.5): the user says a
face is there, the detector only says where its eyes are."""
MARGIN = 0.5
"""The detector looks at the box and this share of its long side around it."""
MOSTLY_INSIDE = 0.5
"""A detection is the drawn face when at least this share of it lies in the box."""
MOSTLY_FOUND = 0.5
"""A box whose IoU with a face already found reaches this is that face (refused)."""
BOX_LANDMARKS = np.array([[0.27, 0.40], [0.73, 0.40], [0.50, 0.59], [0.30, 0.73],
                          [0.70, 0.73]], np.float32)
"""Where the eyes, nose tip and mouth corners of a face lie in its box, as shares of
the box's width and height (the median over SCRFD's faces of data/faces, made
symmetric)."""


@dataclass(frozen=True)
class DrawnFace:
    """A face drawn in one picture, embedded (pixels of the upright original)."""

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2: the box drawn
    landmarks: NDArray[np.float32]  # (5, 2)
    det_score: float
    blur: float
    embedding: NDArray[np.float32]
    drawn: str  # 'detector' | 'box'

    def new_face(self, image_id: int, pack_id: int) -> NewFace:
        return NewFace(image_id, pack_id, self.bbox,
                       [float(v) for v in self.landmarks.ravel()], self.det_score,
                       self.blur, self.embedding, self.drawn)


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


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` in whole pixels."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ConfigError(f"--box {printable(text)!r}: give X,Y,W,H in whole pixels of the "
                          "photo as shown (e.g. --box 120,80,64,64)")
    x, y, w, h = values
    return x, y, w, h


# -- drawing ----------------------------------------------------------------------------

def local_analyzer(analyzer: FaceAnalyzer) -> LocalFaceAnalyzer | None:
    """The local analyzer behind ``analyzer`` (one GPU's of a set), or None for a remote
    server's (it embeds whole photos only: no face can be drawn with it)."""
    from rbv.faces.analyzer import DeviceSet, LocalFaceAnalyzer

    if isinstance(analyzer, DeviceSet):
        return analyzer.analyzers[0]
    return analyzer if isinstance(analyzer, LocalFaceAnalyzer) else None


def draw(analyzer: LocalFaceAnalyzer, image: DecodedImage,
         box: tuple[float, float, float, float]) -> DrawnFace:
    """The face in ``box`` (x1, y1, x2, y2 in original pixels) of the decoded ``image``:
    landmarks from the detector run around the box, or from the box; aligned, its blur
    measured and embedded as a scan's faces are."""
    from rbv.faces.alignment import align_face
    from rbv.faces.analyzer import _as_rgb
    from rbv.faces.quality import laplacian_variance

    rgb = _as_rgb(image.rgb)
    scale = float(image.scale)
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (v / scale for v in box)
    margin = MARGIN * max(x2 - x1, y2 - y1)
    cx1, cy1 = max(0, int(x1 - margin)), max(0, int(y1 - margin))
    cx2, cy2 = min(width, int(np.ceil(x2 + margin))), min(height, int(np.ceil(y2 + margin)))
    found = analyzer.detector.detect(np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2]),
                                     DRAWN_DET_THRESHOLD)
    best, best_iou = None, 0.0
    for i in range(len(found)):
        dx1, dy1, dx2, dy2 = (float(v) for v in found.boxes[i])
        dx1, dx2, dy1, dy2 = dx1 + cx1, dx2 + cx1, dy1 + cy1, dy2 + cy1
        inter = max(0.0, min(x2, dx2) - max(x1, dx1)) * max(0.0, min(y2, dy2) - max(y1, dy1))
        area = max(1e-6, (dx2 - dx1) * (dy2 - dy1))
        union = area + (x2 - x1) * (y2 - y1) - inter
        if inter >= MOSTLY_INSIDE * area and inter / union > best_iou:
            best, best_iou = i, inter / union
    if best is not None:
        marks = found.keypoints[best].astype(np.float32) + np.array([cx1, cy1], np.float32)
        score, how = float(found.scores[best]), "detector"
    else:
        marks = (np.array([x1, y1], np.float32)
                 + BOX_LANDMARKS * np.array([x2 - x1, y2 - y1], np.float32))
        score, how = 0.0, "box"
    crop = align_face(rgb, marks, analyzer.recognizer.input_size)
    embedding = analyzer.recognizer.embed([crop])[0]
    return DrawnFace(tuple(float(v) for v in box),  # type: ignore[arg-type]
                     (marks * scale).astype(np.float32), score, laplacian_variance(crop),
                     np.asarray(embedding, np.float32), how)


def decode(conn: psycopg.Connection, settings: Settings, analyzer: LocalFaceAnalyzer,
           image_id: int) -> DecodedImage:
    """The catalogued image's pixels, as a scan decodes them for ``analyzer``."""
    from rbv.jobs.library.embed import decode_image

    paths = [settings.path_map.to_local(p) for p in image_paths_of(conn, [image_id]).get(
        image_id, [])]
    return decode_image(image_id, paths, image_formats(conn, [image_id]).get(image_id),
                        analyzer.decode_long_edge, settings.max_image_pixels, False)


_LOADED: dict[str, LocalFaceAnalyzer] = {}
_LOADING = threading.Lock()


def pack_analyzer(db: Database, settings: Settings, pack: PackRow,
                  analyzer: FaceAnalyzer | None = None) -> LocalFaceAnalyzer:
    """A local analyzer of ``pack``: ``analyzer`` when it is one, else loaded from the
    folder the pack last ran from (or by name) once per process. Refused for a remote
    server's pack and for models that are not the pack's."""
    if pack.name.startswith("remote:") and analyzer is None:
        raise ConfigError(
            f"the faces are of {pack.name}, a remote server's model: rbv cannot align and "
            "embed a face drawn by hand with it (the server takes whole photos); give the "
            "same models as a folder with --model-pack, or draw it in Immich")
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
        raise ConfigError(
            f"the library's pack {pack.name} runs on a remote server here (--ml-uri): rbv "
            "cannot align and embed a face drawn by hand with it; run without --ml-uri")
    if pack_fingerprint(local.pack.files) != pack.fingerprint:
        raise ConfigError(f"the models loaded ({local.pack.name}) are not those of the pack "
                          f"{pack.name} that found the photo's faces; name its folder with "
                          "--model-pack")
    return local


# -- the edit -----------------------------------------------------------------------------

def find_photo(conn: psycopg.Connection, settings: Settings, photo: str) -> int:
    """The catalogued image a path given by the user shows: as ``rbv index`` stores it
    (absolute, symlinks kept), else with its symlinks resolved."""
    given = os.path.abspath(os.path.expanduser(photo))
    for candidate in (given, os.path.realpath(given)):
        row = conn.execute(
            "SELECT image_id FROM image_paths WHERE path_bytes = %s AND missing_since IS NULL",
            (path_bytes(settings.path_map.to_stored(candidate)),)).fetchone()
        if row is not None:
            return int(row[0])
    raise ConfigError(f"{printable(photo)} is not a photo of the library (not catalogued, "
                      "or marked missing): run `rbv index` on it first")


def add_face(db: Database, settings: Settings, *, photo: str | None = None,
             image_id: int | None = None, box: tuple[int, int, int, int],
             person: str | None = None, dry_run: bool = False,
             analyzer: FaceAnalyzer | None = None) -> Added:
    """Add the face in ``box`` (x, y, width, height in pixels of the upright photo) of a
    photo given by path or image id, as one logged edit; in ``person`` by hand when one
    is given. Refused, changing nothing: a box outside the photo or too small, a photo
    not catalogued or not scanned by the pack, a box that is mostly a face found already,
    a person that has a face of the photo, a pack rbv cannot embed with here."""
    x, y, w, h = box
    with db.connect() as conn:
        if image_id is None:
            assert photo is not None
            image_id = find_photo(conn, settings, photo)
        pack = _pack(conn, settings, person)
        where, size = _image(conn, image_id)
        _check_box(box, size, where)
        _refuse_scanned(conn, pack, image_id, where)
        _refuse_found(conn, pack, image_id, box)
        target = store.resolve_person(conn, person) if person is not None else None
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
            from rbv.jobs.persons.edits import _refuse_photo_clashes

            _refuse_photo_clashes(conn, target, [face_id])
            store.move_faces(conn, [face_id], target)
            name = store.name_of(conn, target)
        edit.summary = (f"drew face {face_id} on {printable(where)} at {x},{y} {w}×{h} "
                        f"(landmarks from the {face.drawn})"
                        + ("" if target is None else f", placed in {target}"))
    return Added(None if dry_run else face_id, image_id, where, box, face.drawn, target,
                 name, edit.logged_id, face.det_score)


def _pack(conn: psycopg.Connection, settings: Settings, person: str | None) -> PackRow:
    """The pack the face is added to: the one named, the person's, or the only one."""
    if settings.model_pack is None and person is not None:
        from rbv.store.queries.pack_lookup import pack_row

        return pack_row(conn, store.pack_of(conn, store.resolve_person(conn, person)))
    return find_pack(conn, settings.model_pack)


def _image(conn: psycopg.Connection, image_id: int) -> tuple[str, tuple[int, int]]:
    row = conn.execute("SELECT width, height, status FROM images WHERE id = %s",
                       (image_id,)).fetchone()
    if row is None or row[2] != "ok" or not row[0] or not row[1]:
        raise ConfigError(f"no readable photo {image_id} in the library")
    paths = image_paths_of(conn, [image_id]).get(image_id) or [f"image {image_id}"]
    return paths[0], (int(row[0]), int(row[1]))


def _check_box(box: tuple[int, int, int, int], size: tuple[int, int], where: str) -> None:
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
    row = conn.execute("SELECT status FROM face_scans WHERE image_id = %s AND pack_id = %s",
                       (image_id, pack.id)).fetchone()
    if row is None or row[0] != "done":
        raise ConfigError(f"{printable(where)} has not been scanned by {pack.name} yet: run "
                          "`rbv index` (or `rbv embed`) first, then draw the faces it missed")


def _refuse_found(conn: psycopg.Connection, pack: PackRow, image_id: int,
                  box: tuple[int, int, int, int]) -> None:
    x, y, w, h = box
    faces = conn.execute("SELECT f.id, f.x1, f.y1, f.x2, f.y2, m.face_id IS NOT NULL "
                         "FROM face_detections f LEFT JOIN not_faces m ON m.face_id = f.id "
                         "WHERE f.image_id = %s AND f.pack_id = %s ORDER BY f.id",
                         (image_id, pack.id)).fetchall()
    for face_id, fx1, fy1, fx2, fy2, marked in faces:
        if overlap((x, y, x + w, y + h), (fx1, fy1, fx2, fy2)) < MOSTLY_FOUND:
            continue
        if marked:  # the user said it is none: a face drawn over it contradicts that
            raise ConfigError(
                f"the box is mostly face {face_id}, which was marked not a face; "
                f"`rbv faces is-a-face {face_id}` takes the mark back, then `rbv persons "
                f"move {face_id} --to PERSON` puts it in a person")
        raise ConfigError(
            f"the box is mostly face {face_id}, which is there already; to put it in a "
            f"person: `rbv persons move {face_id} --to PERSON`")


def overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (x1, y1, x2, y2)."""
    inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
             * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def redraw(analyzer: LocalFaceAnalyzer, image: DecodedImage,
           box: tuple[float, float, float, float], frame: tuple[int, int]
           ) -> DrawnFace | None:
    """The face drawn at ``box`` drawn again in a new picture (its place carried into the
    new frame), or None when the box falls outside it."""
    width, height = frame
    x1, y1 = max(0.0, box[0]), max(0.0, box[1])
    x2, y2 = min(float(width), box[2]), min(float(height), box[3])
    if x2 - x1 < DEFAULT_MIN_FACE or y2 - y1 < DEFAULT_MIN_FACE:
        return None
    try:
        return draw(analyzer, image, (x1, y1, x2, y2))
    except ImageUnreadable:
        return None
