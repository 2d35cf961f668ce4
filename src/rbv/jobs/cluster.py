"""``rbv cluster``: group a pack's faces into persons, incrementally or in full.

Incremental (default): faces with a person keep it; each new face is matched to a
known person through the pack's HNSW index (:mod:`rbv.cluster.assign`); the rest are
clustered among themselves into new persons.

Full: every face is re-clustered, but manual decisions hold: manually placed faces are
anchors (same person together, different persons apart), must/cannot-link rows and
same-photo pairs are constraints, clusters take over the existing person id they
overlap most (so ids and names stay), and a face never lands in a person it was
rejected from.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.assign import MATCH_MARGIN, Candidate, match_faces
from rbv.cluster.constraints import NO_ANCHOR, Constraints
from rbv.cluster.knn import DEFAULT_K, build_knn_graph, nearest
from rbv.cluster.methods import Method, cluster_embeddings, resolve_threshold
from rbv.jobs.recording import recorded_run
from rbv.store.assignments import (
    PackFaces,
    assigned_neighbors,
    count_faces,
    create_persons,
    delete_empty_persons,
    load_faces,
    load_manual_facts,
    person_images,
    vacuum_faces,
    write_assignments,
)
from rbv.store.connection import Database
from rbv.store.locks import person_lock
from rbv.store.pack_lookup import find_pack, pack_settings
from rbv.store.packs import PackRow

MATCH_NEIGHBORS = 10
"""Assigned faces fetched per new face for matching (HNSW ef_search 40)."""
VACUUM_AFTER = 5_000
"""A run that rewrote at least this many faces vacuums face_detections afterwards."""
HNSW_BATCH_LIMIT = 5_000
"""Above this many new faces, matching loads the embeddings and works in numpy."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ClusterOptions:
    """What the user asked for; ``threshold`` None means the pack's calibrated value."""

    method: Method = Method.connected
    threshold: float | None = None
    match_threshold: float | None = None
    full: bool = False
    dry_run: bool = False
    k: int = DEFAULT_K


@dataclass
class ClusterReport:
    """What a run did (or, with ``dry_run``, would do)."""

    pack: str
    method: str
    threshold: float
    threshold_source: str
    match_threshold: float
    full: bool
    dry_run: bool
    faces: int = 0
    considered: int = 0
    matched: int = 0
    clustered: int = 0
    new_persons: int = 0
    reassigned: int = 0
    removed_persons: int = 0
    seconds: float = 0.0
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_pack(db: Database, pack_name: str | None, options: ClusterOptions,
                 progress: Progress = lambda _: None, *,
                 sole_fallback: bool = False) -> ClusterReport:
    """Run one clustering of the pack's faces and return what it did.

    ``sole_fallback``: when no pack has that name, use the database's only pack.
    """
    started = time.perf_counter()
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        threshold, source = resolve_threshold(pack_settings(conn, pack.id), options.method,
                                              options.threshold)
    match = options.match_threshold or min(0.99, threshold + MATCH_MARGIN)
    report = ClusterReport(pack.name, options.method.value, threshold, source, match,
                           options.full, options.dry_run)
    if options.dry_run:
        with db.connect() as conn:
            _cluster(conn, pack, options, threshold, match, report, progress)
            conn.rollback()
    else:
        parameters = {"pack": pack.name, "method": options.method.value,
                      "threshold": threshold, "threshold_source": source,
                      "match_threshold": match, "full": options.full, "k": options.k}
        with person_lock(db, pack.id, pack.name), \
                recorded_run(db, "cluster", parameters) as run:
            report.run_id = run.id
            try:
                with db.connect() as conn:  # commits on success, rolls back on error
                    _cluster(conn, pack, options, threshold, match, report, progress)
            finally:
                report.seconds = round(time.perf_counter() - started, 3)
                run.counts = _counts(report)
            written = report.matched + (report.reassigned if report.full
                                        else report.clustered)
            if written >= VACUUM_AFTER:
                progress("vacuuming face_detections")
                vacuum_faces(db)
                report.notes.append(f"vacuumed face_detections after {written:,} updates")
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _counts(r: ClusterReport) -> dict[str, Any]:
    keys = ("faces", "considered", "matched", "clustered", "new_persons", "reassigned",
            "removed_persons", "seconds")
    return {k: getattr(r, k) for k in keys}


