"""``prune``: remove the photos ``index`` found missing, with their faces.

Only what ``index`` marked missing is touched (a path inside a folder it walked whose
file was gone). An image still present at another path is never deleted: only its
missing path rows go. Persons are kept, names and hides included, even when they lose
every face (``rbv audit`` lists them; ``--fix`` deletes the unnamed ones).

No decision goes unsaid, and none goes that need not: a missing photo whose faces show
again in another photo (a copy under another name, re-encoded: JPEG → PNG) gives their
persons, hand-placements, rejections and links to those faces first, matched as the
carry of an edited photo matches them (the same place and the same person, both
required, in a picture of the same shape); each decision deleted with a photo is said.
``--dry-run`` does the same work and rolls it back, so it says the same.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import psycopg

from rbv.errors import printable
from rbv.faces.correspondence import FRAME_TOLERANCE, match_faces
from rbv.jobs.library.carry import carry_similarity, photo_faces
from rbv.jobs.recording import recorded_run
from rbv.store import Database
from rbv.store.queries.audit import pack_names
from rbv.store.queries.dropped import decisions_on_faces
from rbv.store.queries.images import image_paths_of
from rbv.store.queries.missing import PruneCounts, faces_of_images, gone_images, prune_missing
from rbv.store.queries.pack_lookup import pack_files, pack_row, pack_settings
from rbv.store.queries.packs import PackRow
from rbv.store.queries.reappearing import lookalike_images
from rbv.store.queries.supersessions import carry_decisions, image_faces
from rbv.store.server.locks import person_lock


@dataclass
class PruneReport:
    """What ``prune`` removed (or would), and what became of the decisions it held."""

    counts: PruneCounts
    kept: list[str] = field(default_factory=list)  # decisions that went to a copy's face
    lost: list[str] = field(default_factory=list)  # decisions deleted with their photo

    def as_dict(self) -> dict[str, object]:
        return {**self.counts.as_dict(), "decisions_kept": self.kept,
                "decisions_deleted": self.lost}


def run_prune(db: Database, *, dry_run: bool = False) -> PruneReport:
    """Delete missing photos (images with no present path) and their faces, and every
    missing path row, after giving their faces' decisions to the same faces of a copy;
    with ``dry_run``, say what would happen and write nothing."""
    with db.connect() as conn:
        packs = [pack_row(conn, pack_id) for pack_id in sorted(pack_names(conn))]
    if dry_run:
        with db.connect() as conn:
            report = _prune(conn, packs)
            conn.rollback()
        return report
    with recorded_run(db, "prune", {}) as run, ExitStack() as locks:
        # Faces leave persons: no clustering or person edit may run meanwhile.
        for pack in packs:
            locks.enter_context(person_lock(db, pack.id, pack.name))
        with db.transaction() as conn:
            report = _prune(conn, packs)
        run.counts = {**report.counts.as_dict(), "decisions_kept": len(report.kept),
                      "decisions_deleted": len(report.lost)}
    return report


def _prune(conn: psycopg.Connection, packs: list[PackRow]) -> PruneReport:
    kept: list[str] = []
    lost: list[str] = []
    gone = gone_images(conn)
    # Counted first: giving a photo's decisions to a copy deletes its faces (and the
    # photo, with its path, once faceless), and they left the catalogue all the same.
    counts = prune_missing(conn, dry_run=True)
    for pack in packs:
        threshold = carry_similarity(pack_settings(conn, pack.id), pack_files(conn, pack.id))
        for image_id, where in gone:
            _give_to_copy(conn, pack, image_id, where, threshold, kept, lost)
    where_of = dict(gone)
    image_of = faces_of_images(conn, [i for i, _ in gone])
    for face_id, held in decisions_on_faces(conn, list(image_of)):
        lost.append(f"{printable(where_of[image_of[face_id]])}: face {face_id} goes with "
                    f"the missing photo, which was {held}")
    prune_missing(conn, dry_run=False)
    return PruneReport(counts, kept, lost)


def _give_to_copy(conn: psycopg.Connection, pack: PackRow, image_id: int, where: str,
                  threshold: float, kept: list[str], lost: list[str]) -> None:
    """Give the decisions of the pack's faces of missing ``image_id`` to the same faces
    of the nearest present picture of the same shape that shows them."""
    old = image_faces(conn, image_id, pack.id)
    if not old.ids:
        return
    for copy in lookalike_images(conn, pack, image_id):
        new = image_faces(conn, copy, pack.id)
        if not _same_shape(old.frame, new.frame):
            continue
        pairs = match_faces(photo_faces(old), photo_faces(new), threshold)
        if pairs:
            break
    else:
        return
    became = {old.ids[i]: new.ids[j] for i, j, _ in pairs}
    held = dict(decisions_on_faces(conn, list(became)))
    left = dict(carry_decisions(conn, pack.id, image_id, list(became.items())))
    there = printable(next(iter(image_paths_of(conn, [copy]).get(copy, [])), f"image {copy}"))
    here = printable(where)
    for face_id in sorted(held):
        if face_id in left:
            lost.append(f"{here}: face {face_id} is face {became[face_id]} of {there} "
                        f"(the same picture), which could not take what it held: "
                        f"{left[face_id]}")
        else:
            kept.append(f"{here}: face {face_id} is face {became[face_id]} of {there} "
                        "(the same picture): what it held went to it")
    for face_id, held_there in sorted(left.items()):
        if face_id not in became:
            lost.append(f"{here}: face {face_id} goes with the missing photo, which was "
                        f"{held_there}")


def _same_shape(old: tuple[int, int], new: tuple[int, int]) -> bool:
    """Whether two pictures have one aspect ratio (a copy, maybe resized; not a crop)."""
    if min(*old, *new) <= 0:
        return False
    return abs(old[0] * new[1] - new[0] * old[1]) <= FRAME_TOLERANCE * old[0] * new[1]
