"""Benchmarks for the facesets work, each against a baseline in the same process.

1. dedup's Hamming scan (``pairwise_within``, numpy blocks) against a plain Python
   double loop over the same 64-bit hashes.
2. refine's whole pipeline on synthetic identity-like embeddings against its first
   stage alone (the average-linkage clustering), i.e. what the merge, gate, outlier and
   size stages add.

Run: uv run python scripts/bench_facesets.py [--hashes 3000] [--faces 5000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.refine import RefineInput, RefineParams, refine
from rbv.export.phash import hamming, pairwise_within


def _timed(fn, repeat: int = 3):  # type: ignore[no-untyped-def]
    """The result and the best of ``repeat`` wall times (the machine is shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hashes", type=int, default=3000)
    parser.add_argument("--faces", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    hashes = rng.integers(-(2**63), 2**63 - 1, size=args.hashes, dtype=np.int64)
    fast, t_fast = _timed(lambda: pairwise_within(hashes, 10))
    values = [int(h) for h in hashes]
    slow, t_slow = _timed(lambda: [(i, j, hamming(values[i], values[j]))
                                   for i in range(len(values)) for j in range(i + 1, len(values))
                                   if hamming(values[i], values[j]) <= 10], repeat=1)
    assert sorted(fast) == sorted(slow)
    print(f"hamming scan, {args.hashes:,} hashes: numpy {t_fast:.2f} s, python loop "
          f"{t_slow:.2f} s, ratio {t_slow / t_fast:.1f}x")

    identities = max(1, args.faces // 25)
    centres = rng.normal(size=(identities, 128))
    labels = rng.integers(0, identities, size=args.faces)
    x = centres[labels] + 0.9 * rng.normal(size=(args.faces, 128))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    n = args.faces
    data = RefineInput(x, np.arange(n, dtype=np.int64), np.full(n, 120.0, np.float32),
                       np.full(n, 80.0, np.float32), np.full(n, 0.9, np.float32))
    _, t_base = _timed(lambda: cluster_embeddings(x, Method.agglomerative, 0.45))
    result, t_all = _timed(lambda: refine(data, RefineParams()))
    print(f"refine, {n:,} faces / {identities} identities: first stage {t_base:.2f} s, "
          f"whole pipeline {t_all:.2f} s, ratio {t_all / t_base:.2f}x; "
          f"{len(result.groups)} facesets")


if __name__ == "__main__":
    main()
