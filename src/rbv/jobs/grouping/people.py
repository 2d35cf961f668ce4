"""The persons ``rbv cluster``'s evidence rule makes of a pack's faces, for the jobs
that build facesets (``refine``, ``discover``, ``export-swap``): a faceset is one person,
so it never holds faces of two of these. Refine's own thresholds are distances between
single faces and centroids, which many soft faces of different children all pass (one
faceset held 20 faces of 12 children of ``data/family``); the evidence rule asks more
of little evidence and of a big library, as ``rbv cluster`` does."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.decisions import constraints_among
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.jobs.grouping.estimate import estimate_impostor
from rbv.store.queries.assignments import count_faces, load_manual_facts
from rbv.store.queries.facesets import FaceFacts, load_face_facts, person_names
from rbv.store.queries.pack_lookup import pack_files, pack_settings
from rbv.store.queries.packs import PackRow


def evidence_people(conn: psycopg.Connection, pack: PackRow, facts: FaceFacts,
                    fixed: NDArray[np.int64] | None = None) -> NDArray[np.int64]:
    """Per face of ``facts``, its person by evidence linkage with the pack's setting (its
    impostor model and budget, for the pack's number of faces), as ``rbv cluster --full``
    groups them: two faces of one photo, or linked ``different``, are never one person;
    faces linked ``same`` are; faces of one ``fixed`` group (≥ 0: a named person refine
    keeps whole) are one person, and two fixed groups never one."""
    setting = resolve_setting(pack_settings(conn, pack.id), pack_files(conn, pack.id),
                              Method.evidence)
    if setting.needs_estimate:
        setting = estimate_impostor(conn, pack, setting)
    manual = load_manual_facts(conn, pack)
    constraints = constraints_among(facts.ids, facts.image_ids, manual.must, manual.cannot,
                                    fixed)
    return cluster_embeddings(facts.embeddings, Method.evidence, 0.0, constraints,
                              impostor=setting.impostor, budget=setting.budget or 0.0,
                              n_library=count_faces(conn, pack))


def named_groups(facts: FaceFacts, named: Mapping[uuid.UUID, str]) -> NDArray[np.int64]:
    """Per face: an index of its named person, or -1."""
    index = {p: i for i, p in enumerate(sorted(named, key=str))}
    return np.array([index.get(p, -1) if p else -1 for p in facts.person_ids], np.int64)


def library_people(conn: psycopg.Connection, pack: PackRow, *, split_named: bool
                   ) -> dict[int, int]:
    """Face id → person (:func:`evidence_people`) for the faces ``rbv refine`` reads (those
    of hidden persons left out), named persons kept whole unless ``split_named``."""
    facts = load_face_facts(conn, pack)
    fixed = None
    if not split_named:
        fixed = named_groups(facts, person_names(
            conn, sorted({p for p in facts.person_ids if p}, key=str)))
    people = evidence_people(conn, pack, facts, fixed)
    return dict(zip(facts.ids.tolist(), people.tolist(), strict=True))


def one_person(face_ids: Sequence[int], person_of: Mapping[int, int]) -> list[int]:
    """The faces of ``face_ids`` that are of the person holding most of them (the first
    face's on a tie); a face ``person_of`` does not know (hidden since) stays."""
    votes = Counter(person_of[f] for f in face_ids if f in person_of)
    if len(votes) < 2:
        return list(face_ids)
    main = votes.most_common(1)[0][0]  # ties: the first counted
    return [f for f in face_ids if person_of.get(f, main) == main]
