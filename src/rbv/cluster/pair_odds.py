"""The chance that a suggested pair of persons is one person: calibrated, and learning
from the user's answers.

The evidence of a pair (see :mod:`rbv.cluster.suggestions`) says how unlikely its
likeness would be between two strangers *on average*; but strangers are not equally
alike everywhere. On ``data/family`` pairs of different children reach the same
likeness as one adult young and old, and the old score put pairs that were one person
14 % of the time at 0.90–0.99; on ``data/lfw_many`` pairs it put at 0.1–0.3 were one
person 71 % of the time. So the probability shown is a logistic model of three
features of the pair:

* ``log10_chance``: the evidence itself (the log10 chance of this likeness between two
  strangers, as :func:`rbv.cluster.suggestions.suggest_merges` measures it);
* ``cohort_gap_mean``: how far the pair's average similarity stands above the average
  similarity each of the two has with its ``COHORT`` nearest *other* candidate persons
  (the crowding clustering measures, per person: where everyone looks alike, likeness
  says less), in impostor spreads;
* ``cohort_gap_best``: the same for the most similar face pair, against the more
  crowded side.

Its weights (``PRIOR``) were fitted on the three developer sets (each counted
equally), and each set's own reliability was measured with weights fitted on the other
two (``scripts/bench/calibrate_suggestions.py``). Libraries still differ in how many of their
candidate pairs are one person (a family library whose children are split across ages,
a celebrity library whose persons are mostly whole), which no feature of one pair
knows; the user's answers do. Each answer ("which of these are X?", "same person?") is
kept with the features the pair had when shown, and the weights are fitted again to the
library's answers, with ``PRIOR`` as a Gaussian prior (``PRIOR_SPREAD``): a few answers
move the level, many move the weights too.

Pure numpy: arrays in, probabilities out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

COHORT = 8
"""Other candidate persons each side of a pair is compared with (the average of its
``COHORT`` most similar ones, this pair left out)."""
FEATURES = ("log10_chance", "cohort_gap_mean", "cohort_gap_best")
ODDS_VERSION = 1
"""Stored answers carry this; answers kept under other features are not used."""


@dataclass(frozen=True)
class PairOdds:
    """A logistic model: ``P(one person) = 1 / (1 + exp(-(intercept + weights · x)))``."""

    intercept: float
    weights: tuple[float, ...]

    def probability(self, features: NDArray[np.floating]) -> NDArray[np.float64]:
        """Per row of ``features`` (columns as ``FEATURES``)."""
        t = self.intercept + np.asarray(features, np.float64) @ np.asarray(self.weights)
        return 0.5 * (1.0 + np.tanh(0.5 * t))  # the logistic, without overflow

    def learned(self, answers: Sequence[Sequence[float]]) -> PairOdds:
        """These weights as a prior, fitted again to ``answers`` (rows: the features of
        a pair as shown, then 1 when the user said it is one person, 0 when not)."""
        rows = np.asarray(answers, np.float64).reshape(-1, len(self.weights) + 1)
        rows = rows[np.isfinite(rows).all(axis=1)]
        if len(rows) == 0:
            return self
        w = _map_logistic(rows[:, :-1], rows[:, -1], np.array([self.intercept, *self.weights]),
                          np.array([PRIOR_SPREAD[0]] + [PRIOR_SPREAD[1]] * len(self.weights)))
        return PairOdds(float(w[0]), tuple(float(v) for v in w[1:]))


PRIOR = PairOdds(-5.448, (-0.624, 2.318, -1.245))
"""Fitted by ``scripts/bench/calibrate_suggestions.py`` on data/family, data/faces and
data/lfw_many (SFace, the shipped clustering), each set weighted equally."""
AGED_PRIOR = PairOdds(-5.575, (-0.659, 2.936, -1.422))
"""``PRIOR`` for faces centred by age (:mod:`rbv.cluster.ages`), fitted the same way on
the three sets with their estimated ages. Measured (scripts/bench/review_effort.py on
data/family): pairwise F 0.95 after 159 clicks / 1,273 faces shown, against 194 / 1,955
with ``PRIOR``; with the weights fitted on data/faces and data/lfw_many alone (family
held out), 206 / 1,406, and F 0.90 after 533 faces against 644."""
PRIOR_SPREAD = (1.5, 0.3)
"""Prior standard deviations of the intercept and of each weight when answers refit
them: the level moves first (a library's share of true pairs differs tenfold between the
developer sets), the weights only on many answers. Measured (scripts/bench/calibrate_suggestions.py,
simulated review, prior fitted on the other two sets): expected calibration error of the
pairs shown 0.034 → 0.006 on data/family."""


def pair_features(log10_chance: NDArray[np.floating], mean: NDArray[np.floating],
                  best: NDArray[np.floating], pairs: NDArray[np.int64], sigma: float,
                  mu: float) -> NDArray[np.float64]:
    """``FEATURES`` per candidate pair ``(a, b)`` (``mean``/``best``: its average and
    best face-pair similarity). Every candidate pair counts in the cohorts, those never
    suggested too (persons in one photo, persons told apart: known strangers, the best
    cohort there is); a person with no other candidate is compared with ``mu``."""
    n = len(pairs)
    person = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cohort_mean = _cohort(person, np.concatenate([mean, mean]), mu)
    cohort_best = _cohort(person, np.concatenate([best, best]), mu)
    gap_mean = (mean - 0.5 * (cohort_mean[:n] + cohort_mean[n:])) / sigma
    gap_best = (best - np.maximum(cohort_best[:n], cohort_best[n:])) / sigma
    return np.stack([np.asarray(log10_chance, np.float64), gap_mean, gap_best], axis=1)


def _cohort(person: NDArray[np.int64], value: NDArray[np.floating], fill: float
            ) -> NDArray[np.float64]:
    """Per entry ``(person, value)``: the average of the person's ``COHORT`` largest
    values, this entry left out (``fill`` where none is left)."""
    n = len(person)
    if n == 0:
        return np.zeros(0)
    order = np.lexsort((-value, person))
    p, v = person[order], np.asarray(value, np.float64)[order]
    first = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    counts = np.diff(np.r_[first, n])
    group = np.repeat(np.arange(len(first)), counts)
    rank = np.arange(n) - first[group]
    top_sum = np.add.reduceat(np.where(rank < COHORT, v, 0.0), first)
    top_n = np.minimum(counts, COHORT)
    spare = np.zeros(len(first))  # the next value, which takes a left-out one's place
    more = counts > COHORT
    spare[more] = v[first[more] + COHORT]
    inside = rank < COHORT
    total = np.where(inside, top_sum[group] - v + spare[group], top_sum[group])
    count = np.where(inside, top_n[group] - 1 + more[group], top_n[group])
    out = np.empty(n)
    out[order] = np.where(count > 0, total / np.maximum(count, 1), fill)
    return out


def _map_logistic(x: NDArray[np.float64], y: NDArray[np.float64], prior: NDArray[np.float64],
                  spread: NDArray[np.float64]) -> NDArray[np.float64]:
    """The weights (intercept first) of most posterior probability: a logistic
    likelihood times a Gaussian prior; Newton's method, each step halved until it gains
    (the objective is concave, so this converges)."""
    a = np.concatenate([np.ones((len(x), 1)), x], axis=1)
    precision = 1.0 / spread ** 2

    def objective(w: NDArray[np.float64]) -> float:
        t = a @ w
        return float(np.sum(y * t - np.logaddexp(0.0, t))
                     - 0.5 * np.sum(precision * (w - prior) ** 2))

    w, value = prior.copy(), objective(prior)
    for _ in range(50):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a @ w)))
        gradient = a.T @ (y - p) - precision * (w - prior)
        hessian = (a * (p * (1 - p))[:, None]).T @ a + np.diag(precision)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-4:
            candidate = objective(w + scale * step)
            if candidate >= value:
                break
            scale /= 2
        else:
            break
        w, gained, value = w + scale * step, candidate - value, candidate
        if gained < 1e-9:
            break
    return w
