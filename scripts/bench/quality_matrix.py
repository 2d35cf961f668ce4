"""Clustering quality on both labelled sets: the shipped default, every method with rbv's
settings and with none, calibration carried from one set to the other, and an
incremental run (half the photos, then the rest) against a full run, through the
database.

Photos are indexed once with the real pipeline into a scratch data directory (kept, so
re-runs take seconds); scores count each photo's main (labelled) face, all faces are
clustered.

    uv run python scripts/bench/quality_matrix.py
    uv run python scripts/bench/quality_matrix.py --pack ../shared/models/scrfd_sface --data /tmp/q
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rbv.cluster.ages import AgeCentres
from rbv.cluster.calibrations import DEFAULT_METHOD, resolve_setting
from rbv.cluster.evaluation import (
    ALL_METHODS,
    BASELINE,
    Evaluation,
    MethodScores,
    best_of,
)
from rbv.cluster.evidence import (
    DEFAULT_BUDGET,
    ImpostorModel,
    library_impostor,
    random_pair_similarities,
)
from rbv.cluster.methods import DEFAULT_THRESHOLD, Method
from rbv.cluster.metrics import bcubed, largest_cluster, pairwise
from rbv.config import Settings
from rbv.face_rows import PackFaces
from rbv.jobs.grouping.aged import ages_of
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.jobs.grouping.eval import faces_under, label_main_faces, read_labels
from rbv.jobs.library.analyzer import load_face_analyzer
from rbv.jobs.library.index import run_index
from rbv.store import Database, open_database
from rbv.store.queries.assignments import faces_with_paths, load_faces
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import register_pack
from rbv.store.server.migrations import apply_pending

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"


@dataclass
class LabelledSet:
    name: str
    faces: PackFaces
    truth: np.ndarray  # per face: identity or None
    evaluation: Evaluation  # the faces as the recognizer made them
    aged: ImpostorModel | None = None  # centred by age: the impostor model it estimates
    centred: Evaluation | None = None  # the faces centred by age (what evidence uses)

    def of(self, method: str) -> Evaluation:
        """The faces ``method`` clusters: centred by age for evidence, as a library with
        estimated ages is; the recognizer's own for the similarity thresholds."""
        return self.centred if self.centred and method == Method.evidence.value \
            else self.evaluation


def load_sets(db: Database, settings: Settings, pack_name: str, ages: bool = True
              ) -> list[LabelledSet]:
    """The three sets' faces; with ``ages``, where the faces have estimated ages
    (``rbv enrich --attribute-model``), each set centred on its own faces of each age, as
    ``cluster --full`` centres a library (:mod:`rbv.jobs.grouping.aged`)."""
    folders = [("faces", SHARED / "data" / "faces", SHARED / "data" / "labels.csv"),
               ("lfw_many", SHARED / "data" / "lfw_many", None),
               ("family", SHARED / "data" / "family", None)]
    analyzer = load_face_analyzer(settings)
    run_index(db, settings, [folder for _, folder, _ in folders], analyzer=analyzer)
    with db.connect() as conn:
        pack = find_pack(conn, pack_name)
        every = load_faces(conn, pack)
        paths = faces_with_paths(conn, pack)
    out = []
    for name, folder, labels_csv in folders:
        inside = faces_under(paths, folder)
        faces = every.take(np.flatnonzero(np.isin(every.ids, sorted(inside))))
        truth, _ = label_main_faces(faces, [p for p in paths if p.face_id in inside],
                                    read_labels(folder, labels_csv))
        aged, centred = None, None
        if ages:
            with db.connect() as conn:
                centres = AgeCentres.measure(faces.embeddings, ages_of(conn, faces.ids),
                                             library_impostor(faces.embeddings,
                                                              faces.image_ids)[0])
                if centres is not None:
                    moved = replace(faces, embeddings=centres.centred(
                        faces.embeddings, ages_of(conn, faces.ids)))
                    aged = ImpostorModel.from_pairs(random_pair_similarities(
                        moved.embeddings, moved.image_ids), robust=True)
                    centred = Evaluation(moved, truth)
        out.append(LabelledSet(name, faces, truth, Evaluation(faces, truth), aged, centred))
    return out


def score(s: LabelledSet, method: str, value: float,
          impostor: ImpostorModel | None = None) -> MethodScores:
    return s.of(method).score(method, value, impostor)


