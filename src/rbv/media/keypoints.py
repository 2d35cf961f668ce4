"""Do two photos show the same picture? The check that confirms a near-duplicate found
by its perceptual hash or by a shared face, independent of both: ORB keypoints of each
photo's content (a plain border cut off first) matched one to one, counted when one
similarity transform (rotation, scale, shift: a resize, a crop) carries them onto each
other, and spanning a good part of the picture (not one face alone).

A hash of a photo that is mostly a plain border describes the border: 79 photos of
different children on grey (``data/family``) hashed within 10 bits of each other.
Measured on 256-pixel decodes: re-encodes, halvings and 6-10 % crops of a photo keep
182-404 matching points spanning 22-70 % of the picture; the near-duplicates among the
photos of ``data/faces`` and ``data/family`` (a crop to the face of a portrait, two
reproductions of one printed photo, re-tinted copies) 36-171 points spanning 20-47 %.
The 2,279 pairs of other photos of one person there: at most 53 points, and those with
30 or more span at most 11 % (a face in one pose); pairs of different people that hashed
within 10 bits: at most 20 points.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

CONTENT_LONG_EDGE = 256
"""The content is scaled to this long edge, so a small picture on a large border gets
as many keypoints as a full photo."""
MIN_SPREAD = 0.15
"""Matching points of one picture span at least this share of it (see above)."""
BORDER_TOLERANCE = 16
"""Grey levels within which a pixel is the border's colour (JPEG noise is smaller)."""


@dataclass(frozen=True)
class Keypoints:
    points: NDArray[np.float32]  # (n, 2), in a picture of ``area`` square pixels
    descriptors: NDArray[np.uint8] | None
    area: float


def content(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The picture without a plain border: when the outermost pixels are all about one
    colour, the rows and columns that hold anything else."""
    grey = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb,
                      np.uint8)
    g = grey.astype(np.int16)
    frame = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    colour = float(np.median(frame))
    if np.mean(np.abs(frame - colour)) > BORDER_TOLERANCE / 4:
        return grey  # no plain border
    other = np.abs(g - colour) > BORDER_TOLERANCE
    rows = np.flatnonzero(other.mean(axis=1) > 0.02)
    cols = np.flatnonzero(other.mean(axis=0) > 0.02)
    if len(rows) < 8 or len(cols) < 8:
        return grey
    return grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def keypoints(rgb: NDArray[np.uint8]) -> Keypoints:
    """ORB keypoints of the photo's content at :data:`CONTENT_LONG_EDGE`."""
    grey = content(rgb)
    scale = CONTENT_LONG_EDGE / max(grey.shape)
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    grey = np.asarray(cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1
                                 else cv2.INTER_CUBIC), np.uint8)
    orb = cv2.ORB_create(nfeatures=500, fastThreshold=5, edgeThreshold=8,  # type: ignore[attr-defined]
                         patchSize=15)
    found, descriptors = orb.detectAndCompute(grey, None)
    points = np.array([k.pt for k in found], np.float32).reshape(-1, 2)
    return Keypoints(points, descriptors, float(size[0] * size[1]))


def matching_points(a: Keypoints, b: Keypoints) -> tuple[int, float]:
    """How many keypoints of ``a`` and ``b`` match one to one and lie where one
    similarity transform puts them (RANSAC, 3 pixels), and how much of the picture they
    span (the larger share, of the two pictures, of their convex hull): two photos of
    one face in one pose match on the face alone, a copy of a photo all over."""
    if a.descriptors is None or b.descriptors is None or min(len(a.points),
                                                               len(b.points)) < 4:
        return 0, 0.0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(a.descriptors,
                                                                     b.descriptors)
    if len(matches) < 4:
        return 0, 0.0
    pa = a.points[[m.queryIdx for m in matches]]
    pb = b.points[[m.trainIdx for m in matches]]
    _, inliers = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC,
                                             ransacReprojThreshold=3.0)
    if inliers is None or int(inliers.sum()) < 3:
        return 0, 0.0
    kept = inliers.ravel() == 1
    spread = max(cv2.contourArea(cv2.convexHull(pa[kept])) / a.area,
                 cv2.contourArea(cv2.convexHull(pb[kept])) / b.area)
    return int(kept.sum()), float(spread)
