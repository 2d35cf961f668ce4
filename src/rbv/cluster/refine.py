"""``refine``'s pipeline over one pack's faces, as pure functions of arrays.

initial clusters (average linkage, cosine similarity 0.45) → centroid-level merge of
over-split clusters (0.60) → quality gate (face short ≥ 90 px, blur ≥ 40, det ≥ 0.6) →
outlier rejection (similarity to the centroid < 0.45, clusters of ≥ 4 only) → size
filter (≥ 15 unique photos). Faces given a fixed group (a named person's, unless the
user asks to split named persons) skip the first two stages: each group is one initial
cluster, never merged with another (a free cluster whose centroid is at least the merge
similarity to one joins it: an unassigned fragment of that person), so a named person
is one faceset. Given ``people`` (the persons ``rbv cluster``'s evidence rule makes of
the same faces), a cluster holding faces of several of them is split along them before
the quality gate: refine's similarities alone let a crowd of look-alike children through.
Thresholds here are cosine similarities, as everywhere in rbv (manifests written before
they were, which recorded cosine distances, are read by :meth:`RefineParams.recorded`);
:func:`stable_numbers` keeps faceset numbers across runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.centroids import centroid, nearest_centroid, recentred_members
from rbv.cluster.constraints import Constraints
from rbv.cluster.knn import build_knn_graph, normalize
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.union_find import components


@dataclass(frozen=True)
class RefineParams:
    """Every threshold of the pipeline (closeness is cosine similarity)."""

    initial_similarity: float = 0.45
    merge_similarity: float = 0.60
    outlier_similarity: float = 0.45
    outlier_min_cluster: int = 4
    min_images: int = 15
    min_face_short: float = 90.0
    min_blur: float = 40.0
    min_det_score: float = 0.6
    split_named: bool = False  # named persons are re-grouped like any other faces

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def recorded(cls, params: object) -> RefineParams:
        """The parameters a refine manifest records (its ``params``: outside data, so a
        key that is missing or of the wrong type keeps its default). A manifest written
        before rbv spoke similarity holds cosine distances under ``initial``, ``merge``
        and ``outlier``; they are read as the similarities they mean (1 − distance)."""
        given = dict(params) if isinstance(params, Mapping) else {}
        for old, new in _DISTANCE_KEYS.items():
            if new not in given and _fits(given.get(old), 0.0):
                given[new] = round(1.0 - given[old], 6)
        defaults = cls()
        return cls(**{f.name: given[f.name] for f in fields(cls)
                      if _fits(given.get(f.name), getattr(defaults, f.name))})


_DISTANCE_KEYS = {"initial": "initial_similarity", "merge": "merge_similarity",
                  "outlier": "outlier_similarity"}
"""Keys of the cosine distances that manifests recorded before similarities."""


def _fits(value: Any, default: Any) -> bool:
    """Whether ``value`` may stand for a field whose default is ``default``."""
    if isinstance(value, bool) or isinstance(default, bool):
        return type(value) is type(default)
    return isinstance(value, int | float) and (isinstance(value, int)
                                               or isinstance(default, float))


@dataclass(frozen=True)
class RefineInput:
    """Row-aligned arrays of the faces to refine."""

    embeddings: NDArray[np.float32]
    image_ids: NDArray[np.int64]
    face_short: NDArray[np.float32]
    blur: NDArray[np.float32]  # NaN: not measured (passes the gate)
    det_score: NDArray[np.float32]
    fixed: NDArray[np.int64] | None = None  # a fixed group per face (≥ 0), or -1: none
    people: NDArray[np.int64] | None = None  # a person per face: no faceset holds two


@dataclass
class RefineResult:
    """Groups of row indices that became facesets (largest first), stage counts, and
    what became of each cluster (largest first): its ``faces`` after the merge, those
    that ``passed_quality``, the ``survivors`` of outlier rejection and one face per
    photo, their ``images``, and whether it was ``kept``."""

    groups: list[NDArray[np.int64]]
    counts: dict[str, int] = field(default_factory=dict)
    clusters: list[dict[str, int]] = field(default_factory=list)


def refine(data: RefineInput, params: RefineParams | None = None) -> RefineResult:
    """Run the five stages; returns the surviving groups and what each stage did."""
    params = params or RefineParams()
    n = len(data.embeddings)
    counts = {"faces": n}
    if n == 0:
        return RefineResult([], counts)
    x = normalize(data.embeddings)
    fixed = np.full(n, -1, np.int64) if data.fixed is None else data.fixed
    free = np.flatnonzero(fixed < 0)
    _, grouped = np.unique(fixed[fixed >= 0], return_inverse=True)
    n_fixed = int(grouped.max()) + 1 if len(grouped) else 0
    labels = np.empty(n, np.int64)
    labels[fixed >= 0] = grouped
    free_labels = np.zeros(0, np.int64)
    if len(free):
        constraints = Constraints.build(len(free), image_ids=data.image_ids[free])
        free_labels = cluster_embeddings(x[free], Method.agglomerative,
                                         params.initial_similarity, constraints)
    counts["initial_clusters"] = n_fixed + len(np.unique(free_labels))
    if len(free):
        free_labels = merge_by_centroid(x[free], free_labels, params.merge_similarity)
        labels[free] = n_fixed + free_labels
        if n_fixed:
            labels = join_fixed(x, labels, n_fixed, params.merge_similarity)
    counts["after_merge"] = int(labels.max()) + 1
    if data.people is not None:
        labels = split_by_people(labels, data.people)
    counts["split_apart"] = int(labels.max()) + 1 - counts["after_merge"]

    passed = quality_gate(data, params)
    counts["failed_quality"] = int((~passed).sum())

    groups: list[NDArray[np.int64]] = []
    clusters: list[dict[str, int]] = []
    outliers = small = 0
    sizes = np.bincount(labels)
    for label in range(int(labels.max()) + 1):
        members = np.flatnonzero((labels == label) & passed)
        fate = {"faces": int(sizes[label]), "passed_quality": len(members)}
        if len(members) >= params.outlier_min_cluster:
            kept = reject_outliers(x[members], params.outlier_similarity)
            outliers += len(members) - int(kept.sum())
            members = members[kept]
        members = one_face_per_image(x, members, data.image_ids)
        images = len(np.unique(data.image_ids[members]))
        clusters.append({**fate, "survivors": len(members), "images": images,
                         "kept": int(images >= params.min_images)})
        if images < params.min_images:
            small += 1 if len(members) else 0
            continue
        groups.append(members)
    counts["outliers"] = outliers
    counts["too_small"] = small
    groups.sort(key=lambda g: (-len(g), int(g.min())))
    counts["facesets"] = len(groups)
    counts["faces_kept"] = int(sum(len(g) for g in groups))
    clusters.sort(key=lambda c: (-c["faces"], -c["survivors"]))
    return RefineResult(groups, counts, clusters)


def centroids(x: NDArray[np.float32], labels: NDArray[np.int64]) -> NDArray[np.float32]:
    """Unit-length mean embedding of each label ``0..max``."""
    m = int(labels.max()) + 1
    sums = np.zeros((m, x.shape[1]), np.float64)
    np.add.at(sums, labels, x)
    return normalize(sums)


def merge_by_centroid(x: NDArray[np.float32], labels: NDArray[np.int64],
                      min_similarity: float) -> NDArray[np.int64]:
    """Join clusters whose centroids are at least ``min_similarity`` alike (transitively),
    through a k-NN graph of the centroids so the cost stays near-linear in clusters."""
    cents = centroids(x, labels)
    if len(cents) < 2:
        return labels
    graph = build_knn_graph(cents, k=min(30, len(cents) - 1))
    a, b, _ = graph.edges(min_similarity)
    merged = components(len(cents), a, b)
    _, renumbered = np.unique(merged, return_inverse=True)
    return renumbered[labels].astype(np.int64)


def join_fixed(x: NDArray[np.float32], labels: NDArray[np.int64], n_fixed: int,
               min_similarity: float) -> NDArray[np.int64]:
    """Each cluster past the first ``n_fixed`` (the fixed groups) joins the fixed group
    whose centroid is nearest to its own, if at least ``min_similarity``: an unassigned
    fragment of a named person becomes part of that person's set, while two fixed
    groups never join (each cluster joins one of them at most). Labels stay 0..k-1."""
    cents = centroids(x, labels)
    nearest, similarity = nearest_centroid(cents[n_fixed:], cents[:n_fixed])
    target = np.arange(len(cents))
    joins = similarity >= min_similarity
    target[n_fixed:][joins] = nearest[joins]
    _, renumbered = np.unique(target, return_inverse=True)
    return renumbered[labels].astype(np.int64)


def split_by_people(labels: NDArray[np.int64], people: NDArray[np.int64]
                    ) -> NDArray[np.int64]:
    """Labels ``0..k-1`` of the clusters cut along ``people``: two faces share a label
    only when they shared one before and are one person."""
    both = labels.astype(np.int64) * (int(people.max()) + 1) + people
    return np.unique(both, return_inverse=True)[1].astype(np.int64).reshape(-1)


def quality_gate(data: RefineInput, params: RefineParams) -> NDArray[np.bool_]:
    """Faces big, sharp and confident enough (unmeasured blur passes)."""
    blur_ok = np.isnan(data.blur) | (data.blur >= params.min_blur)
    return ((data.face_short >= params.min_face_short) & blur_ok
            & (data.det_score >= params.min_det_score))


def reject_outliers(x: NDArray[np.float32], min_similarity: float) -> NDArray[np.bool_]:
    """Members at least ``min_similarity`` alike to the group's centroid (one re-centred
    pass: the centroid is recomputed without the first pass's outliers)."""
    kept, _ = recentred_members(x, [min_similarity, min_similarity], nested=False)
    return kept[-1]


