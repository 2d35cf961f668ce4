"""Names and defaults of the clustering options, defined once, and the recognizer's
impostor model: no heavy imports, so the CLI shows them in --help and settings are
resolved without loading numpy's clustering stack."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DEFAULT_THRESHOLD = 0.65
"""Similarity of the threshold methods users know from buffalo_l, where nothing better
is known (see :mod:`rbv.cluster.calibrations`)."""
DEFAULT_BUDGET = 10.0
"""Expected impostor face pairs a library may let through a single-pair test. Measured
plateau (SFace, both labelled sets ≥ 0.98 pairwise F): 10–50."""
TAU_PER_SIGMA = 0.23
"""``tau`` as a share of ``sigma`` when a recognizer's model is estimated, not measured."""
ONE_PERSON_SPREADS = 4.0
"""Above the strangers' mean by this many spreads, a random pair of a library is taken to
be one person (strangers reach it 3 times in 100,000) when counting how many pairs are
(:meth:`ImpostorModel.from_library_pairs`)."""
SHARE_ROUNDS = 3
"""Rounds of :meth:`ImpostorModel.from_library_pairs`: the share found, the quantiles
read again below it. data/faces: 5.2 % (SFace) and 5.4 % (scrfd_fp512) found, against
8.2 % of its labelled random pairs (one-person pairs under ``mu + 4 sigma`` go uncounted)."""
DEFAULT_K = 30
"""Neighbours per face in the k-NN graph every method works on."""


class Method(StrEnum):
    """How faces are grouped."""

    evidence = "evidence"
    connected = "connected"
    agglomerative = "agglomerative"
    hdbscan = "hdbscan"


@dataclass(frozen=True)
class ImpostorModel:
    """Different-person cosine similarity of one recognizer: mean ``mu``, spread
    ``sigma``, and ``tau``, the spread that averaging over faces does not remove."""

    mu: float
    sigma: float
    tau: float

    @classmethod
    def from_pairs(cls, similarities: Sequence[float] | NDArray[np.floating], *,
                   robust: bool) -> ImpostorModel:
        """From similarities of face pairs of different people: mean and standard
        deviation; or (``robust``, for random pairs of a library, some of which are the
        same person) from the lower half alone, which same-person pairs do not reach:
        the median, and the spread that puts the lower quartile where a normal
        distribution has it. Measured: a 25-person library's estimate scores pairwise
        F 0.978 with this, 0.956 with the median absolute deviation."""
        import numpy as np

        s = np.asarray(similarities, np.float64)
        return cls._spread(*(_below(s, 0.0) if robust else (float(s.mean()), float(s.std()))))

    @classmethod
    def from_library_pairs(cls, similarities: Sequence[float] | NDArray[np.floating]
                           ) -> ImpostorModel:
        """From random face pairs of one library, where some pairs are one person: in a
        library where a few people hold most of the faces, many (on data/faces, 25
        people, 8 % of the pairs). Those pairs lie above the strangers' median, so the
        plain median and lower quartile (``from_pairs(robust=True)``) sit too high:
        the strangers' median is the library's quantile at half of the strangers'
        share, their lower quartile at a quarter. The share of one-person pairs is what
        lies above ``mu + ONE_PERSON_SPREADS * sigma`` beyond the strangers' own
        (3 in 100,000), in ``SHARE_ROUNDS`` rounds from none. Measured (estimated
        model, evidence at budget 10, pairwise F; docs/clustering.md): data/faces 0.985
        → 0.993 on SFace, 0.965 → 0.973 on scrfd_fp512, the same as with the model
        measured on its labels; lfw_many and family as before or better."""
        import numpy as np

        s = np.asarray(similarities, np.float64)
        beyond = 1.0 - NormalDist().cdf(ONE_PERSON_SPREADS)
        share, mu, sigma = 0.0, 0.0, 0.0
        for _ in range(SHARE_ROUNDS):
            mu, sigma = _below(s, share)
            share = max(0.0, float(np.mean(s > mu + ONE_PERSON_SPREADS * sigma)) - beyond)
        return cls._spread(mu, sigma)

    @classmethod
    def _spread(cls, mu: float, sigma: float) -> ImpostorModel:
        """The model of ``mu`` and ``sigma`` as estimated (``tau`` from ``sigma``)."""
        return cls(round(mu, 4), round(sigma, 4), round(TAU_PER_SIGMA * sigma, 4))

    def z_threshold(self, n_faces: int, budget: float) -> float:
        """The z a merge needs in a library of ``n_faces`` faces (at least 1)."""
        pairs = max(n_faces * (n_faces - 1) / 2.0, 1.0)
        p = min(budget / pairs, 0.5)
        return float(max(-NormalDist().inv_cdf(p), 1.0))

    def pair_similarity(self, n_faces: int, budget: float) -> float:
        """The cosine similarity two single faces need to be merged."""
        z = self.z_threshold(n_faces, budget)
        return self.mu + z * math.sqrt(self.sigma ** 2 + self.tau ** 2)

    def as_dict(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma, "tau": self.tau}


DOUBT_Z = 3.0
"""A face whose average similarity to the rest of its person is less than this many
impostor spreads above chance could as well be a stranger: `review` and the site offer
it for `not-this-person`."""
DEFAULT_MIN_SCORE = 0.5
"""Suggestions below this score are not listed by `persons suggest` and `rbv site`: the
score is the calibrated chance that the pair is one person (rbv.cluster.pair_odds), so
under 0.5 a pair is more likely two people than one."""


def _below(s: NDArray[np.float64], share: float) -> tuple[float, float]:
    """The median of pairs ``s`` below their top ``share``, and the spread that puts
    their lower quartile where a normal distribution has it."""
    import numpy as np

    half, quarter = np.quantile(s, [0.5 * (1.0 - share), 0.25 * (1.0 - share)])
    return float(half), float((half - quarter) / 0.6745)
