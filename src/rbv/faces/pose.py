"""Pose, frontality, symmetry and sharpness of a face from what detection stored.

Everything here is a pure function of the 5 SCRFD landmarks (eyes, nose tip, mouth
corners, in image pixels), the box and the blur measure, so ``rbv enrich`` can score
every face of a library without decoding a single photo. Where a pack carries
InsightFace's 3D landmark model the pose comes from it instead
(:mod:`rbv.faces.landmarks`); the stored ``method`` says which.

The 5-point estimates are geometric, not learned:

- roll is the angle of the eye line;
- yaw comes from how far the nose tip sits off the eyes' midpoint, relative to half
  the eye distance: a nose that protrudes about as far as half the inter-ocular
  distance (true of adult faces within ~20 %) shifts by ``tan(yaw)`` of it;
- pitch comes from where the nose tip falls between the eye line and the mouth line,
  against its place in the ArcFace template (0.494 of the way down); it is coarse
  (±15°) and weighs half in frontality.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

TEMPLATE_NOSE_DEPTH = 0.494
"""Nose tip's place between eye line (0) and mouth line (1) in the ArcFace template."""
FRONTALITY_RANGE_DEG = 60.0
"""Head turn (yaw, half-weighted pitch combined) at which frontality reaches 0."""
SHARPNESS_HALF = 100.0
"""Laplacian variance (aligned 112×112 crop) that scores 0.5 sharpness."""
SIZE_FULL_PX = 256.0
"""Face short edge that scores 1.0 size: with export pad 0.5 the square crop is 2× the
face, so a 256 px face fills a 512 px output at native resolution."""


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees and the derived [0, 1] scores."""

    yaw: float
    pitch: float
    roll: float
    frontality: float
    symmetry: float


def pose_from_5_points(points: NDArray[np.floating]) -> Pose:
    """Yaw/pitch/roll, frontality and symmetry from 5 landmarks (5×2, image pixels)."""
    p = np.asarray(points, np.float64).reshape(5, 2)
    left_eye, right_eye, nose, left_mouth, right_mouth = p
    eye_vec = right_eye - left_eye
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    # Undo the roll so "horizontal" is the eye line.
    c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
    upright = (p - p[2]) @ np.array([[c, s], [-s, c]])
    le, re, n, lm, rm = upright
    half_eyes = max(1e-6, (re[0] - le[0]) / 2.0)
    eye_mid = (le + re) / 2.0
    mouth_mid = (lm + rm) / 2.0
    yaw = math.degrees(math.atan((n[0] - eye_mid[0]) / half_eyes))
    span = mouth_mid[1] - eye_mid[1]
    depth = (n[1] - eye_mid[1]) / span if abs(span) > 1e-6 else TEMPLATE_NOSE_DEPTH
    pitch = math.degrees(math.atan((depth - TEMPLATE_NOSE_DEPTH) * 2.0))
    return Pose(yaw=yaw, pitch=pitch, roll=roll,
                frontality=frontality(yaw, pitch), symmetry=symmetry(p))


def frontality(yaw: float, pitch: float) -> float:
    """1 for a face looking into the camera, falling linearly to 0 at 60° of turn."""
    turn = math.hypot(yaw, 0.5 * pitch)
    return float(min(1.0, max(0.0, 1.0 - turn / FRONTALITY_RANGE_DEG)))


def symmetry(points: NDArray[np.floating]) -> float:
    """1 when the eyes and the mouth corners are equally far from the nose tip on both
    sides; the mean relative left/right difference, scaled so 0.5 of it scores 0."""
    p = np.asarray(points, np.float64).reshape(5, 2)
    d = np.linalg.norm(p - p[2], axis=1)
    pairs = ((d[0], d[1]), (d[3], d[4]))
    asym = np.mean([abs(a - b) / max(1e-6, a + b) for a, b in pairs])
    return float(min(1.0, max(0.0, 1.0 - 2.0 * asym)))


def sharpness(blur: float | None) -> float | None:
    """Laplacian variance mapped onto [0, 1): ``blur / (blur + 100)``."""
    if blur is None or not math.isfinite(blur):
        return None
    return float(max(0.0, blur) / (max(0.0, blur) + SHARPNESS_HALF))


def size_score(face_short: float) -> float:
    """Face short edge mapped onto [0, 1], saturating at 256 px."""
    return float(min(1.0, max(0.0, face_short / SIZE_FULL_PX)))


def pose_from_angles(pitch: float, yaw: float, roll: float,
                     points: NDArray[np.floating]) -> Pose:
    """A :class:`Pose` from angles a landmark model estimated (symmetry still from the
    5 detector points, which exist for every face)."""
    return Pose(yaw=yaw, pitch=pitch, roll=roll, frontality=frontality(yaw, pitch),
                symmetry=symmetry(points))
