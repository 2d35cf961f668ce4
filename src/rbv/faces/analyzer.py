"""The local face analyzer: detect, align, measure blur and embed, on ONNX Runtime."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rbv.errors import ConfigError, DeviceUnavailable, Remedy
from rbv.faces.alignment import align_face
from rbv.faces.defaults import (
    DEFAULT_DET_SIZE,
    DEFAULT_DET_THRESHOLD,
    DEFAULT_MIN_FACE,
)
from rbv.faces.detection import BatchedFaceDetector, Detections, FaceDetector, batched_detector
from rbv.faces.packs import DEFAULT_INSIGHTFACE_ROOT, load_pack
from rbv.faces.providers import (
    CPU,
    DEVICES,
    available_providers,
    choose_providers,
    gpu_ids,
    parse_device,
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
    sessions in ``scripts/bench/bench_embed.py``: these small models scale poorly across
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
        # Images per analyze_many call. On a GPU: a full detector batch (the detector
        # then runs them in one call, and recognition is batched across them). On a CPU
        # one image per call costs less: on 2 cores, 8-image recognition batches took
        # ~5 % more CPU per face (their activations leave the cache between the
        # detector's runs).
        self.batch_images = detector.max_batch if self.providers[0] != CPU else 1
        self.decode_long_edge = DECODE_FACTOR * detector.det_size
        self._mine = threading.local()  # each calling thread's batch of crops

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        """How many faces scoring at least ``min_score`` the detector finds in ``rgb``."""
        return len(self.detector.detect(as_rgb(rgb), min_score))

    def servers(self) -> list[dict[str, object]]:
        """None: the models run here."""
        return []

    def prepare(self, image: DecodedImage) -> DecodedImage:
        """On a GPU, the detector's input pixels cut on the decoding thread (the threads
        that call the GPU were busy with it a fifth of their time); else as it is."""
        if self.batch_images == 1 or not isinstance(self.detector, BatchedFaceDetector):
            return image
        return replace(image, detector_input=self.detector.canvas(as_rgb(image.rgb)))

    def analyze(self, image: DecodedImage) -> ImageFaces:
        """Faces of one image, boxes and landmarks in original (oriented) pixels."""
        return self.analyze_many([image])[0]

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        """Faces of each image: detection and recognition batched across them when
        :attr:`batch_images` > 1 (a GPU), else image by image."""
        if self.batch_images == 1:
            return [self._faces(found, self.recognizer.embed(found.crops))
                    for found in map(self.find_faces, images)]
        rgbs = [as_rgb(image.rgb) for image in images]
        detections = self.detector.detect_many(rgbs, self.det_threshold,
                                               [image.detector_input for image in images])
        # A recognizer taking full batches of pixels gets each crop aligned straight
        # into its row of the batch.
        batch = (self._crop_rows(sum(len(d) for d in detections))
                 if self.recognizer.pixels and self.recognizer.one_shape else None)
        found: list[FoundFaces] = []
        start = 0
        for image, rgb, d in zip(images, rgbs, detections, strict=True):
            found.append(self._found(image, rgb, d,
                                     None if batch is None else batch[start:start + len(d)]))
            start += len(found[-1].crops)
        embeddings = (self.recognizer.embed([crop for f in found for crop in f.crops])
                      if batch is None else self.recognizer.embed_batch(batch, start))
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
        rgb = as_rgb(image.rgb)
        return self._found(image, rgb, self.detector.detect(rgb, self.det_threshold))

    def _crop_rows(self, faces: int) -> NDArray[np.uint8]:
        """This thread's batch of crops, room for ``faces`` in whole recognizer batches
        (kept between calls: a new array each call costs a page fault per 4 kB)."""
        step, size = self.recognizer.max_batch, self.recognizer.input_size
        need = max(step, -(-faces // step) * step)
        rows: NDArray[np.uint8] | None = getattr(self._mine, "crops", None)
        if rows is None or len(rows) < need:
            rows = self._mine.crops = np.zeros((need, size, size, 3), np.uint8)
        return rows

    def _found(self, image: DecodedImage, rgb: NDArray[np.uint8],
               detections: Detections, rows: NDArray[np.uint8] | None = None
               ) -> FoundFaces:
        """The faces of at least ``min_face`` original pixels, aligned (into ``rows``,
        one face a row from the first, where given)."""
        sides = np.minimum(detections.boxes[:, 2] - detections.boxes[:, 0],
                           detections.boxes[:, 3] - detections.boxes[:, 1]) * image.scale
        detections = detections.select(sides >= self.min_face)
        size = self.recognizer.input_size
        crops = [align_face(rgb, kps, size, None if rows is None else rows[i])
                 for i, kps in enumerate(detections.keypoints)]
        scale = np.float32(image.scale)
        original = Detections(detections.boxes * scale, detections.scores,
                              detections.keypoints * scale)
        return FoundFaces(image, original, crops)


class DeviceSet:
    """One analyzer per GPU, as one :class:`~rbv.faces.types.FaceAnalyzer`: each calling
    thread keeps to one GPU, the threads dealt out in turn (thread k → GPU k mod n), so
    each GPU serves an equal share of a run's inference threads and no two GPUs wait
    for each other."""

    def __init__(self, analyzers: Sequence[LocalFaceAnalyzer]) -> None:
        if not analyzers:
            raise ValueError("a DeviceSet needs at least one analyzer")
        self.analyzers = list(analyzers)
        first = self.analyzers[0]
        self.pack = first.pack
        self.providers = [p for a in self.analyzers for p in a.providers[:1]] + \
            first.providers[1:]
        self.wants_original_bytes = False
        self.decode_long_edge = first.decode_long_edge
        self.batch_images = first.batch_images
        self._mine = threading.local()
        self._dealt = itertools.count()
        self.calls = [0] * len(self.analyzers)  # analyze_many calls per GPU

    def _analyzer(self) -> LocalFaceAnalyzer:
        index: int | None = getattr(self._mine, "index", None)
        if index is None:
            index = self._mine.index = next(self._dealt) % len(self.analyzers)
        self.calls[index] += 1
        return self.analyzers[index]

    def prepare(self, image: DecodedImage) -> DecodedImage:
        return self.analyzers[0].prepare(image)  # the same models on every GPU

    def analyze(self, image: DecodedImage) -> ImageFaces:
        return self._analyzer().analyze(image)

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        return self._analyzer().analyze_many(images)

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        return self._analyzer().count_faces(rgb, min_score)

    def servers(self) -> list[dict[str, object]]:
        return []  # the GPUs are this machine's


def as_rgb(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
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
        raise ConfigError(f"the detection size must be a positive multiple of 32, not "
                          f"{det_size}", setting="det_size")
    if not 0.0 < det_threshold < 1.0:
        raise ConfigError(f"the detection threshold must be between 0 and 1, not "
                          f"{det_threshold}", setting="det_threshold")
    if min_face < 0:
        raise ConfigError(f"the smallest face must be ≥ 0 pixels, not {min_face}",
                          setting="min_face")
    if threads is not None and threads < 1:  # an argument only: rbv sizes it itself
        raise ConfigError(f"the threads per session must be ≥ 1, not {threads}")
    chosen = parse_device(device)
    ids = gpu_ids(chosen)
    if ids is not None and len(ids) != 1:
        raise ConfigError(f"device {device}: one analyzer runs on one GPU; "
                          "rbv.jobs.library.analyzer.load_face_analyzer spreads over several",
                          setting="device")
    device_id = None if ids is None else ids[0]
    providers = choose_providers(chosen.kind, available_providers())
    model_pack = load_pack(pack, insightface_root=insightface_root, hash_cache=hash_cache)
    path = model_pack.detector.path
    session = open_session(path, providers, threads=threads, name=str(path),
                           device_id=device_id)
    started = session.get_providers()
    _check_device(chosen.kind, providers, started)
    one_shape = wants_one_shape(started)
    detector = FaceDetector(session, det_size, one_shape=one_shape)
    if one_shape:
        detector = batched_detector(detector, path, providers, threads=threads,
                                    device_id=device_id)
    recognizer = open_recognizer(model_pack.recognizer, providers, threads, one_shape=one_shape,
                                 device_id=device_id)
    analyzer = LocalFaceAnalyzer(model_pack.info, detector, recognizer,
                                 det_threshold=det_threshold, min_face=min_face)
    if device_id is not None:
        analyzer.providers[0] = f"{analyzer.providers[0]} (GPU {device_id})"
    return analyzer


def _check_device(device: str, wanted: Sequence[str], actual: Sequence[str]) -> None:
    # ONNX Runtime silently falls back to CPU when a GPU provider fails to initialise
    # (missing CUDA/cuDNN libraries); an explicit device must not be ignored quietly.
    if device in DEVICES and DEVICES[device] != CPU and wanted[0] not in actual:
        raise DeviceUnavailable(
            f"device {device}: ONNX Runtime offers {wanted[0]} but could not start it "
            "(are the CUDA 13/cuDNN 9 or DirectML runtime libraries installed?)",
            remedies=[Remedy("install_extra", {"extra": "gpu"}),
                      Remedy("device", {"devices": ["cpu", "auto"]})])
