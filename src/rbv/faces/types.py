"""The face layer's contract with the rest of rbv (local ONNX or a remote server)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rbv.media.types import DecodedImage


@dataclass(frozen=True)
class Face:
    """One detected and embedded face, in the pixels of the oriented original."""

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2
    landmarks: NDArray[np.float32] | None  # (5, 2): eyes, nose, mouth corners
    det_score: float
    embedding: NDArray[np.float32]  # L2-normalised, width = the pack's
    blur: float | None = None  # Laplacian variance of the aligned 112×112 crop


@dataclass(frozen=True)
class PackInfo:
    """Identity of a model pack: faces of different packs are never compared."""

    name: str
    files: dict[str, str]  # file name -> sha256
    embedding_dim: int
    folder: Path | None = field(default=None, compare=False)  # None: a remote server's


@dataclass(frozen=True)
class ImageFaces:
    """Everything one image yielded."""

    faces: list[Face]
    clip_embedding: NDArray[np.float32] | None = None
    extra: dict[str, object] = field(default_factory=dict)


class FaceAnalyzer(Protocol):
    """Detect + embed faces of one image (local ONNX Runtime or a remote server).

    ``providers``: where inference runs, for the one line a run prints;
    ``wants_original_bytes``: images must carry the file's bytes (a remote server
    decodes them itself); ``decode_long_edge``: decode photos at least this large;
    ``batch_images``: how many images an ``analyze_many`` call takes to fill the device
    (1: callers send images one at a time, so one failing image fails alone).
    """

    pack: PackInfo
    providers: list[str]
    wants_original_bytes: bool
    decode_long_edge: int
    batch_images: int

    def prepare(self, image: DecodedImage) -> DecodedImage:
        """What can be done for ``image`` on the thread that decoded it, while it waits
        for analysis (a GPU analyzer cuts the detector's input there); most return it
        as it is."""
        ...

    def analyze(self, image: DecodedImage) -> ImageFaces:
        """Faces of one image, boxes and landmarks in original (oriented) pixels."""
        ...

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        """Faces of each image (an analyzer may batch the work across them)."""
        ...

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        """How many faces scoring at least ``min_score`` the pixels show (a check that
        a crop holds one face)."""
        ...

    def servers(self) -> list[dict[str, object]]:
        """Each inference server of ``--ml-uri``: its ``url``, how many ``images`` it
        answered, and the ``problem`` that has it down or not used (None while it
        answers); none for an analyzer that runs here."""
        ...
