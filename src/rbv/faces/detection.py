"""SCRFD face detection: a small wrapper around a session plus pure pre/post-processing.

Follows InsightFace's ``model_zoo/scrfd.py`` (same normalisation, anchors, decoding and
NMS) with one difference: the image is fitted into ``det_size`` and padded only to a
multiple of 32 on its short side instead of to a full square, so a 3:2 photo costs
~2/3 of the detector's time. The skipped padding is black and holds no faces; only
faces touching it see a different border (on ``misc/``: boxes within ~1.3 px and
embeddings at cosine ≥ 0.98 of the square-input result; identical elsewhere).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from numpy.typing import NDArray

from rbv.errors import ModelPackError
from rbv.faces.sessions import open_session, with_pixels_input

INPUT_MEAN = 127.5
INPUT_STD = 128.0
NMS_IOU = 0.4
_ALIGN = 32  # the largest stride: input sides must be multiples of it


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, best score first, in that image's pixels."""

    boxes: NDArray[np.float32]  # (n, 4) x1, y1, x2, y2
    scores: NDArray[np.float32]  # (n,)
    keypoints: NDArray[np.float32]  # (n, 5, 2) eyes, nose, mouth corners

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: NDArray[np.bool_] | NDArray[np.intp]) -> Detections:
        return Detections(self.boxes[keep], self.scores[keep], self.keypoints[keep])


def empty_detections() -> Detections:
    return Detections(
        np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
    )


# ----- pure functions ----------------------------------------------------------------

def fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int, float]:
    """(new width, new height, factor) that fit an image into ``box_w``×``box_h``,
    rounded exactly as InsightFace's SCRFD does (truncating the short side, one factor
    for both axes), so the same pixels give the same boxes as InsightFace."""
    if height / width > box_h / box_w:
        new_h = box_h
        new_w = max(1, int(new_h / (height / width)))
    else:
        new_w = box_w
        new_h = max(1, int(new_w * (height / width)))
    return new_w, new_h, new_h / height


def input_size(width: int, height: int, det_size: int, fixed: tuple[int, int] | None = None
               ) -> tuple[int, int]:
    """(input width, input height) for an image of ``width``×``height``.

    The image is scaled so its long edge is ``det_size`` (up or down, as InsightFace
    does), and the input padded to multiples of 32 rather than to a square. ``fixed``
    is a detector exported with a static input size, which is then used as is.
    """
    if fixed is not None:
        return fixed
    new_w, new_h, _ = fit(width, height, det_size, det_size)
    pad = lambda v: -(-v // _ALIGN) * _ALIGN  # noqa: E731
    return pad(new_w), pad(new_h)


def prepare_canvas(rgb: NDArray[np.uint8], det_size: int,
                   fixed: tuple[int, int] | None = None) -> tuple[NDArray[np.uint8], float]:
    """The detector's H×W×3 uint8 input pixels for an RGB image (scaled, padded with
    black), and the factor that took image pixels to input pixels."""
    scaled, (in_w, in_h), factor = _scaled(rgb, det_size, fixed)
    canvas = np.empty((in_h, in_w, 3), np.uint8)
    place(scaled, canvas)
    return canvas, factor


def place(scaled: NDArray[np.uint8], out: NDArray[np.uint8]) -> None:
    """``scaled`` (an image scaled for the detector) written into the top left of the
    input ``out``, the rest of ``out`` black."""
    h, w = scaled.shape[:2]
    out[:h, :w] = scaled
    out[:h, w:] = 0
    out[h:] = 0


def _scaled(rgb: NDArray[np.uint8], det_size: int, fixed: tuple[int, int] | None
            ) -> tuple[NDArray[np.uint8], tuple[int, int], float]:
    """The image scaled for the detector, the input's (width, height) it is placed in
    (top left), and the factor."""
    height, width = rgb.shape[:2]
    box_w, box_h = fixed if fixed is not None else (det_size, det_size)
    new_w, new_h, factor = fit(width, height, box_w, box_h)
    # Bilinear, as InsightFace: the same pixels give the same boxes and embeddings.
    scaled = np.asarray(cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR),
                        np.uint8)
    return scaled, input_size(width, height, det_size, fixed), factor


NORMALISED = ((np.arange(256, dtype=np.float32) - np.float32(INPUT_MEAN))
              * np.float32(1.0 / INPUT_STD))
"""The detector's float input of each uint8 pixel value, ``(v - 127.5) / 128``: the
same float32 arithmetic as OpenCV's ``blobFromImage`` (exact: 1/128 is a power of two),
read from a table in one pass instead of computed in several."""
NORMALISED.setflags(write=False)


