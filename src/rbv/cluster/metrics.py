"""Clustering quality against ground-truth labels: pairwise and BCubed P/R/F."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Scores:
    """Precision, recall and their harmonic mean (F1)."""

    precision: float
    recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "f1": self.f1}


def _contingency(predicted: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray, np.ndarray]:
    pred = np.unique(np.asarray(predicted), return_inverse=True)[1].reshape(-1)
    true = np.unique(np.asarray(truth), return_inverse=True)[1].reshape(-1)
    if len(pred) != len(true):
        raise ValueError("predicted and true labels differ in length")
    cells = np.unique(np.stack([pred, true], 1), axis=0, return_counts=True)
    return pred, true, cells[0], cells[1]


def pairwise(predicted: ArrayLike, truth: ArrayLike) -> Scores:
    """Over all pairs of items: precision = same-cluster pairs that share a label,
    recall = same-label pairs that share a cluster. No predicted pairs: precision 1."""
    pred, true, _, counts = _contingency(predicted, truth)
    if len(pred) == 0:
        return Scores(1.0, 1.0)

    def pairs(c: np.ndarray) -> float:
        return float((c * (c - 1) // 2).sum())

    together = pairs(counts)
    predicted_pairs = pairs(np.bincount(pred))
    true_pairs = pairs(np.bincount(true))
    return Scores(
        together / predicted_pairs if predicted_pairs else 1.0,
        together / true_pairs if true_pairs else 1.0,
    )


def bcubed(predicted: ArrayLike, truth: ArrayLike) -> Scores:
    """Per item: the share of its cluster with its label (precision) and the share of
    its label in its cluster (recall), averaged over items."""
    pred, true, cells, counts = _contingency(predicted, truth)
    if len(pred) == 0:
        return Scores(1.0, 1.0)
    pred_size = np.bincount(pred)
    true_size = np.bincount(true)
    # Each cell (cluster, label) of c items adds c · c/|cluster| to precision.
    precision = float((counts * counts / pred_size[cells[:, 0]]).sum() / len(pred))
    recall = float((counts * counts / true_size[cells[:, 1]]).sum() / len(pred))
    return Scores(precision, recall)


@dataclass(frozen=True)
class Largest:
    """The cluster with the most items: its size, how many labels it holds, and its
    purity (the share of its items carrying its most common label)."""

    size: int
    labels: int
    purity: float


def largest_cluster(predicted: ArrayLike, truth: ArrayLike) -> Largest:
    """The largest predicted cluster against the truth (a crowd shows as low purity)."""
    pred, true, cells, counts = _contingency(predicted, truth)
    if len(pred) == 0:
        return Largest(0, 0, 1.0)
    biggest = int(np.argmax(np.bincount(pred)))
    inside = counts[cells[:, 0] == biggest]
    return Largest(int(inside.sum()), len(inside), float(inside.max() / inside.sum()))
