"""Manual person edits as transactions under the pack's lock (``rbv persons …``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import psycopg

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.constraints import Constraints
from rbv.cluster.eras import Era, EraParams, split_eras
from rbv.cluster.methods import DEFAULT_THRESHOLD, Method, cluster_embeddings
from rbv.errors import ConfigError, PersonNotFound
from rbv.store import persons as store
from rbv.store.assignments import load_faces
from rbv.store.connection import Database
from rbv.store.faces import pack_of_face
from rbv.store.locks import person_lock
from rbv.store.pack_lookup import pack_files, pack_row, pack_settings

SPLIT_STEP = 0.1
"""``persons split`` re-clusters this much stricter than the pack's threshold."""


@contextmanager
def editing(db: Database, ref: str, *,
            dry_run: bool = False) -> Iterator[tuple[psycopg.Connection, uuid.UUID]]:
    """A transaction on the person ``ref`` resolves to, under its pack's lock; with
    ``dry_run`` it is rolled back, whatever it did."""
    with db.connect() as conn:
        person = store.resolve_person(conn, ref)
        pack_id = store.pack_of(conn, person)
    with person_lock(db, pack_id, f"#{pack_id}"), db.transaction() as conn, \
            conn.transaction(force_rollback=dry_run):
        yield conn, person


def _refuse_photo_clashes(conn: psycopg.Connection, target: uuid.UUID | None,
                          incoming: Sequence[int]) -> None:
    """A person has at most one face per photo: an edit that would give it two is
    refused, naming the faces, before anything changes."""
    clashes = store.photo_clashes(conn, target, incoming)
    if clashes:
        shown = "; ".join(", ".join(map(str, c)) for c in clashes[:5])
        raise ConfigError(
            f"faces {shown} would be in one person but are of one photo (a person has one "
            "face per photo); move the wrong face elsewhere first (`rbv persons move FACE`), "
            "or mark it with `rbv persons not-this-person`")


def name(db: Database, ref: str, new_name: str, *, force: bool = False) -> uuid.UUID:
    """Name a person. A name another person of the pack has already is refused (the two
    are probably one person: the message gives the merge) unless ``force``."""
    with editing(db, ref) as (conn, person):
        other = store.person_named(conn, store.pack_of(conn, person), new_name.strip(),
                                   other_than=person)
        if other is not None and not force:
            raise ConfigError(
                f"person {other} is already named {store.name_of(conn, other)!r}; if they are "
                f"one person run `rbv persons merge {other} {person}`, or pass --force to "
                "give both the name")
        store.set_name(conn, person, new_name)
    return person


def merge(db: Database, target_ref: str, source_refs: Sequence[str], *,
          dry_run: bool = False) -> tuple[uuid.UUID, int]:
    """Merge persons into the target; refused when two of the faces would share a
    photo. Returns the target and the faces moved (would move, with ``dry_run``)."""
    with editing(db, target_ref, dry_run=dry_run) as (conn, target):
        sources = [store.resolve_person(conn, r) for r in source_refs]
        if target in sources:
            raise ConfigError(f"cannot merge person {target} into itself; name other persons "
                              "to merge into it")
        _refuse_photo_clashes(conn, target, store.faces_of_persons(conn, sources))
        moved = store.merge_persons(conn, target, sources)
    return target, moved


def move(db: Database, face_ids: Sequence[int], target_ref: str | None,
         pack_name: str | None = None, *, dry_run: bool = False) -> tuple[uuid.UUID | None, int]:
    """Move faces to a person, or to a new person when ``target_ref`` is None (with
    ``dry_run``, none is created: the person returned is None). Refused when two faces
    would share a photo."""
    with db.connect() as conn:
        _require_faces(conn, face_ids)
    if target_ref is None:
        with db.connect() as conn:
            pack_id = pack_of_face(conn, face_ids[0])
        if pack_id is None:
            raise PersonNotFound(f"no face with id {face_ids[0]}")
        with person_lock(db, pack_id, f"#{pack_id}"), db.transaction() as conn, \
                conn.transaction(force_rollback=dry_run):
            _refuse_photo_clashes(conn, None, face_ids)
            person = store.new_person(conn, pack_id)
            return None if dry_run else person, store.move_faces(conn, face_ids, person)
    with editing(db, target_ref, dry_run=dry_run) as (conn, person):
        _refuse_photo_clashes(conn, person, face_ids)
        return person, store.move_faces(conn, face_ids, person)


