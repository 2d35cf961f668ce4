"""Face crops for export-swap and refine on a real small face in a small photo."""

from __future__ import annotations

import numpy as np

from rbv.media.decode import decode_for_detection
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.pixels import square_crop
from tests.conftest import FACES

# 260×240 photo, a 74 px face near its top: the old crop (twice the face, centred on it)
# was a third black border
SMALL_FACE = (FACES / "Jerry_Seinfeld"
              / "c5_val_httpaurorasblogcomwpcontentuploadsjerryseinfeldpublicityshotjpg.jpg")


def _black(crop: np.ndarray) -> float:
    return float((crop.max(axis=2) <= 2).mean())


def test_a_small_face_is_cropped_with_the_photos_context_not_black_border(
    sface_analyzer,
) -> None:
    image = decode_for_detection(SMALL_FACE, "JPEG", image_id=1, long_edge=0,
                                 max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    found = sface_analyzer.detector.detect(image.rgb, 0.5)
    box = tuple(float(v) * image.scale for v in found.boxes[0])
    assert 60 < min(box[2] - box[0], box[3] - box[1]) < 90
    crop = square_crop(image, box, 0.5, 512)  # type: ignore[arg-type]
    assert crop.shape == (512, 512, 3)
    assert _black(crop) < 0.02
    again = sface_analyzer.detector.detect(crop, 0.5)
    assert len(again) == 1  # the face is in the crop, whole
    x1, y1, x2, y2 = again.boxes[0]
    assert min(x1, y1) >= 0 and max(x2, y2) <= 512
