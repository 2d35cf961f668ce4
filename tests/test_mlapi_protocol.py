"""Pure logic of the Immich-ML protocol: the request document and response parsing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from rbv.errors import InferenceError
from rbv.mlapi.protocol import embedding_width, parse_prediction, predict_entries


def _answer(width: int, height: int, dim: int = 4, **extra: object) -> dict[str, object]:
    vector = json.dumps([0.5] * dim)
    return {"imageWidth": width, "imageHeight": height, "facial-recognition": [
        {"boundingBox": {"x1": 10, "y1": 20, "x2": 60, "y2": 90}, "embedding": vector,
         "score": 0.91}], **extra}


def test_entries_name_the_models_and_options() -> None:
    entries = json.loads(predict_entries("buffalo_l", 0.7, "ViT-B-32__openai"))
    assert entries == {
        "facial-recognition": {
            "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
            "recognition": {"modelName": "buffalo_l"}},
        "clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
    assert "clip" not in json.loads(predict_entries("buffalo_l", 0.7, None))


def test_boxes_are_scaled_from_the_servers_pixels_to_the_original() -> None:
    found = parse_prediction(_answer(500, 400), original_size=(1000, 800), embedding_dim=4)
    (face,) = found.faces
    assert face.bbox == (20.0, 40.0, 120.0, 180.0)
    assert face.det_score == pytest.approx(0.91)
    assert face.embedding.dtype == np.float32 and face.embedding.tolist() == [0.5] * 4
    assert face.landmarks is None and found.clip_embedding is None


def test_clip_embedding_string_is_parsed() -> None:
    found = parse_prediction(_answer(10, 10, clip=json.dumps([0.1, 0.2, 0.3])), (10, 10), 4)
    assert found.clip_embedding is not None
    np.testing.assert_allclose(found.clip_embedding, [0.1, 0.2, 0.3], rtol=1e-6)


@pytest.mark.parametrize("body", [
    [], {"facial-recognition": []},  # not an object; no image size
    _answer(10, 10, dim=3),  # wrong width for the pack
    {**_answer(10, 10), "facial-recognition": [{"boundingBox": {}, "embedding": "[1]",
                                                "score": 1}]},
    {**_answer(10, 10), "clip": "[1, 2"},  # truncated JSON string
    {**_answer(10, 10), "clip": "[NaN]"},
])
def test_malformed_answers_are_inference_errors(body: object) -> None:
    with pytest.raises(InferenceError):
        parse_prediction(body, (10, 10), embedding_dim=4)


def test_face_embeddings_come_back_unit_length() -> None:
    # Immich-ML returns the recognizer's raw output (norms 5-16 for SFace).
    body = _answer(10, 10, dim=4)
    body["facial-recognition"][0]["embedding"] = json.dumps([3.0, 0.0, 4.0, 0.0])  # type: ignore[index]
    (face,) = parse_prediction(body, (10, 10), embedding_dim=4).faces
    np.testing.assert_allclose(face.embedding, [0.6, 0.0, 0.8, 0.0], rtol=1e-6)
    assert embedding_width(body) == 4 and embedding_width(_answer(10, 10) | {
        "facial-recognition": []}) is None


def test_upright_pixels_are_sent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from rbv.media.decode import decode_for_detection
    from rbv.mlapi.client import upright_payload
    from tests.conftest import MISC
    from tests.support.immich_ml import write_oriented_copies

    def sent(path, long_edge=1920):  # type: ignore[no-untyped-def]
        image = decode_for_detection(path, "JPEG", image_id=1, long_edge=long_edge,
                                     max_pixels=10**9, keep_bytes=True)
        name, data, mime = upright_payload(image)
        return image, data, mime

    upright = MISC / "fr_two_people.jpg"
    image, data, mime = sent(upright)  # upright, decoded at full size: the file itself
    assert mime == "image/jpeg" and data == upright.read_bytes()
    for turned in write_oriented_copies(upright, tmp_path):  # EXIF 3, 6, 8
        image, data, mime = sent(turned)
        assert mime == "image/png"
        with Image.open(io.BytesIO(data)) as png:
            assert png.size == image.original_size == (1126, 661)
            np.testing.assert_array_equal(np.asarray(png), image.rgb)  # lossless
    image, data, mime = sent(upright, long_edge=500)  # decoded at reduced size
    assert mime == "image/png" and image.scale == 2.0
    with Image.open(io.BytesIO(data)) as png:
        assert png.size == (563, 331)


@pytest.mark.parametrize(("where", "value", "says"), [
    ("imageWidth", "1e400", "imageWidth 'inf' is not a finite number"),
    ("imageHeight", "-5", "imageHeight '-5' is out of range"),
    ("x1", "1e400", "x1 'inf' is not a finite number"),
    ("y2", "NaN", "y2 'nan' is not a finite number"),
    ("score", "Infinity", "score 'inf' is not a finite number"),
])
def test_numbers_that_are_not_finite_or_in_range_are_a_malformed_answer(
        where: str, value: str, says: str) -> None:
    # As the server's bytes arrive: JSON numbers Python reads as inf or nan.
    text = json.dumps(_answer(500, 400))
    key = f'"{where}": '
    start = text.index(key) + len(key)
    end = min(i for i in (text.find(",", start), text.find("}", start)) if i >= 0)
    body = json.loads(text[:start] + value + text[end:])
    with pytest.raises(InferenceError, match="malformed answer") as caught:
        parse_prediction(body, original_size=(1000, 800), embedding_dim=4)
    assert says in str(caught.value)
