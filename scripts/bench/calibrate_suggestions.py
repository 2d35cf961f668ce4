"""Fit the calibration of merge suggestions (rbv.cluster.pair_odds.PRIOR) on the developer
sets, and measure each set's reliability with weights fitted on the other two.

Each set is indexed and clustered with the shipped defaults (the scratch data
directories of scripts/bench/review_effort.py, kept: photos are indexed once; with
estimated ages, as review_effort.py has them, unless ``--no-ages``); its candidate
pairs (each person's 24 nearest persons, as `rbv serve` ranks them) are labelled from
labels.csv: one person when most labelled faces of both are one identity. The weights
are those of a logistic regression of that label on the pair's features, each set
counted equally. Prints, per set left out: its expected calibration error and
reliability table before (the old score, 1 / (1 + expected look-alike pairs)) and after
(weights fitted without it), the ranking's AUC, and the weights (for
`review_effort.py --prior`); then the weights fitted on all three.

    uv run python scripts/bench/calibrate_suggestions.py
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from rbv.cluster.pair_odds import FEATURES, PRIOR, PairOdds  # noqa: E402
from rbv.cluster.suggestions import suggest_merges  # noqa: E402
from rbv.jobs.persons.evidence import REVIEW_CANDIDATES, load_evidence  # noqa: E402
from review_effort import (  # noqa: E402
    AGE_MODEL,
    SHARED,
    calibration_error,
    open_scratch,
    prepare,
    reliability,
    truth_of,
)

SETS = {"family": None, "faces": SHARED / "data" / "labels.csv", "lfw_many": None}


def candidate_pairs(name: str, labels: Path | None, pack: str, ages: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The set's labelled candidate pairs after the default clustering: features, the
    old score, 1 where both persons are mostly one identity, and the log of the two
    persons' faces (the smaller, the larger)."""
    folder = (SHARED / "data" / name).absolute()
    db, settings = open_scratch(folder, pack, attribute_model=AGE_MODEL if ages else None)
    pack_name = Path(pack).name
    prepare(db, settings, pack_name, folder)
    truth = truth_of(db, pack_name, folder, labels)
    with db.connect() as conn:
        evidence = load_evidence(conn, pack_name)
    ranked = suggest_merges(evidence.faces.embeddings, evidence.codes,
                            evidence.faces.image_ids, evidence.model, odds=PRIOR,
                            k=REVIEW_CANDIDATES)
    identity = {}
    for code in range(len(evidence.persons)):
        seen = Counter(truth[int(f)] for f in evidence.faces.ids[evidence.codes == code]
                       if int(f) in truth)
        identity[code] = seen.most_common(1)[0][0] if seen else None
    person_pairs = len(evidence.persons) * (len(evidence.persons) - 1) / 2
    size = np.bincount(evidence.codes[evidence.codes >= 0], minlength=len(evidence.persons))
    rows = [(m.features, _old_score(m.log10_chance, person_pairs),
             identity[m.a] == identity[m.b], sorted((size[m.a], size[m.b])))
            for m in ranked if identity[m.a] is not None and identity[m.b] is not None]
    return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows], float), np.log([r[3] for r in rows]))


def _old_score(log10_chance: float, person_pairs: float) -> float:
    """The score shown before calibration: 1 / (1 + expected look-alike pairs)."""
    return 1.0 / (1.0 + math.exp(min(log10_chance * math.log(10) + math.log(person_pairs),
                                     700.0)))


def fit(parts: list[tuple[np.ndarray, np.ndarray]]) -> PairOdds:
    """Logistic regression, each part (set) weighted equally."""
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    w = np.concatenate([np.full(len(p[1]), len(y) / (len(parts) * len(p[1]))) for p in parts])
    model = LogisticRegression(max_iter=5000).fit(x, y, sample_weight=w)
    return PairOdds(round(float(model.intercept_[0]), 3),
                    tuple(round(float(v), 3) for v in model.coef_[0]))


def with_sizes(pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
               ) -> None:
    """Each set's held-out ranking (AUC) and log loss with the features alone, with the
    smaller person's log size, and with both persons' (fitted on the other two sets)."""
    print("the persons' sizes as features, each set fitted without it:")
    for label, extra in (("features alone", 0), ("+ log smaller", 1), ("+ log both", 2)):
        x = {n: np.hstack([f, sizes[:, :extra]]) for n, (f, _o, _s, sizes) in pairs.items()}
        for name, (_f, _o, same, _sizes) in pairs.items():
            odds = fit([(x[o], pairs[o][2]) for o in pairs if o != name])
            p = np.clip(odds.probability(x[name]), 1e-12, 1 - 1e-12)
            loss = -np.mean(same * np.log(p) + (1 - same) * np.log(1 - p))
            print(f"  {label:>15} {name:>8}: AUC {roc_auc_score(same, p):.4f}, "
                  f"log loss {loss:.4f}")


def show_table(title: str, p: np.ndarray, same: np.ndarray) -> None:
    shown = list(zip(p.tolist(), same.astype(bool).tolist(), strict=True))
    print(f"  {title}: expected calibration error {calibration_error(shown)}")
    for row in reliability(shown):
        print(f"    {row['from']:>5.2f}-{row['to']:<5.2f} {row['pairs']:>6} pairs, "
              f"mean p {row['shown_p']:.3f}, one person {row['same']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--no-ages", action="store_true",
                        help="no estimated ages: persons compared as the recognizer made "
                             "them (the calibration before issue 64)")
    parser.add_argument("--sizes", action="store_true",
                        help="also fit with the log of the two persons' faces as two more "
                             "features and print each set's held-out AUC and log loss "
                             "with and without them (tried for issue 64; not kept)")
    args = parser.parse_args()
    pairs = {name: candidate_pairs(name, labels, args.pack, not args.no_ages)
             for name, labels in SETS.items()}
    if args.sizes:
        with_sizes(pairs)
    data = {name: (x, old, same) for name, (x, old, same, _sizes) in pairs.items()}
    print(f"features: {', '.join(FEATURES)}")
    for name, (x, old, same) in data.items():
        odds = fit([(data[o][0], data[o][2]) for o in data if o != name])
        p = odds.probability(x)
        print(f"\n{name}: {len(same):,} labelled candidate pairs, {int(same.sum())} one person;"
              f" weights fitted without it: --prior "
              f"{','.join(map(str, [odds.intercept, *odds.weights]))}")
        print(f"  ranking AUC: old score {roc_auc_score(same, old):.3f}, "
              f"calibrated {roc_auc_score(same, p):.3f}")
        show_table("old score", old, same)
        show_table("calibrated (fitted on the other two)", p, same)
    odds = fit([(x, same) for x, _old, same in data.values()])
    which = "PRIOR" if args.no_ages else "AGED_PRIOR"  # faces as made, or centred by age
    print(f"\nfitted on all three ({which}): PairOdds({odds.intercept}, {odds.weights})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
