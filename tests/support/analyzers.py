"""A real face analyzer behind another face: tests that need the pipeline to see an
analyzer act differently (remote-like, batching, with a side effect) wrap the real one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from rbv.faces.types import FaceAnalyzer, ImageFaces
from rbv.media.types import DecodedImage


class Wrapped:
    """``inner`` as a :class:`~rbv.faces.types.FaceAnalyzer` that takes one image a call;
    subclasses change what they must."""

    wants_original_bytes = False

    def __init__(self, inner: FaceAnalyzer) -> None:
        self.inner = inner
        self.pack = inner.pack
        self.providers = ["wrapped"]
        self.batch_images = 1
        self.decode_long_edge = inner.decode_long_edge

    def prepare(self, image: DecodedImage) -> DecodedImage:
        return self.inner.prepare(image)

    def analyze(self, image: DecodedImage) -> ImageFaces:
        return self.inner.analyze(image)

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        return [self.analyze(image) for image in images]

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        return self.inner.count_faces(rgb, min_score)

    def servers(self) -> list[dict[str, object]]:
        return self.inner.servers()