def cell(m: MethodScores) -> str:
    return f"{m.pairwise.f1:.3f} / {m.bcubed.f1:.3f}"


def matrix(sets: list[LabelledSet], files: dict[str, str]) -> None:
    print("\n## Scores (pairwise F / BCubed F), one setting for both sets")
    print(f"{'method':<15} {'setting':<34} " + " ".join(f"{s.name:>17}" for s in sets))
    for method in ALL_METHODS:
        for label, stored_files in (("rbv's setting", files), ("no calibration", {})):
            if method == BASELINE:
                value, words = 0.5, "Immich's 0.5"
                if stored_files == {}:
                    continue
            else:
                setting = resolve_setting({}, stored_files, Method(method))
                value = setting.threshold if setting.threshold is not None else (
                    setting.budget or DEFAULT_BUDGET)
                words = (f"{label}: " + (f"{value:.2f}" if setting.threshold is not None
                                         else f"budget {value:g}"))
            row = []
            for s in sets:
                model = setting.impostor if method == Method.evidence.value else None
                if method == Method.evidence.value and (model is None or s.aged):
                    model = s.aged or ImpostorModel.from_pairs(random_pair_similarities(
                        s.faces.embeddings, s.faces.image_ids), robust=True)
                row.append(cell(score(s, method, value, model)))
            tag = " (default)" if method == DEFAULT_METHOD.value and stored_files else ""
            print(f"{method + tag:<15} {words:<34} " + " ".join(f"{c:>17}" for c in row))


def default_detail(sets: list[LabelledSet], files: dict[str, str]) -> None:
    """The shipped default in full: pairwise and BCubed P/R/F and its largest person."""
    print("\n## The default (rbv's setting), in detail: P / R / F; the largest person's "
          "labelled faces, identities and purity (share of its main identity)")
    print(f"{'set':<10} {'pairwise P / R / F':>22} {'BCubed P / R / F':>22} {'persons':>8} "
          f"{'largest: faces, ids, purity':>29}")
    setting = resolve_setting({}, files, None)
    for s in sets:
        method = setting.method.value
        labels = s.of(method).labels(method, setting.budget or DEFAULT_BUDGET,
                                     s.aged or setting.impostor)[s.evaluation.labelled]
        p, b = pairwise(labels, s.evaluation.truth), bcubed(labels, s.evaluation.truth)
        big = largest_cluster(labels, s.evaluation.truth)
        print(f"{s.name:<10} {p.precision:>8.3f} / {p.recall:.3f} / {p.f1:.3f} "
              f"{b.precision:>6.3f} / {b.recall:.3f} / {b.f1:.3f} {len(np.unique(labels)):>8,} "
              f"{big.size:>13}, {big.labels:>3}, {big.purity:.3f}")


def transfer(sets: list[LabelledSet]) -> None:
    print("\n## Calibration carried over: calibrate on A (`rbv eval A --calibrate --store`),"
          " cluster B with the stored values; loss against B's own best (pairwise F)")
    print(f"{'method':<15} {'A → B':<22} {'A value':>8} {'B with it':>10} "
          f"{'B best':>8} {'loss':>7}")
    for method in ALL_METHODS:
        for a in sets:
            for b in sets:
                if a is b:
                    continue
                if method == Method.evidence.value:
                    value = DEFAULT_BUDGET  # what --store keeps is A's impostor model
                    with_a = score(b, method, value, a.of(method).impostor)
                    own = best_of(b.of(method).sweep(method))  # B's own labelled model
                else:
                    value = best_of(a.evaluation.sweep(method)).threshold
                    with_a = score(b, method, value)
                    own = best_of(b.evaluation.sweep(method))
                loss = own.pairwise.f1 - with_a.pairwise.f1
                print(f"{method:<15} {a.name + ' → ' + b.name:<22} {value:>8g} "
                      f"{with_a.pairwise.f1:>10.3f} {own.pairwise.f1:>8.3f} {loss:>+7.3f}")


