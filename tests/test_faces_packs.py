"""Model packs, providers and sessions: resolving, roles, hashes, clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime
import pytest

from rbv.cli.remedies import in_words
from rbv.config import Settings
from rbv.errors import ConfigError, DeviceUnavailable, ModelPackError, Remedy
from rbv.faces import sessions
from rbv.faces.analyzer import load_analyzer
from rbv.faces.hashing import cached_sha256, sha256_file
from rbv.faces.packs import ModelRole, Shape, classify_model, load_pack
from rbv.faces.providers import (
    Device,
    available_providers,
    choose_providers,
    gpu_ids,
    parse_device,
)
from tests.conftest import FACES, PACK, SHARED, run_cli

DETECTOR = PACK / "det_500m.onnx"
SFACE = PACK / "face_recognition_sface_2021dec_int8bq_ort.onnx"
CPU, CUDA, DML = "CPUExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider"


Offer = Callable[..., None]


@pytest.fixture
def fake_runtime(monkeypatch: pytest.MonkeyPatch) -> Offer:
    """Make the installed onnxruntime report the given providers."""
    def offer(*providers: str) -> None:
        monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(providers))
    return offer


# ----- providers ---------------------------------------------------------------------

def test_auto_prefers_cuda_then_directml_then_cpu(fake_runtime: Offer) -> None:
    fake_runtime("TensorrtExecutionProvider", CUDA, CPU)
    assert choose_providers("auto", available_providers()) == [CUDA, CPU]
    fake_runtime(DML, CPU)
    assert choose_providers("auto", available_providers()) == [DML, CPU]
    fake_runtime("AzureExecutionProvider", CPU)
    assert choose_providers("auto", available_providers()) == [CPU]


def test_explicit_device(fake_runtime: Offer) -> None:
    fake_runtime(CUDA, CPU)
    assert choose_providers("cuda", available_providers()) == [CUDA, CPU]
    assert choose_providers("CPU", available_providers()) == [CPU]


def test_missing_device_says_which_extra_to_install(fake_runtime: Offer) -> None:
    fake_runtime(CPU)
    with pytest.raises(DeviceUnavailable) as err:
        choose_providers("cuda", available_providers())
    assert "--" not in str(err.value) and "rbv " not in str(err.value)
    assert err.value.remedies == (Remedy("install_extra", {"extra": "gpu"}),
                                  Remedy("device", {"devices": ["auto"]}))
    assert in_words(err.value) == (
        "device cuda needs CUDAExecutionProvider, but the installed ONNX Runtime offers "
        "only CPUExecutionProvider; install rbv's gpu extra (`uv sync --extra gpu`, or "
        "`pip install 'rbv[gpu]'`) or use --device auto")
    with pytest.raises(DeviceUnavailable) as err:
        choose_providers("directml", available_providers())
    assert err.value.remedies[0] == Remedy("install_extra", {"extra": "directml"})
    with pytest.raises(ConfigError, match="auto, cuda, directml, cpu"):
        choose_providers("tpu", available_providers())


def test_a_gpu_by_number(fake_runtime: Offer) -> None:
    assert parse_device("cuda") == Device("cuda")
    assert parse_device(" CUDA:1 ") == Device("cuda", (1,))
    assert parse_device("cuda:0,1,1") == Device("cuda", (0, 1))
    assert parse_device("cuda:all") == Device("cuda", every=True)
    assert parse_device("directml:1") == Device("directml", (1,))
    assert gpu_ids(parse_device("cuda:2,0")) == (2, 0)
    assert gpu_ids(parse_device("cuda")) is None
    for bad, says in (("cuda:x", "numbered 0, 1"), ("cuda:", "numbered 0, 1"),
                      ("cpu:1", "only cuda and directml"), ("gpu:1", "unknown device"),
                      ("directml:all", "name the DirectML adapters")):
        with pytest.raises(ConfigError, match=says):
            parse_device(bad)
    fake_runtime(CUDA, CPU)
    assert choose_providers("cuda:1", available_providers()) == [CUDA, CPU]


def test_the_gpu_number_reaches_the_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # ONNX Runtime takes the GPU as the provider's device_id option; a CPU has none.
    seen: list[object] = []

    class Session:
        def __init__(self, source: object, sess_options: object, providers: object) -> None:
            seen.append(providers)

    monkeypatch.setattr(sessions.ort, "InferenceSession", Session)
    monkeypatch.setattr(sessions, "load_cuda_libraries", lambda: None)
    sessions.open_session(DETECTOR, [CUDA, CPU], device_id=1)
    sessions.open_session(DETECTOR, [CUDA, CPU])
    sessions.open_session(DETECTOR, [CPU], device_id=1)
    assert seen == [[(CUDA, {"device_id": "1"}), CPU], [CUDA, CPU], [CPU]]


def test_several_gpus_share_a_run_s_inference_threads() -> None:
    # One analyzer per GPU (here two CPU analyzers stand for them): each calling thread
    # keeps to one, dealt out in turn, and the faces are those of one analyzer.
    import threading

    import numpy as np

    from rbv.faces.analyzer import DeviceSet
    from tests.test_faces import decode

    one, two = (load_analyzer(str(PACK), device="cpu", threads=1) for _ in range(2))
    both = DeviceSet([one, two])
    assert both.providers == [CPU, CPU] and both.batch_images == 1
    image = decode(SHARED / "data" / "misc" / "fr_two_people.jpg")
    alone = one.analyze(image).faces
    results: dict[int, list[object]] = {}
    start = threading.Barrier(4)

    def work(k: int) -> None:
        start.wait()  # all four threads are dealt a GPU before any call returns
        results[k] = [both.analyze(image).faces for _ in range(3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert both.calls == [6, 6]
    for faces in (f for runs in results.values() for f in runs):
        assert [f.bbox for f in faces] == [f.bbox for f in alone]
        assert all(float(np.dot(a.embedding, b.embedding)) > 0.9999
                   for a, b in zip(faces, alone, strict=True))


def test_gpu_that_fails_to_start_is_not_silently_replaced_by_cpu(fake_runtime: Offer) -> None:
    # The runtime claims CUDA, but this CPU build cannot start it: ONNX Runtime would
    # quietly run on CPU; an explicit --device cuda must fail instead.
    fake_runtime(CUDA, CPU)
    with pytest.raises(DeviceUnavailable, match="could not start") as err:
        load_analyzer(str(PACK), device="cuda")
    assert "--" not in str(err.value)
    assert in_words(err.value).endswith(
        "(are the CUDA 13/cuDNN 9 or DirectML runtime libraries installed?); install rbv's "
        "gpu extra (`uv sync --extra gpu`, or `pip install 'rbv[gpu]'`) or use --device cpu "
        "or --device auto")
    # auto accepts the fallback and reports what actually runs.
    assert load_analyzer(str(PACK), device="auto").providers == [CPU]


def test_cuda_libraries_are_loaded_once_and_their_complaints_go_to_stderr(
        fake_runtime: Offer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The gpu extra installs CUDA/cuDNN as nvidia-* wheels, off the loader's path:
    # ONNX Runtime's preload_dlls loads them, and says what it cannot with print(),
    # which must not land in a --json document on stdout.
    calls: list[int] = []

    def preload() -> None:
        calls.append(1)
        print("Failed to load libcudnn.so.9: not found")

    monkeypatch.setattr(onnxruntime, "preload_dlls", preload, raising=False)
    sessions.load_cuda_libraries.cache_clear()
    fake_runtime(CPU)
    load_analyzer(str(PACK), device="cpu")
    assert calls == []
    fake_runtime(CUDA, CPU)
    for _ in range(2):
        with pytest.raises(DeviceUnavailable):
            load_analyzer(str(PACK), device="cuda")
    assert calls == [1]
    out, err = capsys.readouterr()
    assert out == "" and "Failed to load libcudnn.so.9" in err
    sessions.load_cuda_libraries.cache_clear()


# ----- roles -------------------------------------------------------------------------

@pytest.mark.parametrize(("inp", "outs", "role"), [
    ((1, 3, "?", "?"), [(12800, 1)] * 3 + [(12800, 4)] * 3 + [(12800, 10)] * 3,
     ModelRole.DETECTOR),
    ((1, 3, 640, 640), [(1, 12800, 1)] * 15, ModelRole.DETECTOR),
    (("None", 3, 112, 112), [("None", 512)], ModelRole.RECOGNIZER),  # w600k_r50
    ((1, 3, 192, 192), [(1, 212)], ModelRole.LANDMARK_2D106),
    ((1, 3, 192, 192), [(1, 3309)], ModelRole.LANDMARK_3D68),
    ((1, 3, 96, 96), [(1, 3)], ModelRole.GENDER_AGE),
    ((1, 3, 128, 128), [(1, 3, 128, 128)], None),  # inswapper-like: not a role rbv uses
    ((1, 10), [(1, 2)], None),
])
def test_roles_from_documented_shapes(inp: Shape, outs: list[Shape], role: ModelRole | None
                                      ) -> None:
    assert classify_model(inp, outs) is role


def test_real_packs_roles_and_widths() -> None:
    pack = load_pack(str(PACK))
    assert pack.detector.path == DETECTOR
    assert pack.recognizer.path == SFACE
    assert pack.recognizer.graph_normalises_input  # SFace: raw 0–255 pixels
    assert pack.embedding_dim == 128
    mbf = load_pack(str(SHARED / "models" / "scrfd_mbf128"))
    assert not mbf.recognizer.graph_normalises_input  # (x - 127.5) / 127.5
    assert mbf.embedding_dim == 128
    assert mbf.info.files["det_500m.onnx"] == pack.info.files["det_500m.onnx"]


# ----- bad packs ---------------------------------------------------------------------

def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelPackError, match="does not exist"):
        load_pack(str(tmp_path / "nope"))


def test_pack_without_recognizer(tmp_path: Path) -> None:
    (tmp_path / "det_500m.onnx").symlink_to(DETECTOR)
    with pytest.raises(ModelPackError, match="no face recognizer"):
        load_pack(str(tmp_path))


def test_pack_without_detector(tmp_path: Path) -> None:
    (tmp_path / "rec.onnx").symlink_to(SFACE)
    with pytest.raises(ModelPackError, match="no face detector"):
        load_pack(str(tmp_path))


def test_detector_without_keypoints_is_refused(tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(DETECTOR))
    del model.graph.output[6:]  # keep scores and boxes, drop the keypoint heads
    onnx.save(model, str(tmp_path / "det.onnx"))
    (tmp_path / "rec.onnx").symlink_to(SFACE)
    with pytest.raises(ModelPackError, match="no keypoints"):
        load_pack(str(tmp_path))


def test_two_detectors_are_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").symlink_to(DETECTOR)
    (tmp_path / "b.onnx").symlink_to(SHARED / "models" / "extra" / "det_2.5g.onnx")
    (tmp_path / "rec.onnx").symlink_to(SFACE)
    with pytest.raises(ModelPackError, match="two detector models"):
        load_pack(str(tmp_path))


def test_corrupt_onnx(tmp_path: Path) -> None:
    (tmp_path / "det_500m.onnx").write_bytes(DETECTOR.read_bytes()[:50_000])
    with pytest.raises(ModelPackError, match="not a readable ONNX model"):
        load_pack(str(tmp_path))


def test_unknown_name_goes_through_insightface_download_and_says_where_to_put_it(
        tmp_path: Path) -> None:
    # No internet here: insightface's own download fails; the error names the folder.
    with pytest.raises(ModelPackError) as err:
        load_pack("rbv_no_such_pack", insightface_root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "models" / "rbv_no_such_pack") in message
    assert "rbv_no_such_pack.zip" in message and "--" not in message
    assert err.value.remedies == (Remedy("pack_folder"),)  # the CLI names the option
    assert not (tmp_path / "models" / "rbv_no_such_pack").exists()


def test_named_pack_under_the_insightface_root(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "mine"
    folder.mkdir(parents=True)
    for f in (DETECTOR, SFACE):
        (folder / f.name).symlink_to(f)
    pack = load_pack("mine", insightface_root=tmp_path)
    assert pack.name == "mine" and pack.path == folder


def test_bad_analyzer_options() -> None:
    """Each names its setting in words, and by keyword for a front end to word."""
    bad: list[tuple[dict[str, Any], str, str | None]] = [
        ({"det_size": 500}, "the detection size must be a positive multiple of 32, not 500",
         "det_size"),
        ({"det_threshold": 1.5}, "the detection threshold must be between 0 and 1, not 1.5",
         "det_threshold"),
        ({"min_face": -1}, "the smallest face must be ≥ 0 pixels, not -1", "min_face"),
        ({"threads": 0}, "the threads per session must be ≥ 1, not 0", None),
        ({"device": "cuda:0,1"}, "device cuda:0,1: one analyzer runs on one GPU", "device"),
        ({"device": "cpu:1"}, "device cpu:1: only cuda and directml take GPU numbers",
         "device")]
    for kwargs, says, setting in bad:
        with pytest.raises(ConfigError) as err:
            load_analyzer(str(PACK), **kwargs)
        assert str(err.value).startswith(says) and err.value.setting == setting, kwargs
        assert "--" not in str(err.value)


def test_a_bad_analyzer_setting_is_named_as_what_sets_it(cli, settings: Settings,
                                                         tmp_path: Path) -> None:
    """Through the CLI: the option (or the environment variable) that sets it."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(next((FACES / "Barack_Obama").iterdir()).read_bytes())
    url = str(settings.database_url)
    size = run_cli(cli, "-d", url, "index", str(photos), "--model-pack", str(PACK),
                   env={"RBV_DET_SIZE": "100"})
    assert size.exit_code == 1
    assert size.stderr == ("Error: the detection size must be a positive multiple of 32, "
                           "not 100 (RBV_DET_SIZE)\n")
    device = run_cli(cli, "-d", url, "index", str(photos), "--model-pack", str(PACK),
                     "--device", "cpu:1")
    assert device.exit_code == 1
    assert device.stderr == ("Error: device cpu:1: only cuda and directml take GPU numbers "
                             "(cuda:1, cuda:0,1 or cuda:all) (--device)\n")


