"""A 64-bit DCT perceptual hash (pHash) and Hamming distances between hashes.

The photo is reduced to 32×32 grey, transformed with a 2-D DCT, and the 8×8 lowest
frequencies (without the DC term's influence on the median) are compared to their
median: one bit each. Re-encoding, resizing and mild colour changes flip few bits;
different photos differ in about half of them.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

_BITS = 1 << np.arange(64, dtype=np.uint64)


def phash(rgb: NDArray[np.uint8]) -> int:
    """The image's pHash as a signed 64-bit integer (PostgreSQL ``bigint``)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    value = int(np.bitwise_or.reduce(_BITS[bits])) if bits.any() else 0
    return value - (1 << 64) if value >= 1 << 63 else value


_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount(x: NDArray[np.uint64]) -> NDArray[np.uint8]:
    """Set bits per element (numpy ≥ 2 has it built in; a byte table otherwise)."""
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(x))
    return np.asarray(_POP8[x.view(np.uint8)].reshape(x.shape + (8,)).sum(axis=2))


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def pairwise_within(hashes: NDArray[np.int64], max_distance: int, block: int = 2048
                    ) -> list[tuple[int, int, int]]:
    """Every pair ``(i, j, distance)`` with ``i < j`` whose hashes differ in at most
    ``max_distance`` bits; exact, in blocks of rows (n² / 2 comparisons)."""
    h = np.asarray(hashes, np.int64).view(np.uint64)
    n = len(h)
    out: list[tuple[int, int, int]] = []
    for start in range(0, n, block):
        rows = h[start:start + block]
        x = rows[:, None] ^ h[None, start:]
        dist = _popcount(x)
        ii, jj = np.nonzero(dist <= max_distance)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            a, b = start + i, start + j
            if a < b:
                out.append((a, b, int(dist[i, j])))
    return out
