"""``audit``: find what is inconsistent in the library; with ``fix``, repair what is safe.

Safe repairs lose no one's work: a claim of a dead ``embed`` worker is put back in the
queue, a run of a dead process is marked ``interrupted``; an empty person without a
name (and that no merged person points to) is deleted; of two faces of one photo in
one person, the face the user placed by hand, or else the one closest to the person's
other photos, stays and the others are unassigned (the next ``rbv cluster`` places
them anew); a face placed automatically in a person it was rejected from is unassigned,
and of two faces linked as different persons in one person, an automatic one is (the
fewest faces that part every such pair); these person changes are one logged edit
(``rbv persons undo``). A named empty person, two hand-placed faces of one photo, a
hand-placed face in a person it was rejected from or two hand-placed faces linked as
different, two faces linked as one person but placed by hand in two persons, duplicate
names and missing files are the user's call: they are reported
with the command that settles them.
"""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from rbv.config import Settings
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.recording import process_alive
from rbv.store import Database
from rbv.store.queries.audit import (
    ApartInside,
    DuplicateName,
    EmptyPerson,
    RejectedInside,
    SameApart,
    SamePhotoConflict,
    apart_inside,
    delete_empty_persons,
    duplicate_names,
    empty_persons,
    pack_names,
    rejected_inside,
    same_apart,
    same_photo_conflicts,
    unassign_faces,
)
from rbv.store.queries.missing import missing_paths
from rbv.store.queries.runs import DeadRun, close_dead_runs, dead_runs
from rbv.store.queries.scans import DeadClaim, dead_claims, release_dead_claims
from rbv.words import counted

MISSING_LISTED = 20
"""How many missing paths the report names (it counts them all)."""


@dataclass
class AuditReport:
    """What ``audit`` found, and with ``fix`` what it repaired."""

    packs: dict[int, str]
    empty_persons: list[EmptyPerson]
    conflicts: list[SamePhotoConflict]
    duplicate_names: list[DuplicateName]
    missing_paths: int
    missing_images: int  # images with no present path left (what prune would delete)
    missing_listed: list[str]
    stale_claims: list[DeadClaim]
    stale_runs: list[DeadRun]  # recorded as running; their process is gone
    rejected_inside: list[RejectedInside] = field(default_factory=list)
    apart_inside: list[ApartInside] = field(default_factory=list)
    same_apart: list[SameApart] = field(default_factory=list)  # the user's call
    fixed: dict[str, int] = field(default_factory=dict)  # empty: not asked to fix

    @property
    def findings(self) -> int:
        return (len(self.empty_persons) + len(self.conflicts) + len(self.duplicate_names)
                + self.missing_paths + len(self.stale_claims) + len(self.stale_runs)
                + len(self.rejected_inside) + len(self.apart_inside) + len(self.same_apart))

    def contradicting(self) -> dict[uuid.UUID, list[int]]:
        """The faces ``--fix`` takes out for rejections and "different" links."""
        return contradicting_faces(self.rejected_inside, self.apart_inside)

    def pack(self, pack_id: int | None) -> str | None:
        """The pack's name (None for a person of no pack)."""
        return None if pack_id is None else self.packs.get(pack_id, str(pack_id))

    def as_dict(self) -> dict[str, Any]:
        pack = self.pack
        return {
            "empty_persons": [{"id": str(p.id), "pack": pack(p.pack_id), "name": p.name,
                               "merge_target": p.merge_target} for p in self.empty_persons],
            "same_photo_conflicts": [
                {"person": str(c.person_id), "pack": pack(c.pack_id), "image_id": c.image_id,
                 "path": c.path,
                 "faces": [{"id": f.id, "assigned_by": f.assigned_by,
                            "similarity": None if f.similarity is None
                            else round(f.similarity, 3)} for f in c.faces],
                 "unassign": faces_to_unassign(c)} for c in self.conflicts],
            "duplicate_names": [{"pack": pack(d.pack_id), "name": d.name,
                                 "persons": [str(p) for p in d.persons]}
                                for d in self.duplicate_names],
            "missing": {"paths": self.missing_paths, "images": self.missing_images,
                        "first_paths": self.missing_listed},
            "stale_claims": [{"pack": pack(c.pack_id), "image_id": c.image_id,
                              "worker": c.worker, "claimed_at": c.claimed_at}
                             for c in self.stale_claims],
            "stale_runs": [{"id": r.id, "command": r.command, "pid": r.pid,
                            "started_at": r.started_at} for r in self.stale_runs],
            "rejected_inside": [{"face": r.face_id, "person": str(r.person_id),
                                 "pack": pack(r.pack_id), "assigned_by": r.assigned_by}
                                for r in self.rejected_inside],
            "different_inside": [{"faces": list(a.faces), "person": str(a.person_id),
                                  "pack": pack(a.pack_id), "assigned_by": list(a.assigned_by)}
                                 for a in self.apart_inside],
            "same_apart": [{"faces": list(s.faces), "persons": [str(p) for p in s.persons],
                            "pack": pack(s.pack_id)} for s in self.same_apart],
            "unassign_contradicting": {str(p): f for p, f in self.contradicting().items()},
            "findings": self.findings,
            "fixed": self.fixed or None,
        }


def faces_to_unassign(conflict: SamePhotoConflict) -> list[int] | None:
    """The faces to take out of the person so that one face of the photo stays: the
    one placed by hand, else the one most similar to the person's other photos. None
    when that is not safe to decide (two hand-placed faces, or no other photo to
    compare with)."""
    manual = [f for f in conflict.faces if f.assigned_by == "manual"]
    if len(manual) > 1:
        return None
    if manual:
        keep = manual[0]
    else:
        if any(f.similarity is None for f in conflict.faces):
            return None
        keep = max(conflict.faces, key=lambda f: (f.similarity or 0.0, -f.id))
    return [f.id for f in conflict.faces if f.id != keep.id]