def _cluster(conn: psycopg.Connection, pack: PackRow, options: ClusterOptions,
             threshold: float, match: float, report: ClusterReport, progress: Progress) -> None:
    if options.full:
        _full(conn, pack, options, threshold, report, progress)
    else:
        _incremental(conn, pack, options, threshold, match, report, progress)
    report.removed_persons = delete_empty_persons(conn, pack)


def _incremental(conn: psycopg.Connection, pack: PackRow, options: ClusterOptions,
                 threshold: float, match: float, report: ClusterReport,
                 progress: Progress) -> None:
    progress("reading new faces")
    new = load_faces(conn, pack, unassigned_only=True)
    report.faces = count_faces(conn, pack)
    report.considered = len(new)
    if len(new) == 0:
        return
    facts = load_manual_facts(conn, pack)
    rejections: dict[int, set[uuid.UUID]] = {}
    for face, person in facts.rejections:
        rejections.setdefault(face, set()).add(person)
    image_of = dict(zip(new.ids.tolist(), new.image_ids.tolist(), strict=True))

    progress(f"matching {len(new):,} new faces to known persons")
    candidates = _candidates(conn, pack, new, MATCH_NEIGHBORS)
    progress(f"writing matches of {len(new):,} new faces")
    known = sorted({c.person for cands in candidates.values() for c in cands})
    matches = match_faces(candidates, match, image_of=image_of, rejections=rejections,
                          taken=person_images(conn, known))
    if matches:
        write_assignments(conn, [m.face for m in matches], [m.person for m in matches], "match")
    report.matched = len(matches)

    matched = {m.face for m in matches}
    rest = np.array([i for i, f in enumerate(new.ids.tolist()) if f not in matched], np.int64)
    if len(rest) == 0:
        return
    progress(f"clustering {len(rest):,} unmatched faces")
    constraints = _constraints(new, rest, facts.must, facts.cannot)
    labels = cluster_embeddings(new.embeddings[rest], options.method, threshold, constraints,
                                k=options.k)
    persons = create_persons(conn, pack, int(labels.max()) + 1)
    write_assignments(conn, new.ids[rest].tolist(), [persons[i] for i in labels.tolist()],
                      "cluster")
    report.clustered = len(rest)
    report.new_persons = len(persons)


def _candidates(conn: psycopg.Connection, pack: PackRow, new: PackFaces,
                k: int) -> dict[int, list[Candidate[uuid.UUID]]]:
    """Each new face's nearest assigned faces, as (person, similarity, photo)."""
    if len(new) <= HNSW_BATCH_LIMIT:
        found = assigned_neighbors(conn, pack, new.ids.tolist(), k)
        return {f: [Candidate(n.person_id, n.similarity, n.image_id) for n in ns]
                for f, ns in found.items()}
    every = load_faces(conn, pack)
    has = np.array([p is not None for p in every.person_ids], bool)
    base = np.flatnonzero(has)
    graph = nearest(new.embeddings, every.embeddings[base], k)
    out: dict[int, list[Candidate[uuid.UUID]]] = {}
    for row, face in enumerate(new.ids.tolist()):
        out[face] = [
            Candidate(every.person_ids[base[j]], float(s), int(every.image_ids[base[j]]))  # type: ignore[arg-type]
            for j, s in zip(graph.neighbors[row].tolist(), graph.similarities[row].tolist(),
                            strict=True) if j >= 0
        ]
    return out


