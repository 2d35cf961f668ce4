"""Pixels of catalogued photos and square face crops cut from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rbv.errors import ImageUnreadable
from rbv.media.decode import decode_for_detection
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.types import DecodedImage

Box = tuple[float, float, float, float]

PhotoLocator = Callable[[int], tuple[str | None, list[str]]]
"""An image id's format and every known path of it (present ones first):
``rbv.store.queries.images.photo_files`` over a connection."""


class PhotoSource:
    """Decodes catalogued images by id (any of their paths that still exists), keeping
    the last one decoded, since crops of one photo usually come together."""

    def __init__(self, locate: PhotoLocator, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 long_edge: int = 0) -> None:
        self._locate = locate
        self._max_pixels = max_pixels
        self._long_edge = long_edge
        self._last: DecodedImage | None = None

    def load(self, image_id: int) -> DecodedImage:
        """Upright RGB of the image; raises :class:`ImageUnreadable` when no path of it
        can be decoded any more."""
        if self._last is not None and self._last.image_id == image_id:
            return self._last
        fmt, paths = self._locate(image_id)
        reasons = []
        for path in paths:
            if not Path(path).is_file():
                reasons.append(f"{path}: missing")
                continue
            try:
                self._last = decode_for_detection(
                    Path(path), fmt or "JPEG", image_id=image_id, long_edge=self._long_edge,
                    max_pixels=self._max_pixels)
                return self._last
            except ImageUnreadable as exc:
                reasons.append(f"{path}: {exc}")
        why = "; ".join(reasons) or "no path"
        raise ImageUnreadable(f"image {image_id} cannot be read ({why})")


def square_crop(image: DecodedImage, bbox: Box, pad: float, size: int) -> NDArray[np.uint8]:
    """A ``size``×``size`` crop around the face box (original pixels): its side is
    ``(1 + 2·pad)`` times the box's long edge, but no more than the photo's short edge,
    and it is moved to lie inside the photo, so the context around the face comes from
    the photo rather than a black border (a small face in a small photo used to be half
    border). Only a face cut by the photo's edge still gets black beyond that edge."""
    x1, y1, x2, y2 = (v / image.scale for v in bbox)
    height, width = image.rgb.shape[:2]
    face = max(x2 - x1, y2 - y1)
    side = max(min(face * (1.0 + 2.0 * pad), width, height), face)
    cx = _inside((x1 + x2) / 2.0, side, width)
    cy = _inside((y1 + y2) / 2.0, side, height)
    k = size / max(side, 1e-6)
    matrix = np.array([[k, 0.0, size / 2.0 - k * cx], [0.0, k, size / 2.0 - k * cy]])
    interpolation = cv2.INTER_AREA if k < 1.0 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(image.rgb, matrix, (size, size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return np.asarray(crop, np.uint8)


def _inside(centre: float, side: float, extent: float) -> float:
    """``centre`` moved so a window of ``side`` around it stays within ``0..extent``
    (centred on the photo when the window is wider than it)."""
    if side >= extent:
        return extent / 2.0
    return min(max(centre, side / 2.0), extent - side / 2.0)
