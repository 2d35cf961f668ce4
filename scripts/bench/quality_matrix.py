"""Clustering quality on both labelled sets: the shipped default, every method with rbv's
settings and with none, calibration carried from one set to the other, and an
incremental run (half the photos, then the rest) against a full run, through the
database.

Also, for the default: kin pairs (data/family's labels.csv: same family, different
people) in one person, child↔adult pairs of one person together, persons holding two
faces of one photo; and the pack's best single setting per set against the default with
no calibration (issue 64: within 0.02 pairwise F on faces and lfw_many).

Photos are indexed once with the real pipeline into a scratch data directory (kept, so
re-runs take seconds); scores count each photo's main (labelled) face, all faces are
clustered.

    uv run python scripts/bench/quality_matrix.py
    uv run python scripts/bench/quality_matrix.py --pack ../shared/models/scrfd_sface --data /tmp/q
"""

from __future__ import annotations

import argparse
import csv
import shutil
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
    BUDGET_GRID,
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
from rbv.faces.estimates import FaceEstimate
from rbv.jobs.grouping import cluster_update
from rbv.jobs.grouping.aged import ages_of
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.jobs.grouping.eval import faces_under, label_main_faces, read_labels
from rbv.jobs.grouping.face_lists import lists_folder
from rbv.jobs.library.analyzer import load_face_analyzer
from rbv.jobs.library.index import run_index
from rbv.store import Database, open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.attributes import save_attributes
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.faces import NewFace, insert_faces_ids
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
    photos: list[Path]  # per labelled face (evaluation.labelled order): its photo, resolved
    labels_csv: Path | None  # the set's labels.csv (family/age_group columns for kin pairs)
    aged: ImpostorModel | None = None  # centred by age: the impostor model it estimates
    centred: Evaluation | None = None  # the faces centred by age (what evidence uses)
    ages: np.ndarray | None = None  # per face: its estimated age (NaN: none)

    def of(self, method: str) -> Evaluation:
        """The faces ``method`` clusters: centred by age for evidence, as a library with
        estimated ages is; the recognizer's own for the similarity thresholds."""
        return self.centred if self.centred and method == Method.evidence.value \
            else self.evaluation


SETS = (("faces", SHARED / "data" / "faces", SHARED / "data" / "labels.csv"),
        ("lfw_many", SHARED / "data" / "lfw_many", None),
        ("family", SHARED / "data" / "family", None))
"""The three labelled sets: name, folder, labels.csv (None: the folder's own)."""


def index_sets(db: Database, settings: Settings) -> None:
    """The three sets' photos indexed with the settings' pack (what is new only)."""
    run_index(db, settings, [folder for _, folder, _ in SETS],
              analyzer=load_face_analyzer(settings))


def load_sets(db: Database, settings: Settings, pack_name: str, ages: bool = True
              ) -> list[LabelledSet]:
    """The three sets' faces; with ``ages``, where the faces have estimated ages
    (``rbv enrich --attribute-model``), each set centred on its own faces of each age, as
    ``cluster --full`` centres a library (:mod:`rbv.jobs.grouping.aged`)."""
    index_sets(db, settings)
    with db.connect() as conn:
        pack = find_pack(conn, pack_name)
        every = load_faces(conn, pack)
        paths = faces_with_paths(conn, pack)
    out = []
    for name, folder, labels_csv in SETS:
        inside = faces_under(paths, folder)
        faces = every.take(np.flatnonzero(np.isin(every.ids, sorted(inside))))
        truth, _ = label_main_faces(faces, [p for p in paths if p.face_id in inside],
                                    read_labels(folder, labels_csv))
        aged, centred = None, None
        if ages:
            with db.connect() as conn:
                centres = AgeCentres.measure(faces.embeddings, ages_of(conn, faces.ids, pack.id),
                                             library_impostor(faces.embeddings,
                                                              faces.image_ids,
                                                              plain=True)[0])
                if centres is not None:
                    moved = replace(faces, embeddings=centres.centred(
                        faces.embeddings, ages_of(conn, faces.ids, pack.id)))
                    aged = ImpostorModel.from_pairs(random_pair_similarities(
                        moved.embeddings, moved.image_ids), robust=True)
                    centred = Evaluation(moved, truth)
        evaluation = Evaluation(faces, truth)
        photo_of = {p.face_id: Path(p.path).resolve() for p in paths if p.face_id in inside}
        photos = [photo_of[int(f)] for f in faces.ids[evaluation.labelled].tolist()]
        csv_path = labels_csv or (folder / "labels.csv")
        with db.connect() as conn:
            ages_now = ages_of(conn, faces.ids, pack.id)
        out.append(LabelledSet(name, faces, truth, evaluation, photos,
                               csv_path if csv_path.is_file() else None, aged, centred,
                               ages_now if np.isfinite(ages_now).any() else None))
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
                    model = s.aged or ImpostorModel.from_library_pairs(
                        random_pair_similarities(s.faces.embeddings, s.faces.image_ids))
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
        # Without a built-in model rbv estimates one from the library, as here (the
        # evaluation's own default would be the model measured on the labels).
        method = setting.method.value
        labels = s.of(method).labels(method, setting.budget or DEFAULT_BUDGET,
                                     s.aged or setting.impostor or estimated_impostor(s)
                                     )[s.evaluation.labelled]
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


