"""``rbv cluster``: group a pack's faces into persons, incrementally or in full.

Incremental (default): faces with a person keep it. With evidence linkage (the default
method) the new faces are clustered together with the known persons they are near (found
through the pack's HNSW index): a known person may take in new faces, even a whole new
fragment of itself, but two known persons never merge (:mod:`rbv.jobs.grouping.cluster_update`).
With the threshold methods each new face is matched to a known person, and the rest are
clustered among themselves.

Full: every face is re-clustered, but manual decisions hold: manually placed faces are
anchors (same person together, different persons apart), must/cannot-link rows and
same-photo pairs are constraints, and who each cluster is follows one rule
(:func:`rbv.cluster.identity.follow_faces`): a person keeps the cluster holding most of
its former faces (so ids and names stay), a hand-placed face stays where it was placed
without carrying anything with it, and no face lands where a decision forbids it.

The setting used is recorded in the pack's settings (``last_clustering``); when a later
run's setting differs, the report says so and what to run.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import psycopg

from rbv.cluster.assign import MATCH_MARGIN
from rbv.cluster.calibrations import CROWDING_RULE, ClusterSetting, resolve_setting
from rbv.cluster.centroids import group_sums
from rbv.cluster.constraints import NO_ANCHOR
from rbv.cluster.crowding import CROWDING_LEVEL, crowding
from rbv.cluster.evidence import ImpostorModel, random_pair_similarities
from rbv.cluster.identity import follow_faces
from rbv.cluster.knn import DEFAULT_K, build_knn_graph
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.jobs.grouping.cluster_update import UpdateContext, add_new_faces, constraints_among
from rbv.jobs.recording import recorded_run
from rbv.store.queries.assignments import (
    clustering_inputs_digest,
    count_faces,
    create_persons,
    delete_empty_persons,
    delete_persons_statement,
    load_faces,
    load_manual_facts,
    named_face_counts,
    named_faces,
    named_persons,
    vacuum_faces,
    write_assignments,
)
from rbv.store.queries.pack_lookup import find_pack, pack_files, pack_settings, update_pack_settings
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_sums import SUM_MIN_FACES, forget_pack_sums, store_sums
from rbv.store.queries.persons import labels, persons_of_faces
from rbv.store.server.connection import Database
from rbv.store.server.embedded import HUGE_PAGES_FACES, huge_pages_advice
from rbv.store.server.locks import person_lock

VACUUM_AFTER = 5_000
"""A run that rewrote at least this many faces vacuums face_detections afterwards."""
ESTIMATE_SAMPLE = 20_000
"""Faces drawn to estimate an unknown recognizer's impostor model from the library."""
REGROUP_GROWTH = 1.25
"""Evidence linkage asks more of a merge the bigger the library, so persons made when it
was small hold merges the grown library would refuse, and known persons never merge or
split later. An incremental run therefore re-clusters every face (as ``--full``) once the
pack holds this many times the faces its persons were made with. Measured on data/family
(quality_matrix.py, pairwise F against one full run's 0.681): 50 % of the photos, then the
rest, 0.631 before this rule (0.671 then); 70 % then 30 % (1.43×) 0.668; 80 % (1.25×)
0.681, 85 % 0.678, 90 % 0.672 without re-clustering. Re-clustering at 1.25×, 1.25²×, …
costs at most ~5× the faces of one full run in all."""
MADE_WITH = "persons_made_with"
"""Pack setting: how many faces the pack held when its persons were last all made (a full
or first run)."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ClusterOptions:
    """What the user asked for; None means the pack's (or rbv's) setting."""

    method: Method | None = None
    threshold: float | None = None
    budget: float | None = None
    match_threshold: float | None = None
    full: bool = False
    dry_run: bool = False
    k: int = DEFAULT_K


@dataclass
class ClusterReport:
    """What a run did (or, with ``dry_run``, would do)."""

    pack: str
    method: str
    setting: str  # the setting in words, with where it came from
    threshold: float | None
    budget: float | None
    match_threshold: float | None
    full: bool
    dry_run: bool
    faces: int = 0
    considered: int = 0
    matched: int = 0
    clustered: int = 0
    new_persons: int = 0
    reassigned: int = 0
    removed_persons: int = 0
    kept_by_hand: int = 0  # faces a full run left where they were placed by hand
    seconds: float = 0.0
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)
    named: list[NamedChange] = field(default_factory=list)  # named persons that changed
    # named persons left without faces: {"person": uuid, "name": name}, and the SQL that
    # deletes them (printed, never run)
    empty_named: list[dict[str, str]] = field(default_factory=list)
    delete_empty_named: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NamedChange:
    """What a run did to one named person's faces."""

    person: str
    name: str
    before: int
    after: int
    moved_to: dict[str, int]  # person (label: name or "person 3f2a9c12") -> faces moved
    gained: int

    @property
    def lost(self) -> int:
        return sum(self.moved_to.values())

    def describe(self) -> str:
        """``Ada Lovelace: 27 → 25 faces (2 to person 3f2a9c12)``."""
        parts = [f"{n} to {who}" for who, n in sorted(self.moved_to.items(),
                                                       key=lambda kv: (-kv[1], kv[0]))]
        if self.gained:
            parts.append(f"{self.gained} joined")
        return f"{self.name}: {self.before:,} → {self.after:,} faces ({', '.join(parts)})"