# ----- hashes ------------------------------------------------------------------------

def test_hash_cache_survives_processes_and_notices_changes(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    cache = tmp_path / "cache" / "hashes.json"
    assert cached_sha256(model, cache) == sha256_file(model)
    assert cache.exists()
    # A changed file (size and mtime differ) is re-hashed, not served from the cache.
    model.write_bytes(b"two!")
    assert cached_sha256(model, cache) == sha256_file(model)
    # A corrupt cache is ignored, never an error.
    cache.write_text("{not json")
    model.write_bytes(b"three")
    assert cached_sha256(model, cache) == sha256_file(model)


@pytest.mark.parametrize(("offered", "device", "ml_uri", "cores", "workers"), [
    (["CPUExecutionProvider"], "auto", None, 16, 16),  # the CPU: one per core
    (["CPUExecutionProvider"], "auto", None, 64, 16),  # at most 16
    (["CPUExecutionProvider"], "auto", None, 2, 2),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "auto", None, 16, 4),  # a GPU
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda", None, 2, 2),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu", None, 16, 16),
    (["CPUExecutionProvider"], "cuda", None, 16, 16),  # unavailable: said at loading
    (["CPUExecutionProvider"], "auto", "http://ml:3003", 16, 4),  # a remote server
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda:0,1", None, 16, 8),  # 4 a GPU
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda:1", None, 16, 4),
])
def test_inference_workers_default_to_the_cores_on_a_cpu_and_four_on_a_gpu(
    offered: list[str], device: str, ml_uri: str | None, cores: int, workers: int,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Measured on a 16-core machine with an H200: on the CPU 16 workers ran 183
    images/s against 124 with 4; on the GPU 4 ran 304, 16 ran 251. A number the user
    gives stays."""
    import rbv.faces.providers as providers
    import rbv.faces.sessions as sessions
    from rbv.config import Settings
    from rbv.jobs.library.analyzer import with_inference_workers

    monkeypatch.setattr(providers.ort, "get_available_providers", lambda: offered)
    monkeypatch.setattr(sessions, "default_threads", lambda: cores)
    chosen = Settings(device=device, ml_uri=ml_uri)
    assert with_inference_workers(chosen).inference_workers == workers
    mine = chosen.with_overrides(inference_workers=7)
    assert with_inference_workers(mine).inference_workers == 7
