"""The approximate k-NN graph (above ``EXACT_LIMIT`` faces) against the way it was built
before, on the same synthetic faces in the same process.

Baseline (rbv before issue 33): faiss IVF with float16 lists, one coarse pass, faces
searched one by one, grouped by the list they are stored in. rbv now
(``rbv.cluster.knn._approximate``): the same lists (4·sqrt(n)) and ``nprobe``, each list
scored against every face that probes it in one float32 matrix product; and what a
full `rbv cluster` runs (``rbv.cluster.knn.ordered_knn_graph``): the same, with the
faces moved into their lists' order once their lists are known, before the search (its
time includes the moves; ``_approximate``'s leaves them out, though a full run moved the
faces after it until 2026-11-29). For each: seconds, recall@k of a 2,000-face sample
against the exact neighbours, the largest error of a listed similarity; last lines
``baseline/rbv = X`` and ``rbv/ordered = X`` (best round of each).

``--lists NLIST:NPROBE,...`` instead measures rbv's graph with other counts of inverted
lists and lists probed (the shipped 4·sqrt(n) and ``NPROBE`` first, as ``default``):
seconds to train the lists, to find each face's lists (the coarse pass) and to search
them, and the recall, each the best of ``--rounds``; the coarse pass grows with the
lists, the search with the share of faces probed.

    uv run python scripts/bench/bench_knn.py --faces 200k --dim 512
    nice -n 5 uv run python scripts/bench/bench_knn.py --faces 1M --dim 512
    uv run python scripts/bench/bench_knn.py --faces 1M --dim 512 --lists 3000:8,2000:6
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from bench_cluster import _size, synthetic
from rbv.cluster.faiss_blas import load_faiss
from rbv.cluster.knn import (
    DEFAULT_K,
    NPROBE,
    KnnGraph,
    _approximate,
    _list_probes,
    ordered_knn_graph,
)
from rbv.face_rows import PackFaces

SAMPLE = 2_000
_BLOCK = 65_536


def per_face_float16(x: np.ndarray, k: int) -> KnnGraph:
    """The graph as ``knn._approximate`` built it before: float16 lists, each face
    searched on its own (faces grouped by their own list), 10 k-means rounds."""
    faiss = load_faiss()
    from faiss.contrib.ivf_tools import add_preassigned, search_preassigned

    n, dim = x.shape
    nlist = int(min(65_536, max(64, 4 * np.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT, False)
    index.cp.niter = 10
    index.cp.min_points_per_centroid = 5
    index.train(x[np.random.default_rng(0).choice(n, size=min(n, 20 * nlist), replace=False)])
    index.nprobe = min(NPROBE, nlist)
    coarse_sims, coarse = quantizer.search(x, index.nprobe)
    add_preassigned(index, x, np.ascontiguousarray(coarse[:, 0]))
    sims = np.empty((n, k + 1), np.float32)
    neighbors = np.empty((n, k + 1), np.int64)
    order = np.argsort(coarse[:, 0], kind="stable")
    for lo in range(0, n, _BLOCK):
        rows = order[lo:lo + _BLOCK]
        sims[rows], neighbors[rows] = search_preassigned(
            index, x[rows], k + 1, np.ascontiguousarray(coarse[rows]),
            np.ascontiguousarray(coarse_sims[rows]))
    is_self = neighbors == np.arange(n)[:, None]
    is_self[:, -1] |= ~is_self.any(axis=1)
    keep = ~is_self
    return KnnGraph(neighbors[keep].reshape(n, k), sims[keep].reshape(n, k))


def ordered(x: np.ndarray, k: int) -> tuple[KnnGraph, np.ndarray]:
    """``ordered_knn_graph`` of ``x`` (moved in place), and each row's face as ``x`` had
    it."""
    n = len(x)
    faces = PackFaces(np.arange(n), np.arange(n), [None] * n, np.zeros(n, bool), x)
    moved, _, graph = ordered_knn_graph(faces, x, k, exact_limit=0)
    return graph, moved.ids


def lists_and_probes(x: np.ndarray, k: int, lists: list[tuple[int | None, int]],
                     rounds: int, recall: Callable[[KnnGraph], float]) -> None:
    """Each (lists, probed) pair's coarse pass and search timed apart, and the recall."""
    print(f"{'lists':>7} {'probed':>6} {'coarse s':>9} {'search s':>9} {'total s':>8} "
          f"{'recall':>7}", flush=True)
    for nlist, nprobe in lists:
        best = (np.inf, np.inf)
        for _ in range(rounds):
            started = time.perf_counter()
            probes = _list_probes(x, nlist, nprobe)
            found = time.perf_counter()
            graph = _approximate(x, k, probes)
            done = time.perf_counter()
            best = min(best, (done - started, found - started), key=lambda b: b[0])
        print(f"{nlist or 'default':>7} {nprobe:>6} {best[1]:9.1f} {best[0] - best[1]:9.1f} "
              f"{best[0]:8.1f} {recall(graph):7.4f}  (load {os.getloadavg()[0]:.1f})", flush=True)


