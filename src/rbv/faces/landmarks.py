"""InsightFace's dense landmark models: ``2d106det.onnx`` (106 2-D points) and
``1k3d68.onnx`` (68 3-D points, from which the head pose is solved).

Written against InsightFace's documented I/O (``model_zoo/landmark.py``): the face box
is centred in a 192×192 crop scaled to 1.5× its long side, pixels go in as RGB NCHW
(normalised by the model's own first layers, or by (x − 127.5) / 128 when it has none),
and the output holds coordinates in [−1, 1] of that crop (the last ``n`` points of
it). The pose of the 68-point model is the rotation of the affine map from InsightFace's
mean 3-D shape onto the predicted points (``utils/transform.py``).

These models are not available offline in this project (the test pack has only a
detector and SFace), so this module is exercised only where a pack ships them; the
crop geometry and the output mapping are covered by unit tests on synthetic arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

INPUT_SIZE = 192
BOX_SCALE = 1.5


def crop_matrix(bbox: tuple[float, float, float, float], size: int = INPUT_SIZE
                ) -> NDArray[np.float64]:
    """The 2×3 affine that maps image pixels into the model's crop (no rotation)."""
    x1, y1, x2, y2 = bbox
    scale = size / (max(x2 - x1, y2 - y1) * BOX_SCALE)
    cx, cy = (x1 + x2) / 2.0 * scale, (y1 + y2) / 2.0 * scale
    return np.array([[scale, 0.0, size / 2.0 - cx], [0.0, scale, size / 2.0 - cy]])


def output_to_image(pred: NDArray[np.floating], matrix: NDArray[np.float64], points: int,
                    size: int = INPUT_SIZE) -> NDArray[np.float32]:
    """Model output (flat, values in [−1, 1] of the crop) → ``points``×2 or ×3 in image
    pixels (z scaled like x and y)."""
    flat = np.asarray(pred, np.float64).ravel()
    dim = 3 if flat.size >= 3000 else 2
    p = flat.reshape(-1, dim)[-points:].copy()
    p[:, :2] = (p[:, :2] + 1.0) * (size // 2)
    if dim == 3:
        p[:, 2] *= size // 2
    inverse = cv2.invertAffineTransform(matrix)
    p[:, :2] = p[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    return p.astype(np.float32)


@dataclass
class LandmarkModel:
    """One landmark session; ``points`` is 106 (2-D) or 68 (3-D)."""

    session: ort.InferenceSession
    points: int
    normalises_input: bool

    def predict(self, rgb: NDArray[np.uint8], bbox: tuple[float, float, float, float]
                ) -> NDArray[np.float32]:
        matrix = crop_matrix(bbox)
        crop = cv2.warpAffine(rgb, matrix, (INPUT_SIZE, INPUT_SIZE), borderValue=0.0)
        blob = crop.astype(np.float32)
        if not self.normalises_input:
            blob = (blob - 127.5) / 128.0
        blob = blob.transpose(2, 0, 1)[None]
        name = self.session.get_inputs()[0].name
        pred = self.session.run(None, {name: blob})[0][0]
        return output_to_image(pred, matrix, self.points)


def pose_from_68(points: NDArray[np.floating]) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees from 68 3-D landmarks, as InsightFace solves it."""
    from insightface.data import get_object
    from insightface.utils import transform

    mean_shape = get_object("meanshape_68.pkl")
    matrix = transform.estimate_affine_matrix_3d23d(mean_shape, np.asarray(points, np.float64))
    _, rotation, _ = transform.P2sRt(matrix)
    pitch, yaw, roll = transform.matrix2angle(rotation)
    return float(pitch), float(yaw), float(roll)
