"""Building the face analyzer a run uses, from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rbv.config import DEFAULT_MODEL_PACK, Settings
from rbv.errors import ModelPackError
from rbv.faces.types import FaceAnalyzer, PackInfo
from rbv.store import Database
from rbv.store.queries.pack_lookup import find_pack, pack_folders

if TYPE_CHECKING:
    from rbv.faces.attributes import AttributeModel
    from rbv.faces.landmarks import LandmarkModel
    from rbv.faces.packs import ModelRole

GPU_WORKERS = 4
"""Inference workers per GPU (or per remote server) when the user does not choose.
Measured on an NVIDIA H100 with 16 cores (4,752 photos, ``scripts/bench/bench_device.py
--variants 72 -j 16``), 32 images a detector call: 2 workers 510 images/s, 4 655-665,
8 672-697 (within the runs' spread); on an H200 with one image a call: 1 worker 179,
4 304, 8 292-307, 16 251."""
CPU_WORKERS_MAX = 16
"""On the CPU: one worker per core, up to this many. Measured on that machine's 16
cores: 4 workers 124 images/s, 16 183 (the whole run 23.2 s against 17.1 s); on 2 cores
2 × 1-thread sessions beat 1 × 2 threads by 10-50 %."""


def with_library_pack(settings: Settings, db: Database, named: str | None = None) -> Settings:
    """``settings`` with the model pack a run's models come from, the first of: the one
    ``--model-pack`` or ``RBV_MODEL_PACK`` named; the one ``named`` (by a manifest); the
    library's only pack; :data:`DEFAULT_MODEL_PACK` in a library that has none. A pack
    of the library is loaded from the folder it last ran from where that folder is here
    (else by name, from ~/.insightface/models; a remote server's ``remote:M@host`` by
    its model name M). Several packs and none named: find_pack's error listing them.
    """
    if settings.model_pack is not None:
        return settings
    with db.connect() as conn:
        folders = pack_folders(conn)
        if named is None:  # the only pack (else the error that lists them), or the default
            named = find_pack(conn, None).name if folders else DEFAULT_MODEL_PACK
    folder = folders.get(named)
    if folder is not None and Path(folder).is_dir():
        return settings.with_overrides(model_pack=folder)
    if named.startswith("remote:"):
        named = named.removeprefix("remote:").rsplit("@", 1)[0]
    return settings.with_overrides(model_pack=named)


def _pack(settings: Settings) -> str:
    """The pack to load: a command resolves it first (:func:`with_library_pack`);
    settings built in code without one get the default."""
    return settings.model_pack or DEFAULT_MODEL_PACK


def with_inference_workers(settings: Settings) -> Settings:
    """``settings`` with ``inference_workers`` 0 (auto) resolved: on the CPU one per core
    (at most :data:`CPU_WORKERS_MAX`), on a GPU :data:`GPU_WORKERS`, with remote servers
    :data:`GPU_WORKERS` per server (at most one per core). Independent single-threaded
    sessions scale better than one session whose intra-op threads wait for each other
    at every step."""
    if settings.inference_workers > 0:
        return settings
    from rbv.faces.sessions import default_threads

    gpus = len(settings.ml_uri) if settings.ml_uri else _gpus(settings.device)
    most = GPU_WORKERS * gpus if gpus else CPU_WORKERS_MAX  # a remote server fed as a GPU
    return settings.with_overrides(inference_workers=max(1, min(default_threads(), most)))


def session_threads(settings: Settings) -> int:
    """Intra-op threads of each model session a run opens for ``settings.
    inference_workers`` calling threads: every CPU for one worker, else the CPUs shared
    out among the workers (1 each with the CPU's default, one worker per core)."""
    from rbv.faces.sessions import default_threads

    workers = max(1, settings.inference_workers)
    return default_threads() if workers == 1 else max(1, default_threads() // workers)


def _gpus(device: str) -> int:
    """How many GPUs ``device`` resolves to on this ONNX Runtime build, 0 for the CPU
    (a device that is unavailable is reported when the analyzer loads)."""
    from rbv.errors import RbvError
    from rbv.faces.providers import (
        CPU,
        available_providers,
        choose_providers,
        gpu_ids,
        parse_device,
    )

    try:
        if choose_providers(device, available_providers())[0] == CPU:
            return 0
        ids = gpu_ids(parse_device(device))
    except RbvError:
        return 0
    return 1 if ids is None else len(ids)


def _hash_cache(settings: Settings) -> Path | None:
    # Settings built in code may leave data_dir unset ("."): no cache file then.
    return settings.data_dir / "model-hashes.json" if settings.data_dir != Path() else None


def load_face_analyzer(settings: Settings) -> FaceAnalyzer:
    """The local ONNX Runtime analyzer for ``settings.model_pack`` on ``settings.device``,
    its sessions' threads sized for ``settings.inference_workers`` concurrent callers
    (or, with ``settings.ml_uri``, the remote servers' analyzer for that model).

    Model file hashes are remembered in the data directory, so a run does not re-hash
    the pack. Raises the face engine's errors (pack missing, device unavailable).
    """
    if settings.ml_uri:  # remote Immich-ML servers do the work
        from rbv.mlapi.pool import remote_analyzer

        return remote_analyzer(settings)
    from rbv.faces.analyzer import DeviceSet, load_analyzer  # heavy: only when embedding
    from rbv.faces.providers import gpu_ids, parse_device

    threads = session_threads(settings)
    device = parse_device(settings.device)
    ids = gpu_ids(device)
    each = [settings.device] if ids is None else [f"{device.kind}:{i}" for i in ids]
    analyzers = [load_analyzer(
        _pack(settings), device=one, det_size=settings.det_size,
        det_threshold=settings.det_threshold, min_face=settings.min_face, threads=threads,
        hash_cache=_hash_cache(settings),
    ) for one in each]
    return analyzers[0] if len(analyzers) == 1 else DeviceSet(analyzers)


def describe_analyzer(analyzer: FaceAnalyzer) -> str:
    """The line a run prints first: the pack, where it runs, how many images a call."""
    where = ", ".join(analyzer.providers) or "unknown provider"
    many = f"; {analyzer.batch_images} images a call" if analyzer.batch_images > 1 else ""
    return f"Model pack {analyzer.pack.name} on {where}{many}"


def load_pack_info(settings: Settings) -> PackInfo:
    """The identity of ``settings.model_pack`` (files and hashes) without opening any
    model session: enough to tell which images it has scanned."""
    from rbv.faces.packs import load_pack

    return load_pack(_pack(settings), hash_cache=_hash_cache(settings)).info


def load_landmark_models(settings: Settings) -> dict[ModelRole, LandmarkModel]:
    """The 2d106/3d68 landmark models of ``settings.model_pack`` on ``settings.device``,
    where the pack is a folder here and has them (none otherwise: a pack known only by
    name to the database, or a remote server's model)."""
    from rbv.faces.landmarks import LandmarkModel
    from rbv.faces.packs import ModelRole, load_pack
    from rbv.faces.providers import available_providers, choose_providers, gpu_ids, parse_device
    from rbv.faces.sessions import open_session

    if settings.ml_uri:
        return {}
    try:
        pack = load_pack(_pack(settings), hash_cache=_hash_cache(settings), download=False)
    except ModelPackError:
        return {}
    providers = choose_providers(settings.device, available_providers())
    ids = gpu_ids(parse_device(settings.device))
    out: dict[ModelRole, LandmarkModel] = {}
    for role, points in ((ModelRole.LANDMARK_2D106, 106), (ModelRole.LANDMARK_3D68, 68)):
        model = pack.models.get(role)
        if model is not None:
            session = open_session(model.path, providers, name=str(model.path),
                                   device_id=None if ids is None else ids[0])
            out[role] = LandmarkModel(session, points, model.graph_normalises_input)
    return out


def load_attribute_model(settings: Settings) -> AttributeModel | None:
    """The age and gender model a run estimates faces with: ``settings.attribute_model``
    (an option or ``RBV_ATTRIBUTE_MODEL``), else the one in the pack's folder here; None
    where neither is. Raises ConfigError for a file that is not such a model."""
    from rbv.faces.attributes import open_attribute_model
    from rbv.faces.hashing import cached_sha256
    from rbv.faces.packs import ModelRole, load_pack
    from rbv.faces.providers import available_providers, choose_providers, gpu_ids, parse_device

    path = settings.attribute_model
    if path is None and not settings.ml_uri:
        try:
            pack = load_pack(_pack(settings), hash_cache=_hash_cache(settings), download=False)
        except ModelPackError:
            return None
        part = pack.models.get(ModelRole.ATTRIBUTES)
        path = None if part is None else part.path
    if path is None:
        return None
    path = path.expanduser()
    providers = choose_providers(settings.device, available_providers())
    ids = gpu_ids(parse_device(settings.device))
    sha256 = cached_sha256(path, _hash_cache(settings)) if path.is_file() else ""
    return open_attribute_model(path, providers, threads=session_threads(settings),
                                device_id=None if ids is None else ids[0], sha256=sha256)