def _pairs(text: str) -> list[tuple[int | None, int]]:
    """``NLIST:NPROBE,...`` (the shipped pair first: its lists ``None``, 4·sqrt(n))."""
    pairs: list[tuple[int | None, int]] = [(None, NPROBE)]
    for part in filter(None, text.split(",")):
        nlist, _, nprobe = part.partition(":")
        pairs.append((int(nlist), int(nprobe)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of each")
    parser.add_argument("--lists", type=_pairs, default=None, metavar="NLIST:NPROBE,...",
                        help="time rbv's graph with these counts of lists and lists probed "
                             "(after the shipped ones) instead of the three ways")
    args = parser.parse_args()
    faiss = load_faiss()  # as rbv loads it (its OpenBLAS on this processor's kernels)

    x, _, _ = synthetic(args.faces, args.dim)
    k = args.k
    sample = np.random.default_rng(1).choice(len(x), SAMPLE, replace=False)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    _, found = exact.search(x[sample], k + 1)
    del exact
    truth = [set(row[row != face][:k].tolist()) for row, face in zip(found, sample, strict=True)]
    print(f"{args.faces:,} faces × {args.dim}-d, k = {k}, nprobe {NPROBE}, "
          f"{faiss.omp_get_max_threads()} faiss threads", flush=True)

    def recall_of(graph: KnnGraph) -> float:
        return sum(len(set(graph.neighbors[f].tolist()) & t)
                   for f, t in zip(sample, truth, strict=True)) / (SAMPLE * k)

    if args.lists:
        lists_and_probes(x, k, args.lists, args.rounds, recall_of)
        return
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, build in (("baseline", per_face_float16), ("rbv", _approximate),
                            ("ordered", ordered)):
            data = x.copy() if name == "ordered" else x  # moved in place (2 GB at 1M)
            started = time.perf_counter()
            graph = build(data, k)
            seconds = time.perf_counter() - started
            del data
            if isinstance(graph, tuple):  # renumbered back to x's rows for the recall
                graph = graph[0].reordered(np.argsort(graph[1]))
            recall = recall_of(graph)
            listed = np.einsum("ij,ikj->ik", x[sample], x[graph.neighbors[sample]])
            error = float(np.abs(listed - graph.similarities[sample]).max())
            print(f"{name:<18}{seconds:8.1f} s  recall@{k} {recall:.4f}  "
                  f"largest similarity error {error:.1e}  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
            best[name] = min(best.get(name, np.inf), seconds)
    print(f"baseline/rbv = {best['baseline'] / best['rbv']:.2f}")
    print(f"rbv/ordered = {best['rbv'] / best['ordered']:.2f}")


if __name__ == "__main__":
    main()