def incremental(db: Database, sets: list[LabelledSet], files: dict[str, str], dim: int,
                seed: int = 0, share: float = 0.5) -> None:
    print(f"\n## Incremental vs full through the database (default method): {share:.0%} of "
          "the photos, `rbv cluster`, the rest, `rbv cluster`")
    print(f"{'set':<10} {'full pF/bF':>15} {'incremental pF/bF':>19} {'re-clustered':>13} "
          f"{'first-round faces kept / persons kept':>38}")
    rng = np.random.default_rng(seed)
    for s in sets:
        if s.aged:
            print(f"{s.name:<10} (centred by age: the copies this inserts carry no ages)")
            continue
        images = np.unique(s.faces.image_ids)
        first = set(rng.choice(images, int(len(images) * share), replace=False).tolist())
        half = np.array([int(i) in first for i in s.faces.image_ids], bool)
        results = []
        for split in (None, half):
            name = f"quality_{s.name}_{uuid.uuid4().hex[:8]}"
            with db.transaction() as conn:
                pack = register_pack(conn, name, {**files, "run": name}, dim)
            rounds = [np.ones(len(s.faces), bool)] if split is None else [split, ~split]
            before: dict[int, uuid.UUID | None] = {}
            regrouped = False
            for rows in rounds:
                with db.transaction() as conn:
                    insert_faces(conn, (NewFace(int(s.faces.image_ids[r]), pack.id,
                                                (0, 0, 1, 1), None, 0.9, None,
                                                s.faces.embeddings[r])
                                        for r in np.flatnonzero(rows).tolist()))
                report = cluster_pack(db, name, ClusterOptions())
                regrouped |= bool(before) and report.full
                with db.connect() as conn:
                    now = load_faces(conn, pack)
                person_by_image_row = dict(zip(now.ids.tolist(), now.person_ids, strict=True))
                if before:
                    kept = (sum(person_by_image_row[f] == p for f, p in before.items()),
                            len(before))
                    first_persons = {p for p in before.values() if p is not None}
                    persons_kept = (len(first_persons & set(now.person_ids)),
                                    len(first_persons))
                before = person_by_image_row
            # faces were inserted in row order within each round: map back by image + order
            labels = _labels_in_set_order(s, now, rounds)
            mine = labels[s.evaluation.labelled]
            results.append((pairwise(mine, s.evaluation.truth),
                            bcubed(mine, s.evaluation.truth)))
        (pf, bf), (pi, bi) = results
        faces_kept = f"{kept[0]:,} of {kept[1]:,} / {persons_kept[0]:,} of {persons_kept[1]:,}"
        print(f"{s.name:<10} {pf.f1:>7.3f} / {bf.f1:.3f} {pi.f1:>11.3f} / {bi.f1:.3f} "
              f"{'yes' if regrouped else 'no':>13} {faces_kept:>38}")


def _labels_in_set_order(s: LabelledSet, now: PackFaces, rounds: list[np.ndarray]
                         ) -> np.ndarray:
    order = np.concatenate([np.flatnonzero(r) for r in rounds])  # insertion order = id order
    by_id = np.argsort(now.ids)
    persons = [now.person_ids[i] for i in by_id.tolist()]
    codes = {p: i for i, p in enumerate(dict.fromkeys(persons))}
    labels = np.empty(len(s.faces), np.int64)
    labels[order] = [codes[p] for p in persons]
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--data", default="/tmp/rbv-quality",
                        help="scratch data directory (kept: the photos are indexed once)")
    parser.add_argument("--no-ages", action="store_true",
                        help="compare faces as the recognizer made them, even where they "
                             "have estimated ages (the matrix before issue 64)")
    args = parser.parse_args()
    settings = Settings(data_dir=Path(args.data), model_pack=args.pack)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    started = time.perf_counter()
    sets = load_sets(db, settings, Path(args.pack).name, ages=not args.no_ages)
    with db.connect() as conn:
        row = conn.execute("SELECT files, embedding_dim FROM model_packs WHERE name = %s",
                           (Path(args.pack).name,)).fetchone()
    files, dim = dict(row[0]), int(row[1])  # type: ignore[index]
    for s in sets:
        print(f"{s.name}: {len(s.faces):,} faces, {len(s.evaluation.labelled):,} labelled, "
              f"{len(set(s.evaluation.truth.tolist())):,} identities")
    matrix(sets, files)
    default_detail(sets, files)
    transfer(sets)
    for share in (0.5, 0.7, 0.9):
        incremental(db, sets, files, dim, share=share)
    print(f"\n(threshold fallback without calibration: {DEFAULT_THRESHOLD}; "
          f"{time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
