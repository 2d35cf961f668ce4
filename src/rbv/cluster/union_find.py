"""Groups joined by pairs: the one union-find rbv uses for links, answers and tests."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

T = TypeVar("T", bound=Hashable)


def roots(pairs: Iterable[tuple[T, T]]) -> dict[T, T]:
    """Each item named in ``pairs`` → its group's representative (one member, the same
    for every member of a group joined directly or through others)."""
    parent: dict[T, T] = {}

    def root(item: T) -> T:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in pairs:
        parent[root(a)] = root(b)
    return {item: root(item) for item in list(parent)}


def groups(pairs: Iterable[tuple[T, T]]) -> list[list[T]]:
    """The groups ``pairs`` join, each in the order its members first appear."""
    found: dict[T, list[T]] = {}
    for item, root in roots(pairs).items():
        found.setdefault(root, []).append(item)
    return list(found.values())


def components(n: int, a: NDArray[np.integer], b: NDArray[np.integer]) -> NDArray[np.int64]:
    """Connected-component labels of nodes ``0..n-1`` joined by the edges ``a[i]–b[i]``,
    numbered in the order of each component's lowest node (as scipy's
    ``connected_components`` numbers them). A few links (the usual case: a run's
    must-links) are joined with arrays over the linked nodes alone, without importing
    scipy (a third of ``rbv cluster``'s start); many go through scipy's sparse graph."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if len(a) and not (min(a.min(), b.min()) >= 0 and max(a.max(), b.max()) < n):
        raise ValueError(f"an edge names a node outside 0..{n - 1}")  # as scipy refuses it
    if len(a) > SPARSE_EDGES:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
        return connected_components(graph, directed=False)[1].astype(np.int64)
    parent = np.arange(n, dtype=np.int64)
    linked = np.unique(np.concatenate([a, b]))  # only these ever point elsewhere
    while len(a):
        ra, rb = parent[a], parent[b]
        apart = ra != rb
        if not apart.any():
            break
        ra, rb = ra[apart], rb[apart]
        # each root under its lowest partner (a forest still: pointers only go down)
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # every linked node straight at its root
            here = parent[linked]
            up = parent[here]
            if np.array_equal(up, here):
                break
            parent[linked] = up
        a, b = a[apart], b[apart]
    is_root = parent == np.arange(n)
    return (np.cumsum(is_root) - 1)[parent]


SPARSE_EDGES = 100_000
"""Above this many edges :func:`components` builds scipy's sparse graph (faster there)."""
