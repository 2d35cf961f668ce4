"""``rbv refine``: facesets from the pack's faces, recorded in the database with stable
numbers, then written out as ``OUT/faceset_NNN/`` plus ``refine_manifest.json``.

How facesets relate to persons: refine re-groups the pack's raw faces with its own,
stricter, quality-aware pipeline (:mod:`rbv.cluster.refine`), so a faceset never
depends on how loose ``rbv cluster``'s threshold was. Faces of hidden persons are left
out. Each faceset records the person that holds most of its faces (``facesets.person_id``)
and is named after that person in the manifest. Facesets, their numbers and their faces
live in ``facesets`` / ``faceset_faces``; the output tree is a rendering of those rows.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rbv.cluster.refine import RefineInput, RefineParams, refine, stable_numbers
from rbv.store import Database
from rbv.store.facesets import (
    FaceFacts,
    known_facesets,
    load_face_facts,
    next_faceset_number,
    person_names,
    save_facesets,
)
from rbv.store.pack_lookup import find_pack
from rbv.store.runs import finish_run, start_run

MANIFEST_NAME = "refine_manifest.json"
Progress = Callable[[str], None]


@dataclass
class Faceset:
    """One faceset as the manifest lists it."""

    number: int
    person_id: uuid.UUID | None
    person_name: str | None
    face_ids: list[int]
    image_count: int
    new: bool  # True: this run gave it its number

    @property
    def folder(self) -> str:
        return f"faceset_{self.number:03d}"


@dataclass
class RefineReport:
    pack: str
    params: dict[str, Any]
    counts: dict[str, int]
    facesets: list[Faceset] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    dry_run: bool = False
    run_id: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for fs, row in zip(self.facesets, d["facesets"], strict=True):
            row["folder"] = fs.folder
            row["person_id"] = str(fs.person_id) if fs.person_id else None
        return d


def run_refine(db: Database, pack_name: str | None, params: RefineParams,
               *, dry_run: bool = False, sole_fallback: bool = False,
               progress: Progress = lambda _: None) -> tuple[RefineReport, FaceFacts]:
    """Compute facesets and (unless ``dry_run``) record them; returns the report and the
    faces they were built from (for writing the tree)."""
    started = time.perf_counter()
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        progress("reading faces")
        facts = load_face_facts(conn, pack)
        previous, active = known_facesets(conn, pack.id)
        next_number = next_faceset_number(conn, pack.id)
    progress(f"refining {len(facts):,} faces")
    result = refine(RefineInput(facts.embeddings, facts.image_ids, facts.face_short,
                                facts.blur, facts.det_score), params)
    groups = [set(facts.ids[g].tolist()) for g in result.groups]
    numbers = stable_numbers(groups, previous, next_number)
    owners = [_majority(facts, g) for g in result.groups]
    with db.connect() as conn:
        names = person_names(conn, [p for p in owners if p is not None])
    report = RefineReport(pack.name, params.as_dict(), result.counts, dry_run=dry_run)
    for number, owner, rows in sorted(zip(numbers, owners, result.groups, strict=True),
                                      key=lambda t: t[0]):
        report.facesets.append(Faceset(
            number, owner, names.get(owner) if owner else None,
            sorted(facts.ids[rows].tolist()), len(np.unique(facts.image_ids[rows])),
            new=number not in previous))
    report.retired = sorted(active - set(numbers))
    if not dry_run:
        with db.transaction() as conn:
            report.run_id = start_run(conn, "refine", {"pack": pack.name, **params.as_dict()})
            save_facesets(conn, pack.id, report.run_id,
                          [(f.number, f.person_id, f.face_ids) for f in report.facesets])
            report.seconds = round(time.perf_counter() - started, 3)
            finish_run(conn, report.run_id, "ok", {**result.counts,
                                                   "retired": len(report.retired)})
    report.seconds = round(time.perf_counter() - started, 3)
    return report, facts


def _majority(facts: FaceFacts, rows: np.ndarray) -> uuid.UUID | None:
    votes = Counter(facts.person_ids[i] for i in rows.tolist() if facts.person_ids[i])
    return votes.most_common(1)[0][0] if votes else None
