"""A plain reference for evidence linkage's merge loops (:mod:`rbv.cluster.evidence_merge`,
compiled; :mod:`rbv.cluster.evidence_heap`, interpreted), for tests; never used by commands.

:func:`plain_greedy` is the rule written as plainly as possible: score every candidate
pair, merge the best, repeat (quadratic; small inputs only). It takes and returns what
:func:`rbv.cluster.evidence_merge.merge_greedily` does. :func:`partition` compares
labellings as the groups they make.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def partition(labels: NDArray[np.integer]) -> set[frozenset[int]]:
    """The groups of indices that share a label (labels or roots: the same groups)."""
    return {frozenset(np.flatnonzero(labels == v).tolist()) for v in np.unique(labels)}


def plain_greedy(sums: NDArray[np.float64], count: NDArray[np.float64],
                 anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                 pairs: NDArray[np.int64], mu: float, sigma: float, tau: float,
                 z_min: float, crowd: NDArray[np.float64] | None = None,
                 order: list[float] | None = None) -> NDArray[np.int64]:
    """Each node's final node: while some candidate pair of different clusters may
    merge (no cannot-link between them, not both anchored) with ``z >= z_min``, merge
    the pair with the highest ``z`` (ties: the lowest pair of node ids). ``order``: gets
    each merge's ``z``, in order."""
    sums, count, anchored = sums.copy(), count.copy(), anchored.copy()
    m = len(count)
    crowd = np.zeros(m) if crowd is None else np.array(crowd, np.float64)
    root = np.arange(m)
    cannot = np.asarray(cannot, np.int64).reshape(-1, 2)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    while True:
        a, b = root[pairs[:, 0]], root[pairs[:, 1]]
        ca, cb = root[cannot[:, 0]], root[cannot[:, 1]]
        forbidden = set(zip(ca.tolist(), cb.tolist(), strict=True))
        forbidden |= {(y, x) for x, y in forbidden}
        best: tuple[float, int, int] | None = None
        for u, w in sorted({(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist(),
                                                                     strict=True) if x != y}):
            if (u, w) in forbidden or (anchored[u] and anchored[w]):
                continue
            cu = float(sums[u] @ sums[u]) / count[u] ** 2
            cw = float(sums[w] @ sums[w]) / count[w] ** 2
            mean = float(sums[u] @ sums[w]) / (count[u] * count[w])
            local = mu + 0.5 * (crowd[u] / count[u] + crowd[w] / count[w])
            z = (mean - local) / np.sqrt(sigma ** 2 * cu * cw + tau ** 2)
            if z >= z_min and (best is None or z > best[0]):
                best = (z, u, w)
        if best is None:
            return root
        z, u, w = best
        if order is not None:
            order.append(z)
        sums[u] += sums[w]
        count[u] += count[w]
        crowd[u] += crowd[w]
        anchored[u] |= anchored[w]
        root[root == w] = u
