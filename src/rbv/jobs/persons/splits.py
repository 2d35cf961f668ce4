"""Splitting a person (``rbv persons split``): in two by review's two-people test, by a
re-cluster of its faces, or by age era (``rbv era``), one logged edit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rbv.cluster.defaults import Method
from rbv.errors import ConfigError
from rbv.jobs.persons.person_edit import editing
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import persons as store
from rbv.store.queries.person_lookup import name_of
from rbv.store.server.connection import Database

if TYPE_CHECKING:
    from rbv.cluster.eras import Era, EraParams
    from rbv.jobs.persons.evidence import Halves


TWO_PEOPLE_TEST = "review's two-people test"
"""The default split, in words: the decision ``rbv persons review`` reports."""


@dataclass(frozen=True)
class SplitResult:
    person: uuid.UUID
    kept: int
    new_persons: list[uuid.UUID]
    sizes: list[int]
    threshold: float | None  # the threshold methods' similarity; None otherwise
    setting: str  # how it split, in words
    halves: Halves | None = None  # the two-people test's partition and verdict
    edit_id: int | None = None  # its entry in the edit log (None: dry run, or whole)


def split(db: Database, person: uuid.UUID, threshold: float | None = None,
          method: Method | None = None, *, dry_run: bool = False,
          shown: tuple[Sequence[int], Sequence[int]] | None = None,
          page: Shown | None = None) -> SplitResult:
    """Split one person. By default by review's two-people test (:func:`rbv.jobs.persons
    .evidence.halves`: the person's best two-way partition, faces linked ``same`` in one
    half): when it says two people, the smaller half becomes a new person, else the
    person stays whole, so what ``rbv persons review`` says is what happens. ``shown``
    (the halves a page showed: kept, moved face ids): refused unless the test finds
    exactly those, so a person changed since is never split blind. ``threshold``/
    ``method``: re-cluster the person's faces with that method instead (``threshold``
    alone: agglomerative); the largest group keeps the person. Either way the person
    keeps its id and name, every face of the split is placed by hand (every re-cluster
    keeps it) and the edit is logged. With ``dry_run`` nothing changes: ``sizes`` tells
    the groups, ``new_persons`` is empty."""
    if threshold is None and method is None:
        return _split_in_two(db, person, dry_run=dry_run, shown=shown, page=page)
    return _recluster(db, person, threshold, method or Method.agglomerative, dry_run=dry_run)


def _split_in_two(db: Database, person: uuid.UUID, *, dry_run: bool,
                  shown: tuple[Sequence[int], Sequence[int]] | None,
                  page: Shown | None) -> SplitResult:
    from rbv.jobs.persons.evidence import halves, load_evidence

    with editing(db, person, "persons split", {"threshold": None, "method": None},
                 dry_run=dry_run, shown=page) as (conn, person, edit):
        evidence = load_evidence(conn, None, person)
        found = halves(evidence, 0) if evidence.persons else None
        two = found if found is not None and found.two_people else None
        if shown is not None and (two is None or (two.kept, two.moved) != (
                sorted(shown[0]), sorted(shown[1]))):
            raise ConfigError(
                f"person {person} changed since it was shown (its faces, or the links "
                "among them): it no longer splits into the halves shown; look again")
        sizes = ([len(two.kept), len(two.moved)] if two is not None
                 else [evidence.persons[0].faces if evidence.persons else 0])
        created = (store.assign_split(conn, [two.kept, two.moved], person,
                                      store.pack_of(conn, person))
                   if two is not None and not dry_run else [])
        edit.summary = (f"split {person} in two ({TWO_PEOPLE_TEST}) into "
                        + ", ".join(map(str, [person, *created])))
    return SplitResult(person, sizes[0], created, sizes, None, TWO_PEOPLE_TEST, found,
                       edit.logged_id)


def _recluster(db: Database, person: uuid.UUID, threshold: float | None, method: Method, *,
               dry_run: bool) -> SplitResult:
    import numpy as np

    from rbv.cluster.calibrations import resolve_setting
    from rbv.cluster.decisions import constraints_among
    from rbv.cluster.methods import cluster_embeddings
    from rbv.jobs.grouping.estimate import estimate_impostor
    from rbv.store.queries.assignments import count_faces, load_manual_facts
    from rbv.store.queries.face_reads import load_faces
    from rbv.store.queries.pack_lookup import pack_files, pack_row, pack_settings

    asked = {"threshold": threshold, "method": method.value}
    with editing(db, person, "persons split", asked, dry_run=dry_run) as (conn, person, edit):
        pack_id = store.pack_of(conn, person)
        pack = pack_row(conn, pack_id)
        # A threshold given is used as it is (0 keeps every face together but for its
        # links); the library's own one for the method otherwise.
        setting = resolve_setting(pack_settings(conn, pack_id), pack_files(conn, pack_id),
                                  method)
        if threshold is not None and method is not Method.evidence:
            setting = replace(setting, threshold=threshold)
        if setting.needs_estimate:
            setting = estimate_impostor(conn, pack, setting)
        words = (f"{setting.method.value} at similarity {setting.threshold:g}"
                 if setting.threshold is not None
                 else f"the library's setting (evidence, budget {setting.budget:g})")
        faces = load_faces(conn, pack, person=person)
        groups: list[list[int]] = [faces.ids.tolist()]
        if len(faces) >= 2:
            # `rbv faces same/different` links hold here as in every clustering.
            facts = load_manual_facts(conn, pack)
            constraints = constraints_among(faces.ids, faces.image_ids, facts.must,
                                            facts.cannot)
            labels = cluster_embeddings(faces.embeddings, setting.method,
                                        setting.threshold or 0.0, constraints,
                                        impostor=setting.impostor,
                                        budget=setting.budget or 0.0,
                                        n_library=count_faces(conn, pack))
            order = np.argsort(-np.bincount(labels), kind="stable")
            groups = [faces.ids[labels == g].tolist() for g in order.tolist()]
        created = (store.assign_split(conn, groups, person, pack_id)
                   if len(groups) > 1 and not dry_run else [])
        edit.summary = (f"split {person} with {words} into "
                        + ", ".join(map(str, [person, *created])))
    return SplitResult(person, len(groups[0]), created, [len(g) for g in groups],
                       setting.threshold, words, edit_id=edit.logged_id)


@dataclass(frozen=True)
class EraSplit:
    person: uuid.UUID
    face_ids: list[int]
    years: list[float | None]  # row-aligned with face_ids
    eras: list[Era]
    new_persons: list[uuid.UUID]


def split_person_eras(db: Database, person: uuid.UUID, params: EraParams, *,
                      apply: bool = False) -> EraSplit:
    """Find a person's age eras by EXIF year; with ``apply``, every anchored era after
    the first becomes a new person named "NAME (YEAR–YEAR)" (thin fragments stay)."""
    import numpy as np

    from rbv.cluster.eras import split_eras
    from rbv.store.queries.face_reads import load_faces
    from rbv.store.queries.pack_lookup import pack_row

    with editing(db, person, "eras split", {"apply": apply}, dry_run=not apply) as (
            conn, person, edit):
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
            base = name_of(conn, person) or "person"
            for era, new in zip(anchored[1:], created, strict=True):
                label = f"{era.first_year}–{era.last_year}" if era.first_year else "era"
                store.set_name(conn, new, f"{base} ({label})")
            edit.summary = f"split {person} by era into " + ", ".join(
                map(str, [person, *created]))
    return EraSplit(person, faces.ids.tolist(),
                    [None if np.isnan(y) else float(y) for y in years], found, created)
