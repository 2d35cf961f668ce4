"""Splitting one person into age eras by the photos' EXIF years.

Sub-cluster the person's faces tightly (average linkage, cosine similarity 0.65); a
sub-cluster of ≥ 20 faces is an *anchor* (an era); a smaller fragment joins the nearest
anchor only if their centroids' similarity is at least 0.60 and their dominant (most
common) years are within ±5 of each other; fragments that join nothing stay apart,
marked *thin* (fewer than 20 faces). Faces without a year count for the embedding but not for the
dominant year; a fragment with no year at all cannot pass the year test. Years come
from ``images.taken_at`` (EXIF DateTimeOriginal, read once by the catalogue), so an era
split never reopens a photo.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import Constraints
from rbv.cluster.knn import normalize
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.refine import centroids


@dataclass(frozen=True)
class EraParams:
    sub_cluster_similarity: float = 0.65
    anchor_min: int = 20
    attach_similarity: float = 0.60
    year_window: int = 5


@dataclass
class Era:
    rows: list[int]  # row indices into the person's faces
    dominant_year: int | None
    first_year: int | None
    last_year: int | None
    thin: bool
    fragments: int = 1
    attached: list[int] = field(default_factory=list)  # sizes of fragments that joined

    def as_dict(self, face_ids: NDArray[np.int64]) -> dict[str, object]:
        return {"faces": len(self.rows), "dominant_year": self.dominant_year,
                "first_year": self.first_year, "last_year": self.last_year,
                "thin": self.thin, "fragments": self.fragments,
                "face_ids": sorted(int(face_ids[r]) for r in self.rows)}


def dominant_year(years: NDArray[np.float64]) -> int | None:
    known = [int(y) for y in years.tolist() if not np.isnan(y)]
    if not known:
        return None
    counts = Counter(known)
    return max(counts, key=lambda y: (counts[y], -y))


def split_eras(embeddings: NDArray[np.floating], years: NDArray[np.float64],
               image_ids: NDArray[np.int64] | None = None,
               params: EraParams | None = None) -> list[Era]:
    """Eras of one person's faces (anchored eras by size, then thin fragments)."""
    params = params or EraParams()
    n = len(embeddings)
    if n == 0:
        return []
    x = normalize(embeddings)
    constraints = Constraints.build(n, image_ids=image_ids) if image_ids is not None else None
    labels = cluster_embeddings(x, Method.agglomerative, params.sub_cluster_similarity,
                                constraints)
    cents = centroids(x, labels)
    groups = [np.flatnonzero(labels == g) for g in range(int(labels.max()) + 1)]
    anchors = [g for g in range(len(groups)) if len(groups[g]) >= params.anchor_min]
    members: dict[int, list[int]] = {a: groups[a].tolist() for a in anchors}
    attached: dict[int, list[int]] = {a: [] for a in anchors}
    anchor_year = {a: dominant_year(years[groups[a]]) for a in anchors}
    thin: list[int] = []
    for g in range(len(groups)):
        if g in members:
            continue
        year = dominant_year(years[groups[g]])
        best = None
        if anchors:
            sim = {a: float(cents[g] @ cents[a]) for a in anchors}
            nearest = max(sim, key=lambda a: sim[a])
            ay = anchor_year[nearest]
            if (sim[nearest] >= params.attach_similarity and year is not None and ay is not None
                    and abs(year - ay) <= params.year_window):
                best = nearest
        if best is None:
            thin.append(g)
        else:
            members[best].extend(groups[g].tolist())
            attached[best].append(len(groups[g]))
    eras = [_era(rows, years, False, 1 + len(attached[a]), attached[a])
            for a, rows in members.items()]
    eras.sort(key=lambda e: (-len(e.rows), e.dominant_year or 0))
    fragments = [_era(groups[g].tolist(), years, True, 1, []) for g in thin]
    fragments.sort(key=lambda e: (-len(e.rows), e.dominant_year or 0))
    return eras + fragments


def _era(rows: list[int], years: NDArray[np.float64], thin: bool, fragments: int,
         attached: list[int]) -> Era:
    ys = years[rows]
    known = ys[~np.isnan(ys)]
    return Era(sorted(rows), dominant_year(ys),
               int(known.min()) if len(known) else None,
               int(known.max()) if len(known) else None, thin, fragments, attached)
