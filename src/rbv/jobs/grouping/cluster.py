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

The setting is kept in the pack's settings (``last_clustering``): a run with another says so.

A run is one plan (:func:`cluster_pack`): resolve the setting (:func:`_resolve`) →
cluster, full (:func:`_full`: load, an unknown recognizer's impostor model estimated
from the faces loaded (:mod:`rbv.jobs.grouping.estimate`), the user's decisions as
constraints (:mod:`rbv.cluster.decisions`), cluster, :func:`follow_faces`, write, the
persons' sums added up meanwhile) or incremental
(:func:`rbv.jobs.grouping.cluster_update.add_new_faces`) → the pack's settings written in
one place (:func:`_recorded`) → the report built once (:func:`_report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import psycopg

from rbv.cluster.assign import MATCH_MARGIN
from rbv.cluster.calibrations import ClusterSetting, key_in_words, resolve_setting
from rbv.cluster.centroids import label_sums
from rbv.cluster.crowding import CROWDING_LEVEL, crowding
from rbv.cluster.decisions import constraints_among, hand_anchors, row_pairs
from rbv.cluster.identity import follow_faces
from rbv.cluster.knn import DEFAULT_K, ordered_knn_graph
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.errors import Remedy
from rbv.jobs.grouping.aged import BY_AGE, aged_space, by_age, first_by_age
from rbv.jobs.grouping.cluster_update import UpdateContext, add_new_faces
from rbv.jobs.grouping.estimate import estimate_from_faces, estimate_impostor
from rbv.jobs.grouping.named_changes import NamedChange, named_changes, named_gains
from rbv.jobs.recording import recorded_run
from rbv.store.queries.assignments import (
    analyze_faces,
    clustering_inputs_digest,
    count_faces,
    create_persons,
    delete_empty_persons,
    load_manual_facts,
    named_face_counts,
    named_faces,
    named_persons,
    vacuum_faces,
    write_assignments,
)
from rbv.store.queries.birthdays import born_persons
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack, pack_files, pack_settings, update_pack_settings
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_sums import SUM_MIN_FACES, forget_pack_sums, store_sums
from rbv.store.queries.persons import delete_persons_statement
from rbv.store.server.connection import Database
from rbv.store.server.locks import person_lock

VACUUM_AFTER = 5_000
"""A run that rewrote at least this many faces vacuums face_detections afterwards."""
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
ESTIMATING = "estimating the recognizer's impostor model from this library"


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
    by_age: bool | None = None  # faces centred by estimated age (None: the pack's choice)


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
    in_words: str = ""  # the setting without the model's internals (``setting`` has them)
    # what would do better: ``calibrate`` (the setting is a fallback), ``cluster_full``
    # (the persons were made with another setting)
    remedies: list[Remedy] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Plan:
    """A run's resolved inputs: what it will do, with which setting, and the notes that
    say so."""

    pack: PackRow
    stored: dict[str, Any]  # the pack's settings before the run
    setting: ClusterSetting
    options: ClusterOptions  # ``full`` set when the library has grown past its persons
    faces: int
    match: float | None
    unchanged: bool  # a full run with nothing changed since the last one
    estimate: bool  # a full run estimating the impostor model from the faces it reads
    notes: list[str]
    remedies: list[Remedy]  # what the report advises: calibrating, a full run


@dataclass
class _Outcome:
    """What the clustering itself did (before the report around it)."""

    faces: int
    considered: int = 0
    matched: int = 0
    clustered: int = 0
    new_persons: int = 0
    reassigned: int = 0
    removed_persons: int = 0
    kept_by_hand: int = 0
    crowding_level: float | None = None  # measured: the pack's to keep
    aged: str | None = None  # faces centred by estimated age: how
    setting: ClusterSetting | None = None  # the setting with the model the run estimated
    named: list[NamedChange] = field(default_factory=list)
    empty_named: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said by the clustering itself


def cluster_pack(db: Database, pack_name: str | None, options: ClusterOptions,
                 progress: Progress = lambda _: None, *,
                 sole_fallback: bool = False) -> ClusterReport:
    """Run one clustering of the pack's faces and return what it did.

    ``sole_fallback``: when no pack has that name, use the database's only pack.
    """
    started = time.perf_counter()
    plan = _resolve(db, pack_name, options, progress, sole_fallback)
    if plan.unchanged:
        # Same faces, assignments, manual decisions and setting as after the last full
        # run: re-clustering would give the persons they already have.
        kept = _Outcome(plan.faces, considered=plan.faces)
        return _report(plan, kept, started, None, [
            "nothing changed since the last full run with this setting "
            "(faces, assignments, manual decisions): persons kept as they are"])
    if plan.options.dry_run:
        with db.connect() as conn:
            outcome = _cluster(conn, plan, progress, db)
            conn.rollback()
        return _report(_as_run(plan, outcome), outcome, started, None, [])
    done: _Outcome | None = None
    with person_lock(db, plan.pack.id, plan.pack.name), \
            recorded_run(db, "cluster", _parameters(plan)) as run:
        try:
            with db.connect() as conn:  # commits on success, rolls back on error
                done = _cluster(conn, plan, progress, db)
                plan = _as_run(plan, done)
                run.parameters = _parameters(plan)
                update_pack_settings(conn, plan.pack.id, _recorded(conn, plan, done))
        finally:
            run.counts = _counts(done or _Outcome(plan.faces),
                                 round(time.perf_counter() - started, 3))
        written = done.matched + (done.reassigned if plan.options.full else done.clustered)
        vacuumed = []
        if written >= VACUUM_AFTER:
            progress("vacuuming face_detections")
            vacuum_faces(db)
            vacuumed.append(f"vacuumed face_detections after {written:,} updates")
    return _report(plan, done, started, run.id, vacuumed)


def _resolve(db: Database, pack_name: str | None, options: ClusterOptions,
             progress: Progress, sole_fallback: bool) -> _Plan:
    """The pack, the setting (estimating the impostor model when needed), whether the
    run is full, and the notes that say why."""
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        stored = pack_settings(conn, pack.id)
        setting = resolve_setting(stored, pack_files(conn, pack.id), options.method,
                                  threshold=options.threshold, budget=options.budget)
        n_faces = count_faces(conn, pack)
        grown = _grown(stored, setting, options, n_faces)
        if grown is not None or first_by_age(conn, pack, stored, options.by_age,
                                             setting.method):
            options = replace(options, full=True)
        last_full = _last_full(conn, pack, setting, options) if options.full else None
        unchanged = last_full is not None and stored.get("last_full") == last_full
        estimate = not unchanged and setting.method is Method.evidence and (
            setting.needs_estimate or (options.full and _estimated(stored)))
        if estimate and not options.full:  # a full run estimates from the faces it reads
            progress(ESTIMATING)
            setting = estimate_impostor(conn, pack, setting)
    match = None
    if setting.threshold is not None:
        match = options.match_threshold or min(0.99, setting.threshold + MATCH_MARGIN)
    notes = []
    previous = stored.get("last_clustering")
    if grown is not None:
        notes.append(
            f"The library has grown from {grown:,} to {n_faces:,} faces since its persons "
            "were made, and a merge asks more in a bigger library: every face was "
            "re-clustered, as a full run does (it happens again at "
            f"{REGROUP_GROWTH:g}× this size; names, merges and other manual fixes are kept).")
    remedies = list(setting.remedies)
    if previous and previous != setting.key() and not options.full:
        notes.append(
            "The existing persons were made with another setting "
            f"({key_in_words(previous)}); new faces are grouped with the one above.")
        remedies.append(Remedy("cluster_full"))
    return _Plan(pack, stored, setting, options, n_faces, match, unchanged,
                 estimate and options.full, notes, remedies)


def _as_run(plan: _Plan, done: _Outcome) -> _Plan:
    """The plan with the impostor model the run estimated, if it did."""
    return plan if done.setting is None else replace(plan, setting=done.setting)


def _parameters(plan: _Plan) -> dict[str, Any]:
    setting = plan.setting
    return {"pack": plan.pack.name, "method": setting.method.value,
            "setting": setting.key(), "threshold": setting.threshold,
            "source": setting.source, "match_threshold": plan.match,
            "full": plan.options.full, "k": plan.options.k}


def _report(plan: _Plan, outcome: _Outcome, started: float, run_id: int | None,
            notes: list[str]) -> ClusterReport:
    setting, options = plan.setting, plan.options
    empty = outcome.empty_named
    return ClusterReport(
        plan.pack.name, setting.method.value, setting.describe(plan.faces),
        setting.threshold, setting.budget, plan.match, options.full, options.dry_run,
        faces=outcome.faces, considered=outcome.considered, matched=outcome.matched,
        clustered=outcome.clustered, new_persons=outcome.new_persons,
        reassigned=outcome.reassigned, removed_persons=outcome.removed_persons,
        kept_by_hand=outcome.kept_by_hand, seconds=round(time.perf_counter() - started, 3),
        run_id=run_id, notes=[*plan.notes, *outcome.notes, *notes,
                              *([f"Faces compared by age: {outcome.aged}."]
                                if outcome.aged else [])],
        named=outcome.named, empty_named=empty,
        delete_empty_named=(delete_persons_statement([e["person"] for e in empty])
                            if empty else None),
        in_words=setting.plain(plan.faces), remedies=plan.remedies)


def _last_full(conn: psycopg.Connection, pack: PackRow, setting: ClusterSetting,
               options: ClusterOptions) -> dict[str, Any]:
    """What a full run depends on: the setting, k, the digest of its inputs and whether
    faces are compared centred by age (said only when they are)."""
    aged = {BY_AGE: True} if by_age(conn, pack, options.by_age) else {}
    return {"setting": setting.key(), "k": options.k,
            "inputs": clustering_inputs_digest(conn, pack), **aged}


def _estimated(stored: dict[str, Any]) -> bool:
    return bool((stored.get("impostor") or {}).get("estimated"))


def _grown(stored: dict[str, Any], setting: ClusterSetting, options: ClusterOptions,
           n_faces: int) -> int | None:
    """The face count the persons were made with, when an incremental evidence run finds
    the pack grown ``REGROUP_GROWTH`` times past it (so it re-clusters every face)."""
    made_with = stored.get(MADE_WITH)
    if (options.full or setting.method is not Method.evidence
            or not isinstance(made_with, int) or made_with <= 0):
        return None
    return made_with if n_faces >= REGROUP_GROWTH * made_with else None


def _recorded(conn: psycopg.Connection, plan: _Plan, done: _Outcome) -> dict[str, Any]:
    """The pack's settings after a run, all written here: the setting the persons were
    made with and the pack's face count then (when this run made all of them: a full or
    first run; the count also when no run recorded one yet), an estimated impostor model
    (so later runs use the same one), the library's crowding level when the run measured
    it, and after a full run what it depended on (so the next one can tell nothing
    changed)."""
    setting, options = plan.setting, plan.options
    made_all = options.full or not plan.stored.get("last_clustering")
    out: dict[str, Any] = {}
    if done.crowding_level is not None:
        out[CROWDING_LEVEL] = done.crowding_level
    if made_all:
        out["last_clustering"] = setting.key()
    if made_all or MADE_WITH not in plan.stored:
        out[MADE_WITH] = plan.faces
    if setting.impostor is not None and setting.impostor_source.startswith("estimated"):
        out["impostor"] = {**setting.impostor.as_dict(), "estimated": True,
                           "source": setting.impostor_source}
    if options.full:
        out["last_full"] = _last_full(conn, plan.pack, setting, options)
        if options.by_age is not None:
            out[BY_AGE] = options.by_age
    return out


def _counts(done: _Outcome, seconds: float) -> dict[str, Any]:
    keys = ("faces", "considered", "matched", "clustered", "new_persons", "reassigned",
            "removed_persons")
    return {**{k: getattr(done, k) for k in keys}, "seconds": seconds}


def _cluster(conn: psycopg.Connection, plan: _Plan, progress: Progress,
             db: Database) -> _Outcome:
    """Full: every face re-clustered; else the new faces given persons. Then the persons
    left empty deleted, and what happened to named persons."""
    pack = plan.pack
    if plan.options.full:
        named_before = named_faces(conn, pack)
        done = _full(conn, plan, progress)
        done.removed_persons = delete_empty_persons(conn, pack)
        done.named, done.empty_named = named_changes(conn, pack, named_before)
        return done
    # An incremental run only gives new faces a person: counting is enough (and cheap
    # at 1M faces).
    counts = named_face_counts(conn, pack)
    found = add_new_faces(UpdateContext(conn, pack, plan.setting, plan.match,
                                        plan.options.k, progress, plan.faces, db,
                                        dry_run=plan.options.dry_run))
    done = _Outcome(plan.faces, found.considered, found.matched, found.clustered,
                    found.new_persons, crowding_level=found.crowding_level,
                    notes=found.notes)
    # Persons emptied since the last run (persons move, SQL): looked for only when a
    # face has left a person since (reading every face costs 0.3-0.8 s at 1M).
    done.removed_persons = delete_empty_persons(conn, pack, only_if_faces_left=True)
    done.named, done.empty_named = named_gains(conn, pack, counts)
    return done


def _full(conn: psycopg.Connection, plan: _Plan, progress: Progress) -> _Outcome:
    """Every face re-clustered under the user's decisions; who each cluster is follows
    :func:`follow_faces`."""
    pack, setting, k = plan.pack, plan.setting, plan.options.k
    progress("reading all faces")
    # A hidden person's faces stay where they are, together: no method may scatter
    # them into visible persons or empty it (hiding is a decision, like a name).
    faces = load_faces(conn, pack, hidden=False)
    done = _Outcome(count_faces(conn, pack), considered=len(faces))
    if plan.estimate:
        progress(ESTIMATING)
        setting = done.setting = estimate_from_faces(conn, pack, setting, faces)
    if len(faces) == 0:
        return done
    facts = load_manual_facts(conn, pack)
    space = aged_space(conn, pack, plan.options.by_age, setting.method, progress)
    embeddings, impostor = space.compared(conn, faces, setting.impostor)
    done.aged = space.source or None
    progress(f"building the {k}-NN graph of {len(faces):,} faces")
    faces, embeddings, graph = ordered_knn_graph(faces, embeddings, k)
    constraints = constraints_among(faces.ids, faces.image_ids, facts.must, facts.cannot,
                                    hand_anchors(faces))
    progress(f"clustering {len(faces):,} faces ({setting.method.value})")
    labels = cluster_embeddings(embeddings, setting.method, setting.threshold or 0.0,
                                constraints, graph=graph, impostor=impostor,
                                budget=setting.budget or 0.0)
    if not space.source and setting.method is Method.evidence and setting.impostor is not None:
        # The library's typical crowding level, for the incremental runs that follow (in
        # the recognizer's own space, the one they match in: an aged run leaves it).
        done.crowding_level = round(crowding(graph, labels, setting.impostor)[1], 6)
    del embeddings, graph  # a centred copy is as large as the faces' vectors
    progress("keeping person ids stable")
    position = {f: i for i, f in enumerate(faces.ids.tolist())}
    targets = follow_faces(labels, faces.person_ids, faces.manual, faces.image_ids,
                           must=row_pairs(position, facts.must),
                           cannot=row_pairs(position, facts.cannot),
                           rejected={(position[f], p) for f, p in facts.rejections
                                     if f in position},
                           # a birthday is a decision like a name: it stays with the
                           # person holding most of the faces it was given to
                           named=named_persons(conn, pack) | born_persons(conn, pack.id))
    existing = {p for p in faces.person_ids if p is not None}
    new_ids = sorted({p for p in targets if p not in existing}, key=str)
    create_persons(conn, pack, len(new_ids), ids=new_ids)
    auto = np.flatnonzero(~faces.manual)
    auto = auto[np.argsort(faces.ids[auto], kind="stable")]  # written in the table's order
    progress("writing assignments")
    forget_pack_sums(conn, pack)  # first: the writes would log moves against them
    with ThreadPoolExecutor(1, thread_name_prefix="rbv-sums") as pool:
        # the persons' sums are added up while the server writes (0.3 s at 100k faces)
        summed = pool.submit(label_sums, faces.embeddings, targets, SUM_MIN_FACES)
        done.reassigned = write_assignments(conn, faces.ids[auto].tolist(),
                                            [targets[i] for i in auto.tolist()], "cluster")
        if done.reassigned >= VACUUM_AFTER:
            # What follows is planned on the persons just written, not on statistics
            # taken while no face had one (after a first index): issue 61's plan was one.
            analyze_faces(conn)
        done.clustered = len(auto)
        done.kept_by_hand = len(faces) - len(auto)
        done.new_persons = len(new_ids)
        progress("caching the sums of persons")
        persons, counts, sums = summed.result()
    store_sums(conn, persons, counts.tolist(), sums)
    return done
