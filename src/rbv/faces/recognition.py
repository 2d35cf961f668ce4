"""ArcFace-style recognition: aligned 112×112 crops in, L2-normalised embeddings out."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from rbv.faces.packs import ModelFile
from rbv.faces.sessions import graph_input, open_session, with_pixels_input

MAX_BATCH = 32
"""Faces per recognizer call when the model takes batches: enough to fill a GPU,
small enough to bound memory on a group photo."""


@dataclass(frozen=True)
class InputNormalisation:
    """``(pixel - mean) / std`` applied by rbv before the model (RGB, 0–255 pixels)."""

    mean: float
    std: float


RAW_PIXELS = InputNormalisation(0.0, 1.0)  # the graph normalises itself (SFace, MXNet)
ARCFACE = InputNormalisation(127.5, 127.5)  # PyTorch exports, e.g. buffalo_l w600k_r50


def normalisation_for(model: ModelFile) -> InputNormalisation:
    """InsightFace's rule: graphs that start with Sub+Mul normalise themselves."""
    return RAW_PIXELS if model.graph_normalises_input else ARCFACE


def to_blob(crops: Sequence[NDArray[np.uint8]], norm: InputNormalisation) -> NDArray[np.float32]:
    """N×3×H×W float input from N aligned RGB crops."""
    batch = np.stack(crops).astype(np.float32)
    if norm.mean:
        batch -= norm.mean
    if norm.std != 1.0:
        batch /= norm.std
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def l2_normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


class FaceRecognizer:
    """Embeds aligned crops with a session it is given."""

    def __init__(self, session: ort.InferenceSession, norm: InputNormalisation,
                 max_batch: int = MAX_BATCH, *, one_shape: bool = False,
                 pixels: bool = False) -> None:
        """``one_shape``: every call is a full ``max_batch`` (the rest zero-filled,
        their outputs dropped), so the session only ever sees one input shape; for
        GPU providers (see :func:`rbv.faces.providers.wants_one_shape`). ``pixels``:
        the session takes the crops' uint8 pixels and normalises them itself
        (:func:`rbv.faces.sessions.with_pixels_input`)."""
        self.session = session
        self.norm = norm
        self.max_batch = max_batch
        self.one_shape = one_shape
        self.pixels = pixels
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        size = inp.shape[1 if pixels else 2]
        self.input_size = size if isinstance(size, int) else 112
        self.output_name = session.get_outputs()[0].name

    def embed(self, crops: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """(len(crops), D) L2-normalised embeddings, in batches of ``max_batch``."""
        return _joined([self._run(crops[i:i + self.max_batch])
                        for i in range(0, len(crops), self.max_batch)], len(crops))

    def embed_batch(self, crops: NDArray[np.uint8], count: int) -> NDArray[np.float32]:
        """(count, D) L2-normalised embeddings of ``crops[:count]``, for a recognizer
        that takes pixels in full batches (:attr:`pixels`, :attr:`one_shape`): ``crops``
        is an N×S×S×3 array whose N is a multiple of :attr:`max_batch`, run slice by
        slice as it is (no copy; what lies past ``count`` is run and dropped)."""
        return _joined([self._infer(crops[i:i + self.max_batch])
                        for i in range(0, count, self.max_batch)], count)

    def _run(self, crops: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        blob = np.stack(crops) if self.pixels else to_blob(crops, self.norm)
        if self.one_shape and len(crops) < self.max_batch:
            full = np.zeros((self.max_batch, *blob.shape[1:]), blob.dtype)
            full[:len(crops)] = blob
            blob = full
        return self._infer(blob)[:len(crops)]

    def _infer(self, blob: NDArray[np.generic]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = self.session.run([self.output_name],
                                                    {self.input_name: blob})[0]
        return out


def _joined(parts: list[NDArray[np.float32]], count: int) -> NDArray[np.float32]:
    """The first ``count`` rows of the batches' outputs, L2-normalised."""
    if not parts:
        return np.zeros((0, 0), np.float32)
    return l2_normalise(np.concatenate(parts)[:count].astype(np.float32))


def open_recognizer(model: ModelFile, providers: Sequence[str],
                    threads: int | None = None, *, one_shape: bool = False,
                    device_id: int | None = None) -> FaceRecognizer:
    """A recognizer that batches when the model allows it.

    Some exports fix the batch axis to 1 (SFace, MobileFaceNet). rbv then declares that
    axis symbolic in an in-memory copy (the file is never rewritten) and keeps the copy
    only if a 2-face probe returns 2 embeddings; graphs that reshape to a fixed batch
    (MobileFaceNet's flatten) fall back to one face per call.
    """
    norm = normalisation_for(model)
    if one_shape:  # a GPU: uint8 pixels in, normalised by the graph
        with contextlib.suppress(Exception):
            return _pixels_recognizer(model, norm, providers, threads, device_id)
    if not isinstance(model.input_shape[0], int):
        session = open_session(model.path, providers, threads=threads, name=str(model.path),
                               device_id=device_id)
        return FaceRecognizer(session, norm, one_shape=one_shape)
    try:
        session = open_session(_any_batch(model).SerializeToString(), providers,
                               threads=threads, name=str(model.path), device_id=device_id)
        recognizer = FaceRecognizer(session, norm, one_shape=one_shape)
        if _batches(recognizer):
            return recognizer
    except Exception:  # noqa: S110 - any failure means "this graph does not batch"
        pass
    session = open_session(model.path, providers, threads=threads, name=str(model.path),
                           device_id=device_id)
    return FaceRecognizer(session, norm, max_batch=1)


def _any_batch(model: ModelFile) -> onnx.ModelProto:
    """The graph of ``model`` with its batch axis declared free (in memory)."""
    graph = onnx.load(str(model.path))
    for value in (graph_input(graph), *graph.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return graph


def _batches(recognizer: FaceRecognizer) -> bool:
    """Whether a 2-face probe returns 2 embeddings."""
    probe = np.zeros((2, recognizer.input_size, recognizer.input_size, 3), np.uint8)
    return bool(recognizer.embed(list(probe)).shape[0] == 2)


def _pixels_recognizer(model: ModelFile, norm: InputNormalisation, providers: Sequence[str],
                       threads: int | None, device_id: int | None) -> FaceRecognizer:
    """The recognizer of ``model`` taking uint8 crops in full batches (a GPU's); raises
    when the graph does not take them."""
    size = model.input_shape[2]
    if not isinstance(size, int):
        size = 112
    graph = with_pixels_input(_any_batch(model), (size, size), norm.mean,
                              divide=norm.std if norm.std != 1.0 else None)
    session = open_session(graph.SerializeToString(), providers, threads=threads,
                           name=str(model.path), device_id=device_id)
    recognizer = FaceRecognizer(session, norm, one_shape=True, pixels=True)
    if not _batches(recognizer):
        raise ValueError("the graph does not take a batch")
    return recognizer
