"""The multi-index Hamming search returns exactly the all-pairs scan's pairs."""

from __future__ import annotations

import numpy as np
import pytest

from rbv.media.phash import pairs_within, pairwise_within


def _hashes(seed: int, n: int, radius: int) -> np.ndarray:
    """Random 64-bit hashes plus exact duplicates, near copies and copies at exactly
    ``radius`` and ``radius + 1`` bits."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64).view(np.uint64)
    extra = [base[:10].copy()]  # duplicates
    for flips in (1, radius // 2, radius, radius, radius + 1):
        src = base[rng.integers(0, n, 20)].copy()
        for k in range(len(src)):
            for bit in rng.choice(64, size=min(flips, 64), replace=False):
                src[k] ^= np.uint64(1) << np.uint64(bit)
        extra.append(src)
    out = np.concatenate([base, *extra])
    return out[rng.permutation(len(out))].view(np.int64)


@pytest.mark.parametrize("radius", [0, 1, 3, 10, 12])
def test_pairs_within_equals_all_pairs(radius: int) -> None:
    hashes = _hashes(radius, 600, radius)
    expected = sorted(pairwise_within(hashes, radius))
    assert any(d == radius for _, _, d in expected)
    assert pairs_within(hashes, radius) == expected


@pytest.mark.parametrize("chunks", [3, 4, 5, 11])
def test_every_layout_is_exact(chunks: int) -> None:
    hashes = _hashes(chunks, 400, 10)
    assert pairs_within(hashes, 10, chunks=chunks) == sorted(pairwise_within(hashes, 10))


def test_edge_cases() -> None:
    assert pairs_within(np.array([], np.int64), 10) == []
    assert pairs_within(np.array([5], np.int64), 10) == []
    assert pairs_within(np.array([5, 5, -1], np.int64), 0) == [(0, 1, 0)]
    assert pairs_within(np.array([0, -1], np.int64), 64) == [(0, 1, 64)]
    assert pairs_within(np.array([0, 0], np.int64), -1) == []
