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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.assign import Candidate, Match, match_faces
from rbv.cluster.calibrations import ClusterSetting
from rbv.cluster.centroids import group_sums
from rbv.cluster.crowding import CROWDING_LEVEL
from rbv.cluster.decisions import constraints_among, grow_links
from rbv.cluster.evidence import grow_known
from rbv.cluster.knn import build_knn_graph, nearest
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.union_find import components
from rbv.face_rows import PackFaces
from rbv.jobs.grouping.face_lists import LISTS_MIN_FACES, known_near, no_wait
from rbv.store.queries.assignments import (
    ManualFacts,
    create_persons,
    load_manual_facts,
    person_images,
    write_assignments,
)
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.neighbors import Neighbors, assigned_neighbors
from rbv.store.queries.pack_lookup import pack_settings
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_sums import cached_sums, store_sums
from rbv.store.queries.persons import persons_of_faces
from rbv.store.server.connection import Database

MATCH_NEIGHBORS = 30
"""Assigned faces fetched per new face to find known persons and to measure its
crowding (HNSW ef_search 40)."""
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
    faces: int  # the pack's faces, new ones included (counted by the caller)
    db: Database | None = None  # for HNSW searches on connections of their own
    dry_run: bool = False  # the run is rolled back: its new faces stay new


@dataclass
class UpdateResult:
    considered: int = 0
    matched: int = 0  # new faces that joined a known person
    clustered: int = 0  # new faces that formed new persons
    new_persons: int = 0
    crowding_level: float | None = None  # measured by the first run: the pack's to keep
    notes: list[str] = field(default_factory=list)  # for the user, in the run's report


def add_new_faces(ctx: UpdateContext) -> UpdateResult:
    """Give every face without a person one (see the module doc)."""
    ctx.progress("reading new faces")
    new = load_faces(ctx.conn, ctx.pack, unassigned_only=True)
    result = UpdateResult(considered=len(new))
    if len(new) == 0:
        return result
    facts = load_manual_facts(ctx.conn, ctx.pack)
    ctx.progress(f"finding known persons near {len(new):,} new faces")
    near, finish = _near(ctx, new, MATCH_NEIGHBORS, result.notes)
    try:
        if ctx.setting.method is Method.evidence:
            _grow(ctx, new, facts, near, result)
        else:
            _match_then_cluster(ctx, new, facts, _candidates(near, new), result)
    finally:
        finish()  # the face lists have taken the new faces
    return result


def _grow(ctx: UpdateContext, new: PackFaces, facts: ManualFacts, near: Neighbors,
          result: UpdateResult) -> None:
    """Evidence linkage over the new faces plus the known persons near them, each known
    person given by its cached sum of embeddings (see :func:`rbv.cluster.evidence.grow_known`)."""
    # Persons a new face is linked "same" to are known persons too, however far.
    linked = _linked_persons(ctx.conn, new, facts)
    known = sorted(set(near.persons) | {p for ps in linked.values() for p in ps})
    ctx.progress(f"clustering {len(new):,} new faces with {len(known):,} known persons")
    known_sums, known_counts = _known_sums(ctx, known)
    p = len(known)
    node = {person: i for i, person in enumerate(known)}
    row = {f: p + i for i, f in enumerate(new.ids.tolist())}
    near_person = np.array([node[q] for q in near.persons], np.int64)[near.person]
    near_face = np.array([row[f] for f in near.query.tolist()], np.int64) - p
    links = grow_links(
        known, new, must=facts.must, cannot=facts.cannot, rejections=facts.rejections,
        linked=linked,
        person_of=persons_of_faces(ctx.conn, [f for pair in facts.cannot for f in pair
                                              if f not in row]),
        in_photo=person_images(ctx.conn, known, sorted(set(new.image_ids.tolist()))))
    assert ctx.setting.impostor is not None  # resolved (or estimated) before the run
    level = pack_settings(ctx.conn, ctx.pack.id).get(CROWDING_LEVEL)
    labels, measured = grow_known(
        known_sums, known_counts, new.embeddings, (near_person, near_face, near.similarity),
        build_knn_graph(new.embeddings, ctx.k), ctx.setting.impostor,
        ctx.setting.budget or 0.0, ctx.faces,
        cannot=links.cannot, must=links.must, typical=level)
    if level is None and p == 0:  # the first run: these faces are the library
        result.crowding_level = round(measured, 6)
    groups = sorted(set(labels.tolist()) - set(range(p)))
    created = create_persons(ctx.conn, ctx.pack, len(groups))
    target = [*known, *created]
    position = {label: i for i, label in enumerate([*range(p), *groups])}
    joined = labels < p
    for rows_, how in ((np.flatnonzero(joined), "match"), (np.flatnonzero(~joined), "cluster")):
        if len(rows_):
            write_assignments(ctx.conn, new.ids[rows_].tolist(),
                              [target[position[int(labels[r])]] for r in rows_.tolist()], how)
    # The writes dropped the cached sums of the persons that took in faces: store them
    # again, with those faces added.
    added, added_counts = group_sums(new.embeddings,
                                     np.array([position[int(lab)] for lab in labels.tolist()],
                                              np.int64), len(target))
    grew = np.flatnonzero(added_counts)
    totals = np.vstack([known_sums, np.zeros((len(created), known_sums.shape[1]))]) + added
    counts = np.concatenate([known_counts, np.zeros(len(created), np.int64)]) + added_counts
    store_sums(ctx.conn, [target[i] for i in grew], counts[grew].tolist(), totals[grew])
    result.matched, result.clustered = int(joined.sum()), int((~joined).sum())
    result.new_persons = len(created)