def prepare_input(rgb: NDArray[np.uint8], det_size: int,
                  fixed: tuple[int, int] | None = None) -> tuple[NDArray[np.float32], float]:
    """The detector's 1×3×H×W float input for an RGB image, and the factor that took
    image pixels to input pixels: :func:`prepare_canvas`'s pixels normalised, without
    the canvas (each plane of the scaled image looked up in :data:`NORMALISED` straight
    into its place, the padding set to black's value). The same floats as OpenCV's
    ``blobFromImage`` of the canvas for ~45 % less CPU (``scripts/bench/bench_embed.py
    --parts``)."""
    scaled, (in_w, in_h), factor = _scaled(rgb, det_size, fixed)
    new_h, new_w = scaled.shape[:2]
    blob = np.empty((1, 3, in_h, in_w), np.float32)
    for plane, values in zip(blob[0], cv2.split(scaled), strict=True):
        cv2.LUT(values, NORMALISED, dst=plane[:new_h, :new_w])
    blob[0, :, :new_h, new_w:] = NORMALISED[0]
    blob[0, :, new_h:] = NORMALISED[0]
    return blob, factor


@lru_cache(maxsize=64)
def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> NDArray[np.float32]:
    """(height·width·num_anchors, 2) x, y centres of a stride's anchor grid."""
    ys, xs = np.mgrid[:height, :width]
    grid = np.stack([xs, ys], axis=-1).astype(np.float32)
    centers = (grid * stride).reshape(-1, 2)
    if num_anchors > 1:
        centers = np.repeat(centers, num_anchors, axis=0)
    centers.setflags(write=False)
    return centers


def distance_to_boxes(centers: NDArray[np.float32], distances: NDArray[np.float32]
                      ) -> NDArray[np.float32]:
    """Boxes from (left, top, right, bottom) distances to each anchor centre."""
    return np.concatenate([centers - distances[:, 0:2], centers + distances[:, 2:4]], axis=1)


def distance_to_keypoints(centers: NDArray[np.float32], distances: NDArray[np.float32]
                          ) -> NDArray[np.float32]:
    """(n, 5, 2) keypoints from per-point (dx, dy) offsets to each anchor centre."""
    return centers[:, None, :] + distances.reshape(len(distances), -1, 2)


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou: float = NMS_IOU
        ) -> NDArray[np.intp]:
    """Indices kept by greedy non-maximum suppression, best score first.

    Uses InsightFace's +1 pixel area convention so results match it exactly.
    """
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.intp)


