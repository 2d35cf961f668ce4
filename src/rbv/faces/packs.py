"""Model packs: a folder in InsightFace's layout, resolved by name or path.

A pack holds ONNX files whose roles are not named anywhere: like InsightFace's
``model_zoo`` router, rbv tells them apart by their documented input/output shapes
(see :func:`classify_model`). Only the detector and the recognizer decide what a face
row contains, so only they make up the pack's identity (:class:`PackInfo`); landmark,
gender/age and attribute models are found for ``index`` and ``enrich`` but never change
the fingerprint.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import onnx

from rbv.errors import ModelPackError, Remedy
from rbv.faces.attributes import is_attribute_model
from rbv.faces.hashing import cached_sha256
from rbv.faces.types import PackInfo

DEFAULT_INSIGHTFACE_ROOT = Path("~/.insightface")
"""InsightFace's own cache root; named packs live in ``<root>/models/<name>/``."""

MODEL_ZOO_URL = "https://github.com/deepinsight/insightface/releases/download/model-zoo/"

Dim = int | str | None  # a concrete size, a symbolic name, or unknown
Shape = tuple[Dim, ...]


class ModelRole(StrEnum):
    DETECTOR = "detector"
    RECOGNIZER = "recognizer"
    LANDMARK_2D106 = "landmark_2d106"
    LANDMARK_3D68 = "landmark_3d68"
    GENDER_AGE = "genderage"
    ATTRIBUTES = "attributes"  # an age and gender model (rbv.faces.attributes)


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file of a pack and what it was recognised as."""

    path: Path
    role: ModelRole
    input_shape: Shape
    output_shapes: tuple[Shape, ...]
    graph_normalises_input: bool  # recognizers: Sub+Mul at the graph's start


@dataclass(frozen=True)
class ModelPack:
    """A resolved pack: where it is, its models by role, and its identity."""

    name: str
    path: Path
    models: dict[ModelRole, ModelFile]
    info: PackInfo

    @property
    def detector(self) -> ModelFile:
        return self.models[ModelRole.DETECTOR]

    @property
    def recognizer(self) -> ModelFile:
        return self.models[ModelRole.RECOGNIZER]

    @property
    def embedding_dim(self) -> int:
        return self.info.embedding_dim


# ----- roles from shapes (pure) ------------------------------------------------------

SCRFD_OUTPUT_COUNTS = (6, 9, 10, 15)
"""SCRFD: scores/boxes(/keypoints) for 3 strides × 2 anchors (6, 9) or 5 strides × 1
anchor (10, 15); 9 and 15 include the 5 keypoints rbv needs for alignment."""


def classify_model(input_shape: Shape, output_shapes: Sequence[Shape]) -> ModelRole | None:
    """The role of an ONNX model from its documented I/O shapes, or None if unknown.

    - SCRFD detector: one NCHW image input (dynamic, or 640×640 etc.), 6/9/10/15 outputs.
    - 2d106det: 1×3×192×192 in, 1×212 out (106 2-D points); 1k3d68: 192×192 in,
      1×3309 out (68 3-D points + pose parameters).
    - genderage: 1×3×96×96 in, 1×3 out.
    - ArcFace-style recognizer: square input of ≥112 px divisible by 16 (112×112 for
      every InsightFace and SFace model), a single N×D output (D = embedding width).
    """
    if len(input_shape) != 4:  # every role takes one NCHW image batch
        return None
    height, width = input_shape[2], input_shape[3]
    if len(output_shapes) in SCRFD_OUTPUT_COUNTS:
        return ModelRole.DETECTOR
    if len(output_shapes) != 1 or not isinstance(height, int) or height != width:
        return None
    out = output_shapes[0]
    out_width = out[-1] if out else None
    if height == 192:
        if out_width == 3309:
            return ModelRole.LANDMARK_3D68
        return ModelRole.LANDMARK_2D106 if out_width == 212 else None
    if height == 96:
        return ModelRole.GENDER_AGE if out_width == 3 else None
    if height >= 112 and height % 16 == 0 and len(out) == 2:
        return ModelRole.RECOGNIZER
    return None


def detector_has_keypoints(detector: ModelFile) -> bool:
    """SCRFD exports with 9 or 15 outputs predict the 5 landmarks."""
    return len(detector.output_shapes) in (9, 15)


# ----- reading files -----------------------------------------------------------------

def _shape(value: onnx.ValueInfoProto) -> Shape:
    dims: list[Dim] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def _graph_normalises_input(model: onnx.ModelProto) -> bool:
    # InsightFace's ArcFaceONNX rule: MXNet-exported recognizers (and SFace) begin with
    # Sub and Mul nodes that do (x - mean) * scale themselves, so they take raw 0–255
    # pixels; PyTorch exports (buffalo_l's w600k_r50) begin with a Conv and expect
    # (x - 127.5) / 127.5 from the caller. Names and op types are both checked
    # because converters name nodes differently.
    head = model.graph.node[:8]
    has_sub = any(n.op_type == "Sub" or n.name.startswith(("Sub", "_minus")) for n in head)
    has_mul = any(n.op_type == "Mul" or n.name.startswith(("Mul", "_mul")) for n in head)
    return has_sub and has_mul


def read_model_file(path: Path) -> ModelFile | None:
    """Read an ONNX file's graph and classify it; None if its role is unknown.

    Raises :class:`ModelPackError` when the file is not a readable ONNX model.
    """
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...: all mean "unusable"
        raise ModelPackError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
            "it may be a truncated download: delete it and fetch the pack again"
        ) from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs or not model.graph.output:
        return None
    input_shape = _shape(inputs[0])
    output_shapes = tuple(_shape(o) for o in model.graph.output)
    named = {o.name: shape for o, shape in zip(model.graph.output, output_shapes, strict=True)}
    # The attribute model takes NHWC pixels and is told by its outputs' names (its
    # shapes alone would say nothing: a 100-bin and a 1-value output).
    role = (ModelRole.ATTRIBUTES if is_attribute_model(input_shape, named)
            else classify_model(input_shape, output_shapes))
    if role is None:
        return None
    return ModelFile(
        path=path,
        role=role,
        input_shape=input_shape,
        output_shapes=output_shapes,
        graph_normalises_input=role is ModelRole.RECOGNIZER and _graph_normalises_input(model),
    )


# ----- resolving a pack --------------------------------------------------------------

def _looks_like_path(pack: str) -> bool:
    return any(sep in pack for sep in ("/", "\\")) or pack.startswith((".", "~"))


def resolve_pack_dir(pack: str, insightface_root: Path = DEFAULT_INSIGHTFACE_ROOT, *,
                     download: bool = True) -> Path:
    """The folder of ``pack`` (a path, or a name under ``<root>/models/``).

    A name that is not there yet goes through InsightFace's own download
    (``insightface.utils.storage.ensure_available``) when ``download`` is set; when that
    fails (offline), the error says where to put the pack by hand.
    """
    if not pack.strip():
        raise ModelPackError("empty model pack name", remedies=[Remedy("model_pack")])
    candidate = Path(pack).expanduser()
    if _looks_like_path(pack) or candidate.is_dir():
        if not candidate.is_dir():
            raise ModelPackError(
                f"model pack folder {candidate} does not exist (a pack is a folder holding "
                "the detector and recognizer .onnx files, or a pack's name)",
                remedies=[Remedy("model_pack")])
        # Absolute, as given: a symlinked folder keeps its own path (and name).
        return Path(os.path.abspath(candidate))
    root = insightface_root.expanduser()
    folder = root / "models" / pack
    if folder.is_dir():
        return folder
    if not download:
        raise ModelPackError(f"model pack {pack!r} is not in {root / 'models'}")
    return _download(pack, root, folder)


REACH_SECONDS = 5.0
"""How long a missing pack's download waits to reach the model zoo before saying it is
offline (InsightFace's own download waits on the system's resolver, 20-30 s)."""


def _download(name: str, root: Path, folder: Path) -> Path:
    from insightface.utils.storage import ensure_available

    host = urllib.parse.urlsplit(MODEL_ZOO_URL).hostname or ""
    try:
        _reach(host)
        # InsightFace prints where it downloads to on stdout: not rbv's to say (and stdout
        # may be --json); its progress bar stays on stderr.
        with contextlib.redirect_stdout(io.StringIO()):
            return Path(ensure_available("models", name, root=str(root)))
    except Exception as exc:  # DNS/requests/zip/OS errors: the download did not happen
        with contextlib.suppress(OSError):
            folder.rmdir()  # an empty folder left behind would look like a broken pack
        raise ModelPackError(
            f"model pack {name!r} is not in {root / 'models'} and could not be downloaded "
            f"({_why(exc, host)}); unzip {MODEL_ZOO_URL}{name}.zip into {folder}/",
            remedies=[Remedy("pack_folder")]) from None


def _reach(host: str) -> None:
    """Raise :class:`TimeoutError` or :class:`OSError` unless a TCP connection to
    ``host``:443 opens within :data:`REACH_SECONDS` (name lookup included)."""
    done: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=REACH_SECONDS).close()
            done.append(None)
        except OSError as exc:
            done.append(exc)

    worker = threading.Thread(target=connect, daemon=True)  # getaddrinfo has no timeout
    worker.start()
    worker.join(REACH_SECONDS)
    if not done:
        raise TimeoutError
    if done[0] is not None:
        raise done[0]


def _why(exc: BaseException, host: str) -> str:
    """Why a download failed, in a few words (no library's exception repr)."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{host} did not answer within {REACH_SECONDS:g} s"
    if isinstance(exc, socket.gaierror) or "NameResolution" in repr(exc):
        return f"{host} cannot be found: offline?"
    if isinstance(exc, ConnectionError) or type(exc).__name__ == "ConnectionError":
        return f"{host} cannot be reached: offline?"
    if isinstance(exc, RuntimeError) and "Failed downloading" in str(exc):
        return "the model zoo has no such pack"
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_pack(
    pack: str,
    *,
    insightface_root: Path = DEFAULT_INSIGHTFACE_ROOT,
    hash_cache: Path | None = None,
    download: bool = True,
) -> ModelPack:
    """Resolve ``pack``, classify its ONNX files and hash the detector and recognizer.

    Raises :class:`ModelPackError` for a missing folder, a corrupt file, a pack without
    a keypoint detector or recognizer, or a pack with two models of the same role.
    """
    folder = resolve_pack_dir(pack, insightface_root, download=download)
    files = sorted(p for p in folder.glob("*.onnx") if p.is_file())
    if not files:
        raise ModelPackError(
            f"model pack folder {folder} holds no .onnx files; put a SCRFD detector and "
            "an ArcFace-style recognizer there (InsightFace layout, e.g. buffalo_l)"
        )
    models: dict[ModelRole, ModelFile] = {}
    for path in files:
        model = read_model_file(path)
        if model is None:
            continue  # e.g. inswapper: not a role rbv uses
        if model.role in models:
            raise ModelPackError(
                f"model pack {folder} has two {model.role.value} models "
                f"({models[model.role].path.name}, {path.name}); keep one"
            )
        models[model.role] = model
    detector = models.get(ModelRole.DETECTOR)
    recognizer = models.get(ModelRole.RECOGNIZER)
    if detector is None:
        raise ModelPackError(
            f"model pack {folder} has no face detector (a SCRFD .onnx with 9 or 15 "
            "outputs, e.g. det_10g.onnx or det_500m.onnx)"
        )
    if not detector_has_keypoints(detector):
        raise ModelPackError(
            f"detector {detector.path} predicts no keypoints; rbv aligns faces on the 5 "
            "landmarks, so use a SCRFD *_kps export (9 or 15 outputs)"
        )
    if recognizer is None:
        raise ModelPackError(
            f"model pack {folder} has no face recognizer (an ArcFace-style .onnx taking "
            "1×3×112×112, e.g. w600k_r50.onnx)"
        )
    dim = recognizer.output_shapes[0][-1]
    if not isinstance(dim, int) or dim <= 0:
        raise ModelPackError(
            f"recognizer {recognizer.path} does not declare its embedding width "
            f"(output shape {recognizer.output_shapes[0]})"
        )
    info = PackInfo(
        name=folder.name,
        files={m.path.name: cached_sha256(m.path, hash_cache) for m in (detector, recognizer)},
        embedding_dim=dim,
        folder=folder.resolve(),
    )
    return ModelPack(name=folder.name, path=folder, models=models, info=info)
