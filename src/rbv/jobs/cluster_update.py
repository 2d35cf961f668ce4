"""The incremental step of ``rbv cluster``: new faces join known persons or form new ones.

Known persons are found near the new faces through the pack's HNSW index (or in memory
when very many faces are new). With evidence linkage, the new faces and those persons'
faces are clustered together, each known person starting as one cluster that may take
in new faces (a whole new fragment of a known person included) but never merges with
another known person, by the same rule a full run uses over the whole library. With the
threshold methods each new face is matched to the best known person
(:mod:`rbv.cluster.assign`), and the rest are clustered among themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.assign import Candidate, Match, match_faces
from rbv.cluster.calibrations import ClusterSetting
from rbv.cluster.constraints import NO_ANCHOR, Constraints
from rbv.cluster.knn import KnnGraph, nearest
from rbv.cluster.linkage import components
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.store.assignments import (
    ManualFacts,
    PackFaces,
    assigned_neighbors,
    count_faces,
    create_persons,
    load_faces,
    load_manual_facts,
    person_images,
    write_assignments,
)
from rbv.store.connection import Database
from rbv.store.links import persons_of_faces
from rbv.store.packs import PackRow

MATCH_NEIGHBORS = 10
"""Assigned faces fetched per new face to find known persons (HNSW ef_search 40)."""
HNSW_BATCH_LIMIT = 5_000
"""Above this many new faces, known persons are found in memory instead."""
HNSW_CONNECTIONS = 2
"""Connections that search the HNSW index at once (measured at 1M faces × 512-d, 2
cores: 1,000 searches 4.0 s on one connection)."""


@dataclass(frozen=True)
class UpdateContext:
    conn: psycopg.Connection
    pack: PackRow
    setting: ClusterSetting
    match: float | None  # threshold methods: similarity a new face needs to join
    k: int
    progress: Callable[[str], None]
    db: Database | None = None  # for HNSW searches on connections of their own


@dataclass
class UpdateResult:
    faces: int = 0
    considered: int = 0
    matched: int = 0  # new faces that joined a known person
    clustered: int = 0  # new faces that formed new persons
    new_persons: int = 0


def add_new_faces(ctx: UpdateContext) -> UpdateResult:
    """Give every face without a person one (see the module doc)."""
    ctx.progress("reading new faces")
    new = load_faces(ctx.conn, ctx.pack, unassigned_only=True)
    result = UpdateResult(faces=count_faces(ctx.conn, ctx.pack), considered=len(new))
    if len(new) == 0:
        return result
    facts = load_manual_facts(ctx.conn, ctx.pack)
    ctx.progress(f"finding known persons near {len(new):,} new faces")
    candidates = _candidates(ctx.conn, ctx.pack, new, MATCH_NEIGHBORS, ctx.db)
    if ctx.setting.method is Method.evidence:
        _grow(ctx, new, facts, candidates, result)
    else:
        _match_then_cluster(ctx, new, facts, candidates, result)
    return result


def _grow(ctx: UpdateContext, new: PackFaces, facts: ManualFacts,
          candidates: dict[int, list[Candidate[uuid.UUID]]], result: UpdateResult) -> None:
    """Evidence linkage over the new faces plus the known persons near them."""
    # Persons a new face is linked "same" to are known persons too, however far.
    linked = _linked_persons(ctx.conn, new, facts)
    known_persons = sorted({c.person for cands in candidates.values() for c in cands}
                           | {p for ps in linked.values() for p in ps})
    known = (load_faces(ctx.conn, ctx.pack, persons=known_persons) if known_persons
             else new.take(np.empty(0, np.int64)))
    faces = known.concat(new)
    index_of = {p: i for i, p in enumerate(known_persons)}
    anchors = np.full(len(faces), NO_ANCHOR, np.int64)
    anchors[:len(known)] = [index_of[p] for p in known.person_ids if p is not None]
    # A face rejected from a known person is cannot-linked to one of its faces: the
    # person starts as one cluster, so that keeps the face out of all of it.
    first_row = {p: r for r, p in reversed(list(enumerate(known.person_ids)))}
    rejected = [(int(known.ids[first_row[p]]), f) for f, p in facts.rejections
                if p in first_row]
    constraints = constraints_among(faces, np.arange(len(faces), dtype=np.int64), facts.must,
                                    [*facts.cannot, *rejected], anchors)
    ctx.progress(f"clustering {len(new):,} new faces with {len(known_persons):,} known persons")
    labels = cluster_embeddings(
        faces.embeddings, Method.evidence, 0.0, constraints,
        graph=_graph_of_new(faces.embeddings, len(known), ctx.k), impostor=ctx.setting.impostor,
        budget=ctx.setting.budget or 0.0, n_library=result.faces)
    person_of = {int(labels[r]): p for r, p in enumerate(known.person_ids) if p is not None}
    new_labels = labels[len(known):]
    fresh = sorted({int(lab) for lab in new_labels.tolist()} - set(person_of))
    created = create_persons(ctx.conn, ctx.pack, len(fresh))
    person_of.update(zip(fresh, created, strict=True))
    joined = np.array([int(lab) not in fresh for lab in new_labels.tolist()], bool)
    for rows, how in ((np.flatnonzero(joined), "match"), (np.flatnonzero(~joined), "cluster")):
        if len(rows):
            write_assignments(ctx.conn, new.ids[rows].tolist(),
                              [person_of[int(new_labels[r])] for r in rows.tolist()], how)
    result.matched, result.clustered = int(joined.sum()), int((~joined).sum())
    result.new_persons = len(created)


def _match_then_cluster(ctx: UpdateContext, new: PackFaces, facts: ManualFacts,
                        candidates: dict[int, list[Candidate[uuid.UUID]]],
                        result: UpdateResult) -> None:
    """Threshold methods: match each new face to a known person, cluster the rest."""
    assert ctx.match is not None and ctx.setting.threshold is not None
    rejections: dict[int, set[uuid.UUID]] = {}
    for face, person in facts.rejections:
        rejections.setdefault(face, set()).add(person)
    new_ids = set(new.ids.tolist())
    # A "different" link to a face of a known person keeps a new face out of it.
    apart = [(a, b) for a, b in facts.cannot if (a in new_ids) != (b in new_ids)]
    person_of = persons_of_faces(ctx.conn, [b if a in new_ids else a for a, b in apart])
    for a, b in apart:
        face, other = (a, b) if a in new_ids else (b, a)
        if other in person_of:
            rejections.setdefault(face, set()).add(person_of[other])
    image_of = dict(zip(new.ids.tolist(), new.image_ids.tolist(), strict=True))
    ctx.progress(f"writing matches of {len(new):,} new faces")
    linked = _linked_persons(ctx.conn, new, facts)
    known = sorted({c.person for cands in candidates.values() for c in cands}
                   | {p for ps in linked.values() for p in ps})
    taken = person_images(ctx.conn, known, new.image_ids.tolist())
    # A "same" link to a face of one known person decides; the others are matched.
    pinned: list[Match[uuid.UUID]] = []
    used = set(taken)
    for face, linked_to in sorted(linked.items()):
        person = next(iter(linked_to))
        if len(linked_to) == 1 and person not in rejections.get(face, set()) \
                and (person, image_of[face]) not in used:
            used.add((person, image_of[face]))
            pinned.append(Match(face, person, 1.0))
    matches = match_faces({f: c for f, c in candidates.items() if f not in linked},
                          ctx.match, image_of=image_of, rejections=rejections, taken=used)
    matches = _keep_links(pinned + matches, facts, new_ids)
    if matches:
        write_assignments(ctx.conn, [m.face for m in matches], [m.person for m in matches],
                          "match")
    result.matched = len(matches)
    matched = {m.face for m in matches}
    rest = np.array([i for i, f in enumerate(new.ids.tolist()) if f not in matched], np.int64)
    if len(rest) == 0:
        return
    ctx.progress(f"clustering {len(rest):,} unmatched faces")
    sub = new.take(rest)
    constraints = constraints_among(new, rest, facts.must, facts.cannot)
    labels = cluster_embeddings(sub.embeddings, ctx.setting.method, ctx.setting.threshold,
                                constraints, k=ctx.k)
    persons = create_persons(ctx.conn, ctx.pack, int(labels.max()) + 1)
    write_assignments(ctx.conn, sub.ids.tolist(), [persons[i] for i in labels.tolist()],
                      "cluster")
    result.clustered = len(rest)
    result.new_persons = len(persons)


def _linked_persons(conn: psycopg.Connection, new: PackFaces,
                    facts: ManualFacts) -> dict[int, set[uuid.UUID]]:
    """New face → the known persons it is linked "same" to (through any chain of
    links), for the new faces that have such links."""
    if not facts.must:
        return {}
    pairs = np.array(facts.must, np.int64)
    ids, inverse = np.unique(pairs, return_inverse=True)
    inverse = inverse.reshape(-1, 2)
    group = components(len(ids), inverse[:, 0], inverse[:, 1])
    new_ids = set(new.ids.tolist())
    person_of = persons_of_faces(conn, [int(f) for f in ids if int(f) not in new_ids])
    persons_in: dict[int, set[uuid.UUID]] = {}
    for face, g in zip(ids.tolist(), group.tolist(), strict=True):
        if face in person_of:
            persons_in.setdefault(g, set()).add(person_of[face])
    return {face: persons_in[g] for face, g in zip(ids.tolist(), group.tolist(), strict=True)
            if face in new_ids and g in persons_in}


def _keep_links(matches: list[Match[uuid.UUID]], facts: ManualFacts,
                new_ids: set[int]) -> list[Match[uuid.UUID]]:
    """Matches that keep the links among new faces: faces linked "same" are matched
    to one person or none of them is (they are clustered together instead), and of
    two faces linked "different" matched to one person only the better one stays."""
    by_face = {m.face: m for m in matches}
    among = [(a, b) for a, b in facts.must if a in new_ids and b in new_ids]
    if among:
        pairs = np.array(among, np.int64)
        ids, inverse = np.unique(pairs, return_inverse=True)
        inverse = inverse.reshape(-1, 2)
        group = components(len(ids), inverse[:, 0], inverse[:, 1])
        members: dict[int, list[int]] = {}
        for face, g in zip(ids.tolist(), group.tolist(), strict=True):
            members.setdefault(g, []).append(face)
        for faces in members.values():
            targets = {by_face[f].person if f in by_face else None for f in faces}
            if len(targets) > 1:
                for f in faces:
                    by_face.pop(f, None)
    for a, b in facts.cannot:
        if a in by_face and b in by_face and by_face[a].person == by_face[b].person:
            worse = a if by_face[a].score < by_face[b].score else b
            del by_face[worse]
    return [m for m in matches if m.face in by_face]


def constraints_among(faces: PackFaces, rows: NDArray[np.int64], must: list[tuple[int, int]],
                      cannot: list[tuple[int, int]],
                      anchors: NDArray[np.int64] | None = None) -> Constraints:
    """Constraints over ``faces`` restricted to positions ``rows`` (renumbered)."""
    pos = {f: i for i, f in enumerate(faces.ids[rows].tolist())}

    def local(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(pos[a], pos[b]) for a, b in pairs if a in pos and b in pos]

    return Constraints.build(len(rows), image_ids=faces.image_ids[rows], cannot=local(cannot),
                             must=local(must), anchors=anchors)


def _graph_of_new(x: np.ndarray, n_known: int, k: int) -> KnnGraph:
    """The k-NN lists of the new faces (rows from ``n_known`` on) among all faces; known
    faces get none: each known person is one anchored cluster that never merges with
    another, so only pairs with a new face can matter."""
    found = nearest(x[n_known:], x, k + 1)
    rows = np.arange(n_known, len(x))[:, None]
    keep = found.neighbors != rows
    keep[:, -1] &= keep.sum(axis=1) <= k  # drop the self hit, else the last one
    neighbors = np.where(keep, found.neighbors, -1)
    similarities = np.where(keep, found.similarities, -1.0).astype(np.float32)
    return KnnGraph(np.vstack([np.full((n_known, neighbors.shape[1]), -1, np.int64),
                               neighbors]),
                    np.vstack([np.full((n_known, neighbors.shape[1]), -1.0, np.float32),
                               similarities]))


def _candidates(conn: psycopg.Connection, pack: PackRow, new: PackFaces, k: int,
                db: Database | None = None) -> dict[int, list[Candidate[uuid.UUID]]]:
    """Each new face's nearest assigned faces, as (person, similarity, photo)."""
    if len(new) <= HNSW_BATCH_LIMIT:
        found = assigned_neighbors(conn, pack, new.ids.tolist(), k, db=db,
                                   connections=HNSW_CONNECTIONS)
        return {f: [Candidate(n.person_id, n.similarity, n.image_id) for n in ns]
                for f, ns in found.items()}
    every = load_faces(conn, pack)
    base = np.flatnonzero(np.array([p is not None for p in every.person_ids], bool))
    graph = nearest(new.embeddings, every.embeddings[base], k)
    out: dict[int, list[Candidate[uuid.UUID]]] = {}
    for row, face in enumerate(new.ids.tolist()):
        out[face] = [
            Candidate(every.person_ids[base[j]], float(s), int(every.image_ids[base[j]]))  # type: ignore[arg-type]
            for j, s in zip(graph.neighbors[row].tolist(), graph.similarities[row].tolist(),
                            strict=True) if j >= 0
        ]
    return out