def _known_sums(ctx: UpdateContext, persons: list[uuid.UUID]
                ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Each person's sum of unit embeddings and face count: cached, else from its faces
    (and then cached when the person is large)."""
    known = current_sums(ctx.conn, ctx.pack, persons)
    missing = [p for p in persons if p not in known]
    if missing:
        faces = load_faces(ctx.conn, ctx.pack, persons=missing)
        index = {p: i for i, p in enumerate(missing)}
        sums, counts = group_sums(faces.embeddings, np.array(
            [index[p] for p in faces.person_ids if p is not None], np.int64), len(missing))
        store_sums(ctx.conn, missing, counts.tolist(), sums)
        known.update({p: (int(counts[i]), sums[i]) for p, i in index.items()})
    return (np.array([known[p][1] for p in persons], np.float64).reshape(
                len(persons), ctx.pack.embedding_dim),
            np.array([known[p][0] for p in persons], np.int64))


def current_sums(conn: psycopg.Connection, pack: PackRow, persons: Sequence[uuid.UUID]
                 ) -> dict[uuid.UUID, tuple[int, NDArray[np.float64]]]:
    """Person → (face count, sum of its unit embeddings) for the cached ones, with the
    faces that joined or left since added and taken away; the rows so brought up to date
    are stored again (their logs emptied)."""
    known, moves = cached_sums(conn, pack, persons)
    if not moves.persons:
        return known
    moved = sorted(set(moves.persons), key=str)
    index = {p: i for i, p in enumerate(moved)}
    group = np.array([index[p] for p in moves.persons], np.int64)
    joined, n_joined = group_sums(moves.embeddings, np.where(moves.signs > 0, group, -1),
                                  len(moved))
    left, n_left = group_sums(moves.embeddings, np.where(moves.signs < 0, group, -1),
                              len(moved))
    for p, i in index.items():
        count, total = known[p]
        known[p] = (count + int(n_joined[i] - n_left[i]), total + joined[i] - left[i])
    store_sums(conn, moved, [known[p][0] for p in moved],
               np.array([known[p][1] for p in moved]).reshape(len(moved), -1))
    return known


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
    constraints = constraints_among(sub.ids, sub.image_ids, facts.must, facts.cannot)
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


def _near(ctx: UpdateContext, new: PackFaces, k: int, notes: list[str]
          ) -> tuple[Neighbors, Callable[[], None]]:
    """Each new face's ``k`` nearest assigned faces: in the face lists of a large pack
    (:mod:`rbv.jobs.grouping.face_lists`; and what to call once the run is done, which
    waits for the lists to take the new faces), else through the HNSW index, or in
    memory when very many faces are new."""
    conn, pack, db = ctx.conn, ctx.pack, ctx.db
    if db is not None and ctx.faces >= LISTS_MIN_FACES:
        found, finish = known_near(db, conn, pack, new, k, ctx.progress, notes,
                                   keep=not ctx.dry_run)
        if found is not None:
            return found, finish
    if len(new) <= HNSW_BATCH_LIMIT:
        return assigned_neighbors(conn, pack, new.ids.tolist(), k, db=db,
                                  connections=HNSW_CONNECTIONS), no_wait
    every = load_faces(conn, pack)
    base = np.flatnonzero(np.array([p is not None for p in every.person_ids], bool))
    graph = nearest(new.embeddings, every.embeddings[base], k)
    rows, cols = np.nonzero(graph.neighbors >= 0)
    found = base[graph.neighbors[rows, cols]]
    return Neighbors.of_rows(new.ids[rows].tolist(), every.ids[found].tolist(),
                             [every.person_ids[j] for j in found.tolist()],  # type: ignore[misc]
                             every.image_ids[found].tolist(),
                             graph.similarities[rows, cols].astype(np.float64).tolist()), no_wait


def _candidates(near: Neighbors, new: PackFaces) -> dict[int, list[Candidate[uuid.UUID]]]:
    """Each new face's nearest assigned faces, as (person, similarity, photo)."""
    out: dict[int, list[Candidate[uuid.UUID]]] = {f: [] for f in new.ids.tolist()}
    for f, person, image, similarity in zip(near.query.tolist(), near.person.tolist(),
                                            near.image.tolist(), near.similarity.tolist(),
                                            strict=True):
        out[f].append(Candidate(near.persons[person], similarity, image))
    return out
