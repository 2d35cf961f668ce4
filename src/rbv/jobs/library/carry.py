"""Carrying decisions from a photo's old content to its new one (issue 29).

When a photo's pixels changed (a crop, a retouch, another file copied over it), ``index``
keeps the old content with its faces (``image_supersessions``). Once a model pack has
scanned the new content (at the end of ``index``, or in a later ``embed`` for another
pack), each old face whose person or decisions can go to the new face that is the same
face (:func:`rbv.faces.correspondence.match_faces`: the same place and the same person,
both required) gives them to it; the pack's old faces are then dropped, and each one
that still held a decision is said, by face id, never dropped silently. A face drawn by
hand, which no scan finds again, is drawn again at its place in the new content (the
frame the pairs of faces found, else the same or the scaled frame) and embedded there;
it is the old face when the two are as alike as a carried face must be
(:func:`rbv.jobs.library.drawing.redraw`). Else it is said as gone. A carried face's
estimated age and gender go with it too, where the new face has none of its own.

Each photo's carry is one transaction, with the lines saying what it could not keep
(``carry_losses``): an interrupted run leaves the old content waiting, and the next
``index`` or ``embed`` of that pack carries it; a run killed after a photo's carry
leaves that photo's lines, and the next run says them. A line is forgotten only once
the command has said it (:func:`forget_said`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psycopg

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.defaults import Method
from rbv.config import Settings
from rbv.errors import ClusterBusy, ImageUnreadable, printable
from rbv.faces.correspondence import Frame, PhotoFaces, match_in_frame, plain_frames
from rbv.jobs.library import drawing
from rbv.store import Database
from rbv.store.queries.attributes import carry_attributes
from rbv.store.queries.faces import insert_faces_ids
from rbv.store.queries.images import image_paths_of
from rbv.store.queries.pack_lookup import pack_files, pack_settings
from rbv.store.queries.packs import PackRow
from rbv.store.queries.supersessions import (
    ImageFaceRows,
    carries_ready,
    carry_decisions,
    claim_carry,
    drawn_faces,
    forget_losses,
    image_faces,
    record_losses,
    unsaid_losses,
)
from rbv.store.server.locks import person_lock

if TYPE_CHECKING:
    from rbv.faces.types import FaceAnalyzer

CARRY_Z = 6.0
"""How many impostor spreads above the mean two faces' similarity must be for a new face
to be taken as an old one (with the same place also required): at 6, about one pair of
different people's faces in a billion. SFace: 0.64 (same-person photos: median 0.72;
the same face after an edit: 0.80 and above)."""


@dataclass
class CarrySummary:
    """What one carry pass did for one pack."""

    photos: int = 0  # old contents whose faces were carried (or said) for the pack
    carried: int = 0  # old faces that are a new face: their person and decisions went on
    dropped: list[str] = field(default_factory=list)  # one line per decision not carried
    dropped_ids: list[int] = field(default_factory=list)  # their rows, until said
    busy: str | None = None  # the carry waited: a cluster run or person edit held the pack


def carry_similarity(stored: Mapping[str, object], files: Mapping[str, str]) -> float:
    """The similarity an old and a new face need to be one face (besides the same
    place): :data:`CARRY_Z` spreads above the pack's impostor mean where its impostor
    model is known, and never below its same-person threshold (connected components)."""
    connected = resolve_setting(stored, files, Method.connected).threshold
    assert connected is not None  # a threshold method always resolves to one
    model = resolve_setting(stored, files, Method.evidence).impostor
    if model is None:
        return connected
    return max(connected, model.mu + CARRY_Z * math.hypot(model.sigma, model.tau))


def run_carry(db: Database, pack: PackRow, analyzer: FaceAnalyzer | None = None,
              settings: Settings | None = None) -> CarrySummary:
    """Carry every old content the pack has scanned the new content of. Faces drawn by
    hand are drawn again with ``analyzer`` (a local one: the pack's models), reading the
    new content as ``settings`` say; without it they are said as gone."""
    summary = CarrySummary()
    with db.connect() as conn:
        ready = carries_ready(conn, pack.id)
        conn.commit()
        threshold = carry_similarity(pack_settings(conn, pack.id), pack_files(conn, pack.id))
    try:
        if ready:
            with person_lock(db, pack.id, pack.name):  # faces change persons
                for old_id, new_id in ready:
                    _carry_one(db, pack, old_id, new_id, threshold, summary,
                               _Redraw(analyzer, settings or Settings()))
    except ClusterBusy as exc:
        summary.busy = f"{exc}; the edited photos' faces are carried by the next index or embed"
    with db.connect() as conn:  # this run's losses, and those a killed run left unsaid
        losses = unsaid_losses(conn, pack.id)
    summary.dropped_ids = [i for i, _ in losses]
    summary.dropped = [line for _, line in losses]
    return summary


def forget_said(db: Database, summary: CarrySummary) -> None:
    """The command has said ``summary.dropped``: forget those lines. (Killed before
    this, a run's lines are said again by the next run: twice, never not at all.)"""
    if summary.dropped_ids:
        with db.transaction() as conn:
            forget_losses(conn, summary.dropped_ids)


@dataclass
class _Redraw:
    """What drawing a face again needs: the pack's analyzer (local) and the settings."""

    analyzer: FaceAnalyzer | None
    settings: Settings


def _carry_one(db: Database, pack: PackRow, old_id: int, new_id: int, threshold: float,
               summary: CarrySummary, redraw: _Redraw) -> None:
    with db.transaction() as conn:
        if not claim_carry(conn, old_id, new_id):
            return  # another worker has it, or the old content is shown again
        old, new = image_faces(conn, old_id, pack.id), image_faces(conn, new_id, pack.id)
        pairs, frame = match_in_frame(photo_faces(old), photo_faces(new), threshold)
        became = {old.ids[i]: new.ids[j] for i, j, _ in pairs}
        drawn = [f for f in drawn_faces(conn, old_id, pack.id) if f not in became]
        if drawn:
            frames = _fitted_frames(old, new, pairs) + ([frame] if frame else [])
            became |= _draw_again(conn, pack, old, new_id, new.frame, drawn,
                                  frames + plain_frames(old.frame, new.frame), threshold,
                                  redraw)
        # The same face is the same age: a new face scanned without the attribute
        # model keeps the old face's estimate (one of its own, when scanned with it).
        # Before the decisions: their carry drops the old faces.
        carry_attributes(conn, list(became.items()))
        left = carry_decisions(conn, pack.id, old_id, list(became.items()))
        where = next(iter(image_paths_of(conn, [new_id]).get(new_id, [])), f"image {new_id}")
        record_losses(conn, pack.id, [_loss_line(where, face_id, became.get(face_id), held)
                                      for face_id, held in left])
    summary.photos += 1
    summary.carried += len(became)


def _fitted_frames(old: ImageFaceRows, new: ImageFaceRows,
                   pairs: list[tuple[int, int, float]]) -> list[Frame]:
    """The frame the landmarks of the faces paired fit best (least squares: a face box
    is a few pixels uncertain, five landmarks a face less so), and the same with no
    change of scale where it is close to none (a crop)."""
    if not pairs or old.landmarks is None or new.landmarks is None:
        return []
    a = old.landmarks[[i for i, _, _ in pairs]].reshape(-1, 2)
    b = new.landmarks[[j for _, j, _ in pairs]].reshape(-1, 2)
    spread = float(((a - a.mean(axis=0)) ** 2).sum())
    if spread <= 0:
        return []
    scale = float(((a - a.mean(axis=0)) * (b - b.mean(axis=0))).sum()) / spread
    shift = b.mean(axis=0) - scale * a.mean(axis=0)
    fitted = [Frame(scale, (float(shift[0]), float(shift[1])))]
    if abs(scale - 1.0) <= 0.03:
        plain = (b - a).mean(axis=0)
        fitted.insert(0, Frame(1.0, (float(plain[0]), float(plain[1]))))
    return fitted


def _draw_again(conn: psycopg.Connection, pack: PackRow, old: ImageFaceRows, new_id: int,
                new_frame: tuple[int, int], drawn: list[int], frames: list[Frame],
                threshold: float, redraw: _Redraw) -> dict[int, int]:
    """Old face → new face of each face drawn by hand that is drawn again in the new
    content: at its place in the frame that fits the faces paired (else the same frame,
    or the old one scaled), embedded there, and as alike as a carried face must be
    (where several frames are, the most alike)."""
    local = None if redraw.analyzer is None else drawing.local_analyzer(redraw.analyzer)
    if local is None:
        return {}
    try:
        image = drawing.decode(conn, redraw.settings, local, new_id)
    except ImageUnreadable:
        return {}
    out: dict[int, int] = {}
    for face_id in drawn:
        row = old.ids.index(face_id)
        best, alike = None, threshold
        for where in frames:
            box = tuple(float(v) for v in where.boxes(old.boxes[row:row + 1])[0])
            face = drawing.redraw(local, image, box, new_frame)  # type: ignore[arg-type]
            similarity = -1.0 if face is None else float(old.embeddings[row] @ face.embedding)
            if similarity >= alike:
                best, alike = face, similarity
        if best is not None:
            out[face_id] = insert_faces_ids(conn, [best.new_face(new_id, pack.id)])[0]
    return out


def _loss_line(where: str, face_id: int, became: int | None, held: str) -> str:
    if became is not None:  # the same face, but the new face's own decision stands
        return (f"{printable(where)}: the photo's image data changed; face {face_id} is face "
                f"{became} now, which could not take what it held: {held}")
    return (f"{printable(where)}: the photo's image data changed and face {face_id} was "
            f"not found in it again: it is gone, which was {held}")


def photo_faces(rows: ImageFaceRows) -> PhotoFaces:
    """The faces of one image as the matcher takes them."""
    return PhotoFaces(rows.frame, rows.boxes, rows.landmarks, rows.embeddings)