def reject(db: Database, ref: str, face_ids: Sequence[int]) -> tuple[uuid.UUID, int]:
    with editing(db, ref) as (conn, person):
        _require_faces(conn, face_ids)
        return person, store.reject_faces(conn, person, face_ids)


def _require_faces(conn: psycopg.Connection, face_ids: Sequence[int]) -> None:
    """Nothing is changed when a face id is unknown (a typo must not half-apply)."""
    missing = store.missing_faces(conn, face_ids)
    if missing:
        raise PersonNotFound(f"no face with id {', '.join(map(str, missing[:5]))} in this "
                             "database; see `rbv persons show PERSON` for face ids")


def hide(db: Database, refs: Sequence[str], hidden: bool) -> int:
    count = 0
    for ref in refs:
        with editing(db, ref) as (conn, person):
            count += store.set_hidden(conn, [person], hidden)
    return count


@dataclass(frozen=True)
class SplitResult:
    person: uuid.UUID
    kept: int
    new_persons: list[uuid.UUID]
    sizes: list[int]
    threshold: float


def split(db: Database, ref: str, threshold: float | None = None,
          method: Method = Method.agglomerative, *, dry_run: bool = False) -> SplitResult:
    """Re-cluster one person more strictly; the largest group keeps the person (and its
    name), the others become new persons. The result is manual, so it stays. With
    ``dry_run`` nothing changes: ``sizes`` tells the groups, ``new_persons`` is empty."""
    with editing(db, ref, dry_run=dry_run) as (conn, person):
        pack_id = store.pack_of(conn, person)
        pack = pack_row(conn, pack_id)
        if threshold is None:
            base = resolve_setting(pack_settings(conn, pack_id), pack_files(conn, pack_id),
                                   Method.connected).threshold
            threshold = min(0.95, (base or DEFAULT_THRESHOLD) + SPLIT_STEP)
        faces = load_faces(conn, pack, person=person)
        if len(faces) < 2:
            return SplitResult(person, len(faces), [], [len(faces)], threshold)
        constraints = Constraints.build(len(faces), image_ids=faces.image_ids)
        labels = cluster_embeddings(faces.embeddings, method, threshold, constraints)
        sizes = np.bincount(labels)
        order = np.argsort(-sizes, kind="stable")
        groups = [faces.ids[labels == g].tolist() for g in order.tolist()]
        created = (store.assign_split(conn, groups, person, pack_id)
                   if len(groups) > 1 and not dry_run else [])
        return SplitResult(person, len(groups[0]), created, sizes[order].tolist(), threshold)


@dataclass(frozen=True)
class EraSplit:
    person: uuid.UUID
    face_ids: list[int]
    years: list[float | None]  # row-aligned with face_ids
    eras: list[Era]
    new_persons: list[uuid.UUID]


def split_person_eras(db: Database, ref: str, params: EraParams, *,
                      apply: bool = False) -> EraSplit:
    """Find a person's age eras by EXIF year; with ``apply``, every anchored era after
    the first becomes a new person named "NAME (YEAR–YEAR)" (thin fragments stay)."""
    with editing(db, ref) as (conn, person):
        pack_id = store.pack_of(conn, person)
        faces = load_faces(conn, pack_row(conn, pack_id), person=person)
        taken = store.face_years(conn, person)
        years = np.array([np.nan if taken.get(f) is None else taken[f]
                          for f in faces.ids.tolist()], np.float64)
        found = split_eras(faces.embeddings, years, faces.image_ids, params)
        anchored = [e for e in found if not e.thin]
        created: list[uuid.UUID] = []
        if apply and len(anchored) > 1:
            thin_rows = [r for e in found if e.thin for r in e.rows]
            groups = [[int(faces.ids[r]) for r in anchored[0].rows + thin_rows]]
            groups += [[int(faces.ids[r]) for r in e.rows] for e in anchored[1:]]
            created = store.assign_split(conn, groups, person, pack_id)
            base = store.name_of(conn, person) or "person"
            for era, new in zip(anchored[1:], created, strict=True):
                label = f"{era.first_year}–{era.last_year}" if era.first_year else "era"
                store.set_name(conn, new, f"{base} ({label})")
    return EraSplit(person, faces.ids.tolist(),
                    [None if np.isnan(y) else float(y) for y in years], found, created)
