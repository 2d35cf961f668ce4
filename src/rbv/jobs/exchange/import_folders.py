"""Importing hand-sorted folders: one folder per person, named after the person.

Each identity folder's faces give a centroid in two passes (faces at least 0.45 similar
to the mean of all faces, then at least 0.55 to those faces' mean), so bystanders and
other people in the folder's group photos drop out; per photo only the face nearest the
centroid is kept. The kept faces go to the person with the folder's name (created with
``source = 'import'`` when there is none), marked manual so no re-cluster undoes them.
Faces of "mixed" photos (any folder or file, e.g. group shots) are routed to the
nearest identity at least ``route_similarity`` alike — so a photo of two known people
lands in both. Thresholds are cosine similarities (higher = more alike), as everywhere
in rbv.
Re-runs find the persons by name and change nothing that is already in place. A run
is one logged edit (:func:`~rbv.jobs.persons.edit_log.logged_edit`): ``rbv persons
history`` lists it and ``rbv persons undo`` takes it back whole.

A dry run is the run itself, rolled back: the same code places the same faces and
creates the same persons, so what it reports is what the real run then does (given the
same indexed photos: :func:`photos_to_index` says how many the real run would index
first, which no dry run can include).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.centroids import (
    nearest_centroid,
    nearest_per_image,
    recentred_members,
    similarities,
)
from rbv.cluster.knn import normalize
from rbv.config import Settings
from rbv.errors import ConfigError, Remedy, printable
from rbv.face_rows import PackFaces
from rbv.formats.names import PersonName, person_name
from rbv.jobs.library.catalogue import run_catalogue
from rbv.jobs.persons.edit_log import logged_edit
from rbv.store import Database
from rbv.store.queries.assignments import delete_empty_persons
from rbv.store.queries.contradictions import refused_placements
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.images import scanned_paths
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import PackRow
from rbv.store.queries.paths import path_bytes, prefix_range
from rbv.store.queries.person_lookup import person_named
from rbv.store.queries.persons import new_person, photo_clashes, place_faces, set_name
from rbv.store.queries.scans import unscanned_within
from rbv.words import counted


@dataclass(frozen=True)
class ImportParams:
    """Cosine similarities: a folder's faces at least ``first_pass_similarity`` alike to
    the mean of them all, then at least ``second_pass_similarity`` to the mean of those,
    are its person's; a mixed photo's face joins the nearest person at least
    ``route_similarity`` alike."""

    first_pass_similarity: float = 0.45
    second_pass_similarity: float = 0.55
    route_similarity: float = 0.55


@dataclass
class IdentityResult:
    name: str
    folder: str
    photos: int = 0
    faces: int = 0
    after_first_pass: int = 0
    kept: int = 0
    assigned: int = 0  # faces that changed person in this run
    person_id: str | None = None  # None for a person a dry run would create
    created: bool = False
    note: str = ""  # what was taken out of the folder's name ("" when nothing)


@dataclass
class Routed:
    face_id: int
    path: str
    identity: str
    similarity: float  # to the identity's centroid


@dataclass
class Skipped:
    """A face not given to a person: the person has another face of its photo already
    (``photo_has``), or an earlier decision says otherwise (``reason``)."""

    face_id: int
    path: str
    identity: str
    photo_has: list[int]  # the person's faces of that photo
    reason: str = ""  # the earlier decision that stands (placed by hand, rejected, links)

    @property
    def remedies(self) -> tuple[Remedy, ...]:
        """What gives the face to the folder's person anyway, one after the other: with
        the photo's face there taken out first, when it has one."""
        give = Remedy("move", {"faces": [self.face_id], "to": self.identity},
                      "puts it there anyway (overriding it, said)" if self.reason else "")
        if self.reason or not self.photo_has:
            return (give,)
        first = self.photo_has[0]
        return (Remedy("move", {"faces": [first], "to": None}, f"takes face {first} out"),
                give)


@dataclass
class ImportReport:
    pack: str
    identities: list[IdentityResult] = field(default_factory=list)
    routed: list[Routed] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unrouted_faces: int = 0
    removed_persons: int = 0  # automatic persons the import left without faces, deleted
    to_index: int = 0  # photos the real run indexes first, left out of a dry run
    dry_run: bool = False
    edit_id: int | None = None  # its entry in the edit log (None: dry run, or no change)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def identity_folders(roots: Sequence[Path]) -> list[Path]:
    """The identity folders: the sub-folders of each root (a root without sub-folders is
    itself one identity)."""
    out: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"{root} is not a folder; pass folders whose sub-folders are "
                              "named after persons")
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        out.extend(subs or [root])
    for folder in out:  # the names a person may have (the rule `rbv persons name` keeps)
        folder_name(folder)
    return out


