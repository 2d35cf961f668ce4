"""Must-link / cannot-link constraints and how every method honours them.

Three kinds of facts constrain a clustering of faces ``0..n-1``:

* cannot-link pairs: two faces of one photo, and "these are different people" rows;
* must-link pairs: "these are the same person" rows;
* anchors: faces a person placed by hand (``assigned_by = 'manual'``). Faces with the
  same anchor must end together, faces with different anchors never together.

Every method first clusters freely, then :func:`enforce` repairs the labels: must-links
join clusters, and a cluster that breaks a constraint is rebuilt by constrained single
linkage over its own graph edges (strongest first, a merge refused when it would join
a cannot-link pair or two anchors).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.union_find import components

NO_ANCHOR = -1


def _pairs(values: Iterable[tuple[int, int]] | NDArray[np.int64] | None) -> NDArray[np.int64]:
    arr = np.asarray(list(values) if values is not None and not isinstance(values, np.ndarray)
                     else (values if values is not None else []), dtype=np.int64)
    arr = arr.reshape(-1, 2)
    arr = arr[arr[:, 0] != arr[:, 1]]
    return np.sort(arr, axis=1)


@dataclass(frozen=True)
class Constraints:
    """Constraints over faces ``0..n-1`` (indices into the embedding matrix)."""

    n: int
    cannot: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 2), np.int64))
    must: NDArray[np.int64] = field(default_factory=lambda: np.empty((0, 2), np.int64))
    anchors: NDArray[np.int64] | None = None  # (n,) anchor id or NO_ANCHOR

    @classmethod
    def build(
        cls,
        n: int,
        *,
        image_ids: NDArray[np.int64] | None = None,
        cannot: Iterable[tuple[int, int]] | NDArray[np.int64] | None = None,
        must: Iterable[tuple[int, int]] | NDArray[np.int64] | None = None,
        anchors: NDArray[np.int64] | None = None,
    ) -> Constraints:
        """Constraints from explicit pairs plus "faces of one image are different"."""
        cannot_pairs = [_pairs(cannot)]
        if image_ids is not None:
            cannot_pairs.append(same_group_pairs(np.asarray(image_ids)))
        all_cannot = np.unique(np.concatenate(cannot_pairs), axis=0)
        must_pairs = [_pairs(must)]
        if anchors is not None:
            must_pairs.append(anchor_chain_pairs(np.asarray(anchors, np.int64)))
        all_must = np.unique(np.concatenate(must_pairs), axis=0)
        return cls(n, all_cannot, all_must,
                   None if anchors is None else np.asarray(anchors, np.int64))

    def partition(self, groups: NDArray[np.int64],
                  wanted: Iterable[int]) -> dict[int, Constraints]:
        """For each ``wanted`` group value, the constraints among its members (renumbered
        in index order). One pass over the pairs, however many groups."""
        order = np.argsort(groups, kind="stable")
        local = np.empty(self.n, np.int64)
        sorted_groups = groups[order]
        starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
        local[order] = np.arange(self.n) - starts

        def bucket(p: NDArray[np.int64]) -> dict[int, NDArray[np.int64]]:
            inside = groups[p[:, 0]] == groups[p[:, 1]]
            p = p[inside]
            g = groups[p[:, 0]]
            by = np.argsort(g, kind="stable")
            p, g = p[by], g[by]
            if len(g) == 0:
                return {}
            cuts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
            ends = np.r_[cuts[1:], len(g)]
            return {int(g[a]): local[p[a:b]] for a, b in zip(cuts, ends, strict=True)}

        cannot, must = bucket(self.cannot), bucket(self.must)
        empty = np.empty((0, 2), np.int64)
        out: dict[int, Constraints] = {}
        for w in wanted:
            members = order[np.searchsorted(sorted_groups, w, "left"):
                            np.searchsorted(sorted_groups, w, "right")]
            anchors = None if self.anchors is None else self.anchors[members]
            out[w] = Constraints(len(members), cannot.get(w, empty), must.get(w, empty), anchors)
        return out

    def violations(self, labels: NDArray[np.int64]) -> NDArray[np.int64]:
        """Labels of clusters that break a cannot-link or hold two anchors."""
        bad = [labels[self.cannot[:, 0]][labels[self.cannot[:, 0]] == labels[self.cannot[:, 1]]]]
        if self.anchors is not None:
            anchored = self.anchors != NO_ANCHOR
            pairs = np.unique(np.stack([labels[anchored], self.anchors[anchored]], 1), axis=0)
            lab, counts = np.unique(pairs[:, 0], return_counts=True)
            bad.append(lab[counts > 1])
        return np.unique(np.concatenate(bad))


def same_group_pairs(groups: NDArray[np.int64]) -> NDArray[np.int64]:
    """Every pair of positions that share a group value (faces of one image)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    out: list[tuple[int, int]] = []
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        members = order[start:start + size]
        out.extend((int(a), int(b)) for i, a in enumerate(members) for b in members[i + 1:])
    return _pairs(out)


