"""The face engine on the real test pack and real photos."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image, ImageOps

from rbv.faces.analyzer import LocalFaceAnalyzer, load_analyzer
from rbv.faces.detection import (
    BatchedFaceDetector,
    FaceDetector,
    Layout,
    batched_detector,
    by_image,
)
from rbv.faces.packs import load_pack
from rbv.faces.providers import CPU, wants_one_shape
from rbv.faces.recognition import normalisation_for, open_recognizer, to_blob
from rbv.faces.sessions import open_session, with_pixels_input
from rbv.faces.types import Face
from rbv.media.types import DecodedImage
from tests.conftest import FACES, MISC, PACK, SHARED

MBF_PACK = SHARED / "models" / "scrfd_mbf128"


def decode(path: Path, reduce: int = 1) -> DecodedImage:
    """Upright RGB pixels of ``path``, optionally shrunk by an integer factor."""
    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im).convert("RGB")
    size = upright.size
    if reduce > 1:
        upright = upright.resize((size[0] // reduce, size[1] // reduce), Image.Resampling.BOX)
    return DecodedImage(image_id=0, path=path, rgb=np.asarray(upright),
                        scale=size[0] / upright.size[0], original_size=size)


def annotated_boxes(name: str) -> list[tuple[float, float, float, float]]:
    with (MISC / "annotations.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["path"] == f"misc/{name}")
    boxes = []
    for part in filter(None, row["face_boxes"].split(";")):
        x1, y1, x2, y2 = map(float, part.split(":")[1].split(","))
        boxes.append((x1, y1, x2, y2))
    return boxes


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def largest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))


@pytest.fixture(scope="module")
def analyzer() -> LocalFaceAnalyzer:
    return load_analyzer(str(PACK), device="cpu")


def test_pack_identity_and_providers(analyzer: LocalFaceAnalyzer) -> None:
    assert analyzer.pack.name == "scrfd_sface"
    assert analyzer.pack.embedding_dim == 128
    assert set(analyzer.pack.files) == {
        "det_500m.onnx", "face_recognition_sface_2021dec_int8bq_ort.onnx"}
    # PROVENANCE.md's published hash of the detector.
    assert analyzer.pack.files["det_500m.onnx"] == (
        "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a")
    assert analyzer.providers == ["CPUExecutionProvider"]
    assert analyzer.decode_long_edge >= 2 * 640


@pytest.mark.parametrize(("name", "expected"), [
    ("insightface_t1.jpg", 6),
    ("fr_two_people.jpg", 2),
    ("fr_obama_and_biden.jpg", 3),  # Biden, Obama, the child; the cut-off person is not
    ("deepface_couple.jpg", 2),
    ("insightface_bulk_view.jpg", 0),
    ("immich_prairie_falcon.jpg", 0),
])
def test_detection_counts_and_boxes(analyzer: LocalFaceAnalyzer, name: str, expected: int
                                    ) -> None:
    image = decode(MISC / name)
    faces = analyzer.analyze(image).faces
    assert len(faces) == expected
    for annotated in annotated_boxes(name):
        assert max(iou(annotated, f.bbox) for f in faces) >= 0.5, annotated
    width, height = image.original_size
    for f in faces:
        assert f.det_score >= 0.5
        assert f.landmarks is not None and f.landmarks.shape == (5, 2)
        x1, y1, x2, y2 = f.bbox
        # The eyes, nose and mouth lie inside the box, and the box inside the photo
        # (give or take a few pixels for faces at the border).
        assert np.all((f.landmarks[:, 0] >= x1) & (f.landmarks[:, 0] <= x2))
        assert np.all((f.landmarks[:, 1] >= y1) & (f.landmarks[:, 1] <= y2))
        assert -5 <= x1 < x2 <= width + 5 and -5 <= y1 < y2 <= height + 5
        assert f.embedding.shape == (128,) and f.embedding.dtype == np.float32
        assert np.linalg.norm(f.embedding) == pytest.approx(1.0, abs=1e-4)
        assert f.blur is not None and f.blur > 0


def test_reduced_decode_maps_back_to_original_pixels(analyzer: LocalFaceAnalyzer) -> None:
    full = analyzer.analyze(decode(MISC / "insightface_t1.jpg")).faces
    half = decode(MISC / "insightface_t1.jpg", reduce=2)
    assert half.scale == pytest.approx(2.0, abs=0.01)
    reduced = analyzer.analyze(half).faces
    assert len(reduced) == len(full) == 6
    for f in reduced:
        match = max(full, key=lambda g: iou(f.bbox, g.bbox))
        assert iou(f.bbox, match.bbox) > 0.85
        assert match.landmarks is not None and f.landmarks is not None
        assert np.abs(match.landmarks - f.landmarks).max() < 8  # px of the original
        assert float(f.embedding @ match.embedding) > 0.8


def test_minimum_face_size_is_in_original_pixels(analyzer: LocalFaceAnalyzer) -> None:
    image = decode(MISC / "insightface_t1.jpg", reduce=2)
    faces = analyzer.analyze(image).faces
    shorts = sorted(min(f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) for f in faces)
    # A threshold between the smallest and the next face drops exactly the smallest,
    # although in the reduced pixels both are below it.
    threshold = int((shorts[0] + shorts[1]) / 2)
    strict = LocalFaceAnalyzer(analyzer.pack, analyzer.detector, analyzer.recognizer,
                               min_face=threshold)
    assert len(strict.analyze(image).faces) == len(faces) - 1


def test_same_person_embeds_closer_than_different_people(analyzer: LocalFaceAnalyzer
                                                         ) -> None:
    photos = {
        "Barack_Obama": ["fr_obama.jpg", "fr_obama1.jpg"],
        "Joe_Biden": ["fr_biden.jpg", "fr_biden2_exif8.jpg"],
        "Angelina_Jolie": ["deepface_img1.jpg", "deepface_img2.jpg"],
        "Scarlett_Johansson": ["deepface_img47.jpg", "deepface_img48.jpg"],
    }
    images = [decode(FACES / person / name) for person, names in photos.items()
              for name in names]
    results = analyzer.analyze_many(images)  # recognition batched across the images
    labelled = [(person, largest(r.faces).embedding)
                for (person, _), r in zip(
                    ((p, n) for p, names in photos.items() for n in names), results,
                    strict=True)]
    same: list[float] = []
    different: list[float] = []
    for (p1, e1), (p2, e2) in itertools.combinations(labelled, 2):
        (same if p1 == p2 else different).append(float(e1 @ e2))
    assert min(same) > max(different)
    assert np.mean(same) - np.mean(different) > 0.3


@pytest.mark.parametrize("batch", [1, 8], ids=["cpu", "across-images"])
def test_analyze_many_equals_analyze(analyzer: LocalFaceAnalyzer, batch: int) -> None:
    engine = LocalFaceAnalyzer(analyzer.pack, analyzer.detector, analyzer.recognizer)
    engine.batch_images = batch  # what a GPU provider sets
    images = [decode(MISC / n) for n in ("fr_two_people.jpg", "insightface_bulk_view.jpg",
                                         "insightface_t1.jpg")]
    many = engine.analyze_many(images)
    for image, together in zip(images, many, strict=True):
        alone = analyzer.analyze(image)
        assert [f.bbox for f in alone.faces] == [f.bbox for f in together.faces]
        for a, b in zip(alone.faces, together.faces, strict=True):
            assert float(a.embedding @ b.embedding) == pytest.approx(1.0, abs=1e-5)


def test_on_a_cpu_each_image_is_recognized_in_its_own_call(
        analyzer: LocalFaceAnalyzer, monkeypatch: pytest.MonkeyPatch) -> None:
    # One call per image costs less CPU per face than a batch across images
    # (scripts/bench/bench_embed.py); embed then hands the inference threads image by image.
    assert analyzer.batch_images == 1
    calls: list[int] = []
    embed = analyzer.recognizer.embed
    monkeypatch.setattr(analyzer.recognizer, "embed",
                        lambda crops: (calls.append(len(crops)), embed(crops))[1])
    images = [decode(MISC / n) for n in ("fr_two_people.jpg", "insightface_t1.jpg")]
    results = analyzer.analyze_many(images)
    assert calls == [len(r.faces) for r in results] == [2, 6]


def test_matches_insightface_on_the_same_pixels(analyzer: LocalFaceAnalyzer) -> None:
    from insightface.app import FaceAnalysis

    reference = FaceAnalysis(name=str(PACK), providers=["CPUExecutionProvider"])
    reference.prepare(ctx_id=-1, det_size=(640, 640))
    image = decode(MISC / "insightface_t1.jpg")
    theirs = reference.get(np.ascontiguousarray(image.rgb[:, :, ::-1]))  # BGR
    ours = analyzer.analyze(image).faces
    assert len(ours) == len(theirs) == 6
    for f in ours:
        match = max(theirs, key=lambda g: iou(f.bbox, tuple(g.bbox)))
        assert np.abs(np.asarray(f.bbox) - match.bbox).max() < 2.0
        assert float(f.embedding @ match.normed_embedding) > 0.98


def test_mobilefacenet_pack_uses_arcface_normalisation() -> None:
    mbf = load_analyzer(str(MBF_PACK), device="cpu")
    assert mbf.pack.embedding_dim == 128
    assert (mbf.recognizer.norm.mean, mbf.recognizer.norm.std) == (127.5, 127.5)
    images = [decode(FACES / "Barack_Obama" / n) for n in ("fr_obama.jpg", "fr_obama1.jpg")]
    images.append(decode(FACES / "Joe_Biden" / "fr_biden.jpg"))
    e = [largest(r.faces).embedding for r in mbf.analyze_many(images)]
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.2


@pytest.mark.parametrize("shape", [(1, 1, 3), (20, 5000, 3), (4000, 12, 3)])
def test_degenerate_images_yield_no_faces_without_error(analyzer: LocalFaceAnalyzer,
                                                        shape: tuple[int, int, int]) -> None:
    pixels = np.full(shape, 200, np.uint8)
    image = DecodedImage(0, Path("x"), pixels, 1.0, (shape[1], shape[0]))
    assert analyzer.analyze(image).faces == []


def test_grey_pixels_are_accepted(analyzer: LocalFaceAnalyzer) -> None:
    image = decode(MISC / "fr_two_people.jpg")
    grey = np.asarray(Image.fromarray(image.rgb).convert("L"))
    faces = analyzer.analyze(DecodedImage(0, image.path, grey, 1.0, image.original_size)).faces
    assert len(faces) == 2


def test_one_analyzer_serves_several_threads(analyzer: LocalFaceAnalyzer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    images = [decode(MISC / n) for n in ("insightface_t1.jpg", "fr_two_people.jpg")] * 3
    alone = [analyzer.analyze(i) for i in images]
    with ThreadPoolExecutor(max_workers=3) as pool:
        together = list(pool.map(analyzer.analyze, images))
    for a, b in zip(alone, together, strict=True):
        assert [f.bbox for f in a.faces] == [f.bbox for f in b.faces]


def test_another_scrfd_detector(tmp_path: Path) -> None:
    # SCRFD-2.5GF (buffalo_m's detector) declares a batch axis on its outputs.
    (tmp_path / "det_2.5g.onnx").symlink_to(SHARED / "models" / "extra" / "det_2.5g.onnx")
    (tmp_path / "rec.onnx").symlink_to(next(PACK.glob("face_recognition_*.onnx")))
    bigger = load_analyzer(str(tmp_path), device="cpu")
    faces = bigger.analyze(decode(MISC / "insightface_t1.jpg")).faces
    assert len(faces) == 6
    assert "det_2.5g.onnx" in bigger.pack.files


def test_a_gpu_provider_gets_one_input_shape_a_cpu_does_not() -> None:
    # CUDA plans each convolution for the shape of the call before (wants_one_shape).
    assert wants_one_shape(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert wants_one_shape(["DmlExecutionProvider", "CPUExecutionProvider"])
    assert not wants_one_shape(["CPUExecutionProvider"])
    assert not wants_one_shape([])
    cpu = load_analyzer(str(PACK), device="cpu")
    assert cpu.detector.fixed_size is None and cpu.recognizer.one_shape is False


def _square(detector: Path) -> FaceDetector:
    """A detector as a GPU provider opens it: the det_size square, one image per call."""
    return FaceDetector(open_session(detector, [CPU]), 640, one_shape=True)


def test_one_input_shape_finds_the_same_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a GPU analyzer runs (square uint8 detector input, full batches of images and
    # of faces), run here on the CPU: each session sees a single shape, and the faces
    # are those of the CPU layout (padding differs only for faces touching it).
    plain = load_analyzer(str(PACK), device="cpu")
    square = _square(PACK / "det_500m.onnx")
    detector = batched_detector(square, PACK / "det_500m.onnx", [CPU])
    assert isinstance(detector, BatchedFaceDetector)
    recognizer = open_recognizer(load_pack(str(PACK)).recognizer, [CPU], one_shape=True)
    assert recognizer.pixels
    shapes: dict[str, set[tuple[tuple[int, ...], str]]] = {"det": set(), "rec": set()}
    for key, session in (("det", detector.session), ("rec", recognizer.session)):
        run = session.run
        monkeypatch.setattr(session, "run", lambda names, feed, _run=run, _key=key: (
            shapes[_key].update((v.shape, v.dtype.name) for v in feed.values()),
            _run(names, feed))[1])
    gpu_like = LocalFaceAnalyzer(plain.pack, detector, recognizer)
    gpu_like.batch_images = detector.max_batch
    names = ("fr_two_people.jpg", "insightface_t1.jpg", "immich_portrait.jpg",
             "deepface_selfie-many-people.jpg", "fr_obama-240p.jpg")
    images = [decode(MISC / n) for n in names]
    assert len({im.rgb.shape[:2] for im in images}) == len(images)  # shapes differ
    faces = 0
    prepared = [gpu_like.prepare(image) for image in images]
    assert all(p.detector_input is not None for p in prepared)
    assert plain.prepare(images[0]) is images[0]  # a CPU cuts nothing beforehand
    for image, found, again in zip(images, gpu_like.analyze_many(images),
                                   gpu_like.analyze_many(prepared), strict=True):
        assert [f.bbox for f in again.faces] == [f.bbox for f in found.faces]
        expected = plain.analyze(image).faces
        assert len(found.faces) == len(expected)
        for f in found.faces:
            match = max(expected, key=lambda g: iou(f.bbox, g.bbox))
            assert np.abs(np.asarray(f.bbox) - match.bbox).max() < 1.5
            assert float(f.embedding @ match.embedding) > 0.98
            faces += 1
    assert faces > 10
    assert shapes == {"det": {((32, 640, 640, 3), "uint8")},
                      "rec": {((32, 112, 112, 3), "uint8")}}


@pytest.mark.parametrize("pack", [PACK, MBF_PACK], ids=["sface-raw-pixels", "mbf-arcface-norm"])
def test_crops_normalised_in_the_graph_embed_as_normalised_on_the_host(
        analyzer: LocalFaceAnalyzer, pack: Path) -> None:
    model = load_pack(str(pack)).recognizer
    norm = normalisation_for(model)
    image = decode(MISC / "deepface_selfie-many-people.jpg")
    crops = analyzer.find_faces(image).crops[:3]
    assert len(crops) == 3
    host = open_session(model.path, [CPU])
    graph = with_pixels_input(onnx.load(str(model.path)), (112, 112), norm.mean,
                              divide=norm.std if norm.std != 1.0 else None)
    device = open_session(graph.SerializeToString(), [CPU])
    for crop in crops:  # one at a time: MobileFaceNet's export takes one face a call
        want = host.run(None, {host.get_inputs()[0].name: to_blob([crop], norm)})[0]
        got = device.run(None, {device.get_inputs()[0].name: crop[None]})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", [
    PACK / "det_500m.onnx",
    pytest.param(SHARED / "models" / "extra" / "det_2.5g.onnx", marks=pytest.mark.slow),
], ids=["500m", "2.5g"])
def test_many_images_per_detector_call_find_what_one_image_a_call_finds(model: Path) -> None:
    # Normalising in the graph and reading each image's rows out of a batched call
    # change nothing: the boxes, scores and landmarks of one image per call, exactly.
    square = _square(model)
    batched = batched_detector(square, model, [CPU])
    assert isinstance(batched, BatchedFaceDetector)
    assert batched.layout is Layout.POSITION_MAJOR  # InsightFace's exports
    rgbs = [decode(MISC / n).rgb for n in ("fr_two_people.jpg", "insightface_t1.jpg",
                                            "deepface_selfie-many-people.jpg")]
    found = batched.detect_many(rgbs, 0.5)
    assert sum(map(len, found)) > 5
    # The inputs cut beforehand (on the decoding threads) give the same faces.
    prepared = batched.detect_many(rgbs, 0.5, [batched.canvas(rgb) for rgb in rgbs])
    for a, b in zip(found, prepared, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
    for rgb, many in zip(rgbs, found, strict=True):
        one = square.detect(rgb, 0.5)
        assert len(one) == len(many)
        np.testing.assert_allclose(many.boxes, one.boxes, atol=1e-3)
        np.testing.assert_allclose(many.scores, one.scores, atol=1e-5)
        np.testing.assert_allclose(many.keypoints, one.keypoints, atol=1e-3)


def test_each_image_s_rows_of_a_batched_output() -> None:
    # 3 images, 2 positions, 2 anchors, K=1: value = 100·image + 10·position + anchor.
    cells = [(b, p, a) for b in range(3) for p in range(2) for a in range(2)]
    batch_major = np.array([[100 * b + 10 * p + a] for b, p, a in cells], np.float32)
    by_position = np.array([[100 * b + 10 * p + a]
                            for p in range(2) for b in range(3) for a in range(2)], np.float32)
    for out, layout in ((batch_major, Layout.BATCH_MAJOR), (by_position, Layout.POSITION_MAJOR)):
        rows = by_image(out, 3, layout, anchors=2)[1]
        np.testing.assert_array_equal(rows[..., 0], [[100, 101], [110, 111]])
