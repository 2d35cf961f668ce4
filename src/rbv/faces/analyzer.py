"""The local face analyzer: detect, align, measure blur and embed, on ONNX Runtime."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rbv.errors import ConfigError, DeviceUnavailable
from rbv.faces.alignment import align_face
from rbv.faces.defaults import (
    DEFAULT_DET_SIZE,
    DEFAULT_DET_THRESHOLD,
    DEFAULT_MIN_FACE,
)
from rbv.faces.detection import Detections, FaceDetector
from rbv.faces.packs import DEFAULT_INSIGHTFACE_ROOT, load_pack
from rbv.faces.providers import (
    CPU,
    DEVICES,
    available_providers,
    choose_providers,
    wants_one_shape,
)
from rbv.faces.quality import laplacian_variance
from rbv.faces.recognition import FaceRecognizer, open_recognizer
from rbv.faces.sessions import open_session
from rbv.faces.types import Face, ImageFaces, PackInfo
from rbv.media.types import DecodedImage

DECODE_FACTOR = 3
"""``decode_long_edge = DECODE_FACTOR × det_size``: the detector only ever sees
``det_size`` pixels, but alignment, the 112×112 recognizer crop and the blur measure
are cut from the decoded pixels. A face must span ≥112 decoded pixels for a crop at
native resolution; at 3× det_size (1920 px) that holds for faces down to ~6 % of the
photo's long edge, i.e. the faces of a group photo, while a 24-Mpx JPEG still decodes
at 1/2 scale in draft mode (~4× cheaper than full). Smaller factors upsample those
crops, which lowers embedding quality and makes sharp faces measure as blurry."""


@dataclass
class FoundFaces:
    """One image's detections after the size filter (boxes and landmarks in original
    pixels) and their aligned crops, before recognition."""

    image: DecodedImage
    detections: Detections
    crops: list[NDArray[np.uint8]]


class LocalFaceAnalyzer:
    """Detects and embeds faces with a model pack on local ONNX Runtime sessions.

    Satisfies :class:`rbv.faces.types.FaceAnalyzer`. Its sessions are thread-safe and
    it keeps no per-call state, so one analyzer may serve several threads. On a CPU,
    ``threads=1`` with one calling thread per core beat one caller with multi-threaded
    sessions in ``scripts/bench_embed.py``: these small models scale poorly across
    intra-op threads, and decoding then overlaps inference.
    """

    def __init__(self, pack: PackInfo, detector: FaceDetector, recognizer: FaceRecognizer,
                 *, det_threshold: float = DEFAULT_DET_THRESHOLD,
                 min_face: int = DEFAULT_MIN_FACE) -> None:
        self.pack = pack
        self.detector = detector
        self.recognizer = recognizer
        self.det_threshold = det_threshold
        self.min_face = min_face
        self.providers: list[str] = list(detector.session.get_providers())
        self.wants_original_bytes = False
        # Recognition batched across images fills a GPU; on a CPU one call per image
        # costs less: on 2 cores, 8-image batches took ~5 % more CPU per face (their
        # activations leave the cache between the detector's runs).
        self.batches = self.providers[0] != CPU
        self.decode_long_edge = DECODE_FACTOR * detector.det_size

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        """How many faces scoring at least ``min_score`` the detector finds in ``rgb``."""
        return len(self.detector.detect(_as_rgb(rgb), min_score))

    def analyze(self, image: DecodedImage) -> ImageFaces:
        """Faces of one image, boxes and landmarks in original (oriented) pixels."""
        return self.analyze_many([image])[0]

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        """Faces of each image: detection per image, recognition batched across all
        when :attr:`batches` (a GPU), else image by image."""
        if not self.batches:
            return [self._faces(found, self.recognizer.embed(found.crops))
                    for found in map(self.find_faces, images)]
        found = [self.find_faces(image) for image in images]
        embeddings = self.recognizer.embed([crop for f in found for crop in f.crops])
        results: list[ImageFaces] = []
        offset = 0
        for f in found:
            results.append(self._faces(f, embeddings[offset:offset + len(f.crops)]))
            offset += len(f.crops)
        return results

    def _faces(self, found: FoundFaces, embeddings: NDArray[np.float32]) -> ImageFaces:
        faces = []
        for i, crop in enumerate(found.crops):
            x1, y1, x2, y2 = (float(v) for v in found.detections.boxes[i])
            faces.append(Face(
                bbox=(x1, y1, x2, y2),
                landmarks=found.detections.keypoints[i].astype(np.float32),
                det_score=float(found.detections.scores[i]),
                embedding=embeddings[i],
                blur=laplacian_variance(crop),
            ))
        return ImageFaces(faces=faces)

    def find_faces(self, image: DecodedImage) -> FoundFaces:
        """Detect, drop faces under ``min_face`` original pixels, align: no recognition."""
        rgb = _as_rgb(image.rgb)
        detections = self.detector.detect(rgb, self.det_threshold)
        sides = np.minimum(detections.boxes[:, 2] - detections.boxes[:, 0],
                           detections.boxes[:, 3] - detections.boxes[:, 1]) * image.scale
        detections = detections.select(sides >= self.min_face)
        crops = [align_face(rgb, kps, self.recognizer.input_size)
                 for kps in detections.keypoints]
        scale = np.float32(image.scale)
        original = Detections(detections.boxes * scale, detections.scores,
                              detections.keypoints * scale)
        return FoundFaces(image, original, crops)


def _as_rgb(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """H×W×3 uint8: grey and RGBA inputs are converted rather than rejected."""
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, :3])
    return pixels


def load_analyzer(
    pack: str,
    *,
    device: str = "auto",
    det_size: int = DEFAULT_DET_SIZE,
    det_threshold: float = DEFAULT_DET_THRESHOLD,
    min_face: int = DEFAULT_MIN_FACE,
    threads: int | None = None,
    insightface_root: Path = DEFAULT_INSIGHTFACE_ROOT,
    hash_cache: Path | None = None,
) -> LocalFaceAnalyzer:
    """Resolve ``pack`` (name or path), open its detector and recognizer sessions on
    ``device`` (auto|cuda|directml|cpu) and return the analyzer.

    ``det_size``: the detector's input long edge; ``det_threshold``: minimum detection
    score; ``min_face``: minimum face short edge in original pixels; ``threads``:
    intra-op threads per session (default: all CPUs); ``hash_cache``: a JSON file that
    remembers model hashes across runs. Raises ModelPackError, DeviceUnavailable or
    ConfigError with a message that says what to do.
    """
    if det_size < 32 or det_size % 32:
        raise ConfigError(f"--det-size must be a positive multiple of 32, not {det_size}")
    if not 0.0 < det_threshold < 1.0:
        raise ConfigError(f"--det-threshold must be between 0 and 1, not {det_threshold}")
    if min_face < 0:
        raise ConfigError(f"--min-face must be ≥ 0 pixels, not {min_face}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be ≥ 1, not {threads}")
    device = device.strip().lower()
    providers = choose_providers(device, available_providers())
    model_pack = load_pack(pack, insightface_root=insightface_root, hash_cache=hash_cache)
    session = open_session(model_pack.detector.path, providers, threads=threads,
                           name=str(model_pack.detector.path))
    started = session.get_providers()
    _check_device(device, providers, started)
    one_shape = wants_one_shape(started)
    detector = FaceDetector(session, det_size, one_shape=one_shape)
    recognizer = open_recognizer(model_pack.recognizer, providers, threads, one_shape=one_shape)
    return LocalFaceAnalyzer(model_pack.info, detector, recognizer,
                             det_threshold=det_threshold, min_face=min_face)


def _check_device(device: str, wanted: Sequence[str], actual: Sequence[str]) -> None:
    # ONNX Runtime silently falls back to CPU when a GPU provider fails to initialise
    # (missing CUDA/cuDNN libraries); an explicit --device must not be ignored quietly.
    if device in DEVICES and DEVICES[device] != CPU and wanted[0] not in actual:
        raise DeviceUnavailable(
            f"--device {device}: ONNX Runtime offers {wanted[0]} but could not start it "
            "(are the CUDA 13/cuDNN 9 or DirectML runtime libraries installed? "
            "`uv sync --extra gpu` installs CUDA's); "
            "use --device cpu or --device auto"
        )