def _constraints(faces: PackFaces, rows: NDArray[np.int64], must: list[tuple[int, int]],
                 cannot: list[tuple[int, int]],
                 anchors: NDArray[np.int64] | None = None) -> Constraints:
    """Constraints over ``faces`` restricted to positions ``rows`` (renumbered)."""
    pos = {f: i for i, f in enumerate(faces.ids[rows].tolist())}

    def local(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(pos[a], pos[b]) for a, b in pairs if a in pos and b in pos]

    return Constraints.build(len(rows), image_ids=faces.image_ids[rows], cannot=local(cannot),
                             must=local(must), anchors=anchors)


def _full(conn: psycopg.Connection, pack: PackRow, options: ClusterOptions,
          threshold: float, report: ClusterReport, progress: Progress) -> None:
    progress("reading all faces")
    faces = load_faces(conn, pack)
    report.faces = report.considered = len(faces)
    if len(faces) == 0:
        return
    facts = load_manual_facts(conn, pack)
    anchor_of: dict[uuid.UUID, int] = {}
    anchors = np.full(len(faces), NO_ANCHOR, np.int64)
    for i in np.flatnonzero(faces.manual).tolist():
        person = faces.person_ids[i]
        if person is not None:
            anchors[i] = anchor_of.setdefault(person, len(anchor_of))
    everything = np.arange(len(faces), dtype=np.int64)
    constraints = _constraints(faces, everything, facts.must, facts.cannot, anchors)
    progress(f"building the {options.k}-NN graph of {len(faces):,} faces")
    graph = build_knn_graph(faces.embeddings, options.k)
    progress(f"clustering {len(faces):,} faces ({options.method.value})")
    labels = cluster_embeddings(faces.embeddings, options.method, threshold, constraints,
                                graph=graph)
    progress("keeping person ids stable")
    person_of = _map_to_persons(faces, labels, anchors, anchor_of)
    # "Not this person": evict a rejected face from that person into one of its own.
    fresh: dict[int, uuid.UUID] = {}
    position = {f: i for i, f in enumerate(faces.ids.tolist())}
    evicted = 0
    for face, person in facts.rejections:
        at = position.get(face)
        if at is not None and not faces.manual[at] and person_of[int(labels[at])] == person:
            fresh[at] = uuid.uuid4()
            evicted += 1
    existing = _existing(faces)
    new_ids = [p for p in set(person_of.values()) if p not in existing] + list(fresh.values())
    create_persons(conn, pack, len(new_ids), ids=new_ids)
    targets = [fresh.get(i) or person_of[int(labels[i])] for i in range(len(faces))]
    auto = np.flatnonzero(~faces.manual)
    progress("writing assignments")
    report.reassigned = write_assignments(conn, faces.ids[auto].tolist(),
                                          [targets[i] for i in auto.tolist()], "cluster")
    report.clustered = len(auto)
    report.new_persons = len(new_ids)
    if evicted:
        report.notes.append(f"{evicted} face(s) kept out of persons they were rejected from")


def _existing(faces: PackFaces) -> set[uuid.UUID]:
    return {p for p in faces.person_ids if p is not None}


def _map_to_persons(faces: PackFaces, labels: NDArray[np.int64], anchors: NDArray[np.int64],
                    anchor_of: dict[uuid.UUID, int]) -> dict[int, uuid.UUID]:
    """Cluster label → person id: the anchored person, else the previous person it
    overlaps most (greedy, each person once), else a new id."""
    person_of: dict[int, uuid.UUID] = {}
    by_anchor = {a: p for p, a in anchor_of.items()}
    for i in np.flatnonzero(anchors != NO_ANCHOR).tolist():
        person_of[int(labels[i])] = by_anchor[int(anchors[i])]
    used = set(person_of.values())
    overlap = Counter(
        (int(labels[i]), p) for i, p in enumerate(faces.person_ids)
        if p is not None and not faces.manual[i]
    )
    for (label, person), _count in sorted(overlap.items(), key=lambda kv: -kv[1]):
        if label not in person_of and person not in used:
            person_of[label] = person
            used.add(person)
    for label in np.unique(labels).tolist():
        if label not in person_of:
            person_of[label] = uuid.uuid4()
    return person_of
