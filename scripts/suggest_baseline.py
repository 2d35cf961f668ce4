"""The merge-suggestion candidates before issue #22, for the benchmarks' baseline: every
face's 10 nearest faces (a k-NN graph over all faces), a pair of persons being a
candidate when one of its faces' edges joins them, scored by the same calibrated score
(as in rbv.cluster.suggestions, best pair = the best such edge)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.knn import build_knn_graph, normalize


def face_knn_pairs(embeddings: NDArray[np.floating], persons: NDArray[np.int64],
                   image_ids: NDArray[np.int64], model: object, k: int = 10
                   ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Candidate person pairs and their best edge (the costly part of the old ranking;
    scoring the pairs afterwards took a fraction of it)."""
    assigned = np.flatnonzero(persons >= 0)
    x = normalize(embeddings[assigned])
    code = persons[assigned].astype(np.int64)
    u, v, sim = build_knn_graph(x, k).edges()
    cu, cv = code[u], code[v]
    cross = cu != cv
    lo = np.minimum(cu[cross], cv[cross])
    hi = np.maximum(cu[cross], cv[cross])
    _, first = np.unique(lo * (int(code.max()) + 1) + hi, return_index=True)
    return np.stack([lo[first], hi[first]], axis=1), sim[cross][first]