def one_face_per_image(x: NDArray[np.float32], members: NDArray[np.int64],
                       image_ids: NDArray[np.int64]) -> NDArray[np.int64]:
    """A person appears once per photo: where a group holds two faces of one photo
    (possible after the centroid merge), keep the one nearest the centroid."""
    if len(members) == 0 or len(np.unique(image_ids[members])) == len(members):
        return members
    closeness = x[members] @ centroid(x[members])
    best: dict[int, tuple[float, int]] = {}
    for m, c in zip(members.tolist(), closeness.tolist(), strict=True):
        img = int(image_ids[m])
        if img not in best or c > best[img][0]:
            best[img] = (c, m)
    return np.array(sorted(m for _, m in best.values()), np.int64)


def stable_numbers(new_groups: Sequence[set[int]], previous: Mapping[int, set[int]],
                   next_number: int, min_share: float = 0.5) -> list[int]:
    """A number per new group (of face ids): the previous faceset it shares most faces
    with keeps its number (each once, greedy by overlap, only when the overlap is at
    least ``min_share`` of the smaller of the two); the rest get numbers from
    ``next_number`` up, in order."""
    pairs = []
    for i, group in enumerate(new_groups):
        for number, old in previous.items():
            shared = len(group & old)
            if shared and shared >= min_share * min(len(group), len(old)):
                pairs.append((shared, -number, i, number))
    pairs.sort(reverse=True)
    numbers: dict[int, int] = {}
    used: set[int] = set()
    for _, _, i, number in pairs:
        if i not in numbers and number not in used:
            numbers[i] = number
            used.add(number)
    out = []
    for i in range(len(new_groups)):
        if i not in numbers:
            numbers[i] = next_number
            next_number += 1
        out.append(numbers[i])
    return out