def cluster_pack(db: Database, pack_name: str | None, options: ClusterOptions,
                 progress: Progress = lambda _: None, *,
                 sole_fallback: bool = False) -> ClusterReport:
    """Run one clustering of the pack's faces and return what it did.

    ``sole_fallback``: when no pack has that name, use the database's only pack.
    """
    started = time.perf_counter()
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        stored = pack_settings(conn, pack.id)
        setting = resolve_setting(stored, pack_files(conn, pack.id), options.method,
                                  threshold=options.threshold, budget=options.budget)
        n_faces = count_faces(conn, pack)
        advice = (huge_pages_advice(conn) if db.embedded and n_faces >= HUGE_PAGES_FACES
                  else None)
        grown = _grown(stored, setting, options, n_faces)
        if grown is not None:
            options = replace(options, full=True)
        last_full = _last_full(conn, pack, setting, options) if options.full else None
        unchanged = last_full is not None and stored.get("last_full") == last_full
        if not unchanged and setting.method is Method.evidence and (
                setting.needs_estimate or (options.full and _estimated(stored))):
            progress("estimating the recognizer's impostor model from this library")
            setting = estimate_impostor(conn, pack, setting)
    match = None
    if setting.threshold is not None:
        match = options.match_threshold or min(0.99, setting.threshold + MATCH_MARGIN)
    report = ClusterReport(pack.name, setting.method.value, setting.describe(n_faces),
                           setting.threshold, setting.budget, match, options.full,
                           options.dry_run)
    report.faces = n_faces  # counted once: an incremental run weighs merges by it
    previous = stored.get("last_clustering")
    if grown is not None:
        report.notes.append(
            f"The library has grown from {grown:,} to {n_faces:,} faces since its persons "
            "were made, and a merge asks more in a bigger library: every face was "
            f"re-clustered, as `rbv cluster --full` does (it happens again at "
            f"{REGROUP_GROWTH:g}× this size; names, merges and other manual fixes are kept).")
    if previous and previous != setting.key() and not options.full:
        report.notes.append(
            "The existing persons were made with another setting "
            f"({_words(previous)}); new faces are grouped with the one above. Run "
            "`rbv cluster --full` to re-cluster every face with it (names, merges and "
            "other manual fixes are kept).")
    if advice:
        report.notes.append(advice)
    if unchanged:
        # Same faces, assignments, manual decisions and setting as after the last full
        # run: re-clustering would give the persons they already have.
        report.faces = report.considered = n_faces
        report.notes.append("nothing changed since the last full run with this setting "
                            "(faces, assignments, manual decisions): persons kept as they are")
        report.seconds = round(time.perf_counter() - started, 3)
        return report
    if options.dry_run:
        with db.connect() as conn:
            _cluster(conn, pack, options, setting, match, report, progress, db)
            conn.rollback()
    else:
        parameters = {"pack": pack.name, "method": setting.method.value,
                      "setting": setting.key(), "threshold": setting.threshold,
                      "source": setting.source, "match_threshold": match,
                      "full": options.full, "k": options.k}
        with person_lock(db, pack.id, pack.name), \
                recorded_run(db, "cluster", parameters) as run:
            report.run_id = run.id
            try:
                with db.connect() as conn:  # commits on success, rolls back on error
                    _cluster(conn, pack, options, setting, match, report, progress, db)
                    update_pack_settings(conn, pack.id, _recorded(
                        setting, options.full or not previous, n_faces,
                        MADE_WITH not in stored))
                    if options.full:
                        update_pack_settings(conn, pack.id, {"last_full": _last_full(
                            conn, pack, setting, options)})
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


def _last_full(conn: psycopg.Connection, pack: PackRow, setting: ClusterSetting,
               options: ClusterOptions) -> dict[str, Any]:
    """What a full run depends on: the setting, k and the digest of its inputs."""
    return {"setting": setting.key(), "k": options.k,
            "inputs": clustering_inputs_digest(conn, pack)}


