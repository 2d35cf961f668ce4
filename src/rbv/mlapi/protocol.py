"""The Immich machine-learning protocol as pure functions: the ``entries`` document rbv
sends to ``POST /predict`` and the parsing of what comes back.

A response looks like::

    {"facial-recognition": [{"boundingBox": {"x1": .., "y1": .., "x2": .., "y2": ..},
                             "embedding": "[0.01, ...]", "score": 0.98}, ...],
     "clip": "[0.02, ...]", "imageWidth": 1280, "imageHeight": 960}

Embeddings arrive as JSON arrays *inside strings*, not L2-normalised (Immich-ML returns
the recognizer's raw output; norms of 5-16 for SFace): face embeddings are normalised
here, as the schema and the local analyzer have them. Boxes are in the pixels of the
image the server decoded (``imageWidth`` × ``imageHeight``) and are scaled to the original.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rbv.bounds import coordinate, finite, pixel_size
from rbv.errors import InferenceError
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

    Raises :class:`InferenceError` for anything that is not a well-formed answer.
    """
    if not isinstance(body, dict):
        raise InferenceError("the inference server's answer is not a JSON object")
    try:
        width = pixel_size(body["imageWidth"], "imageWidth")
        height = pixel_size(body["imageHeight"], "imageHeight")
        found = body.get(FACIAL_RECOGNITION, [])
        sx, sy = original_size[0] / width, original_size[1] / height
        faces = []
        for item in found:
            box = item["boundingBox"]
            vector = _vector(item["embedding"], "face embedding")
            if embedding_dim is not None and vector.shape[0] != embedding_dim:
                raise InferenceError(
                    f"the server's face embeddings have {vector.shape[0]} dimensions, "
                    f"the run started with {embedding_dim}")
            norm = float(np.linalg.norm(vector))
            if norm == 0.0:
                raise InferenceError("the inference server sent an all-zero face embedding")
            faces.append(Face(
                bbox=(coordinate(box["x1"], "x1") * sx, coordinate(box["y1"], "y1") * sy,
                      coordinate(box["x2"], "x2") * sx, coordinate(box["y2"], "y2") * sy),
                landmarks=None, det_score=finite(item["score"], "score", 0.0, 1.0),
                embedding=(vector / norm).astype(np.float32),
            ))
        clip = _vector(body[CLIP], "CLIP embedding") if body.get(CLIP) else None
    except KeyError as exc:
        raise InferenceError(f"malformed answer from the inference server (no {exc})") \
            from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise InferenceError(f"malformed answer from the inference server ({exc})") from None
    return ImageFaces(faces=faces, clip_embedding=clip)


def embedding_width(body: Any) -> int | None:
    """The face embeddings' width in an answer (None when it holds no face)."""
    try:
        faces = body[FACIAL_RECOGNITION]
        return int(_vector(faces[0]["embedding"], "face embedding").shape[0]) if faces else None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InferenceError(f"malformed answer from the inference server ({exc!r})") from None


def _vector(value: Any, what: str) -> NDArray[np.float32]:
    """A float32 vector from a JSON-array string (or, leniently, a JSON array)."""
    items = json.loads(value) if isinstance(value, str) else value
    vector = np.asarray(items, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
        raise InferenceError(f"malformed {what} from the inference server")
    return vector