def folder_name(folder: Path) -> PersonName:
    """The name of the person ``folder`` holds (:func:`rbv.formats.names.person_name`); refused
    (:class:`ConfigError`) when a person cannot be called so."""
    try:
        return person_name(folder.name)
    except ConfigError as exc:
        raise ConfigError(f"{printable(str(folder))}: a folder's name is its person's name, "
                          f"and {exc}; rename the folder") from None


def import_folders(db: Database, pack_name: str | None, roots: Sequence[Path],
                   mixed: Sequence[Path] = (), params: ImportParams | None = None, *,
                   dry_run: bool = False, sole_fallback: bool = False,
                   indexed_by: Settings | None = None) -> ImportReport:
    """Create or update one named person per identity folder and route mixed photos.
    The photos must be indexed already (the CLI indexes them first). ``dry_run`` makes
    the same changes and rolls them back; ``indexed_by``: the settings the real run
    indexes the folders with first, so that a dry run counts what that would add
    (``to_index``)."""
    params = params or ImportParams()
    folders = identity_folders(roots)
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
    report = ImportReport(pack.name, dry_run=dry_run)
    if dry_run and indexed_by is not None:
        report.to_index = photos_to_index(db, indexed_by, pack, [*roots, *mixed])
    parameters = {"pack": pack.name, "roots": [str(r) for r in roots],
                  "mixed": [str(m) for m in mixed], **asdict(params)}
    with logged_edit(db, pack.id, "import-folders", parameters,
                     dry_run=dry_run) as (conn, edit):
        faces = load_faces(conn, pack)
        x = normalize(faces.embeddings)
        path_rows = scanned_paths(conn, pack.id)
        centroids: list[tuple[IdentityResult, uuid.UUID, NDArray[np.float32]]] = []
        for folder in folders:
            name = folder_name(folder)
            result = IdentityResult(name.text, str(folder), note=name.note)
            images = images_under(path_rows, folder)
            result.photos = len(images)
            rows = np.flatnonzero(np.isin(faces.image_ids, list(images)))
            result.faces = len(rows)
            report.identities.append(result)
            if len(rows) == 0:
                continue
            (one, two), centre = recentred_members(
                x[rows], [params.first_pass_similarity, params.second_pass_similarity],
                nested=True)
            result.after_first_pass = int(one.sum())
            similarity = np.full(len(faces), -np.inf, np.float32)
            similarity[rows] = similarities(x[rows], centre)
            kept = nearest_per_image(rows[two], faces.image_ids, similarity)
            result.kept = len(kept)
            if not len(kept):
                continue
            person, result.created = _named_person(conn, pack, result.name)
            # A person a dry run creates is rolled back: the real run's gets another id.
            result.person_id = None if dry_run and result.created else str(person)
            result.assigned = _place(conn, faces.ids[kept].tolist(), person, result.name,
                                     faces, path_rows, report)
            centroids.append((result, person, centre))
        if mixed and centroids:
            _route(conn, faces, x, path_rows, mixed, centroids, params.route_similarity,
                   report)
        report.removed_persons = delete_empty_persons(conn, pack)
        edit.summary = import_summary(report)
        edit.counts = {"identities": len(report.identities),
                       "assigned": sum(i.assigned for i in report.identities),
                       "routed": len(report.routed)}
    report.edit_id = edit.logged_id
    return report


def import_summary(report: ImportReport) -> str:
    """What the import did, in words (its line in ``rbv persons history``)."""
    named = [i for i in report.identities if i.kept]
    created = sum(i.created for i in named)
    placed = sum(i.assigned for i in report.identities)
    words = [f"{counted(len(named), 'person')} from folders ({created} new)",
             f"{counted(placed, 'face')} placed by hand"]
    if report.routed:
        words.append(f"{len(report.routed):,} of them from mixed photos")
    if report.skipped:
        words.append(f"{len(report.skipped):,} left where earlier decisions keep them")
    if report.removed_persons:
        words.append(f"{counted(report.removed_persons, 'emptied automatic person')} removed")
    return ", ".join(words)


