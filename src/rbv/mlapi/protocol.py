"""The Immich machine-learning protocol as pure functions: the ``entries`` document rbv
sends to ``POST /predict`` and the parsing of what comes back.

A response looks like::

    {"facial-recognition": [{"boundingBox": {"x1": .., "y1": .., "x2": .., "y2": ..},
                             "embedding": "[0.01, ...]", "score": 0.98}, ...],
     "clip": "[0.02, ...]", "imageWidth": 1280, "imageHeight": 960}

Embeddings arrive as JSON arrays *inside strings*, not L2-normalised (Immich-ML returns
the recognizer's raw output; norms of 5-16 for SFace): face embeddings are normalised
here, as the schema and the local analyzer have them. An answer no recognizer gives (an
embedding whose norm or width is out of bounds, more faces than
:data:`~rbv.bounds.MAX_FACES_PER_IMAGE`) raises :class:`InferenceWrongAnswer`: nothing
of it is stored. Boxes are in the pixels of the
image the server decoded (``imageWidth`` × ``imageHeight``) and are scaled to the original.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rbv.bounds import (
    EMBEDDING_NORM_RANGE,
    MAX_EMBEDDING_DIM,
    MAX_FACES_PER_IMAGE,
    coordinate,
    finite,
    pixel_size,
)
from rbv.errors import InferenceError, InferenceWrongAnswer
from rbv.faces.types import Face, ImageFaces

FACIAL_RECOGNITION = "facial-recognition"
CLIP = "clip"


def predict_entries(face_model: str, min_score: float, clip_model: str | None) -> str:
    """The ``entries`` form field: which models to run, with their options."""
    entries: dict[str, Any] = {
        FACIAL_RECOGNITION: {
            "detection": {"modelName": face_model, "options": {"minScore": min_score}},
            "recognition": {"modelName": face_model},
        }
    }
    if clip_model:
        entries[CLIP] = {"visual": {"modelName": clip_model}}
    return json.dumps(entries)


def parse_prediction(body: Any, original_size: tuple[int, int],
                     embedding_dim: int | None) -> ImageFaces:
    """Faces (boxes in original pixels, unit-length embeddings) and the optional CLIP
    embedding of a response.

    Raises :class:`InferenceError` for anything that is not a well-formed answer and
    :class:`InferenceWrongAnswer` for one no recognizer gives.
    """
    if not isinstance(body, dict):
        raise InferenceError("the inference server's answer is not a JSON object")
    try:
        width = pixel_size(body["imageWidth"], "imageWidth")
        height = pixel_size(body["imageHeight"], "imageHeight")
        found = body.get(FACIAL_RECOGNITION, [])
        if not isinstance(found, list):
            raise TypeError(f"{FACIAL_RECOGNITION} is not a list")
        if len(found) > MAX_FACES_PER_IMAGE:  # before reading any: refused whole
            raise InferenceWrongAnswer(f"{len(found)} faces for one photo (at most "
                                       f"{MAX_FACES_PER_IMAGE:,} are taken)")
        sx, sy = original_size[0] / width, original_size[1] / height
        faces = []
        for item in found:
            box = item["boundingBox"]
            vector = _vector(item["embedding"], "face embedding")
            if embedding_dim is not None and vector.shape[0] != embedding_dim:
                raise InferenceWrongAnswer(
                    f"{vector.shape[0]}-dimensional face embeddings (the run started with "
                    f"{embedding_dim})")
            faces.append(Face(
                bbox=(coordinate(box["x1"], "x1") * sx, coordinate(box["y1"], "y1") * sy,
                      coordinate(box["x2"], "x2") * sx, coordinate(box["y2"], "y2") * sy),
                landmarks=None, det_score=finite(item["score"], "score", 0.0, 1.0),
                embedding=_unit(vector),
            ))
        clip = _vector(body[CLIP], "CLIP embedding").astype(np.float32) \
            if body.get(CLIP) else None
    except KeyError as exc:
        raise InferenceError(f"malformed answer from the inference server (no {exc})") \
            from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise InferenceError(f"malformed answer from the inference server ({exc})") from None
    return ImageFaces(faces=faces, clip_embedding=clip)


def embedding_width(body: Any) -> int | None:
    """The face embeddings' width in an answer (None when it holds no face); a width
    over :data:`~rbv.bounds.MAX_EMBEDDING_DIM` raises :class:`InferenceWrongAnswer`."""
    try:
        faces = body[FACIAL_RECOGNITION]
        width = int(_vector(faces[0]["embedding"], "face embedding").shape[0]) \
            if faces else None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InferenceError(f"malformed answer from the inference server ({exc!r})") from None
    if width is not None and width > MAX_EMBEDDING_DIM:
        raise InferenceWrongAnswer(f"{width}-dimensional face embeddings (at most "
                                   f"{MAX_EMBEDDING_DIM:,} are stored)")
    return width


def _unit(vector: NDArray[np.float64]) -> NDArray[np.float32]:
    """``vector`` normalised, if its norm is one a recognizer gives
    (:data:`~rbv.bounds.EMBEDDING_NORM_RANGE`; else :class:`InferenceWrongAnswer`).
    Computed in float64: the norm of 512 values of 1e20 overflows float32 to inf, and
    the vector divided by it is all zeros."""
    norm = float(np.linalg.norm(vector))
    low, high = EMBEDDING_NORM_RANGE
    if not low <= norm <= high:  # also NaN and inf
        raise InferenceWrongAnswer(f"a face embedding of norm {norm:.2g} (a recognizer's "
                                   f"are {low:g} to {high:g})")
    unit = (vector / norm).astype(np.float32)
    if not np.all(np.isfinite(unit)):
        raise InferenceWrongAnswer("a face embedding that is not finite once normalised")
    return unit


def _vector(value: Any, what: str) -> NDArray[np.float64]:
    """A float64 vector from a JSON-array string (or, leniently, a JSON array): values
    past float32's range are judged by the embedding's norm, not turned into inf."""
    items = json.loads(value) if isinstance(value, str) else value
    vector = np.asarray(items, dtype=np.float64)
    if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
        raise InferenceError(f"malformed {what} from the inference server")
    return vector
