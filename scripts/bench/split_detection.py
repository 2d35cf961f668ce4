"""How well `rbv persons review` finds two people in one person, and strangers in a
person, on the three labelled sets (data/faces, data/lfw_many, data/family).

* Two people in one: persons made by merging two true identities (random pairs of
  identities with 2+ faces each; every kin pair of data/family: brother/sister and
  parent/child): how many the two-people test flags, and how many of those with exactly
  the two identities as halves. Kin pairs of data/family have one photo each, so their
  merge is a person of two faces: there the doubtful-face test is the one that can say
  so, and it is what is counted.
* False alarms: true identities of 4+ faces flagged as two people (data/family's
  ``lag_*`` identities are one person young and old; they are counted apart).
* The same two measures for re-clustering the person's faces with evidence linkage at the
  library's setting (``rbv persons split --method evidence``, the default before
  ``persons split`` made review's decision): merged pairs whose two identities end in
  no common group, and in exactly two groups; true identities kept whole.
* A stranger in a person: into every true identity of 4+ faces, the labelled face of
  another identity most like it, one at a time (the three most alike): how many the
  review marks doubtful with the impostor bar alone (z < 3, before) and now; and the true
  faces of those persons it marks (false marks).

Scores count each photo's main (labelled) face. Photos are indexed once with the real
pipeline into a scratch data directory (the one quality_matrix.py uses).

    uv run python scripts/bench/split_detection.py
    uv run python scripts/bench/split_detection.py --pairs 500 --data /tmp/rbv-quality
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from rbv.cluster.calibrations import DEFAULT_METHOD, resolve_setting
from rbv.cluster.constraints import Constraints
from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.person_split import split_test
from rbv.cluster.suggestions import least_typical_first
from rbv.config import Settings
from rbv.jobs.persons.evidence import DOUBT_Z
from rbv.store import open_database
from rbv.store.server.migrations import apply_pending

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_matrix import SHARED, LabelledSet, load_sets  # noqa: E402

MIN_FACES = 4
"""True identities of at least this many faces are tested for false alarms."""
HARDEST = 3
"""Strangers injected per identity: the most alike first."""


def identities(s: LabelledSet) -> dict[str, np.ndarray]:
    rows: dict[str, list[int]] = defaultdict(list)
    for row, who in enumerate(s.truth.tolist()):
        if who is not None:
            rows[who].append(row)
    return {k: np.array(v, np.int64) for k, v in rows.items()}


def kin_pairs() -> list[tuple[str, str, str]]:
    """(identity, identity, relation) of data/family's kin groups."""
    groups: dict[str, dict[str, str]] = defaultdict(dict)
    with open(SHARED / "data" / "family" / "labels.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["family"]:
                groups[r["family"]][r["identity"]] = r["role"]
    out = []
    for members in groups.values():
        names = sorted(members)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                kids = {members[a], members[b]} <= {"son", "daughter"}
                out.append((a, b, "brother/sister" if kids else "parent/child"))
    return out


def marked(fits: list, row: int) -> tuple[bool, bool]:  # type: ignore[type-arg]
    """(impostor bar alone, now) for the face of ``row``."""
    fit = next(f for f in fits if f.row == row)
    return fit.z < DOUBT_Z, fit.z < DOUBT_Z or fit.nearer_strangers


def reclustered(s: LabelledSet, rows: np.ndarray, model: ImpostorModel) -> np.ndarray:
    """Groups of ``rows`` re-clustered as ``persons split --method evidence`` does (at the
    library's setting, asked as of the set's size)."""
    constraints = Constraints.build(len(rows), image_ids=s.faces.image_ids[rows])
    return cluster_embeddings(s.faces.embeddings[rows], Method.evidence, 0.0, constraints,
                              impostor=model, n_library=len(s.faces))


def merged_pairs(s: LabelledSet, ids: dict[str, np.ndarray], model: ImpostorModel,
                 pairs: int, rng: np.random.Generator) -> None:
    x = s.faces.embeddings
    names = sorted(k for k, r in ids.items() if len(r) >= 2)
    count = Counter[str]()
    for _ in range(pairs):
        a, b = rng.choice(len(names), 2, replace=False)
        ra, rb = ids[names[a]], ids[names[b]]
        truth = np.r_[np.zeros(len(ra)), np.ones(len(rb))]
        groups = reclustered(s, np.concatenate([ra, rb]), model)
        apart = all(len(set(truth[groups == g].tolist())) == 1 for g in set(groups.tolist()))
        count["apart"] += apart
        count["two"] += apart and len(set(groups.tolist())) == 2
        count["groups"] += len(set(groups.tolist()))
        test = split_test(x[np.concatenate([ra, rb])], model)
        if test is None or not test.two_people:
            continue
        count["flagged"] += 1
        count["exact"] += bool((test.half == truth).all() or (test.half != truth).all())
    print(f"  two identities (2+ faces each) merged: flagged {count['flagged']} of {pairs}; "
          f"halves exactly the two identities in {count['exact']}")
    print(f"    re-clustered (--method evidence): the two apart in {count['apart']}, in "
          f"exactly two groups {count['two']}; {count['groups'] / pairs:.2f} groups on "
          "average")


def false_alarms(s: LabelledSet, ids: dict[str, np.ndarray], model: ImpostorModel) -> None:
    x = s.faces.embeddings
    tested: Counter[str] = Counter()
    alarms: Counter[str] = Counter()
    broken: Counter[str] = Counter()
    z_cross: list[float] = []
    for name, rows in ids.items():
        if len(rows) < MIN_FACES:
            continue
        kind = "age-gap" if name.startswith("lag_") else "single"
        tested[kind] += 1
        test = split_test(x[rows], model)
        if test is not None and test.two_people:
            alarms[kind] += 1
            z_cross.append(test.z_stranger)
        broken[kind] += len(set(reclustered(s, rows, model).tolist())) > 1
    for kind in sorted(tested):
        label = ("one person young and old (lag_*)" if kind == "age-gap"
                 else f"true identities of {MIN_FACES}+ faces")
        print(f"  false alarms: {alarms[kind]} of {tested[kind]} {label} (re-clustered "
              f"with --method evidence: {broken[kind]} broken up)")
    if z_cross:
        print(f"    their halves' cross similarity: median z {np.median(z_cross):.2f} above "
              "the impostor mean (strangers' level)")


def injected(s: LabelledSet, ids: dict[str, np.ndarray], model: ImpostorModel) -> None:
    x = s.faces.embeddings
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    labelled = np.flatnonzero(np.array([t is not None for t in s.truth.tolist()]))
    count = Counter[str]()
    for name, rows in ids.items():
        if len(rows) < MIN_FACES:
            continue
        clean = least_typical_first(x[rows], model)
        count["true"] += len(rows)
        count["clean_before"] += sum(f.z < DOUBT_Z for f in clean)
        count["clean_now"] += sum(f.z < DOUBT_Z or f.nearer_strangers for f in clean)
        others = labelled[s.truth[labelled] != name]
        likeness = unit[others] @ unit[rows].sum(axis=0)
        for stranger in others[np.argsort(-likeness, kind="stable")[:HARDEST]].tolist():
            fits = least_typical_first(x[np.append(rows, stranger)], model)
            before, now = marked(fits, len(rows))
            count["injected"] += 1
            count["before"] += before
            count["now"] += now
            for f in fits:
                if f.row != len(rows):
                    count["faces"] += 1
                    count["false_before"] += f.z < DOUBT_Z
                    count["false_now"] += f.z < DOUBT_Z or f.nearer_strangers
    print(f"  injected stranger (the {HARDEST} most alike per identity): marked "
          f"{count['before']} of {count['injected']} by the impostor bar alone, "
          f"{count['now']} now; true faces of those persons marked: "
          f"{count['false_before']} before, {count['false_now']} now, of {count['faces']}")
    print(f"  true identities alone: faces marked {count['clean_before']} before, "
          f"{count['clean_now']} now, of {count['true']}")


def kin(s: LabelledSet, ids: dict[str, np.ndarray], model: ImpostorModel) -> None:
    x = s.faces.embeddings
    seen: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    for a, b, relation in kin_pairs():
        if a not in ids or b not in ids:
            continue
        ra, rb = ids[a], ids[b]
        rows = np.concatenate([ra, rb])
        seen[relation] += 1
        test = split_test(x[rows], model)
        fits = least_typical_first(x[rows], model)
        flagged = (test is not None and test.two_people) or any(
            f.z < DOUBT_Z or f.nearer_strangers for f in fits)
        hit[relation] += flagged
    for relation in sorted(seen):
        print(f"  {relation} merged into one person: flagged {hit[relation]} of "
              f"{seen[relation]} (two-people test, or its faces marked doubtful)")


def default_clustering(s: LabelledSet, model: ImpostorModel) -> None:
    """The shipped default's persons of 4+ faces: how many hold two identities (2+
    labelled faces each) and how many the two-people test flags."""
    faces = s.faces
    constraints = Constraints.build(len(faces), image_ids=faces.image_ids)
    labels = cluster_embeddings(faces.embeddings, Method.evidence, 0.0, constraints,
                                impostor=model)
    count = Counter[str]()
    for person in np.unique(labels).tolist():
        rows = np.flatnonzero(labels == person)
        if len(rows) < MIN_FACES:
            continue
        named = Counter(t for t in s.truth[rows].tolist() if t is not None)
        mixed = len([n for n in named.values() if n >= 2]) >= 2
        test = split_test(faces.embeddings[rows], model)
        flagged = test is not None and test.two_people
        count["persons"] += 1
        count["mixed"] += mixed
        count["flagged"] += flagged
        count["both"] += mixed and flagged
    print(f"  default clustering ({DEFAULT_METHOD.value}): {count['persons']} persons of "
          f"{MIN_FACES}+ faces, {count['mixed']} hold two identities (2+ faces each); "
          f"flagged {count['flagged']}, {count['both']} of them such")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--data", default="/tmp/rbv-quality",
                        help="scratch data directory (kept: the photos are indexed once)")
    parser.add_argument("--pairs", type=int, default=300,
                        help="random merged pairs of identities per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings(data_dir=Path(args.data), model_pack=args.pack)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    sets = load_sets(db, settings, Path(args.pack).name)
    with db.connect() as conn:
        row = conn.execute("SELECT files FROM model_packs WHERE name = %s",
                           (Path(args.pack).name,)).fetchone()
    model = resolve_setting({}, dict(row[0]) if row else {}, Method.evidence).impostor
    assert model is not None, "the pack has no built-in impostor model"
    print(f"impostor model: mu {model.mu}, sigma {model.sigma}, tau {model.tau}")
    for s in sets:
        ids = identities(s)
        print(f"{s.name}: {len(s.faces):,} faces, {len(ids):,} identities")
        rng = np.random.default_rng(args.seed)
        merged_pairs(s, ids, model, args.pairs, rng)
        if s.name == "family":
            kin(s, ids, model)
        false_alarms(s, ids, model)
        injected(s, ids, model)
        default_clustering(s, model)


if __name__ == "__main__":
    main()