def _estimated(stored: dict[str, Any]) -> bool:
    return bool((stored.get("impostor") or {}).get("estimated"))


def estimate_impostor(conn: psycopg.Connection, pack: PackRow,
                      setting: ClusterSetting) -> ClusterSetting:
    """The impostor model of an unknown recognizer, from random pairs of the library's
    faces (nearly all are different people in a library of many)."""
    sample = load_faces(conn, pack, sample=ESTIMATE_SAMPLE)
    pairs = random_pair_similarities(sample.embeddings, sample.image_ids)
    if len(pairs) < 100:
        return setting.with_impostor(ImpostorModel(0.1, 0.09, 0.02),
                                     "too few faces to estimate; a generic guess")
    model = ImpostorModel.from_pairs(pairs, robust=True)
    return setting.with_impostor(
        model, f"estimated from {len(sample):,} faces of this library")


def _grown(stored: dict[str, Any], setting: ClusterSetting, options: ClusterOptions,
           n_faces: int) -> int | None:
    """The face count the persons were made with, when an incremental evidence run finds
    the pack grown ``REGROUP_GROWTH`` times past it (so it re-clusters every face)."""
    made_with = stored.get(MADE_WITH)
    if (options.full or setting.method is not Method.evidence
            or not isinstance(made_with, int) or made_with <= 0):
        return None
    return made_with if n_faces >= REGROUP_GROWTH * made_with else None


def _recorded(setting: ClusterSetting, made_all: bool, n_faces: int,
              unknown_size: bool) -> dict[str, Any]:
    """Pack settings to save after a run: the setting the persons were made with and the
    pack's face count then (when this run made all of them: a full or first run; the
    count also when no run recorded one yet), and an estimated impostor model (so later
    runs use the same one)."""
    out: dict[str, Any] = {"last_clustering": setting.key()} if made_all else {}
    if made_all or unknown_size:
        out[MADE_WITH] = n_faces
    if setting.impostor is not None and setting.impostor_source.startswith("estimated"):
        out["impostor"] = {**setting.impostor.as_dict(), "estimated": True,
                           "source": setting.impostor_source}
    return out


def _words(key: dict[str, Any]) -> str:
    if key.get("method") == Method.evidence.value:
        rule = key.get("crowding")
        crowding = ("" if rule == CROWDING_RULE else ", before crowding" if not rule
                    else f", crowding rule {rule} (now {CROWDING_RULE})")
        return f"evidence, budget {key.get('budget')}{crowding}"
    return f"{key.get('method')} at similarity {key.get('threshold')}"


def _counts(r: ClusterReport) -> dict[str, Any]:
    keys = ("faces", "considered", "matched", "clustered", "new_persons", "reassigned",
            "removed_persons", "seconds")
    return {k: getattr(r, k) for k in keys}


def _cluster(conn: psycopg.Connection, pack: PackRow, options: ClusterOptions,
             setting: ClusterSetting, match: float | None, report: ClusterReport,
             progress: Progress, db: Database | None = None) -> None:
    if options.full:
        named_before = named_faces(conn, pack)
        _regroup(conn, pack, options, setting, match, report, progress, db)
        report.named, report.empty_named = _named_changes(conn, pack, named_before)
    else:
        # An incremental run only gives new faces a person: counting is enough (and
        # cheap at 1M faces).
        counts = named_face_counts(conn, pack)
        _regroup(conn, pack, options, setting, match, report, progress, db)
        report.named, report.empty_named = _named_gains(conn, pack, counts)
    if report.empty_named:
        report.delete_empty_named = delete_persons_statement(
            [e["person"] for e in report.empty_named])


def _named_changes(conn: psycopg.Connection, pack: PackRow,
                   before: dict[uuid.UUID, list[int]],
                   ) -> tuple[list[NamedChange], list[dict[str, str]]]:
    """Every named person whose faces the run changed, most faces lost first; and the
    named persons that hold no face (left so by SQL or by hand: reported, never deleted)."""
    after = named_faces(conn, pack)
    now = persons_of_faces(conn, [f for faces in before.values() for f in faces])
    people = set(after) | {p for p in now.values() if p is not None}
    names = labels(conn, sorted(people, key=str)) if people else {}
    changes = []
    for person, faces in before.items():
        kept = set(after.get(person, []))
        moved = Counter(now.get(f) for f in faces if f not in kept)
        gained = len(kept - set(faces))
        if not moved and not gained:
            continue
        moved_to = {(names.get(p, "no person") if p is not None else "no person"): n
                    for p, n in moved.items()}
        changes.append(NamedChange(str(person), names.get(person, str(person)), len(faces),
                                   len(kept), moved_to, gained))
    changes.sort(key=lambda c: (-c.lost / max(c.before, 1), c.name))
    empty = [{"person": str(p), "name": names[p]} for p, faces in sorted(
        after.items(), key=lambda kv: str(kv[0])) if not faces]
    return changes, empty


