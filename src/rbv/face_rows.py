"""The faces of one model pack as row-aligned arrays: what the queries load for
clustering and what ``cluster/`` and the grouping jobs take (a data type, no SQL)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class PackFaces:
    """Faces of one pack, row-aligned arrays."""

    ids: NDArray[np.int64]
    image_ids: NDArray[np.int64]
    person_ids: list[uuid.UUID | None]
    manual: NDArray[np.bool_]
    embeddings: NDArray[np.float32]  # (n, dim)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: NDArray[np.int64],
             embeddings: NDArray[np.float32] | None = None) -> PackFaces:
        """The faces at positions ``rows``; ``embeddings``: theirs, where the caller has
        them in that order already (moved in place: a copy of a million is 2 GB)."""
        return PackFaces(self.ids[rows], self.image_ids[rows],
                         [self.person_ids[i] for i in rows.tolist()], self.manual[rows],
                         self.embeddings[rows] if embeddings is None else embeddings)


@dataclass(frozen=True)
class FacePlace:
    """Where a face is: a path of its photo, its box, and the photo's size (after EXIF
    orientation; None when unknown)."""

    face_id: int
    path: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    width: int | None
    height: int | None

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)
