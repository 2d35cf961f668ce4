"""Clustering benchmark on synthetic identity-like embeddings.

Faces are drawn around random identity centres on the unit sphere (von Mises–Fisher-
like: centre + isotropic Gaussian noise, renormalised), tuned so that two faces of one
identity have cosine similarity ≈ 0.6 and faces of different identities ≈ 0, as with
real recognizers. Identity sizes follow a Zipf-like law (a few people in many photos,
many in few), and a share of photos hold two faces of different identities
(same-photo cannot-links).

For each size × dimension it builds the k-NN graph once, then times each method on it
in a child process (peak memory: the child's, which includes the inherited data and
graph); a method's time is graph + clustering, i.e. a full re-cluster. With evidence it
also runs the merge loop without its heaps of single faces (every list read whole, the
loop before issue 33's change) and prints the ratio and whether the partitions match. It also times
1,000 new faces matched into the rest (incremental, exact search). It then runs scikit-learn's
AgglomerativeClustering (cosine, average linkage, the same threshold) on the same data
where it fits (``--sklearn-max``, default 20k; it needs O(n²) memory) and prints the
time ratio and the BCubed F of each against the true identities.

    uv run python scripts/bench/bench_cluster.py                      # 10k × 128-d, quick
    uv run python scripts/bench/bench_cluster.py --sizes 10k,100k,1M --dims 128,512
    uv run python scripts/bench/bench_cluster.py --sizes 1M --dims 512 --methods evidence
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rbv.cluster import evidence_merge
from rbv.cluster.assign import Candidate, match_faces
from rbv.cluster.constraints import Constraints
from rbv.cluster.evidence import (
    DEFAULT_BUDGET,
    ImpostorModel,
    _candidate_pairs,
    evidence_linkage,
    random_pair_similarities,
)
from rbv.cluster.evidence_heap import heap_merger_roots
from rbv.cluster.evidence_nodes import Nodes
from rbv.cluster.knn import DEFAULT_K, EXACT_LIMIT, KnnGraph, build_knn_graph, nearest
from rbv.cluster.linkage import components
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.metrics import bcubed

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/support
from tests.support.synthetic_faces import (  # noqa: E402  (the root, above)
    SAME_SIM,
    synthetic,
    warm_up_clustering,
)

THRESHOLD = 0.45
INTERPRETED = "evidence, interpreted loop"
UNCROWDED = "evidence, no crowding"
NO_HEAPS = "evidence, no heaps"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(job: Callable[[], dict[str, Any]], conn: Any) -> None:
    started = time.perf_counter()
    result = job()
    result["seconds"] = time.perf_counter() - started
    result["peak_mb"] = _peak_mb()
    conn.send(result)


def measure(job: Callable[[], dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Run ``job`` in a forked child; its time, peak RSS (MB) and result."""
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_child, args=(job, child))
    proc.start()
    if parent.poll(timeout):
        out: dict[str, Any] = parent.recv()
    else:
        out = {"error": f"gave up after {timeout:.0f} s"}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    if proc.exitcode not in (0, None) and "seconds" not in out:
        out = {"error": f"died (exit {proc.exitcode}; out of memory?)"}
    return out


