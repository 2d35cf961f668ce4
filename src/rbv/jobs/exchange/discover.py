"""``rbv discover FOLDER OUT``: new facesets from a folder of mixed photos, beside the
known ones, which are left exactly as they are.

The faces of the photos under FOLDER (a photo counts when any of its paths is there,
so a byte-identical copy indexed elsewhere counts too) minus those already in an active
faceset, at least ``covered_similarity`` (cosine) similar to one's centroid, or of a
named person who has a faceset already (a named person is one faceset, unless
``split_named``) go through refine's own pipeline (:func:`rbv.cluster.refine.refine`:
initial clusters (at the pack's calibrated average-linkage similarity where it has one,
else refine's 0.45), centroid merge,
quality gate, outlier rejection, size filter; a named person stays one group,
"not this person" holds, and no set holds two of the persons ``rbv cluster``'s evidence
rule makes of the library). The sets that survive get numbers past the highest the pack
ever used, are written under OUT by export-swap's writer (the folders and files of
other facesets there are not touched; OUT/manifest.json lists old and new), and are
recorded in ``facesets`` with the folder they came from (``discovered_from``) and a
``provenance.json`` in each new folder.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.centroids import centroid, nearest_centroid
from rbv.cluster.defaults import Method
from rbv.cluster.knn import normalize
from rbv.cluster.refine import RefineInput, RefineParams, refine
from rbv.errors import ConfigError, printable
from rbv.faces.types import FaceAnalyzer
from rbv.jobs.exchange.export_swap import SwapParams, export_sets
from rbv.jobs.exchange.import_folders import images_under
from rbv.jobs.grouping.people import evidence_people, named_groups
from rbv.jobs.grouping.refine import owned_groups, report_dict
from rbv.jobs.out_lock import write_atomically, writing_folder
from rbv.jobs.recording import recorded_run
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.store import Database
from rbv.store.queries.facesets import (
    FaceFacts,
    add_facesets,
    known_facesets,
    load_face_facts,
    named_faceset_owners,
    next_faceset_number,
    person_names,
    rejected_pairs,
)
from rbv.store.queries.images import scanned_paths
from rbv.store.queries.pack_lookup import find_pack, pack_files, pack_settings

PROVENANCE_NAME = "provenance.json"


@dataclass(frozen=True)
class DiscoverParams:
    # a face at least this similar to a known faceset's centroid is of that identity
    covered_similarity: float = 0.55
    refine: RefineParams = field(default_factory=RefineParams)
    initial_given: bool = True  # False: the pack's calibration may set the initial one


@dataclass
class NewFaceset:
    number: int
    person_id: uuid.UUID | None
    person_name: str | None
    face_ids: list[int]  # the survivors of refine's gates
    image_count: int
    written: int | None = None  # PNGs export-swap wrote (None: dry run)

    @property
    def folder(self) -> str:
        return f"faceset_{self.number:03d}"


@dataclass
class DiscoverReport:
    pack: str
    folder: str
    params: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    clusters: list[dict[str, int]] = field(default_factory=list)
    facesets: list[NewFaceset] = field(default_factory=list)
    dry_run: bool = False
    run_id: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return report_dict(self)


def discover(db: Database, pack_name: str | None, folder: Path, out: Path,
             analyzer: FaceAnalyzer | None, params: DiscoverParams, swap: SwapParams, *,
             dry_run: bool = False, sole_fallback: bool = False,
             max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
             advance: Callable[[int], None] = lambda n: None) -> DiscoverReport:
    """Find, record and export the new facesets of ``folder`` (see the module doc); a dry
    run only reports them. The photos must be indexed already (the CLI indexes them)."""
    started = time.perf_counter()
    if not folder.is_dir():
        raise ConfigError(f"{printable(str(folder))} is not a folder; pass the folder of "
                          "mixed photos")
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        images = images_under(scanned_paths(conn, pack.id), folder)
        every = load_face_facts(conn, pack)
        previous, active = known_facesets(conn, pack.id)
        next_number = next_faceset_number(conn, pack.id)
        rejected = rejected_pairs(conn, pack.id)
        with_sets = (set() if params.refine.split_named
                     else named_faceset_owners(conn, pack.id))
        named = person_names(conn, sorted({p for p in every.person_ids if p}, key=str))
        refine_params, initial_source = _initial(params, pack_settings(conn, pack.id),
                                                 pack_files(conn, pack.id))
    report = DiscoverReport(pack.name, printable(str(folder)),
                            {"covered_similarity": params.covered_similarity,
                             **refine_params.as_dict(),
                             "initial_source": initial_source}, dry_run=dry_run)
    faces = every.take(np.flatnonzero(np.isin(every.image_ids, list(images))))
    rest = _unknown(every, faces, [previous[n] for n in sorted(active)],
                    params.covered_similarity, with_sets, report.counts)
    report.counts["photos"] = len(images)
    fixed = None if params.refine.split_named else named_groups(every, named)
    with db.connect() as conn:  # the persons of the whole library, as refine sees them
        person_of = dict(zip(every.ids.tolist(),
                             evidence_people(conn, pack, every, fixed).tolist(), strict=True))
    result = refine(RefineInput(rest.embeddings, rest.image_ids, rest.face_short, rest.blur,
                                rest.det_score,
                                None if fixed is None else named_groups(rest, named),
                                np.array([person_of[f] for f in rest.ids.tolist()], np.int64)),
                    refine_params)
    report.counts.update({k: v for k, v in result.counts.items() if k != "faces"})
    report.clusters = result.clusters
    owners, rows_of = owned_groups(rest, result.groups, rejected)
    for number, (owner, rows) in enumerate(zip(owners, rows_of, strict=True), next_number):
        report.facesets.append(NewFaceset(
            number, owner, named.get(owner) if owner else None,
            sorted(rest.ids[rows].tolist()), len(np.unique(rest.image_ids[rows]))))
    if not dry_run and report.facesets:
        if analyzer is None:
            raise ConfigError("discover needs a face analyzer to export the new facesets")
        _write(db, report, pack.id, out, analyzer, swap, max_pixels, advance)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _initial(params: DiscoverParams, stored: dict[str, Any], files: dict[str, str]
             ) -> tuple[RefineParams, str]:
    """Refine's parameters with the initial clustering similarity: the one given, else
    the pack's calibrated average-linkage threshold (stored by `rbv eval --store`, or
    rbv's built-in one for the recognizer), else refine's default."""
    if params.initial_given:
        return params.refine, "given"
    setting = resolve_setting(stored, files, Method.agglomerative)
    fallback = resolve_setting({}, {}, Method.agglomerative)
    if setting.source == fallback.source or setting.threshold is None:
        return params.refine, "refine's default"
    return replace(params.refine, initial_similarity=setting.threshold), (
        f"agglomerative similarity {setting.threshold:g}, {setting.source}")


def _unknown(every: FaceFacts, faces: FaceFacts, known: list[set[int]],
             covered_similarity: float, owners: set[uuid.UUID], counts: dict[str, int]
             ) -> FaceFacts:
    """``faces`` without those in a known faceset, at least ``covered_similarity`` similar
    to one's centroid, or of a named person in ``owners`` (who has a faceset)."""
    counts["faces"] = len(faces)
    in_sets = np.isin(faces.ids, list(set().union(*known)))
    counts["in_facesets"] = int(in_sets.sum())
    near = np.zeros(len(faces), bool)
    row_of = {int(f): i for i, f in enumerate(every.ids.tolist())}
    rows = [np.array([row_of[f] for f in members if f in row_of], np.int64) for members in known]
    rows = [r for r in rows if len(r)]
    if rows and len(faces):
        x = normalize(every.embeddings)
        centres = np.stack([centroid(x[r]) for r in rows])
        _, similarity = nearest_centroid(normalize(faces.embeddings), centres)
        near = ~in_sets & (similarity >= covered_similarity)
    counts["covered"] = int(near.sum())
    named = ~in_sets & ~near & np.array([p in owners for p in faces.person_ids], bool)
    counts["named_with_facesets"] = int(named.sum())
    return faces.take(np.flatnonzero(~in_sets & ~near & ~named))