def photos_to_index(db: Database, settings: Settings, pack: PackRow,
                    targets: Sequence[Path]) -> int:
    """Photos under ``targets`` that indexing them would add to what an import sees:
    new or changed files (found by ``stat``, as ``rbv index --dry-run``) and catalogued
    photos the pack has not scanned yet. Reads only."""
    files = run_catalogue(db, settings, targets, dry_run=True).new_images
    ranges = []
    for target in targets:
        where = _as_indexed(target)
        exact = path_bytes(where)
        ranges.append(prefix_range(where) if target.is_dir() else (exact, exact + b"\0"))
    with db.connect() as conn:
        return files + unscanned_within(conn, pack.id, ranges, settings.max_scan_attempts)


def _as_indexed(path: Path) -> str:
    """``path`` as ``rbv index`` stores it: absolute, symlinks kept as the user gave
    them (resolving them would miss every photo of a library under a symlink)."""
    return os.path.abspath(path.expanduser())


def images_under(path_rows: Sequence[tuple[int, str]], folder: Path) -> set[int]:
    """Images with a path under ``folder`` (any of their paths: a byte-identical copy
    elsewhere is the same image)."""
    prefix = _as_indexed(folder).rstrip("/") + "/"
    return {int(i) for i, p in path_rows if p.startswith(prefix) or p == prefix[:-1]}


def _place(conn: psycopg.Connection, face_ids: list[int], person: uuid.UUID, name: str,
           faces: PackFaces, path_rows: Sequence[tuple[int, str]],
           report: ImportReport) -> int:
    """Place faces in ``person``, except a face of a photo the person has another face
    of (a person has one face per photo, and the one it has stays: it may have been put
    there by hand) and a face an earlier decision keeps out (placed by hand elsewhere,
    rejected from the person, linked apart from its faces: the import names no face, so
    it overrides no decision); those go to ``report.skipped``. Returns faces that
    changed."""
    skip: set[int] = set()

    def path_of(face: int) -> str:
        image = int(faces.image_ids[np.flatnonzero(faces.ids == face)[0]])
        return next((p for i, p in path_rows if i == image), "")

    for group in photo_clashes(conn, person, face_ids):
        incoming = [f for f in group if f in face_ids]
        skip.update(incoming)
        path = path_of(incoming[0])
        report.skipped.extend(Skipped(f, path, name, [g for g in group if g not in incoming])
                              for f in incoming)
    left = [f for f in face_ids if f not in skip]
    for face, reason in sorted(refused_placements(conn, left, person).items()):
        skip.add(face)
        report.skipped.append(Skipped(face, path_of(face), name, [], reason))
    return place_faces(conn, [f for f in face_ids if f not in skip], person)


def _named_person(conn: psycopg.Connection, pack: PackRow, name: str) -> tuple[uuid.UUID, bool]:
    person = person_named(conn, pack.id, name)
    if person is not None:
        return person, False
    person = new_person(conn, pack.id, source="import")
    set_name(conn, person, name)
    return person, True


def _route(conn: psycopg.Connection, faces: PackFaces, x: NDArray[np.float32],
           path_rows: Sequence[tuple[int, str]], mixed: Sequence[Path],
           centroids: list[tuple[IdentityResult, uuid.UUID, NDArray[np.float32]]],
           min_similarity: float, report: ImportReport) -> None:
    wanted: dict[int, str] = {}
    for target in mixed:
        if target.is_dir():
            for image in images_under(path_rows, target):
                wanted[image] = next(p for i, p in path_rows if i == image)
        else:
            given = _as_indexed(target)
            for i, p in path_rows:
                if p == given:
                    wanted[int(i)] = p
    rows = np.flatnonzero(np.isin(faces.image_ids, list(wanted)))
    if len(rows) == 0:
        return
    nearest, sim = nearest_centroid(x[rows], np.stack([c for _, _, c in centroids]))
    taken: set[tuple[int, int]] = set()  # (image, identity): one face per person per photo
    order = np.argsort(-sim, kind="stable")  # the closest first
    for k in order.tolist():
        j = int(nearest[k])
        r = int(rows[k])
        image = int(faces.image_ids[r])
        if sim[k] < min_similarity or (image, j) in taken:
            report.unrouted_faces += 1
            continue
        taken.add((image, j))
        result, person, _ = centroids[j]
        skipped = len(report.skipped)
        result.assigned += _place(conn, [int(faces.ids[r])], person, result.name, faces,
                                  path_rows, report)
        if len(report.skipped) == skipped:
            report.routed.append(Routed(int(faces.ids[r]), wanted[image], result.name,
                                        round(float(sim[k]), 4)))