def anchor_chain_pairs(anchors: NDArray[np.int64]) -> NDArray[np.int64]:
    """Consecutive members of each anchor group (enough to must-link the group)."""
    idx = np.flatnonzero(anchors != NO_ANCHOR)
    if len(idx) < 2:
        return np.empty((0, 2), np.int64)
    idx = idx[np.argsort(anchors[idx], kind="stable")]
    same = anchors[idx[1:]] == anchors[idx[:-1]]
    return _pairs(np.stack([idx[:-1][same], idx[1:][same]], 1))


class ConstrainedUnionFind:
    """Union-find that refuses a union joining a cannot-link pair or two anchors."""

    def __init__(self, constraints: Constraints) -> None:
        n = constraints.n
        self.parent = list(range(n))
        self.size = [1] * n
        self.blocked: dict[int, set[int]] = {}
        for a, b in constraints.cannot.tolist():
            self.blocked.setdefault(a, set()).add(b)
            self.blocked.setdefault(b, set()).add(a)
        anchors = constraints.anchors
        self.anchor: dict[int, int] = (
            {} if anchors is None
            else {i: int(a) for i, a in enumerate(anchors.tolist()) if a != NO_ANCHOR}
        )

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> bool:
        """Join the sets of ``a`` and ``b`` unless a constraint forbids it."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        anchor_a, anchor_b = self.anchor.get(ra), self.anchor.get(rb)
        if anchor_a is not None and anchor_b is not None and anchor_a != anchor_b:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        small = self.blocked.get(rb, set())
        if any(self.find(p) == ra for p in small):
            return False
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        if small:
            self.blocked.setdefault(ra, set()).update(small)
            del self.blocked[rb]
        if anchor_b is not None:
            self.anchor[ra] = anchor_b
        return True

    def labels(self) -> NDArray[np.int64]:
        roots = np.array([self.find(i) for i in range(len(self.parent))], np.int64)
        return np.unique(roots, return_inverse=True)[1].astype(np.int64)


def enforce(
    labels: NDArray[np.int64],
    edges: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]],
    constraints: Constraints,
) -> NDArray[np.int64]:
    """Labels that honour ``constraints``: must-links joined, broken clusters rebuilt
    by constrained single linkage over their own ``edges`` (sorted strongest first)."""
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    if n == 0:
        return labels
    if len(constraints.must):
        # Clusters joined through must-links; what that breaks is repaired below.
        m = constraints.must
        k = int(labels.max()) + 1
        labels = components(k, labels[m[:, 0]], labels[m[:, 1]])[labels]
    bad = constraints.violations(labels)
    if len(bad) == 0:
        return _compact(labels)
    a, b, _ = edges
    local_of = constraints.partition(labels, bad.tolist())
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    local = np.empty(n, np.int64)
    local[order] = np.arange(n) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    # Edges inside each broken cluster, strongest first (``edges`` are sorted so).
    inside = np.flatnonzero(labels[a] == labels[b])
    inside = inside[np.isin(labels[a[inside]], bad)]
    by_label = inside[np.argsort(labels[a[inside]], kind="stable")]
    edge_labels = labels[a[by_label]]
    next_label = int(labels.max()) + 1
    out = labels.copy()
    for label in bad.tolist():
        members = order[np.searchsorted(sorted_labels, label, "left"):
                        np.searchsorted(sorted_labels, label, "right")]
        uf = ConstrainedUnionFind(local_of[label])
        for x, y in local_of[label].must.tolist():
            uf.union(x, y)
        lo, hi = np.searchsorted(edge_labels, label, "left"), np.searchsorted(edge_labels,
                                                                               label, "right")
        mine = np.sort(by_label[lo:hi])  # back to strongest-first order
        for x, y in zip(local[a[mine]].tolist(), local[b[mine]].tolist(), strict=True):
            uf.union(x, y)
        sub = uf.labels()
        out[members] = np.where(sub == 0, label, next_label + sub - 1)
        next_label += int(sub.max())
    return _compact(out)


def _compact(labels: NDArray[np.int64]) -> NDArray[np.int64]:
    return np.unique(labels, return_inverse=True)[1].astype(np.int64).reshape(-1)