def decode(outputs: list[NDArray[np.float32]], input_hw: tuple[int, int],
           strides: tuple[int, ...], num_anchors: int, threshold: float) -> Detections:
    """Candidates above ``threshold`` from one image's SCRFD outputs (scores, boxes,
    keypoints per stride, in that order, N×K each), after NMS, in detector-input pixels:
    :func:`decode_batch` of a batch of one."""
    count = len(strides)
    values = (1, 4, 10)  # a score, a box, 5 keypoints per anchor
    one = [np.asarray(o, np.float32).reshape(1, -1, num_anchors, values[i // count])
           for i, o in enumerate(outputs)]
    return decode_batch(one, input_hw, strides, num_anchors, threshold, 1)[0]


# ----- the model ---------------------------------------------------------------------

def scrfd_heads(session: ort.InferenceSession) -> tuple[tuple[int, ...], int]:
    """(strides, anchors per position) of a SCRFD export with keypoints, from its
    outputs (scores, boxes, keypoints per stride)."""
    count = len(session.get_outputs())
    if count == 9:
        return (8, 16, 32), 2
    if count == 15:
        return (8, 16, 32, 64, 128), 1
    raise ModelPackError(
        f"the detector has {count} outputs; rbv needs a SCRFD export with "
        "keypoints (9 or 15 outputs)"
    )


class FaceDetector:
    """A SCRFD detector with keypoints, around a session it is given."""

    max_batch = 1  # images per session call

    def __init__(self, session: ort.InferenceSession, det_size: int = 640, *,
                 one_shape: bool = False) -> None:
        """``one_shape``: every image padded to the ``det_size`` square (InsightFace's
        input), so the session only ever sees one input shape; for GPU providers (see
        :func:`rbv.faces.providers.wants_one_shape`)."""
        self.session = session
        self.det_size = det_size
        inputs = session.get_inputs()
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        self.strides, self.num_anchors = scrfd_heads(session)
        h, w = inputs[0].shape[2:4]
        self.fixed_size = (w, h) if isinstance(h, int) and isinstance(w, int) else None
        if self.fixed_size is None and one_shape:
            self.fixed_size = (det_size, det_size)

    def detect(self, rgb: NDArray[np.uint8], threshold: float) -> Detections:
        """Faces in ``rgb`` (H×W×3 uint8, RGB) scoring at least ``threshold``, in the
        pixels of ``rgb``."""
        blob, factor = prepare_input(rgb, self.det_size, self.fixed_size)
        raw = self.session.run(self.output_names, {self.input_name: blob})
        # Batched exports return 1×N×K per output; unbatched N×K.
        outputs = [np.asarray(o[0] if o.ndim == 3 else o, np.float32) for o in raw]
        found = decode(outputs, (blob.shape[2], blob.shape[3]), self.strides,
                       self.num_anchors, threshold)
        return Detections(found.boxes / factor, found.scores, found.keypoints / factor)

    def detect_many(self, rgbs: Sequence[NDArray[np.uint8]], threshold: float,
                    inputs: Sequence[tuple[NDArray[np.uint8], float] | None] = ()
                    ) -> list[Detections]:
        """:meth:`detect` of each image (``inputs`` are for a batched detector)."""
        return [self.detect(rgb, threshold) for rgb in rgbs]


# ----- many images per call (GPU providers) -----------------------------------------

DETECT_BATCH = 32
"""Images per detector call on a GPU: each call pays a fixed cost (~100 kernel launches
for SCRFD-500M) that one 640-pixel image does not cover."""


class Layout(enum.Enum):
    """Where one image's rows lie in a batched call's (rows, K) output."""

    BATCH_MAJOR = "batch-major"  # image after image: B×N×K
    POSITION_MAJOR = "position-major"  # InsightFace's SCRFD: (B,C,H,W) → (H,W,B,C) → rows


def by_image(output: NDArray[np.float32], batch: int, layout: Layout, anchors: int
             ) -> NDArray[np.float32]:
    """One (rows, K) output of a ``batch``-image call seen as (image, position, anchor,
    K), without a copy."""
    k = output.shape[-1]
    if layout is Layout.BATCH_MAJOR:
        return output.reshape(batch, -1, anchors, k)
    return output.reshape(-1, batch, anchors, k).transpose(1, 0, 2, 3)


def decode_batch(outputs: list[NDArray[np.float32]], input_hw: tuple[int, int],
                 strides: tuple[int, ...], anchors: int, threshold: float, images: int
                 ) -> list[Detections]:
    """:func:`decode` of the first ``images`` images of a batched call, whose outputs
    are seen through :func:`by_image`: the candidates of every image are found in one
    pass per stride (the per-image work is the NMS), in the order :func:`decode` finds
    them, so the same boxes come out."""
    count = len(strides)
    slots, boxes, scores, kps = [], [], [], []
    for i, stride in enumerate(strides):
        score = outputs[i][:images, :, :, 0]
        slot, position, anchor = np.nonzero(score >= threshold)
        if not slot.size:
            continue
        centers = anchor_centers(input_hw[0] // stride, input_hw[1] // stride, stride,
                                 anchors)[position * anchors + anchor]
        hit = (slot, position, anchor)
        boxes.append(distance_to_boxes(centers, outputs[i + count][hit] * stride))
        kps.append(distance_to_keypoints(centers, outputs[i + 2 * count][hit] * stride))
        scores.append(score[hit])
        slots.append(slot)
    if not slots:
        return [empty_detections() for _ in range(images)]
    slot = np.concatenate(slots)
    order = np.argsort(slot, kind="stable")  # by image; strides and anchors in order
    bounds = np.searchsorted(slot[order], np.arange(images + 1))
    every = Detections(np.concatenate(boxes).astype(np.float32)[order],
                       np.concatenate(scores).astype(np.float32)[order],
                       np.concatenate(kps).astype(np.float32)[order])
    found = []
    for j in range(images):
        mine = Detections(*(a[bounds[j]:bounds[j + 1]] for a in
                            (every.boxes, every.scores, every.keypoints)))
        found.append(mine.select(nms(mine.boxes, mine.scores)) if len(mine) else mine)
    return found


class BatchedFaceDetector(FaceDetector):
    """A SCRFD detector run on many images per call, each call a full batch of
    ``max_batch`` images of the ``det_size`` square (the rest black, their results
    dropped): its session sees one input shape, uint8 pixels
    (:func:`rbv.faces.sessions.with_pixels_input`).
    Built by :func:`batched_detector` for GPU providers, where it is checked first."""

    def __init__(self, session: ort.InferenceSession, det_size: int, layout: Layout,
                 max_batch: int = DETECT_BATCH) -> None:
        self.session = session
        self.det_size = det_size
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]
        self.strides, self.num_anchors = scrfd_heads(session)
        h, w = session.get_inputs()[0].shape[1:3]
        self.size: tuple[int, int] = (w, h)
        self.fixed_size = self.size
        self.layout = layout
        self.max_batch = max_batch
        self._mine = threading.local()

    def canvas(self, rgb: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], float]:
        """One image scaled for the detector (its input's top left; the rest is black)
        and the factor, for :meth:`detect_many`'s ``inputs`` (cut where the image was
        decoded, off the thread that calls the GPU): no padded canvas is made, the
        scaled pixels are copied once, into the call's batch."""
        scaled, _, factor = _scaled(rgb, self.det_size, self.size)
        return scaled, factor

    def detect(self, rgb: NDArray[np.uint8], threshold: float) -> Detections:
        return self.detect_many([rgb], threshold)[0]

    def detect_many(self, rgbs: Sequence[NDArray[np.uint8]], threshold: float,
                    inputs: Sequence[tuple[NDArray[np.uint8], float] | None] = ()
                    ) -> list[Detections]:
        """Faces of each image; ``inputs[i]``, where given, is image i's :meth:`canvas`."""
        found: list[Detections] = []
        width, height = self.size
        pixels = self._pixels()
        for start in range(0, len(rgbs), self.max_batch):
            chunk = rgbs[start:start + self.max_batch]
            factors = []
            for i, rgb in enumerate(chunk):
                ready = inputs[start + i] if start + i < len(inputs) else None
                scaled, factor = ready if ready is not None else self.canvas(rgb)
                place(scaled, pixels[i])
                factors.append(factor)
            pixels[len(chunk):] = 0
            outputs = [by_image(o, self.max_batch, self.layout, self.num_anchors)
                       for o in self._run(pixels)]
            images = decode_batch(outputs, (height, width), self.strides, self.num_anchors,
                                  threshold, len(chunk))
            found += [Detections(one.boxes / factor, one.scores, one.keypoints / factor)
                      for one, factor in zip(images, factors, strict=True)]
        return found

    def _pixels(self) -> NDArray[np.uint8]:
        """This thread's batch of input pixels, allocated once: a new 39 MB array per
        call costs a page fault per 4 kB on every call, and the threads' faults wait
        for each other in the kernel."""
        pixels: NDArray[np.uint8] | None = getattr(self._mine, "pixels", None)
        if pixels is None:
            width, height = self.size
            pixels = self._mine.pixels = np.zeros((self.max_batch, height, width, 3), np.uint8)
        return pixels

    def _run(self, pixels: NDArray[np.uint8]) -> list[NDArray[np.float32]]:
        raw = self.session.run(self.output_names, {self.input_name: pixels})
        return [np.asarray(o, np.float32).reshape(-1, o.shape[-1]) for o in raw]


