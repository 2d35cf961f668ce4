"""Precision@10 of `rbv persons suggest` on both labelled sets.

Each set's faces are clustered at a strict setting (connected components at a high
similarity, so true persons are split into fragments), then the merge suggestions are
ranked. A suggested pair is a true merge when both persons' majority labels agree
(labels name each photo's main face: the folder names of data/faces, labels.csv of
data/lfw_many); a pair with an unlabelled person counts as wrong. The baselines rank the
same candidate pairs by centroid similarity alone and by best face pair alone; and the
ranking before #22 (candidate pairs from a k-NN graph over every face).

Photos are indexed once into a scratch data directory (the one quality_matrix.py uses, so
a re-run takes seconds).

    uv run python scripts/bench/suggest_precision.py
    uv run python scripts/bench/suggest_precision.py --threshold 0.75 --top 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.constraints import Constraints
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.suggestions import MergeSuggestion, least_typical_first, suggest_merges
from rbv.config import Settings
from rbv.jobs.persons.evidence import DOUBT_Z
from rbv.store import open_database
from rbv.store.server.migrations import apply_pending

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_matrix import SHARED, LabelledSet, load_sets  # noqa: E402
from suggest_baseline import face_knn_suggest_merges  # noqa: E402


def majority_labels(labels: np.ndarray, truth: np.ndarray) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for person in np.unique(labels).tolist():
        named = [t for t in truth[labels == person].tolist() if t is not None]
        out[person] = Counter(named).most_common(1)[0][0] if named else None
    return out


def precision(pairs: list[tuple[int, int]], majority: dict[int, str | None], top: int
              ) -> tuple[float, int]:
    """Share of the first ``top`` pairs that are true merges, and how many were judged."""
    head = pairs[:top]
    true = sum(1 for a, b in head if majority[a] is not None and majority[a] == majority[b])
    judged = sum(1 for a, b in head if majority[a] is not None and majority[b] is not None)
    return true / max(len(head), 1), judged


def evaluate(s: LabelledSet, threshold: float, top: int, files: dict[str, str]) -> None:
    model = resolve_setting({}, files, Method.evidence).impostor
    assert model is not None, "the pack has no built-in impostor model"
    faces = s.faces
    constraints = Constraints.build(len(faces), image_ids=faces.image_ids)
    labels = cluster_embeddings(faces.embeddings, Method.connected, threshold, constraints)
    majority = majority_labels(labels, s.truth)
    started = time.perf_counter()
    ranked = suggest_merges(faces.embeddings, labels, faces.image_ids, model)
    seconds = time.perf_counter() - started
    identities = {t for t in s.truth.tolist() if t is not None}
    fragments = Counter(m for m in majority.values() if m is not None)
    split = sum(1 for ident in identities if fragments[ident] > 1)
    true_pairs = sum(1 for m in ranked
                     if majority[m.a] is not None and majority[m.a] == majority[m.b])

    def by(key: str) -> list[tuple[int, int]]:
        def value(m: MergeSuggestion) -> float:
            return m.mean if key == "mean" else m.best
        return [(m.a, m.b) for m in sorted(ranked, key=lambda m: (-value(m), m.a, m.b))]

    ours, judged = precision([(m.a, m.b) for m in ranked], majority, top)
    base_mean, _ = precision(by("mean"), majority, top)
    base_best, _ = precision(by("best"), majority, top)
    r_ours = precision([(m.a, m.b) for m in ranked], majority, true_pairs)[0]
    r_mean = precision(by("mean"), majority, true_pairs)[0]
    r_best = precision(by("best"), majority, true_pairs)[0]
    print(f"{s.name}: {len(faces):,} faces -> {int(labels.max()) + 1:,} persons at "
          f"connected {threshold:g}; {split} of {len(identities):,} identities split; "
          f"{len(ranked):,} candidate pairs ({seconds:.2f} s)")
    print(f"  precision@{top}: suggest {ours:.2f} ({judged} of {top} judgeable) | "
          f"centroid similarity alone {base_mean:.2f} | best pair alone {base_best:.2f} | "
          f"ratio suggest / centroid {ours / max(base_mean, 1e-9):.2f}")
    print(f"  R-precision (R = {true_pairs} true merges among the candidates): suggest "
          f"{r_ours:.2f} | centroid similarity alone {r_mean:.2f} | best pair alone "
          f"{r_best:.2f}")
    # Before #22: candidates from a k-NN graph over every face (same score).
    before = [(m.a, m.b) for m in face_knn_suggest_merges(faces.embeddings, labels,
                                                           faces.image_ids, model)]
    r_before = sum(1 for a, b in before if majority[a] is not None and majority[a] == majority[b])
    print(f"  before #22 (face k-NN candidates): {len(before):,} candidate pairs, R = "
          f"{r_before}; precision@{top} {precision(before, majority, top)[0]:.2f}, "
          f"R-precision {precision(before, majority, r_before)[0]:.2f}; now at that R "
          f"{precision([(m.a, m.b) for m in ranked], majority, r_before)[0]:.2f}")
    for rank, m in enumerate(ranked[:top], 1):
        verdict = ("true" if majority[m.a] is not None and majority[m.a] == majority[m.b]
                   else "false")
        print(f"  {rank:>2} {verdict:<5} p={m.probability:.3f} {m.why()}: "
              f"{majority[m.a]} / {majority[m.b]}")


def review_flags(s: LabelledSet, files: dict[str, str], doubt_z: float, loose: float) -> None:
    """`rbv persons review` after a loose clustering (connected components at ``loose``,
    so persons take in strangers): faces whose label is not their person's majority
    label (intruders) against the faces it marks doubtful, and how often the least
    typical faces of a person are its intruders."""
    model = resolve_setting({}, files, Method.evidence).impostor
    assert model is not None
    faces = s.faces
    constraints = Constraints.build(len(faces), image_ids=faces.image_ids)
    labels = cluster_embeddings(faces.embeddings, Method.connected, loose, constraints)
    majority = majority_labels(labels, s.truth)
    intruders = flagged = hit = bar_flagged = bar_hit = first_hits = first_total = 0
    for person in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == person)
        if len(rows) < 3:
            continue
        fits = least_typical_first(faces.embeddings[rows], model)
        wrong = [s.truth[rows[f.row]] is not None and s.truth[rows[f.row]] != majority[person]
                 for f in fits]
        bar = [f.z < doubt_z for f in fits]  # the impostor bar alone (before #20)
        doubtful = [f.z < doubt_z or f.nearer_strangers for f in fits]
        intruders += sum(wrong)
        flagged += sum(doubtful)
        hit += sum(w and d for w, d in zip(wrong, doubtful, strict=True))
        bar_flagged += sum(bar)
        bar_hit += sum(w and d for w, d in zip(wrong, bar, strict=True))
        k = sum(wrong)
        first_hits += sum(wrong[:k])
        first_total += k
    print(f"  review at connected {loose:g}: {intruders} intruding labelled faces in "
          f"persons of 3+ faces; {flagged} marked doubtful, {hit} of them intruders "
          f"(impostor bar z < {doubt_z:g} alone: {bar_flagged}, {bar_hit}); intruders among "
          f"each person's k least typical faces (k = its intruders): {first_hits} of "
          f"{first_total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--data", default="/tmp/rbv-quality",
                        help="scratch data directory (kept: the photos are indexed once)")
    parser.add_argument("--threshold", type=float, default=0.70,
                        help="strict connected-components similarity (rbv's is 0.52)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--loose", type=float, default=0.40,
                        help="loose connected-components similarity for the review check")
    args = parser.parse_args()
    settings = Settings(data_dir=Path(args.data), model_pack=args.pack)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    sets = load_sets(db, settings, Path(args.pack).name)
    with db.connect() as conn:
        row = conn.execute("SELECT files FROM model_packs WHERE name = %s",
                           (Path(args.pack).name,)).fetchone()
    files = dict(row[0]) if row else {}
    for s in sets:
        evaluate(s, args.threshold, args.top, files)
        review_flags(s, files, DOUBT_Z, args.loose)


if __name__ == "__main__":
    main()