def run(n: int, dim: int, methods: list[str], sklearn_max: int, timeout: float,
        reference_max: int = 0) -> None:
    x, truth, images = synthetic(n, dim)
    base_mb = _peak_mb()
    print(f"\n## {n:,} faces × {dim}-d, {len(np.unique(truth)):,} identities "
          f"(data {x.nbytes / 2**20:.0f} MB, process before {base_mb:.0f} MB)")
    print(f"{'method':<28}{'seconds':>10}{'peak MB':>10}{'BCubed F':>10}  note (peak MB: the "
          "process's, or the child's own pages for methods)")
    results: dict[str, dict[str, Any]] = {}

    # The graph is built once, in a child: faiss's OpenMP threads must never start in
    # this process, or forked children that use faiss would hang. Children of the
    # methods inherit the graph.
    built = measure(lambda: {"graph": build_knn_graph(x, DEFAULT_K)}, timeout)
    if "graph" not in built:
        print(f"k-NN graph: {built.get('error')}")
        return
    graph, graph_s = built["graph"], built["seconds"]
    print(f"{'k-NN graph (k=' + str(DEFAULT_K) + ')':<28}{graph_s:>10.2f}"
          f"{built['peak_mb']:>10.0f}{'-':>10}  "
          f"{'exact' if n <= EXACT_LIMIT else 'faiss IVF'}; added to each method")

    if "evidence" in methods:
        _print_candidate_parts(x, graph)

    def method_job(method: Method, interpreted: bool = False,
                   no_heaps: bool = False) -> Callable[[], dict[str, Any]]:
        def job() -> dict[str, Any]:
            if interpreted:  # this forked child only: the interpreted merge loop
                evidence_merge.merge_greedily = _interpreted
            if no_heaps:  # this forked child only: every list read whole, as before
                evidence_merge.merge_greedily = partial(evidence_merge.merge_greedily,
                                                        partial_from=2**62)
            labels = cluster_embeddings(x, method, THRESHOLD,
                                        Constraints.build(n, image_ids=images), graph=graph)
            return {"f1": bcubed(labels, truth).f1, "plus": graph_s, "labels": labels}
        return job

    def uncrowded_job() -> dict[str, Any]:
        # The impostor model cluster_embeddings estimates for "evidence" above.
        model = ImpostorModel.from_library_pairs(
            random_pair_similarities(x, np.arange(n, dtype=np.int64)))
        labels = evidence_linkage(x, graph, model, DEFAULT_BUDGET,
                                  Constraints.build(n, image_ids=images), crowded=False)
        return {"f1": bcubed(labels, truth).f1, "plus": graph_s}

    def incremental_job() -> dict[str, Any]:
        new = min(1000, n // 10)
        t = time.perf_counter()
        found = nearest(x[:new], x[new:], DEFAULT_K)
        person = truth[new:]
        cands = {i: [Candidate(int(person[j]), float(s), int(images[new + j]))
                     for j, s in zip(found.neighbors[i], found.similarities[i], strict=True)]
                 for i in range(new)}
        matches = match_faces(cands, THRESHOLD + 0.05,
                              image_of={i: int(images[i]) for i in range(new)},
                              rejections={}, taken=set())
        right = sum(m.person == truth[m.face] for m in matches)
        return {"note": f"{new} new faces: {len(matches)} matched ({right} right) in "
                        f"{time.perf_counter() - t:.2f} s (exact, faiss flat; the DB path uses "
                        "pgvector HNSW)"}

    def sklearn_job() -> dict[str, Any]:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                         distance_threshold=1 - THRESHOLD).fit_predict(x)
        return {"f1": bcubed(labels, truth).f1, "note": "O(n²) memory"}

    jobs = [(m, method_job(Method(m))) for m in methods]
    reference = "evidence" in methods and n <= reference_max
    if reference:
        jobs.append((INTERPRETED, method_job(Method.evidence, interpreted=True)))
    if "evidence" in methods:
        jobs.append((NO_HEAPS, method_job(Method.evidence, no_heaps=True)))
        jobs.append((UNCROWDED, uncrowded_job))
    jobs.append(("incremental 1k new", incremental_job))
    if n <= sklearn_max:
        jobs.append(("sklearn Agglomerative", sklearn_job))
    for name, job in jobs:
        r = measure(job, timeout)
        if "plus" in r:
            r["note"] = f"graph {r['plus']:.1f} s + clustering {r['seconds']:.1f} s"
            r["seconds"] += r["plus"]
        results[name] = r
        if "error" in r:
            print(f"{name:<28}{'-':>10}{'-':>10}{'-':>10}  {r['error']}")
            continue
        f1 = f"{r['f1']:.3f}" if "f1" in r else "-"
        print(f"{name:<28}{r['seconds']:>10.2f}{r['peak_mb']:>10.0f}{f1:>10}  "
              f"{r.get('note', '')}")
    evidence = results.get("evidence", {})
    if "seconds" in evidence:
        if reference and "seconds" in results.get(INTERPRETED, {}):
            _print_ratio("interpreted / compiled evidence merge loop", results[INTERPRETED],
                         evidence, same_partition=True)
        if "seconds" in results.get(NO_HEAPS, {}):
            _print_ratio("evidence without / with heaps of single faces", results[NO_HEAPS],
                         evidence, same_partition=True)
        if "seconds" in results.get(UNCROWDED, {}):
            _print_ratio("evidence with crowding (two passes) / without", evidence,
                         results[UNCROWDED])
    sk = results.get("sklearn Agglomerative")
    if sk and "seconds" in sk:
        for m in methods:
            mine = results.get(m, {})
            if "seconds" in mine:
                print(f"ratio sklearn / {m}: time {sk['seconds'] / mine['seconds']:.1f}×, "
                      f"peak memory {sk['peak_mb'] / mine['peak_mb']:.1f}×")
    else:
        print(f"sklearn AgglomerativeClustering skipped at {n:,} faces "
              f"(> --sklearn-max {sklearn_max:,}: needs ~{n * n * 8 * 1.5 / 2**30:.0f} GB)")


