"""An attribute model: an estimated age and gender for each face (issue 64).

Written against Human's ``faceres`` converted to ONNX (``faceres_age_gender.onnx``, see
the shared models' PROVENANCE): input ``input_1:0`` N×224×224×3, the **tight** detector
box resized to 224² (bilinear), BGR 0–255, NHWC; outputs, read by name (the file lists
them as gender, descriptor, age), ``age_pred/Softmax:0`` N×100 (a distribution over
0–99 years: the estimate is its mean, its spread the sd) and ``gender_pred/Sigmoid:0``
N×1. A loose crop, RGB or 0–1 pixels all measured worse on the family set.

Which side of the sigmoid is male was measured on the family set's labelled parents
and children (``role`` father/son against mother/daughter, the largest face of each of
96 photos): a value above 0.5 is **male** (:data:`MALE_ABOVE_HALF`). Fathers averaged
0.78 (15 of 16 above 0.5), mothers 0.25 (1 of 16), daughters 0.19 (3 of 32), sons 0.57
(17 of 32: boys' faces read as either); ``scripts/bench/age_accuracy.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image

from rbv.errors import ConfigError, ModelPackError
from rbv.faces.estimates import FaceEstimate

PIXELS_INPUT = "input_1:0"
AGE_OUTPUT = "age_pred/Softmax:0"
GENDER_OUTPUT = "gender_pred/Sigmoid:0"
SIZE = 224
AGE_BINS = 100
MALE_ABOVE_HALF = True
"""The gender output is the probability of male (measured: see the module's note)."""
MAX_BATCH = 32
"""Faces per model call: a group photo's faces in one or two calls, memory bounded."""

Box = tuple[float, float, float, float]


def is_attribute_model(input_shape: Sequence[object], outputs: Mapping[str, Sequence[object]]
                       ) -> bool:
    """Whether a model's image input shape and named output shapes are the attribute
    model's: N×224×224×3 in, an N×100 age and an N×1 gender output by those names."""
    return (len(input_shape) == 4 and tuple(input_shape[1:]) == (SIZE, SIZE, 3)
            and AGE_OUTPUT in outputs and GENDER_OUTPUT in outputs
            and list(outputs[AGE_OUTPUT])[-1:] == [AGE_BINS]
            and list(outputs[GENDER_OUTPUT])[-1:] == [1])


def tight_crop(rgb: NDArray[np.uint8], box: Box) -> NDArray[np.uint8] | None:
    """The model's input for one face: the box clipped to the image, resized to
    224×224 (bilinear, as Pillow does it), BGR. None for a box with no pixels inside."""
    height, width = rgb.shape[:2]
    x1, y1 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
    x2, y2 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    face = Image.fromarray(np.ascontiguousarray(rgb[y1:y2, x1:x2, :3]))
    resized = np.asarray(face.resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(resized[:, :, ::-1])


def estimates_of(ages: NDArray[np.float32], genders: NDArray[np.float32], model: str,
                 sha256: str) -> list[FaceEstimate]:
    """The model's outputs (N×100 age distributions, N×1 gender) as estimates."""
    years = np.arange(ages.shape[1], dtype=np.float64)
    probs = ages.astype(np.float64)
    probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    mean = probs @ years
    spread = np.sqrt(np.maximum((probs * (years[None, :] - mean[:, None]) ** 2).sum(axis=1), 0))
    out = []
    for age, sd, p in zip(mean, spread, genders.reshape(-1).astype(np.float64), strict=True):
        male = p > 0.5 if MALE_ABOVE_HALF else p < 0.5
        out.append(FaceEstimate(float(age), float(sd), "male" if male else "female",
                                float(max(p, 1.0 - p)), model, sha256))
    return out


@dataclass
class AttributeModel:
    """Estimates age and gender of faces with a session it is given."""

    session: ort.InferenceSession
    name: str  # the model's file name
    sha256: str
    max_batch: int = MAX_BATCH

    def estimate(self, rgb: NDArray[np.uint8], boxes: Sequence[Box]
                 ) -> list[FaceEstimate | None]:
        """One estimate per box (in the pixels of ``rgb``), None for a box with no
        pixels inside the image."""
        crops = [tight_crop(rgb, box) for box in boxes]
        kept = [c for c in crops if c is not None]
        found = iter(self.estimate_crops(kept))
        return [None if c is None else next(found) for c in crops]

    def estimate_crops(self, crops: Sequence[NDArray[np.uint8]]) -> list[FaceEstimate]:
        """Estimates of 224×224 BGR crops (:func:`tight_crop`), in batches."""
        out: list[FaceEstimate] = []
        for start in range(0, len(crops), self.max_batch):
            batch = np.stack(crops[start:start + self.max_batch]).astype(np.float32)
            ages, genders = self.session.run([AGE_OUTPUT, GENDER_OUTPUT], {PIXELS_INPUT: batch})
            out += estimates_of(ages, genders, self.name, self.sha256)
        return out


def open_attribute_model(path: Path, providers: Sequence[str], *, threads: int | None = None,
                         device_id: int | None = None, sha256: str = "") -> AttributeModel:
    """The attribute model in ``path`` on ``providers``. Raises :class:`ConfigError`
    (setting ``attribute_model``) when the file is missing or is not such a model."""
    from rbv.faces.hashing import cached_sha256
    from rbv.faces.sessions import open_session

    if not path.is_file():
        raise ConfigError(f"attribute model {path} is not a file", setting="attribute_model")
    try:
        session = open_session(path, providers, threads=threads, name=str(path),
                               device_id=device_id)
    except ModelPackError as exc:
        raise ConfigError(f"attribute model {path} cannot be loaded: {exc}",
                          setting="attribute_model") from None
    inputs = session.get_inputs()
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if len(inputs) != 1 or inputs[0].name != PIXELS_INPUT or not is_attribute_model(
            inputs[0].shape, outputs):
        raise ConfigError(
            f"{path} is not an age and gender model: one needs an input {PIXELS_INPUT} of "
            f"N×{SIZE}×{SIZE}×3 and outputs {AGE_OUTPUT} (N×{AGE_BINS}) and "
            f"{GENDER_OUTPUT} (N×1), as faceres_age_gender.onnx has",
            setting="attribute_model")
    return AttributeModel(session, path.name, sha256 or cached_sha256(path))
