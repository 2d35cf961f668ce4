"""5-point face alignment to the ArcFace 112×112 template (InsightFace ``face_align``)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
"""Where the eyes, nose tip and mouth corners land in a 112×112 ArcFace crop."""


def similarity_transform(src: NDArray[np.float32], dst: NDArray[np.float32]
                         ) -> NDArray[np.float64]:
    """The 2×3 similarity (rotation, uniform scale, translation) that maps ``src``
    points onto ``dst`` in the least-squares sense (Umeyama 1991, as
    ``skimage.transform.SimilarityTransform.estimate``)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:  # a reflection would fit better; forbid it
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    variance = src_c.var(axis=0).sum()
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def align_face(rgb: NDArray[np.uint8], keypoints: NDArray[np.float32], size: int = 112,
               out: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """The ``size``×``size`` crop of the face whose 5 ``keypoints`` are given (in the
    pixels of ``rgb``), rotated and scaled onto the ArcFace template; written into
    ``out`` (a C-contiguous ``size``×``size``×3 uint8 array) when given."""
    matrix = similarity_transform(keypoints, ARCFACE_TEMPLATE * (size / 112.0))
    if out is not None:
        cv2.warpAffine(rgb, matrix, (size, size), dst=out, borderValue=0.0)
        return out
    crop = cv2.warpAffine(rgb, matrix, (size, size), borderValue=0.0)
    return np.asarray(crop, dtype=np.uint8)
