"""Faces compared as the people they are, not as the age they were: each embedding
centred on the library's own faces of about the same estimated age.

A recognizer's embedding of a face carries its age as well as who it is. Under SFace two
children who are strangers are as alike as an adult's two photos ten years apart (on
data/family: strangers both under 13 average a cosine of 0.26, adult strangers 0.09),
and one person as a child and as an adult shares little beyond who they are (0.26 on
average, against 0.54 within one age). Subtracting from each face the average face of
its age in this library (a Gaussian window of ``AGE_WINDOW`` years over the estimated
ages) takes out what every face of that age shares: strangers of any ages then average
about 0, and what is left of a child and of the adult they became is who they are.

Measured with the shipped evidence clustering, the impostor model estimated from the
centred faces' own random pairs (``scripts/bench/quality_matrix.py``, with and without
``--no-ages``; ages from ``faceres_age_gender.onnx``), pairwise P / R / F:

* SFace: data/family 0.939 / 0.534 / 0.681 → 0.938 / 0.591 / 0.725 (child↔adult pairs
  of one person together 183 → 220 of 456, kin pairs joined 1 → 1 of 48); data/faces
  0.986 → 0.993; data/lfw_many 0.988 → 0.989.
* scrfd_fp512: faces 0.965 → 0.979, lfw_many 0.968 → 0.968, but family precision 0.867 →
  0.699 (16 look-alike TSKinFace photos of different people became one person), so it
  is the default only for a recognizer it was measured to help
  (:attr:`rbv.cluster.calibrations.KnownRecognizer.by_age`).

One mean for the whole library (no ages) gave SFace family 0.683 at precision 0.923
and lfw_many precision 0.993; a window of 3 years family 0.720 and faces 0.985, 8 years
family 0.716; centring on age and gender together lost faces 0.09 of recall.

Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.defaults import ImpostorModel

AGE_WINDOW = 5.0
"""Years: the standard deviation of the Gaussian window over estimated ages that makes a
face's age mean (measured: 3 and 8 worse, see the module's text)."""
OLDEST = 120
MIN_AGED_FACES = 30
"""Faces with an estimated age a library needs before its faces are centred by age:
fewer make the means of ages noise."""
MIN_AGED_SHARE = 0.5
"""Share of the faces that must have an estimated age (an attribute model in use)."""
SAME_SPREADS = 3.0
"""Faces this many impostor spreads above the impostor mean are counted as one person when
the age means are made (SFace: 0.36; one in 740 stranger pairs reaches it; at 4 spreads
too few of a child's own photos are counted together, see ``MOST_FACES``)."""
MOST_FACES = 5.0
"""Faces of one person (at about one age) that count in an age's mean; more count as
this many. In a family library most photos at age 3 may be of one child: a plain average
would be that child, and centring on it would take the child out of their own faces."""
PRIOR_PEOPLE = 2.0
"""People's worth the library's overall mean has in every age's mean: an age few people
have is centred mostly on the overall mean (a lone 85-year-old's faces centred on their
own average would lose who they are)."""


@dataclass(frozen=True)
class AgeCentres:
    """The library's average face at every whole year of age 0..``OLDEST`` (rows of
    ``by_year``), and over all its faces (``overall``: for a face with no age)."""

    by_year: NDArray[np.float32]
    overall: NDArray[np.float32]
    faces: int

    @classmethod
    def measure(cls, embeddings: NDArray[np.floating], ages: NDArray[np.floating],
                impostor: ImpostorModel) -> AgeCentres | None:
        """From a library's (or a repeatable sample's) unit embeddings and estimated ages
        (NaN: none); None where too few faces have an age. ``impostor``: the recognizer's
        own (faces more alike than strangers ``SAME_SPREADS`` spreads above their mean,
        of about one age, are counted as one person: see :func:`one_vote_each`)."""
        same = impostor.mu + SAME_SPREADS * impostor.sigma
        x = np.asarray(embeddings, np.float32)
        known = np.isfinite(ages)
        if known.sum() < MIN_AGED_FACES or known.mean() < MIN_AGED_SHARE:
            return None
        years = _years(ages[known])
        alike = faces_alike(x[known], years, same)
        weight = np.minimum(1.0, MOST_FACES / alike)  # faces, a person's capped
        sums = np.zeros((OLDEST + 1, x.shape[1]), np.float64)
        np.add.at(sums, years, x[known] * weight[:, None])
        counts = np.bincount(years, weights=weight, minlength=OLDEST + 1)
        people = np.bincount(years, weights=1.0 / alike, minlength=OLDEST + 1)
        overall = sums.sum(axis=0) / counts.sum()
        grid = np.arange(OLDEST + 1, dtype=np.float64)
        window = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / AGE_WINDOW) ** 2)
        near = window @ people  # about how many people are of about each age
        trust = (near / (near + PRIOR_PEOPLE))[:, None]
        by_year = (trust * (window @ sums) / np.maximum(window @ counts, 1e-12)[:, None]
                   + (1 - trust) * overall)
        return cls(by_year.astype(np.float32), overall.astype(np.float32),
                   int(known.sum()))

    def centred(self, embeddings: NDArray[np.floating], ages: NDArray[np.floating]
                ) -> NDArray[np.float32]:
        """The rows less their age's average face (the overall one where no age is
        known), scaled back to unit length; a new array."""
        x = np.array(embeddings, np.float32)
        known = np.isfinite(ages)
        x[known] -= self.by_year[_years(ages[known])]
        x[~known] -= self.overall
        lengths = np.sqrt(np.einsum("ij,ij->i", x, x))
        x /= np.maximum(lengths, 1e-12)[:, None]
        return x


def _years(ages: NDArray[np.floating]) -> NDArray[np.int64]:
    return np.clip(np.rint(ages), 0, OLDEST).astype(np.int64)


def faces_alike(x: NDArray[np.float32], years: NDArray[np.int64], same: float,
                block: int = 2_048) -> NDArray[np.float64]:
    """Per face: how many faces within two windows of its age are more alike than
    ``same`` (itself included): about how many photos of that person at that age.

    Year by year: the faces of one whole year are compared with the faces of the years
    within two windows of it alone (the faces sorted by year make those one slice), so
    no pair of ages too far apart is computed (a fifth of the pairs on an adult library,
    and no mask of ages per pair)."""
    near = int(2 * AGE_WINDOW)
    order = np.argsort(years, kind="stable")
    by_year, ordered = years[order], x[order]
    starts = np.searchsorted(by_year, np.arange(OLDEST + 2))
    alike = np.zeros(len(x), np.float64)
    for year in np.unique(by_year).tolist():
        band = ordered[starts[max(0, year - near)]:starts[min(OLDEST, year + near) + 1]]
        for lo in range(int(starts[year]), int(starts[year + 1]), block):
            hi = min(lo + block, int(starts[year + 1]))
            alike[lo:hi] = np.count_nonzero(ordered[lo:hi] @ band.T > same, axis=1)
    out = np.empty_like(alike)
    out[order] = alike
    return np.maximum(out, 1.0)
