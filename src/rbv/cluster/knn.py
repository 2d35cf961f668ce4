"""Sparse k-nearest-neighbour graphs over L2-normalised embeddings.

Clustering never holds an n×n matrix: each face keeps its ``k`` most similar faces.
Up to ``exact_limit`` faces the graph is exact (faiss flat index: blocked BLAS);
above it, an inverted file (faiss's k-means lists, searched list by list with BLAS)
finds the neighbours approximately, which keeps 1M faces in minutes instead of hours
(FACTS.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from rbv.cluster.defaults import DEFAULT_K
from rbv.cluster.faiss_blas import load_faiss
from rbv.cluster.parallel_work import threads
from rbv.face_rows import PackFaces

EXACT_LIMIT = 60_000
NPROBE = 10
"""Inverted lists each face's neighbours are looked for in (of 4·sqrt(n))."""
UNIT_TOLERANCE = 2e-6
"""|length² − 1| of a row normalised in float32 (measured ≤ 5e-7 at 512-d): such rows
are unit as far as float32 goes, and normalising them again changes only rounding."""


@dataclass(frozen=True)
class KnnGraph:
    """Row ``i`` lists face ``i``'s nearest other faces (``-1`` where fewer exist)."""

    neighbors: NDArray[np.integer]  # (n, k); int32 in approximate graphs
    similarities: NDArray[np.float32]  # (n, k) cosine similarity, descending per row
    lists: NDArray[np.int64] | None = None
    """Approximate graphs: each face's inverted list (faces of one list, and their
    neighbours, are alike: work that reads their rows goes list by list)."""

    @property
    def size(self) -> int:
        return int(self.neighbors.shape[0])

    def reordered(self, order: NDArray[np.int64]) -> KnnGraph:
        """The graph of the same faces in ``order`` (row ``i`` is row ``order[i]`` here),
        neighbours named by their new rows."""
        renamed = np.empty(len(order), self.neighbors.dtype)
        renamed[order] = np.arange(len(order), dtype=self.neighbors.dtype)
        near = self.neighbors[order]
        near = np.where(near >= 0, renamed[np.maximum(near, 0)], near)
        return KnnGraph(near, self.similarities[order],
                        None if self.lists is None else self.lists[order])

    def edges(self, min_similarity: float = -1.0) -> tuple[
        NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]
    ]:
        """Undirected edges ``(a, b, similarity)`` with ``a < b``, each once, at or above
        ``min_similarity``, sorted by similarity (highest first)."""
        n, k = self.neighbors.shape
        rows = np.repeat(np.arange(n, dtype=np.int64), k)
        cols = self.neighbors.ravel()
        sims = self.similarities.ravel()
        keep = (cols >= 0) & (sims >= min_similarity) & (rows != cols)
        a, b, s = rows[keep], cols[keep], sims[keep]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = lo * n + hi
        key, first = np.unique(key, return_index=True)
        lo, hi, s = lo[first], hi[first], s[first]
        order = np.argsort(-s, kind="stable")
        return lo[order], hi[order], s[order]


