"""What the media layer hands to the face layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for detection.

    ``rgb`` is H×W×3 uint8, already turned upright by its EXIF orientation, and possibly
    decoded at reduced size (JPEG draft mode); ``scale`` maps its pixels back to the
    oriented original: ``original_px = rgb_px * scale``. ``data`` is the file's bytes
    when a consumer needs the original (a remote inference server).
    """

    image_id: int
    path: Path
    rgb: NDArray[np.uint8]
    scale: float
    original_size: tuple[int, int]  # (width, height) after orientation
    data: bytes | None = None
    # The detector's input cut on the decoding thread (FaceAnalyzer.prepare): the
    # image scaled for it (the input's top left; the rest is black) and the factor
    # from the image's pixels to them.
    detector_input: tuple[NDArray[np.uint8], float] | None = None
