"""``rbv refine``: facesets from the pack's faces, recorded in the database with stable
numbers, then written out as ``OUT/faceset_NNN/`` plus ``refine_manifest.json``.

How facesets relate to persons: refine re-groups the pack's raw faces with its own,
stricter, quality-aware pipeline (:mod:`rbv.cluster.refine`), so a faceset never
depends on how loose ``rbv cluster``'s threshold was. Faces of hidden persons are left
out. Each faceset records the person that holds most of its faces (``facesets.person_id``)
and is named after that person in the manifest. A named person's faces are one group
from the start (never split by the initial clustering, never merged with another's)
unless ``split_named`` is set: the user has said who they are. A faceset is one person:
never faces that ``rbv cluster``'s evidence rule keeps apart
(:mod:`rbv.jobs.grouping.people`). Facesets, their numbers
and their faces live in ``facesets`` / ``faceset_faces``; the output tree is a rendering
of those rows.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rbv.cluster.refine import RefineInput, RefineParams, refine, stable_numbers
from rbv.errors import ImageUnreadable, writing
from rbv.jobs.grouping.people import evidence_people, named_groups
from rbv.jobs.out_lock import write_atomically, writing_folder
from rbv.jobs.recording import recorded_run
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.pixels import PhotoSource, square_crop
from rbv.store import Database
from rbv.store.queries.facesets import (
    FaceFacts,
    first_paths,
    known_facesets,
    load_face_facts,
    next_faceset_number,
    person_names,
    rejected_pairs,
    save_facesets,
)
from rbv.store.queries.images import photo_files
from rbv.store.queries.pack_lookup import find_pack

MANIFEST_NAME = "refine_manifest.json"
PREVIEW_SIZE = 256
PREVIEW_PAD = 0.5
_FOLDER = re.compile(r"^faceset_\d{3,}$")
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
        return report_dict(self)


@dataclass
class Refined:
    """A refine run and its tree written: the report, and the photos that could not be
    read (their faces left out of the tree)."""

    report: RefineReport
    problems: list[str]


def report_dict(report: Any) -> dict[str, Any]:
    """A report dataclass as JSON-ready data, each faceset with its folder name and its
    person id as text (refine's and discover's reports)."""
    d = asdict(report)
    for fs, row in zip(report.facesets, d["facesets"], strict=True):
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
        rejected = rejected_pairs(conn, pack.id)
        named = person_names(conn, sorted({p for p in facts.person_ids if p}))
        fixed = None if params.split_named else named_groups(facts, named)
        progress(f"grouping {len(facts):,} faces into persons as clustering does")
        people = evidence_people(conn, pack, facts, fixed)
    progress(f"refining {len(facts):,} faces")
    result = refine(RefineInput(facts.embeddings, facts.image_ids, facts.face_short,
                                facts.blur, facts.det_score, fixed, people), params)
    owners, rows_of = owned_groups(facts, result.groups, rejected)
    groups = [set(facts.ids[g].tolist()) for g in rows_of]
    numbers = stable_numbers(groups, previous, next_number)
    with db.connect() as conn:
        names = person_names(conn, [p for p in owners if p is not None])
    report = RefineReport(pack.name, params.as_dict(), result.counts, dry_run=dry_run)
    for number, owner, rows in sorted(zip(numbers, owners, rows_of, strict=True),
                                      key=lambda t: t[0]):
        report.facesets.append(Faceset(
            number, owner, names.get(owner) if owner else None,
            sorted(facts.ids[rows].tolist()), len(np.unique(facts.image_ids[rows])),
            new=number not in previous))
    report.retired = sorted(active - set(numbers))
    if not dry_run:
        with recorded_run(db, "refine", {"pack": pack.name, **params.as_dict()}) as run:
            assert run.id is not None
            report.run_id = run.id
            with db.transaction() as conn:
                save_facesets(conn, pack.id, run.id,
                              [(f.number, f.person_id, f.face_ids) for f in report.facesets])
            run.counts = {**result.counts, "retired": len(report.retired)}
    report.seconds = round(time.perf_counter() - started, 3)
    return report, facts


def owned_groups(facts: FaceFacts, groups: list[np.ndarray],
                 rejected: set[tuple[int, uuid.UUID]]
                 ) -> tuple[list[uuid.UUID | None], list[np.ndarray]]:
    """Each group's owner (the person holding most of its faces) and its rows without
    the faces the user rejected from that owner ("not this person" holds however close
    the embedding is)."""
    owners = [_majority(facts, g) for g in groups]
    rows = [np.array([r for r in g.tolist() if (int(facts.ids[r]), owner) not in rejected],
                     np.int64) for g, owner in zip(groups, owners, strict=True)]
    return owners, rows


def _majority(facts: FaceFacts, rows: np.ndarray) -> uuid.UUID | None:
    votes = Counter(facts.person_ids[i] for i in rows.tolist() if facts.person_ids[i])
    return votes.most_common(1)[0][0] if votes else None


def write_tree(db: Database, report: RefineReport, facts: FaceFacts, out: Path, *,
               crops: bool = True, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               advance: Callable[[int], None] = lambda n: None) -> list[str]:
    """Write each faceset's folder (crops unless ``crops`` is False) and the manifest;
    folders of facesets that are no longer active are removed. Returns problems (photos
    that could not be read; their crops are missing, the manifest still lists them)."""
    with writing_folder(out, "refine"):
        return _write_tree(db, report, facts, out, crops=crops, max_pixels=max_pixels,
                           advance=advance)


def _write_tree(db: Database, report: RefineReport, facts: FaceFacts, out: Path, *,
                crops: bool, max_pixels: int, advance: Callable[[int], None]) -> list[str]:
    active = {fs.folder for fs in report.facesets}
    for old in out.iterdir():
        if old.is_dir() and _FOLDER.match(old.name) and old.name not in active:
            shutil.rmtree(old)
    row_of = {int(f): i for i, f in enumerate(facts.ids.tolist())}
    problems: list[str] = []
    with db.connect() as conn:
        paths = first_paths(conn, facts.image_ids.tolist())
        source = PhotoSource(photo_files(conn), max_pixels)
        sets: list[dict[str, Any]] = []
        for fs in report.facesets:
            folder = out / fs.folder
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            rows = sorted((row_of[f] for f in fs.face_ids),
                          key=lambda r: (int(facts.image_ids[r]), int(facts.ids[r])))
            faces = []
            for r in rows:
                face_id, image_id = int(facts.ids[r]), int(facts.image_ids[r])
                entry = {"id": face_id, "image_id": image_id, "path": paths.get(image_id),
                         "bbox": [round(float(v), 1) for v in facts.boxes[r]],
                         "det_score": round(float(facts.det_score[r]), 4),
                         "face_short": round(float(facts.face_short[r]), 1),
                         "blur": None if np.isnan(facts.blur[r])
                         else round(float(facts.blur[r]), 2)}
                if crops:
                    try:
                        image = source.load(image_id)
                        crop = square_crop(image, tuple(facts.boxes[r]), PREVIEW_PAD,  # type: ignore[arg-type]
                                           PREVIEW_SIZE)
                        name = f"face_{face_id}.jpg"
                        with writing(folder / name):
                            Image.fromarray(crop).save(folder / name, quality=92)
                        entry["file"] = f"{fs.folder}/{name}"
                    except ImageUnreadable as exc:
                        problems.append(str(exc))
                faces.append(entry)
                advance(1)
            sets.append({"number": fs.number, "folder": fs.folder,
                         "person_id": str(fs.person_id) if fs.person_id else None,
                         "name": fs.person_name, "images": fs.image_count,
                         "new": fs.new, "faces": faces})
    manifest = {"pack": report.pack, "run_id": report.run_id, "dry_run": report.dry_run,
                "params": report.params, "counts": report.counts,
                "retired": report.retired, "facesets": sets}
    write_atomically(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    return problems