def normalize(embeddings: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows scaled to unit length (zero rows stay zero), in a new array."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.maximum(norms, 1e-12)


def unit_rows(embeddings: NDArray[np.floating]) -> NDArray[np.float32]:
    """``normalize``, but rows that already are unit float32 come back as they are (not
    to be written to): at 1M × 512-d each copy is 2 GB, and the database's embeddings
    are stored normalised."""
    if embeddings.dtype == np.float32 and embeddings.flags.c_contiguous \
            and embeddings.ndim == 2:
        lengths = np.einsum("ij,ij->i", embeddings, embeddings)
        if len(lengths) and np.abs(lengths - 1).max() <= UNIT_TOLERANCE:
            return embeddings  # type: ignore[return-value]
    return normalize(embeddings)


def ordered_knn_graph(faces: PackFaces, embeddings: NDArray[np.float32], k: int = DEFAULT_K,
                      *, exact_limit: int = EXACT_LIMIT
                      ) -> tuple[PackFaces, NDArray[np.float32], KnnGraph]:
    """:func:`build_knn_graph` of ``embeddings`` (the faces compared: ``faces``' own, or
    a copy centred by age), with the faces, those embeddings and the graph in the order
    of the graph's inverted lists where it has them (above ``exact_limit``): faces alike
    then lie together in memory. The merge loop reads a person's faces one after
    another and finds them in the cache instead of across 2 GB (1M synthetic faces:
    clustering 87-92 → 64-67 s); and since the rows move once each face's lists are
    known, before the lists are searched, each list's faces are one slice there instead
    of a gather (1M: the search 30.7-35.9 → 29.2-30.0 s). Rows are moved in place, not
    copied."""
    x = unit_rows(embeddings)
    if len(x) <= max(exact_limit, 1):
        return faces, embeddings, build_knn_graph(x, k, exact_limit=exact_limit)
    from rbv.cluster.knn_search import move_rows

    probes = _list_probes(x)
    order = np.argsort(probes[:, 0], kind="stable")
    move_rows(faces.embeddings, order)
    if embeddings is not faces.embeddings:  # centred by age: a copy of their own
        move_rows(embeddings, order)
    if x is not embeddings:  # their unit copy
        move_rows(x, order)
    return (faces.take(order, faces.embeddings), embeddings,
            _approximate(x, _k(k, len(x)), probes[order]))


def build_knn_graph(
    embeddings: NDArray[np.floating], k: int = DEFAULT_K, *, exact_limit: int = EXACT_LIMIT
) -> KnnGraph:
    """The ``k``-NN graph by cosine similarity: exact up to ``exact_limit`` faces,
    approximate (faiss IVF) above."""
    x = unit_rows(embeddings)
    n = x.shape[0]
    k = _k(k, n)
    if n <= 1:
        return KnnGraph(np.full((n, k), -1, np.int64), np.zeros((n, k), np.float32))
    if n <= exact_limit:
        return _exact(x, x, k, exclude_self=True)
    return _approximate(x, k)


def _k(k: int, n: int) -> int:
    """Neighbours a graph of ``n`` faces can list per face."""
    return max(1, min(k, n - 1)) if n > 1 else 1


def nearest(
    queries: NDArray[np.floating], base: NDArray[np.floating], k: int
) -> KnnGraph:
    """For each query row, its ``k`` most similar rows of ``base`` (exact)."""
    q, b = normalize(queries), normalize(base)
    if b.shape[0] == 0:
        return KnnGraph(np.full((q.shape[0], k), -1, np.int64),
                        np.full((q.shape[0], k), -1, np.float32))
    return _exact(q, b, min(k, b.shape[0]), exclude_self=False)


def _exact(q: NDArray[np.float32], b: NDArray[np.float32], k: int, *,
           exclude_self: bool) -> KnnGraph:
    """Brute force with faiss's flat inner-product index: blocked BLAS products and a
    heap per query, so memory stays at the inputs plus one tile."""
    faiss = load_faiss()

    index = faiss.IndexFlatIP(b.shape[1])
    index.add(b)
    extra = 1 if exclude_self else 0
    sims, neighbors = index.search(q, min(k + extra, b.shape[0]))
    neighbors = neighbors.astype(np.int64)
    if exclude_self:
        n = q.shape[0]
        is_self = neighbors == np.arange(n)[:, None]
        # Exact duplicates may rank another face first; drop the self hit, else the last.
        is_self[:, -1] |= ~is_self.any(axis=1)
        keep = ~is_self
        return KnnGraph(neighbors[keep].reshape(n, -1), sims[keep].reshape(n, -1))
    return KnnGraph(neighbors, sims.astype(np.float32))


def _approximate(x: NDArray[np.float32], k: int,
                 probes: NDArray[np.int64] | None = None) -> KnnGraph:
    """Each face's ``k`` approximate neighbours through an inverted file.

    Every face is both stored and searched, so one pass of the coarse quantizer gives
    each face the list it is stored in (its nearest centroid) and the ``NPROBE`` lists
    it searches (:func:`_list_probes`, unless ``probes`` gives them); the search then
    goes list by list, each list against every face that probes it in one matrix
    product (:mod:`rbv.cluster.knn_search`)."""
    from rbv.cluster.knn_search import search_lists

    probes = _list_probes(x) if probes is None else probes
    neighbors, similarities = search_lists(x, probes, k)
    return KnnGraph(neighbors, similarities, np.ascontiguousarray(probes[:, 0], np.int64))


def _list_probes(x: NDArray[np.float32], nlist: int | None = None, nprobe: int = NPROBE
                 ) -> NDArray[np.int64]:
    """Per face, the ``nprobe`` inverted lists it searches, nearest first: the first is
    the one it is stored in (``nlist`` lists, by default 4·sqrt(n): :func:`train_lists`).
    Other counts are for measuring the trade of recall against time
    (``scripts/bench/bench_knn.py --lists``)."""
    return nearest_lists(x, train_lists(x, nlist), nprobe)


def train_lists(x: NDArray[np.float32], nlist: int | None = None) -> NDArray[np.float32]:
    """The centroids of ``x``'s inverted lists (``nlist``, by default 4·sqrt(n)), trained
    top-down on a sample (:func:`_centroids`)."""
    n = len(x)
    nlist = nlist or int(min(65_536, max(64, 4 * np.sqrt(n))))
    # Centroids only route the search: a sample of 20 faces a list costs a fraction of
    # k-means over all faces and loses ~1 % of recall@10 (measured at 100k).
    sample = x[np.random.default_rng(0).choice(n, size=min(n, 20 * nlist), replace=False)]
    return _centroids(sample, nlist)


def nearest_lists(x: NDArray[np.float32], centroids: NDArray[np.float32],
                  nprobe: int = NPROBE) -> NDArray[np.int64]:
    """Per row of ``x``, the ``nprobe`` lists (rows of ``centroids``) nearest it, nearest
    first."""
    nprobe = min(nprobe, len(centroids))
    if len(x) * len(centroids) <= _ONE_PRODUCT:  # a few faces: faiss's set-up costs more
        out = np.empty((len(x), nprobe), np.int64)

        def block(at: int) -> None:  # scores this small stay in the cache (fresh pages cost)
            scores = x[at:at + 128] @ centroids.T
            best = np.argpartition(-scores, nprobe - 1, axis=1)[:, :nprobe]
            order = np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable")
            out[at:at + 128] = np.take_along_axis(best, order, 1)

        # blocks on threads of their own, BLAS on one each (waking its threads costs more)
        with threadpool_limits(limits=1, user_api="blas"), \
                ThreadPoolExecutor(threads(), thread_name_prefix="rbv-lists") as pool:
            list(pool.map(block, range(0, len(x), 128)))
        return out
    faiss = load_faiss()

    quantizer = faiss.IndexFlatIP(centroids.shape[1])
    quantizer.add(centroids)
    return quantizer.search(x, nprobe)[1].astype(np.int64, copy=False)


_ONE_PRODUCT = 1 << 24
"""Scores (64 MB) up to which :func:`nearest_lists` takes matrix products of a block of
rows each (1,000 faces × 4,000 lists: 0.07 s on one thread every time, against faiss's
0.08-0.12 s and 0.05-0.23 s in one product on BLAS's threads)."""


def _centroids(sample: NDArray[np.float32], nlist: int) -> NDArray[np.float32]:
    """About ``nlist`` unit k-means centroids of ``sample``, trained top-down: about
    sqrt(nlist) centroids first, each one's faces split into their share of the rest,
    then one round of k-means over the whole sample from there.

    Measured (synthetic 512-d faces, recall@30 of the graph, seconds to train): 1M
    faces, 4,000 lists: k-means of all lists at once (5 rounds) 0.9617 in 10.4 s,
    top-down alone 0.9550 in 1.4 s, top-down and a round 0.9591 in 3.5 s; 200k:
    0.9636 in 1.8 s, 0.9601 in 0.5 s, 0.9620 in 0.9 s."""
    top = _kmeans(sample, max(1, round(np.sqrt(nlist))), rounds=5)
    home = np.argmax(sample @ top.T, axis=1)
    parts = []
    for g in range(len(top)):
        part = sample[home == g]
        want = min(len(part), max(1, round(nlist * len(part) / len(sample))))
        parts.append(_kmeans(part, want, rounds=5) if want < len(part) else part)
    return _kmeans(sample, rounds=1, start=np.vstack(parts))


def _kmeans(x: NDArray[np.float32], k: int = 0, *, rounds: int,
            start: NDArray[np.float32] | None = None) -> NDArray[np.float32]:
    """``k`` unit centroids of the rows ``x`` (spherical k-means; from ``start`` where
    given, its rows' count then)."""
    faiss = load_faiss()

    k = len(start) if start is not None else k
    if k <= 1:
        return normalize(x.sum(axis=0, keepdims=True))
    km = faiss.Kmeans(x.shape[1], k, niter=rounds, spherical=True, seed=0,
                      min_points_per_centroid=1, max_points_per_centroid=256)
    km.train(np.ascontiguousarray(x), init_centroids=start)
    return np.asarray(km.centroids, np.float32)