def estimated_impostor(s: LabelledSet) -> ImpostorModel:
    """The impostor model rbv estimates for a recognizer it has no calibration for (the
    set's own random face pairs), as the "no calibration" rows use it; of the faces
    centred by age where they are."""
    return s.aged or ImpostorModel.from_library_pairs(
        random_pair_similarities(s.faces.embeddings, s.faces.image_ids))


def kin_labels(s: LabelledSet) -> tuple[np.ndarray, np.ndarray] | None:
    """Per labelled face: its family ('' for none) and age group, from the set's
    labels.csv (None when it has no such columns)."""
    return None if s.labels_csv is None else family_and_age(s.labels_csv, s.photos)


def family_and_age(labels_csv: Path, photos: list[Path]
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per photo (resolved paths): its family ('' for none) and age group, from
    ``labels_csv`` (None when it has no such columns)."""
    with labels_csv.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"family", "age_group"} <= set(reader.fieldnames or ()):
            return None
        rows = {(labels_csv.parent / r["path"]).resolve(): r for r in reader}
    return (np.array([rows[p]["family"].strip() for p in photos], object),
            np.array([rows[p]["age_group"].strip() for p in photos], object))


def pair_kinds(family: np.ndarray, age: np.ndarray, truth: np.ndarray, i: np.ndarray,
               j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of faces ``i[k]``, ``j[k]``: kin (same family, different identities), and
    child↔adult of one identity (young vs adult)."""
    kin = (family[i] != "") & (family[i] == family[j]) & (truth[i] != truth[j])
    lag = (truth[i] == truth[j]) & (((age[i] == "young") & (age[j] == "adult"))
                                    | ((age[i] == "adult") & (age[j] == "young")))
    return kin, lag


def kin_cell(s: LabelledSet, labels: np.ndarray) -> tuple[str, str]:
    """Kin face pairs (same family, different identity) in one person, with the pairs of
    kin people that share a person; and child↔adult face pairs of one identity (young
    vs adult) together, with the identities that have one such pair together."""
    kin = kin_labels(s)
    if kin is None:
        return "–", "–"
    family, age = kin
    mine, truth = labels[s.evaluation.labelled], s.evaluation.truth
    i, j = np.triu_indices(len(mine), 1)
    together = mine[i] == mine[j]
    is_kin, lag = pair_kinds(family, age, truth, i, j)
    kin_people = {tuple(sorted(p)) for p in zip(truth[i][is_kin], truth[j][is_kin],
                                                 strict=True)}
    joined_people = {tuple(sorted(p)) for p in zip(truth[i][is_kin & together],
                                                    truth[j][is_kin & together], strict=True)}
    lag_ids = set(truth[i][lag].tolist())
    lag_joined = set(truth[i][lag & together].tolist())
    return (f"{int((is_kin & together).sum()):,} of {int(is_kin.sum()):,} "
            f"({len(joined_people)} of {len(kin_people)} people pairs)",
            f"{int((lag & together).sum()):,} of {int(lag.sum()):,} "
            f"({len(lag_joined)} of {len(lag_ids)} people)")


def persons_with_photo_twice(s: LabelledSet, labels: np.ndarray) -> int:
    """Persons (of every face, labelled or not) that hold two faces of one photo."""
    pairs = np.unique(np.stack([labels, s.faces.image_ids]), axis=1, return_counts=True)
    return len(np.unique(pairs[0][0][pairs[1] > 1]))


def kin_and_photos(sets: list[LabelledSet], files: dict[str, str]) -> None:
    print("\n## Kin and one photo, the default: kin face pairs (same family, different "
          "people) in one person (should be 0); child↔adult face pairs of one person "
          "(young vs adult) together; persons holding two faces of one photo")
    print(f"{'set':<10} {'setting':<15} {'kin pairs joined':>32} "
          f"{'child↔adult together':>30} {'2 of a photo':>13}")
    calibrated = resolve_setting({}, files, None)
    for s in sets:
        for words, model in (("rbv's setting", s.aged or calibrated.impostor),
                             ("no calibration", None)):
            model = model or estimated_impostor(s)
            labels = s.of(Method.evidence.value).labels(Method.evidence.value,
                                         calibrated.budget or DEFAULT_BUDGET, model)
            kin, lag = kin_cell(s, labels)
            print(f"{s.name:<10} {words:<15} {kin:>32} {lag:>30} "
                  f"{persons_with_photo_twice(s, labels):>13}")


SIMILARITY_GRID = tuple(round(t, 2) for t in np.arange(0.10, 0.801, 0.02))
"""Similarities the best single threshold is looked for among (lower than `rbv eval`'s
grid: a recognizer weaker than SFace may need it)."""


def best_single_setting(sets: list[LabelledSet], files: dict[str, str]) -> None:
    """The pack's best single threshold per set (each threshold method over
    ``SIMILARITY_GRID``, evidence over its budgets with the model estimated from the set
    and with the one measured on its labels) against the default with no calibration;
    and each threshold method's one similarity best for faces and lfw_many together."""
    print("\n## Best single setting against the default with no calibration (pairwise F;"
          " issue 64: the default within 0.02 of the best single threshold)")
    print(f"{'set':<10} {'default, none':>14} {'evidence best (est.)':>22} "
          f"{'evidence best (labelled)':>26} {'best similarity threshold':>32} "
          f"{'gap':>7}")
    sweeps: dict[tuple[str, str], list[MethodScores]] = {}
    for s in sets:
        model = estimated_impostor(s)
        default = score(s, Method.evidence.value, DEFAULT_BUDGET, model)
        estimated = best_of([score(s, Method.evidence.value, b, model) for b in BUDGET_GRID])
        labelled = best_of(s.of(Method.evidence.value).sweep(Method.evidence.value))
        for method in ALL_METHODS:
            if method != Method.evidence.value:
                sweeps[s.name, method] = s.evaluation.sweep(method, SIMILARITY_GRID)
        best = max((best_of(sweeps[s.name, m]) for m in ALL_METHODS
                    if m != Method.evidence.value), key=lambda m: m.pairwise.f1)
        top = max(best.pairwise.f1, estimated.pairwise.f1, labelled.pairwise.f1)
        print(f"{s.name:<10} {default.pairwise.f1:>14.3f} "
              f"{f'{estimated.pairwise.f1:.3f} (budget {estimated.threshold:g})':>22} "
              f"{f'{labelled.pairwise.f1:.3f} (budget {labelled.threshold:g})':>26} "
              f"{f'{best.pairwise.f1:.3f} ({best.method} {best.threshold:.2f})':>32} "
              f"{default.pairwise.f1 - top:>+7.3f}")
    pair = [s.name for s in sets if s.name in ("faces", "lfw_many")]
    if len(pair) < 2:
        return
    print(f"\none similarity for {' and '.join(pair)} together (best mean pairwise F)")
    for method in ALL_METHODS:
        if method == Method.evidence.value:
            continue
        at = max(range(len(SIMILARITY_GRID)), key=lambda k: sum(
            sweeps[name, method][k].pairwise.f1 for name in pair))
        cells = " ".join(f"{name} {sweeps[name, method][at].pairwise.f1:.3f}" for name in pair)
        print(f"{method:<15} {SIMILARITY_GRID[at]:.2f}: {cells}")


def incremental(db: Database, sets: list[LabelledSet], files: dict[str, str], dim: int,
                seed: int = 0, share: float = 0.5, no_ages: bool = False) -> None:
    print(f"\n## Incremental vs full through the database (default method): {share:.0%} of "
          "the photos, `rbv cluster`, the rest, `rbv cluster` (faces with their estimated "
          "ages where they have them)")
    print(f"{'set':<10} {'full pF/bF':>15} {'incremental pF/bF':>19} {'re-clustered':>13} "
          f"{'first-round faces kept / persons kept':>38}")
    rng = np.random.default_rng(seed)
    for s in sets:
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
                    chosen = np.flatnonzero(rows).tolist()
                    ids = insert_faces_ids(conn, (NewFace(int(s.faces.image_ids[r]), pack.id,
                                                          (0, 0, 1, 1), None, 0.9, None,
                                                          s.faces.embeddings[r])
                                                  for r in chosen))
                    if s.ages is not None and not no_ages:  # the copies' estimated ages
                        save_attributes(conn, [
                            (f, FaceEstimate(float(s.ages[r]), 0.0, "male", 0.5, "copy", "-"))
                            for f, r in zip(ids, chosen, strict=True)
                            if np.isfinite(s.ages[r])])
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
            with db.connect() as conn:  # the run's face lists, if it made them: scratch
                folder = lists_folder(db, conn, pack)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
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
    parser.add_argument("--face-lists", action="store_true",
                        help="the incremental runs search the face lists (rbv's way from "
                             f"{cluster_update.LISTS_MIN_FACES:,} faces), not the HNSW index")
    parser.add_argument("--no-ages", action="store_true",
                        help="compare faces as the recognizer made them, even where they "
                             "have estimated ages (the matrix before issue 64)")
    args = parser.parse_args()
    if args.face_lists:
        cluster_update.LISTS_MIN_FACES = 0
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
    kin_and_photos(sets, files)
    best_single_setting(sets, files)
    for share in (0.5, 0.7, 0.9):
        incremental(db, sets, files, dim, share=share, no_ages=args.no_ages)
    print(f"\n(threshold fallback without calibration: {DEFAULT_THRESHOLD}; "
          f"{time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
