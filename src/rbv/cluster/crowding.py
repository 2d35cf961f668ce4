"""Crowding: where in face space strangers look alike, and by how much.

One impostor model for a whole recognizer assumes that two strangers are equally
similar everywhere in face space. They are not: SFace puts children's faces closer
together than adults' (on ``data/family`` child–child strangers reach similarity 0.53
at the 99.9th percentile, adult–adult 0.40), so a test that is right for adults lets a
crowd of different children become one "person". Speaker and face verification meet the
same problem with cohort score normalisation (Z-/S-/AS-norm): a score is judged against
how the probe scores against known *others*. Here the others are the face's nearest
neighbours in the library, counted once per cluster and never from its own cluster, so
the photos of one person (who may have thousands) do not pass for a crowd of strangers.

A face's crowding is how far the median similarity of its ``COHORT`` nearest other
clusters lies above the library's typical value (the larger of: what the impostor model
expects of that rank, and the ``LEVEL_QUANTILE`` of the library's faces), capped at
``FIRST_CAP`` impostor spreads in the first pass and ``CAP`` in the second. Evidence
linkage then asks a merge to beat ``mu`` plus the two sides' mean crowding (halved),
instead of ``mu`` alone: nothing changes where faces are no more crowded than usual, and
more similarity is asked where strangers are alike.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.knn import KnnGraph
from rbv.cluster.parallel_work import on_all_cores

COHORT = 20
"""Other clusters a face is compared with (the median of their best similarities)."""
FIRST_CAP = 2.0
"""Most crowding in the first pass, in impostor spreads (``sigma``). That pass counts a
person's own photos as others (no clusters yet), so it over-asks for people with many
photos; the cap bounds that harm (with the model estimated from the library, 3 drops
data/faces from 0.970 to 0.943 pairwise F, 4 to 0.671)."""
CAP = 3.0
"""Most crowding in the second pass, measured against the first pass's clusters, so
only strangers count: it may ask more. Measured (quality_matrix, SFace): data/family
pairwise P 0.901 → 0.939 (F 0.671 → 0.681) against a cap of 2 in both passes, a crowd of
young faces of different people kept apart; data/faces and data/lfw_many unchanged with
the built-in and the estimated impostor model; 4 gives the same as 3."""
LEVEL_QUANTILE = 0.45
"""Which quantile of the library's faces sets its typical level. Measured (SFace, one
setting for all sets; docs/clustering.md "Crowding"): with the built-in impostor model 0.35–0.5
keep data/faces at 0.986 pairwise F (0.25: 0.956); with the model estimated from the
library (no calibration) 0.45–0.6 keep it at 0.970 (0.4: 0.922); a library of
children's faces alone (data/family's young photos) forms a crowd above 0.45 (0.47:
one person of 17 faces of 9 children, 0.5: 41 of 24; 0.45: 9 of 6). A narrow window."""
CROWDING_LEVEL = "crowding_level"
"""Pack setting: the library's typical level, as the last full run measured it (an
incremental run measures its new faces against it)."""


def crowding(graph: KnnGraph, clusters: NDArray[np.int64], model: ImpostorModel,
             n_library: int | None = None, typical: float | None = None,
             cap: float = CAP) -> tuple[NDArray[np.float64], float]:
    """Per face of the k-NN ``graph``: its crowding (see the module doc), and the typical
    level it was measured against. ``clusters``: a label per face (faces known to be one
    person share one); ``n_library``: the library's size (default: the graph's);
    ``typical``: the level to use (default: from these faces); ``cap``: the most
    crowding, in impostor spreads."""
    near = graph.neighbors
    expected = expected_cohort_level(model, n_library or len(near))
    median = np.empty(len(near))

    def piece(lo: int, hi: int) -> None:
        rows = near[lo:hi]
        label = np.where(rows >= 0, clusters[np.maximum(rows, 0)], -1)
        median[lo:hi] = _cohort_medians(label, graph.similarities[lo:hi], clusters[lo:hi],
                                        expected)

    on_all_cores(piece, len(near))
    return _above_typical(median, expected, model, typical, cap)


def cohort_crowding(label: NDArray[np.int64], similarity: NDArray[np.floating],
                    own: NDArray[np.int64], model: ImpostorModel, n_library: int,
                    typical: float | None = None, cap: float = CAP
                    ) -> tuple[NDArray[np.float64], float]:
    """Crowding of faces whose neighbours' clusters are ``label`` (``-1``: none) at
    ``similarity`` (rows descending), each face in cluster ``own``: the median of the
    best similarities of its ``COHORT`` nearest other clusters (one face each) above
    ``typical`` (default: the larger of the impostor model's expectation and these
    faces' ``LEVEL_QUANTILE``), clipped to ``[0, cap * sigma]``. Where a face's neighbours hold
    fewer than ``COHORT`` other clusters, the missing ones count at the expectation."""
    expected = expected_cohort_level(model, n_library)
    median = np.empty(len(label))

    def piece(lo: int, hi: int) -> None:
        median[lo:hi] = _cohort_medians(label[lo:hi], similarity[lo:hi], own[lo:hi],
                                        expected)

    on_all_cores(piece, len(label))
    return _above_typical(median, expected, model, typical, cap)


def _cohort_medians(label: NDArray[np.int64], similarity: NDArray[np.floating],
                    own: NDArray[np.int64], expected: float) -> NDArray[np.float64]:
    """Per row: the median of the best similarities of its ``COHORT`` nearest other
    clusters, the missing ones at ``expected`` (rows are independent: any piece of the
    rows gives the same values)."""
    n, k = label.shape
    level = np.full((n, COHORT), expected)
    valid = (label >= 0) & (label != own[:, None])
    # One face per cluster: the first (most similar) of each label in the row.
    key = np.where(valid, label, -1)
    order = np.argsort(key, axis=1, kind="stable")
    sorted_key = np.take_along_axis(key, order, axis=1)
    first = np.ones_like(valid)
    first[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    unique = np.zeros_like(valid)
    np.put_along_axis(unique, order, first, axis=1)
    valid &= unique
    rank = np.cumsum(valid, axis=1) - 1  # similarities are descending along a row
    take = valid & (rank < COHORT)
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))
    level[rows[take], rank[take]] = similarity[take]
    return np.asarray(np.median(level, axis=1), np.float64)


def _above_typical(median: NDArray[np.float64], expected: float, model: ImpostorModel,
                   typical: float | None, cap: float) -> tuple[NDArray[np.float64], float]:
    if len(median) == 0:
        return np.empty(0, np.float64), typical or 0.0
    if typical is None:
        typical = max(expected, float(np.quantile(median, LEVEL_QUANTILE)))
    return np.clip(median - typical, 0.0, cap * model.sigma), typical


def expected_cohort_level(model: ImpostorModel, n_faces: int) -> float:
    """The median of the ``COHORT`` highest of ``n_faces − 1`` impostor similarities,
    as the impostor model expects it (the rank's normal quantile)."""
    rank = (COHORT + 1) / 2
    p = min(max(rank / max(n_faces - 1, 1), 1e-12), 0.5)
    return model.mu + model.sigma * -NormalDist().inv_cdf(p)
