"""Benchmarks for the facesets work, each against a baseline in the same process.

1. dedup's Hamming search (``pairs_within``, multi-index hashing) against the old
   all-pairs scan (``pairwise_within``, numpy blocks) on the same 64-bit hashes, at
   ``--hashes`` or ``--baseline-max`` (whichever is smaller); then, when ``--hashes`` is
   larger, the search alone at ``--hashes`` in a child process (time, peak RSS).
2. refine's whole pipeline on synthetic identity-like embeddings against its first
   stage alone (the average-linkage clustering), i.e. what the merge, gate, outlier and
   size stages add.

Run: uv run python scripts/bench/bench_facesets.py [--hashes 1M] [--baseline-max 20k] [--faces 5000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import numpy as np

from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.refine import RefineInput, RefineParams, refine
from rbv.media.phash import pairs_within, pairwise_within


def _timed(fn, repeat: int = 3):  # type: ignore[no-untyped-def]
    """The result and the best of ``repeat`` wall times (the machine is shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def _size(text: str) -> int:
    """``20000``, ``20k`` or ``1M``."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def _search_child(n: int, out: multiprocessing.Queue[tuple[float, int, float]]) -> None:
    hashes = np.random.default_rng(0).integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    start = time.perf_counter()
    found = pairs_within(hashes, 10)
    seconds = time.perf_counter() - start
    out.put((seconds, len(found), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hashes", type=_size, default=20_000)
    parser.add_argument("--baseline-max", type=_size, default=20_000)
    parser.add_argument("--faces", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    m = min(args.hashes, args.baseline_max)
    hashes = rng.integers(-(2**63), 2**63 - 1, size=m, dtype=np.int64)
    fast, t_fast = _timed(lambda: pairs_within(hashes, 10))
    slow, t_slow = _timed(lambda: pairwise_within(hashes, 10), repeat=1)
    assert fast == sorted(slow)
    print(f"hamming search, {m:,} hashes (radius 10, {len(fast)} pairs): indexed "
          f"{t_fast:.2f} s, all-pairs {t_slow:.2f} s, ratio {t_slow / t_fast:.1f}x")
    if args.hashes > m:
        ctx = multiprocessing.get_context("fork")
        queue: multiprocessing.Queue[tuple[float, int, float]] = ctx.Queue()
        child = ctx.Process(target=_search_child, args=(args.hashes, queue))
        child.start()
        seconds, pairs, peak_mb = queue.get()
        child.join()
        print(f"hamming search, {args.hashes:,} hashes (radius 10, {pairs} pairs): "
              f"indexed {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")

    identities = max(1, args.faces // 25)
    centres = rng.normal(size=(identities, 128))
    labels = rng.integers(0, identities, size=args.faces)
    x = centres[labels] + 0.9 * rng.normal(size=(args.faces, 128))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    n = args.faces
    data = RefineInput(x, np.arange(n, dtype=np.int64), np.full(n, 120.0, np.float32),
                       np.full(n, 80.0, np.float32), np.full(n, 0.9, np.float32))
    _, t_base = _timed(lambda: cluster_embeddings(x, Method.agglomerative,
                                                  RefineParams().initial_similarity))
    result, t_all = _timed(lambda: refine(data, RefineParams()))
    print(f"refine, {n:,} faces / {identities} identities: first stage {t_base:.2f} s, "
          f"whole pipeline {t_all:.2f} s, ratio {t_all / t_base:.2f}x; "
          f"{len(result.groups)} facesets")


if __name__ == "__main__":
    main()