def _named_gains(conn: psycopg.Connection, pack: PackRow, before: dict[uuid.UUID, int],
                 ) -> tuple[list[NamedChange], list[dict[str, str]]]:
    """What an incremental run did to named persons: faces that joined them; and the
    named persons that hold no face."""
    after = named_face_counts(conn, pack)
    names = labels(conn, sorted(after, key=str)) if after else {}
    changes = [NamedChange(str(p), names[p], before.get(p, 0), n, {}, n - before.get(p, 0))
               for p, n in sorted(after.items(), key=lambda kv: names[kv[0]])
               if n != before.get(p, 0)]
    empty = [{"person": str(p), "name": names[p]} for p, n in sorted(
        after.items(), key=lambda kv: str(kv[0])) if n == 0]
    return changes, empty


def _regroup(conn: psycopg.Connection, pack: PackRow, options: ClusterOptions,
             setting: ClusterSetting, match: float | None, report: ClusterReport,
             progress: Progress, db: Database | None = None) -> None:
    if options.full:
        _full(conn, pack, options, setting, report, progress)
        report.removed_persons = delete_empty_persons(conn, pack)
    else:
        found = add_new_faces(UpdateContext(conn, pack, setting, match, options.k, progress,
                                            report.faces, db))
        report.considered = found.considered
        report.matched, report.clustered = found.matched, found.clustered
        report.new_persons = found.new_persons
        # Persons emptied since the last run (persons move, SQL): looked for only when a
        # face has left a person since (reading every face costs 0.3-0.8 s at 1M).
        report.removed_persons = delete_empty_persons(conn, pack, only_if_faces_left=True)


def _full(conn: psycopg.Connection, pack: PackRow, options: ClusterOptions,
          setting: ClusterSetting, report: ClusterReport, progress: Progress) -> None:
    progress("reading all faces")
    # A hidden person's faces stay where they are, together: no method may scatter
    # them into visible persons or empty it (hiding is a decision, like a name).
    faces = load_faces(conn, pack, skip_hidden=True)
    report.faces, report.considered = count_faces(conn, pack), len(faces)
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
    constraints = constraints_among(faces, everything, facts.must, facts.cannot, anchors)
    progress(f"building the {options.k}-NN graph of {len(faces):,} faces")
    graph = build_knn_graph(faces.embeddings, options.k)
    progress(f"clustering {len(faces):,} faces ({setting.method.value})")
    labels = cluster_embeddings(faces.embeddings, setting.method, setting.threshold or 0.0,
                                constraints, graph=graph, impostor=setting.impostor,
                                budget=setting.budget or 0.0)
    if setting.method is Method.evidence and setting.impostor is not None:
        # The library's typical crowding level, for the incremental runs that follow.
        level = crowding(graph, labels, setting.impostor)[1]
        update_pack_settings(conn, pack.id, {CROWDING_LEVEL: round(level, 6)})
    progress("keeping person ids stable")
    position = {f: i for i, f in enumerate(faces.ids.tolist())}

    def rows(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(position[a], position[b]) for a, b in pairs
                if a in position and b in position]

    targets = follow_faces(labels, faces.person_ids, faces.manual, faces.image_ids,
                           must=rows(facts.must), cannot=rows(facts.cannot),
                           rejected={(position[f], p) for f, p in facts.rejections
                                     if f in position},
                           named=named_persons(conn, pack))
    existing = {p for p in faces.person_ids if p is not None}
    new_ids = sorted({p for p in targets if p not in existing}, key=str)
    create_persons(conn, pack, len(new_ids), ids=new_ids)
    auto = np.flatnonzero(~faces.manual)
    progress("writing assignments")
    forget_pack_sums(conn, pack)  # first: the writes would log moves against them
    report.reassigned = write_assignments(conn, faces.ids[auto].tolist(),
                                          [targets[i] for i in auto.tolist()], "cluster")
    report.clustered = len(auto)
    report.kept_by_hand = len(faces) - len(auto)
    report.new_persons = len(new_ids)
    progress("caching the sums of persons")
    persons = sorted(set(targets))
    index = {p: i for i, p in enumerate(persons)}
    label = np.array([index[p] for p in targets], np.int64)
    large = np.bincount(label, minlength=len(persons)) >= SUM_MIN_FACES
    sums, counts = group_sums(faces.embeddings, np.where(large[label], label, -1),
                              len(persons))
    store_sums(conn, persons, counts.tolist(), sums)