def _write(db: Database, report: DiscoverReport, pack_id: int, out: Path,
           analyzer: FaceAnalyzer, swap: SwapParams, max_pixels: int,
           advance: Callable[[int], None]) -> None:
    """Export the new sets, then record them (a run killed before the record leaves
    them unrecorded, so the next run finds and writes them again with the same numbers)."""
    manifest = {"pack": report.pack, "facesets": [
        {"folder": fs.folder, "name": fs.person_name, "person_id": fs.person_id,
         "faces": [{"id": f} for f in fs.face_ids]} for fs in report.facesets]}
    parameters = {"pack": report.pack, "folder": report.folder, "out": str(out),
                  **report.params, **{f"swap_{k}": v for k, v in asdict(swap).items()}}
    with writing_folder(out, "discover"), recorded_run(db, "discover", parameters) as run:
        report.run_id = run.id
        # where the sets came from, as the runs table names the command: data, not a line
        results = export_sets(db, manifest, f"discover {report.folder}", out, analyzer,
                              swap, max_pixels=max_pixels, advance=advance, keep_others=True)
        for fs, result in zip(report.facesets, results, strict=True):
            fs.written = len(result.written)
            write_atomically(out / fs.folder / PROVENANCE_NAME, json.dumps({
                "faceset": fs.folder, "discovered_from": report.folder, "run_id": run.id,
                "pack": report.pack, "faces": len(fs.face_ids), "params": report.params},
                indent=2) + "\n")
        with db.transaction() as conn:
            add_facesets(conn, pack_id, run.id,
                         [(f.number, f.person_id, f.face_ids) for f in report.facesets],
                         report.folder)
        run.counts = {"facesets": len(report.facesets),
                      "written": sum(f.written or 0 for f in report.facesets),
                      "covered": report.counts.get("covered", 0)}
