"""Quality measures of a face crop."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray


def laplacian_variance(rgb: NDArray[np.uint8]) -> float:
    """Sharpness as the variance of the Laplacian of the grayscale crop: low means
    blurred (``refine`` gates on 40.0 for aligned 112×112 crops). Depends on the crop's
    size, so always measure on the same aligned crop size."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
