"""Measuring clustering quality on labelled photos (``rbv eval``).

Labels name the main face of each photo (:func:`subject_face`; read from the photos'
folders by :mod:`rbv.jobs.grouping.eval`). Every face of the pack is clustered
(background faces too, as in real use); scores count the labelled faces only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import Constraints
from rbv.cluster.evidence import ImpostorModel, labelled_impostor_similarities
from rbv.cluster.knn import DEFAULT_K, KnnGraph, build_knn_graph
from rbv.cluster.methods import Method, baseline_labels, cluster_embeddings
from rbv.cluster.metrics import Scores, bcubed, pairwise
from rbv.errors import ConfigError
from rbv.face_rows import FacePlace, PackFaces

BASELINE = "immich-baseline"
DEFAULT_GRID = tuple(round(t, 2) for t in np.arange(0.20, 0.801, 0.02))
BUDGET_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
PLATEAU = 0.005
"""Settings within this pairwise F of the best count as equally good."""

SUBJECT_CENTRAL = 0.15
"""A face whose centre lies within this share of the photo's shorter side from the
photo's centre is central."""
SUBJECT_OFF_CENTRE = 0.25
"""A largest face whose centre lies further than this share from the photo's centre is
off centre: when another face is central, that one is the photo's subject."""


def subject_face(faces: Sequence[FacePlace]) -> int:
    """The face a photo's label names: its largest face, unless that one is off centre
    (:data:`SUBJECT_OFF_CENTRE`) while another is central (:data:`SUBJECT_CENTRAL`); then
    the central one. Labelled sets name a photo's subject; a crop centred on its subject
    (as every photo of LFW is) may show a larger face of someone beside them, cut by the
    edge (13 of lfw_many's 2,755 photos; in data/faces the largest face is the subject
    of every photo, one of them with another person nearer the centre)."""
    largest = max(faces, key=lambda f: f.area)
    width, height = faces[0].width, faces[0].height
    if width is None or height is None or len(faces) == 1:
        return largest.face_id

    def offset(f: FacePlace) -> float:
        x1, y1, x2, y2 = f.box
        return float(np.hypot(x1 + x2 - width, y1 + y2 - height)) / 2 / min(width, height)

    central = min(faces, key=offset)
    if offset(largest) > SUBJECT_OFF_CENTRE and offset(central) <= SUBJECT_CENTRAL:
        return central.face_id
    return largest.face_id


@dataclass(frozen=True)
class MethodScores:
    """One clustering's scores. ``threshold`` is the method's parameter: a similarity,
    or for ``evidence`` the budget."""

    method: str
    threshold: float
    pairwise: Scores
    bcubed: Scores
    clusters: int

    @property
    def parameter(self) -> str:
        return "budget" if self.method == Method.evidence.value else "threshold"

    def as_dict(self) -> dict[str, object]:
        return {"method": self.method, "threshold": self.threshold,
                "parameter": self.parameter, "clusters": self.clusters,
                "pairwise": self.pairwise.as_dict(), "bcubed": self.bcubed.as_dict()}


class Evaluation:
    """Clusters one set of faces repeatedly (one k-NN graph) and scores the result.
    ``impostor``: the recognizer's impostor model measured on the labels, what
    ``evidence`` uses unless a call passes another."""

    def __init__(self, faces: PackFaces, truth: NDArray[np.object_], k: int = DEFAULT_K):
        self.faces = faces
        self.labelled = np.flatnonzero(truth != None)  # noqa: E711 (element-wise)
        self.truth = truth[self.labelled].astype(str)
        self.graph: KnnGraph = build_knn_graph(faces.embeddings, k)
        self.constraints = Constraints.build(len(faces), image_ids=faces.image_ids)
        self.impostor = self._labelled_impostor()

    def _labelled_impostor(self) -> ImpostorModel:
        """The recognizer's impostor model from the labelled faces of different people:
        their bulk (median and lower quartile), as crowding handles the regions where
        strangers look more alike (measured: calibrating on data/family this way costs
        data/faces 0.008 pairwise F and data/lfw_many 0.007, with mean and standard
        deviation 0.023 and 0.018)."""
        pairs = labelled_impostor_similarities(self.faces.embeddings[self.labelled],
                                               self.truth)
        if len(pairs) < 2:
            raise ConfigError("the labelled photos show fewer than two identities; "
                              "evaluation needs different people")
        return ImpostorModel.from_pairs(pairs, robust=True)

    def labels(self, method: str, value: float,
               impostor: ImpostorModel | None = None) -> NDArray[np.int64]:
        """Cluster labels of every face with ``method`` at ``value`` (``impostor``: the
        model for ``evidence``, else the one measured on the labels)."""
        if method == BASELINE:
            return baseline_labels(self.faces.embeddings, value, graph=self.graph)
        return cluster_embeddings(self.faces.embeddings, Method(method), value,
                                  self.constraints, graph=self.graph,
                                  impostor=impostor or self.impostor, budget=value)

    def score(self, method: str, value: float,
              impostor: ImpostorModel | None = None) -> MethodScores:
        mine = self.labels(method, value, impostor)[self.labelled]
        return MethodScores(method, value, pairwise(mine, self.truth),
                            bcubed(mine, self.truth), len(np.unique(mine)))

    def sweep(self, method: str, grid: Iterable[float] | None = None) -> list[MethodScores]:
        if grid is None:
            grid = BUDGET_GRID if method == Method.evidence.value else DEFAULT_GRID
        return [self.score(method, float(t)) for t in grid]


def best_of(sweep: list[MethodScores]) -> MethodScores:
    """Highest pairwise F (wrong merges weigh most there), then BCubed F; among ties the
    stricter setting (fewer wrong merges)."""
    def strictness(s: MethodScores) -> float:
        return -s.threshold if s.method == Method.evidence.value else s.threshold
    return max(sweep, key=lambda s: (round(s.pairwise.f1, 6), round(s.bcubed.f1, 6),
                                     strictness(s)))


def plateau(sweep: list[MethodScores], within: float = PLATEAU) -> tuple[float, float]:
    """The lowest and highest parameter of the contiguous run of the sweep around the best
    whose pairwise F is within ``within`` of the best: how fragile the setting is."""
    best = best_of(sweep)
    at = sweep.index(best)
    lo = hi = at
    while lo > 0 and sweep[lo - 1].pairwise.f1 >= best.pairwise.f1 - within:
        lo -= 1
    while hi < len(sweep) - 1 and sweep[hi + 1].pairwise.f1 >= best.pairwise.f1 - within:
        hi += 1
    return sweep[lo].threshold, sweep[hi].threshold


ALL_METHODS = (*(m.value for m in Method), BASELINE)
