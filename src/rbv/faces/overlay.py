"""Checking that two photos show the same pixels: warp one onto the other by the
similarity transform between one face's landmarks in each, and correlate.

A crop, resize or re-encode of a photo is a similarity transform of it (plus noise),
so the whole overlapping area lines up and correlates almost perfectly; another photo
of the same person lines up at the face at best, while hair, clothes and background
do not.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from rbv.faces.alignment import similarity_transform

MIN_OVERLAP = 0.25
"""Fraction of the second photo the warped first one must cover to be compared."""


def overlay_correlation(rgb_a: NDArray[np.uint8], points_a: NDArray[np.floating],
                        rgb_b: NDArray[np.uint8], points_b: NDArray[np.floating]) -> float:
    """Pearson correlation of grey pixels of photo B and photo A warped onto it (points
    are 5 landmarks in each photo's own pixels); 0 when they overlap too little."""
    matrix = similarity_transform(np.asarray(points_a, np.float32),
                                  np.asarray(points_b, np.float32))
    h, w = rgb_b.shape[:2]
    grey_a = cv2.cvtColor(rgb_a, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey_b = cv2.cvtColor(rgb_b, cv2.COLOR_RGB2GRAY).astype(np.float32)
    warped = cv2.warpAffine(grey_a, matrix, (w, h), flags=cv2.INTER_AREA)
    inside = cv2.warpAffine(np.ones_like(grey_a), matrix, (w, h), flags=cv2.INTER_NEAREST)
    mask = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0.5
    if mask.mean() < MIN_OVERLAP:
        return 0.0
    a, b = warped[mask], grey_b[mask]
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0
