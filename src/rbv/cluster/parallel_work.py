"""The machine's cores, and work cut into pieces for all of them.

numpy's sorts, BLAS and rbv's compiled loops release the GIL, so plain threads keep
every core busy on pieces of one array (no processes, no copies)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

PIECES_PER_THREAD = 8
"""Pieces of work per thread (unequal pieces still keep every core busy)."""


def threads() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parts(n: int, pieces: int) -> list[tuple[int, int]]:
    """``0..n`` cut into up to ``pieces`` (start, stop) ranges of nearly equal size."""
    bounds = np.linspace(0, n, max(1, min(pieces, n)) + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def on_all_cores(work: Callable[[int, int], None], n: int) -> None:
    """``work(start, stop)`` over ``0..n`` in pieces, on every core."""
    jobs = threads()
    pieces = parts(n, jobs * PIECES_PER_THREAD)
    if jobs == 1 or len(pieces) <= 1:
        for lo, hi in pieces:
            work(lo, hi)
        return
    with ThreadPoolExecutor(jobs, thread_name_prefix="rbv-work") as pool:
        for _ in pool.map(lambda piece: work(*piece), pieces):
            pass