def contradicting_faces(rejected: list[RejectedInside],
                        apart: list[ApartInside]) -> dict[uuid.UUID, list[int]]:
    """Person → the automatic faces to take out of it so that no face stays in a person
    it was rejected from and no "different" pair stays together: every rejected
    automatic face, then, pair by pair, the automatic face in the most pairs left
    (newest on ties). Hand-placed faces are never chosen: a pair of two stays (the
    user's call)."""
    out: dict[uuid.UUID, set[int]] = {}
    for r in rejected:
        if r.assigned_by != "manual":
            out.setdefault(r.person_id, set()).add(r.face_id)
    for person in dict.fromkeys(a.person_id for a in apart):
        taken = out.setdefault(person, set())
        left = [a for a in apart if a.person_id == person]
        while True:
            left = [a for a in left if not taken.intersection(a.faces)]
            counts = Counter(f for a in left for f, by in zip(a.faces, a.assigned_by,
                                                               strict=True) if by != "manual")
            if not counts:
                break
            taken.add(max(counts, key=lambda f: (counts[f], f)))
    return {p: sorted(f) for p, f in out.items() if f}


def run_audit(db: Database, settings: Settings, *, fix: bool = False,
              dry_run: bool = False) -> AuditReport:
    """Report the library's inconsistencies; with ``fix``, repair the safe ones (the run
    is recorded; a plain audit reads only). With ``dry_run`` too, ``fixed`` holds what
    the repair would do and nothing is written."""
    report = _findings(db, settings)
    if not fix:
        return report
    if dry_run:
        report.fixed = _would_repair(report)
        return report
    with db.transaction() as conn:  # before this run is recorded (which would close them)
        closed = close_dead_runs(conn, socket.gethostname(), process_alive)
    packs = {p.pack_id for p in report.empty_persons if p.pack_id is not None}
    packs |= {c.pack_id for c in report.conflicts}
    packs |= {r.pack_id for r in report.rejected_inside} | {a.pack_id for a in report.apart_inside}
    # One logged edit under the packs' person locks (never interleaved with clustering):
    # `rbv persons undo` puts back the persons deleted and the faces unassigned.
    with logged_edit(db, sorted(packs), "audit --fix", {"fix": True}) as (conn, edit):
        report.fixed = {"runs_closed": closed, **_repair(conn, settings, report)}
        fixed = report.fixed
        emptied = counted(fixed["empty_persons_deleted"], "empty unnamed person")
        edit.summary = (f"deleted {emptied}, unassigned "
                        f"{counted(fixed['faces_unassigned'], 'face')} of same-photo "
                        f"conflicts and {fixed['contradicting_unassigned']:,} "
                        "in persons they were rejected from or linked apart in")
    return report


def _findings(db: Database, settings: Settings) -> AuditReport:
    with db.connect() as conn:
        paths, images, listed = missing_paths(conn, MISSING_LISTED)
        # A rejected face's "different" links with the person's faces are part of that
        # one finding (settled by the user, or by unassigning the face), not N more.
        rejected = rejected_inside(conn)
        rejected_faces = {(r.person_id, r.face_id) for r in rejected}
        return AuditReport(
            packs=pack_names(conn), empty_persons=empty_persons(conn),
            conflicts=same_photo_conflicts(conn), duplicate_names=duplicate_names(conn),
            missing_paths=paths, missing_images=images, missing_listed=listed,
            stale_claims=dead_claims(conn, None, socket.gethostname(), process_alive,
                                     settings.claim_lease_s),
            stale_runs=dead_runs(conn, socket.gethostname(), process_alive),
            rejected_inside=rejected, same_apart=same_apart(conn), apart_inside=[
                a for a in apart_inside(conn)
                if not rejected_faces.intersection((a.person_id, f) for f in a.faces)])


def _would_repair(report: AuditReport) -> dict[str, int]:
    return {"runs_closed": len(report.stale_runs),
            "claims_released": len(report.stale_claims),
            "empty_persons_deleted": sum(p.name is None and not p.merge_target
                                         and p.pack_id is not None
                                         for p in report.empty_persons),
            "faces_unassigned": sum(len(faces_to_unassign(c) or ()) for c in report.conflicts),
            "contradicting_unassigned": sum(map(len, report.contradicting().values()))}


def _repair(conn: psycopg.Connection, settings: Settings,
            report: AuditReport) -> dict[str, int]:
    fixed = {"claims_released": 0, "empty_persons_deleted": 0, "faces_unassigned": 0,
             "contradicting_unassigned": 0}
    for pack_id in sorted({c.pack_id for c in report.stale_claims}):
        fixed["claims_released"] += release_dead_claims(
            conn, pack_id, socket.gethostname(), process_alive, settings.claim_lease_s)
    fixed["empty_persons_deleted"] = delete_empty_persons(
        conn, [p.id for p in report.empty_persons if p.name is None and not p.merge_target
               and p.pack_id is not None])
    for c in report.conflicts:
        drop = faces_to_unassign(c)
        if drop:
            fixed["faces_unassigned"] += unassign_faces(conn, c.person_id, drop)
    for person, faces in report.contradicting().items():
        fixed["contradicting_unassigned"] += unassign_faces(conn, person, faces)
    return fixed
