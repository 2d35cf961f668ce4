"""Does a projection learned from a user's confirmed identities tell faces apart better
on identities it was not trained on? (issue 30: the image-search-service seed's idea, a
small head trained on labelled faces; here the light ways: WCCN, a linear whitening of
the within-identity spread in numpy, and scikit-learn's NeighborhoodComponentsAnalysis.)

For each developer set (review_effort.py's scratch database: indexed there if it is not
yet), its labelled faces (each labelled photo's largest face) are split by identity in
two halves: the projection is fitted on one (the identities the user confirmed) and
measured on the other (identities it never saw), then the other way round, for
``--seeds`` random splits. Measured on every pair of faces of the unseen half:
verification AUC and the share of same-identity pairs above the similarity that 0.1 %
and 1 % of different-identity pairs pass (TAR at FAR 1e-3 / 1e-2), for the raw cosine
and for the cosine after each projection; then the same with a projection fitted on the
other two sets (a library's confirmed identities are never its new ones).

    uv run python scripts/bench/learned_metric.py
    uv run python scripts/bench/learned_metric.py --seeds 5 --nca-dims 64
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NeighborhoodComponentsAnalysis

import review_effort
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack

SETS = (("faces", "labels.csv"), ("lfw_many", None), ("family", None))
Projection = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def labelled(folder: Path, labels: Path | None, pack: str
             ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Unit embeddings of the set's labelled faces, and each one's identity code."""
    db, settings = review_effort.open_scratch(folder, pack)
    pack_name = Path(pack).name
    with db.connect() as conn:
        indexed = conn.execute("SELECT count(*) FROM face_detections").fetchone()
    if not indexed or not indexed[0]:
        review_effort.prepare(db, settings, pack_name, folder)
    truth = review_effort.truth_of(db, pack_name, folder, labels)
    with db.connect() as conn:
        faces = load_faces(conn, find_pack(conn, pack_name))
    rows = [i for i, f in enumerate(faces.ids.tolist()) if f in truth]
    x = np.asarray(faces.embeddings[rows], np.float64)
    names = [truth[int(faces.ids[i])] for i in rows]
    codes = {n: c for c, n in enumerate(sorted(set(names)))}
    return _unit(x), np.array([codes[n] for n in names])


def _unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def wccn(x: NDArray[np.float64], y: NDArray[np.int64], shrink: float = 0.1) -> Projection:
    """Whitening of the within-identity covariance (identities with two faces or more),
    shrunk towards the identity by ``shrink`` of its mean variance."""
    centred = []
    for c in np.unique(y):
        rows = x[y == c]
        if len(rows) > 1:
            centred.append(rows - rows.mean(0))
    within = np.concatenate(centred)
    cov = within.T @ within / len(within)
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / len(cov) * np.eye(len(cov))
    values, vectors = np.linalg.eigh(cov)
    w = vectors @ np.diag(values ** -0.5) @ vectors.T
    return lambda v: _unit(v @ w)


def nca(x: NDArray[np.float64], y: NDArray[np.int64], dims: int, seed: int) -> Projection:
    """NeighborhoodComponentsAnalysis to ``dims`` dimensions, on identities with two faces
    or more (one face alone has no neighbour of its own to learn from)."""
    ids, counts = np.unique(y, return_counts=True)
    many = np.isin(y, ids[counts > 1])
    model = NeighborhoodComponentsAnalysis(n_components=dims, init="pca", max_iter=50,
                                           random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x[many], y[many])
    return lambda v: _unit(model.transform(v))


def verification(x: NDArray[np.float64], y: NDArray[np.int64]) -> tuple[float, float, float]:
    """AUC and TAR at FAR 1e-3 and 1e-2 over every pair of faces, by cosine."""
    sim = x @ x.T
    upper = np.triu_indices(len(x), 1)
    s = sim[upper]
    same = (y[:, None] == y[None, :])[upper]
    impostor = np.sort(s[~same])[::-1]
    tars = []
    for far in (1e-3, 1e-2):
        cut = impostor[max(0, int(far * len(impostor)) - 1)]
        tars.append(float((s[same] > cut).mean()))
    return float(roc_auc_score(same, s)), tars[0], tars[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--nca-dims", type=int, default=64)
    parser.add_argument("--pack", default=str(review_effort.SHARED / "models" / "scrfd_sface"))
    args = parser.parse_args()
    started = time.perf_counter()
    data = {}
    for name, labels in SETS:
        folder = (review_effort.SHARED / "data" / name).absolute()
        data[name] = labelled(folder, review_effort.SHARED / "data" / labels if labels
                              else None, args.pack)
        print(f"{name}: {len(data[name][0]):,} labelled faces, "
              f"{len(np.unique(data[name][1])):,} identities")
    print(f"\n{'set':10} {'fitted on':28} {'method':8} {'AUC':>7} {'TAR@1e-3':>9} "
          f"{'TAR@1e-2':>9}")
    for name, (x, y) in data.items():
        rows: dict[str, list[tuple[float, float, float]]] = {}
        for seed in range(args.seeds):
            ids = np.unique(y)
            half = np.random.default_rng(seed).permutation(ids)[: len(ids) // 2]
            for fit, test in ((np.isin(y, half), ~np.isin(y, half)),
                              (~np.isin(y, half), np.isin(y, half))):
                xt, yt = x[test], y[test]
                rows.setdefault("raw", []).append(verification(xt, yt))
                rows.setdefault("wccn", []).append(verification(wccn(x[fit], y[fit])(xt), yt))
                rows.setdefault("nca", []).append(verification(
                    nca(x[fit], y[fit], args.nca_dims, seed)(xt), yt))
        for method, got in rows.items():
            auc, t3, t2 = np.mean(got, axis=0)
            print(f"{name:10} {'other half of its identities':28} {method:8} {auc:7.4f} "
                  f"{t3:9.3f} {t2:9.3f}")
        others = [k for k in data if k != name]
        xo = np.concatenate([data[k][0] for k in others])
        yo = np.concatenate([data[k][1] + 100_000 * i for i, k in enumerate(others)])
        for method, project in (("raw", lambda v: v), ("wccn", wccn(xo, yo)),
                                ("nca", nca(xo, yo, args.nca_dims, 0))):
            auc, t3, t2 = verification(project(x), y)
            print(f"{name:10} {'the other two sets':28} {method:8} {auc:7.4f} {t3:9.3f} "
                  f"{t2:9.3f}")
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