def _print_candidate_parts(x: np.ndarray, graph: KnnGraph) -> None:
    """How the evidence merge passes' candidate pairs (k-NN edges above the impostor
    mean) connect the faces: merges in one connected part never change a score in
    another, so only separate parts could be merged on separate cores with the same
    result; the largest part's share says how much of a pass that leaves."""
    model = ImpostorModel.from_library_pairs(
        random_pair_similarities(x, np.arange(len(x), dtype=np.int64)))
    pairs = _candidate_pairs(graph, np.arange(len(x), dtype=np.int64), model.mu)
    part = components(len(x), pairs[:, 0], pairs[:, 1])
    sizes = np.bincount(part)
    print(f"{'candidate pairs':<28}{len(pairs):>10,}  in {len(sizes):,} connected parts, "
          f"the largest {sizes.max() / len(x):.1%} of the faces (the merge order is "
          "global within a part)")


def _print_ratio(what: str, slow: dict[str, Any], fast: dict[str, Any], *,
                 same_partition: bool = False) -> None:
    """One method's clustering time, time with the graph and peak memory over another's."""
    line = (f"ratio {what}: clustering time "
            f"{(slow['seconds'] - slow['plus']) / (fast['seconds'] - fast['plus']):.2f}×, "
            f"with the graph {slow['seconds'] / fast['seconds']:.2f}×, peak memory "
            f"{slow['peak_mb'] / fast['peak_mb']:.2f}×")
    if same_partition:
        same = _same_partition(slow["labels"], fast["labels"])
        line += f"; same partition: {'yes' if same else 'NO'}"
    print(line)


def _interpreted(nodes: Nodes, anchored: np.ndarray, cannot: np.ndarray, mu: float,
                 sigma: float, tau: float, z_min: float,
                 crowd: np.ndarray | None = None) -> np.ndarray:
    """The interpreted merge loop in the compiled one's place."""
    return heap_merger_roots(nodes.full_sums(), nodes.count.copy(), anchored, cannot,
                             nodes.pairs, mu, sigma, tau, z_min, crowd)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def _size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k", help="comma-separated, e.g. 10k,100k,1M")
    parser.add_argument("--dims", default="128", help="comma-separated, e.g. 128,512")
    parser.add_argument("--methods", default="evidence,connected,agglomerative,hdbscan",
                        help="comma-separated; with evidence (rbv's default) also the same "
                        "without crowding and without heaps of single faces, and the ratios")
    parser.add_argument("--sklearn-max", type=_size, default=20_000)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per job")
    parser.add_argument("--reference-max", type=_size, default=0,
                        help="with evidence in --methods: also run the interpreted merge "
                        "loop it replaced, up to this many faces (the baseline of the "
                        "compiled one; same partition checked)")
    args = parser.parse_args()
    warm_up_clustering()  # a first run's numba compile would land in one method's time
    print(f"threshold {THRESHOLD}, k = {DEFAULT_K}, same-identity similarity ≈ {SAME_SIM}")
    for dim in (int(d) for d in args.dims.split(",")):
        for n in (_size(s) for s in args.sizes.split(",")):
            run(n, dim, args.methods.split(","), args.sklearn_max, args.timeout,
                args.reference_max)


if __name__ == "__main__":
    main()