def probe_layout(session: ort.InferenceSession, size: tuple[int, int], batch: int,
                 anchors: int) -> Layout | None:
    """How a batched call lays out each image's rows, found by running one probe image
    in slot 0 and then in slot 1 of an otherwise black full batch: the layout under which
    the probe's rows and the black image's rows trade places, and differ. None when no
    layout does (the graph mixes images, or fixes one somewhere): one image per call."""
    width, height = size
    probe = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    feeds = []
    for slot in (0, 1):
        pixels = np.zeros((batch, height, width, 3), np.uint8)
        pixels[slot] = probe
        feeds.append(pixels)
    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    first, second = ([np.asarray(o, np.float32).reshape(-1, o.shape[-1])
                      for o in session.run(names, {name: f})] for f in feeds)

    def rows(out: NDArray[np.float32], slot: int, layout: Layout) -> NDArray[np.float32]:
        return by_image(out, batch, layout, anchors)[slot]

    for layout in Layout:
        try:
            same = all(np.allclose(rows(a, 0, layout), rows(b, 1, layout), rtol=1e-3, atol=1e-4)
                       and np.allclose(rows(a, 1, layout), rows(b, 0, layout),
                                       rtol=1e-3, atol=1e-4)
                       for a, b in zip(first, second, strict=True))
            differ = not np.allclose(rows(first[0], 0, layout), rows(first[0], 1, layout),
                                     rtol=1e-3, atol=1e-4)
        except ValueError:  # rows that do not divide by the batch
            continue
        if same and differ:
            return layout
    return None


def batched_detector(plain: FaceDetector, model: Path, providers: Sequence[str], *,
                     threads: int | None = None, device_id: int | None = None
                     ) -> FaceDetector:
    """For a GPU: a :class:`BatchedFaceDetector` of ``model`` when its export batches
    (checked by :func:`probe_layout`), else ``plain`` (one image per call)."""
    if plain.fixed_size is None:
        return plain
    try:
        graph = with_pixels_input(onnx.load(str(model)), plain.fixed_size, INPUT_MEAN,
                                  multiply=1.0 / INPUT_STD)
        session = open_session(graph.SerializeToString(), providers, threads=threads,
                               name=str(model), device_id=device_id)
        layout = probe_layout(session, plain.fixed_size, DETECT_BATCH, plain.num_anchors)
    except Exception:  # noqa: BLE001 - any failure means "this graph does not batch"
        return plain
    if layout is None:
        return plain
    return BatchedFaceDetector(session, plain.det_size, layout)
