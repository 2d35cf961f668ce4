"""EXIF orientation as geometry: moving a face box from one orientation's frame to
another's when only a photo's rotation flag changed (its pixels did not)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

SIDEWAYS = frozenset({5, 6, 7, 8})
"""Orientations that show the stored width as the height."""


def _stored_to_shown(orientation: int, stored: tuple[float, float]) -> NDArray[np.float64]:
    """The affine map (3×3) from the stored pixels' frame (``stored`` = width, height)
    to the frame the photo is shown in under EXIF ``orientation``."""
    w, h = stored
    table = {
        1: ((1, 0, 0), (0, 1, 0)),
        2: ((-1, 0, w), (0, 1, 0)),  # mirrored left-right
        3: ((-1, 0, w), (0, -1, h)),  # turned 180°
        4: ((1, 0, 0), (0, -1, h)),  # mirrored top-bottom
        5: ((0, 1, 0), (1, 0, 0)),  # transposed
        6: ((0, -1, h), (1, 0, 0)),  # turned 90° clockwise
        7: ((0, -1, h), (-1, 0, w)),  # transversed
        8: ((0, 1, 0), (-1, 0, w)),  # turned 90° counter-clockwise
    }
    rows = table.get(orientation, table[1])
    return np.array([*rows, (0, 0, 1)], dtype=np.float64)


def measured_on_stored(orientation: int, dims: tuple[int, int] | None,
                       shown: tuple[int, int]) -> bool:
    """Whether regions applied to ``dims`` (width, height) on a photo shown as ``shown``
    under EXIF ``orientation`` were measured on its stored pixels, as Immich and others
    write them: a sideways photo whose ``AppliedToDimensions`` is the stored size (a
    square photo cannot tell)."""
    stored = (shown[1], shown[0])
    return orientation in SIDEWAYS and dims == stored and stored != shown


def turn_box(box: Sequence[float], landmarks: Sequence[float] | None, before: int,
             after: int, shown: tuple[int, int]
             ) -> tuple[tuple[float, float, float, float], list[float] | None]:
    """``box`` (x1, y1, x2, y2) and ``landmarks`` (x0, y0, x1, y1, …) in the frame of a
    photo shown as ``shown`` (width, height) under orientation ``before``, moved to the
    frame of the same stored pixels shown under orientation ``after``."""
    stored = (shown[1], shown[0]) if before in SIDEWAYS else shown
    move = _stored_to_shown(after, stored) @ np.linalg.inv(_stored_to_shown(before, stored))
    x1, y1, x2, y2 = box
    corners = np.array([[x1, y1, 1.0], [x2, y2, 1.0]]) @ move.T
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    turned = None
    if landmarks is not None:
        points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
        points = np.c_[points, np.ones(len(points))] @ move.T
        turned = [float(v) for v in points[:, :2].ravel()]
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), turned
