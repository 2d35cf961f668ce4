"""Building the face analyzer a run uses, from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rbv.config import Settings
from rbv.errors import ModelPackError
from rbv.faces.types import FaceAnalyzer, PackInfo

if TYPE_CHECKING:
    from rbv.faces.landmarks import LandmarkModel
    from rbv.faces.packs import ModelRole

_MAX_AUTO_WORKERS = 4


def with_inference_workers(settings: Settings) -> Settings:
    """``settings`` with ``inference_workers`` 0 (auto) resolved: one per CPU core, at
    most 4. Independent single-threaded sessions scale better on few cores than one
    session whose intra-op threads wait for each other at every step."""
    if settings.inference_workers > 0:
        return settings
    from rbv.faces.sessions import default_threads

    return settings.with_overrides(
        inference_workers=max(1, min(default_threads(), _MAX_AUTO_WORKERS)))


def _hash_cache(settings: Settings) -> Path | None:
    # Settings built in code may leave data_dir unset ("."): no cache file then.
    return settings.data_dir / "model-hashes.json" if settings.data_dir != Path() else None


def load_face_analyzer(settings: Settings) -> FaceAnalyzer:
    """The local ONNX Runtime analyzer for ``settings.model_pack`` on ``settings.device``,
    its sessions' threads sized for ``settings.inference_workers`` concurrent callers
    (or, with ``settings.ml_uri``, the remote server's analyzer for that model).

    Model file hashes are remembered in the data directory, so a run does not re-hash
    the pack. Raises the face engine's errors (pack missing, device unavailable).
    """
    if settings.ml_uri:  # a remote Immich-ML server does the work
        from rbv.mlapi.client import remote_analyzer

        return remote_analyzer(settings)
    from rbv.faces.analyzer import load_analyzer  # heavy import: only when embedding
    from rbv.faces.sessions import default_threads

    workers = max(1, settings.inference_workers)
    threads = None if workers == 1 else max(1, default_threads() // workers)
    analyzer: FaceAnalyzer = load_analyzer(
        settings.model_pack, device=settings.device, det_size=settings.det_size,
        det_threshold=settings.det_threshold, min_face=settings.min_face, threads=threads,
        hash_cache=_hash_cache(settings),
    )
    return analyzer


def load_pack_info(settings: Settings) -> PackInfo:
    """The identity of ``settings.model_pack`` (files and hashes) without opening any
    model session: enough to tell which images it has scanned."""
    from rbv.faces.packs import load_pack

    return load_pack(settings.model_pack, hash_cache=_hash_cache(settings)).info


def load_landmark_models(settings: Settings) -> dict[ModelRole, LandmarkModel]:
    """The 2d106/3d68 landmark models of ``settings.model_pack`` on ``settings.device``,
    where the pack is a folder here and has them (none otherwise: a pack known only by
    name to the database, or a remote server's model)."""
    from rbv.faces.landmarks import LandmarkModel
    from rbv.faces.packs import ModelRole, load_pack
    from rbv.faces.providers import available_providers, choose_providers
    from rbv.faces.sessions import open_session

    if settings.ml_uri:
        return {}
    try:
        pack = load_pack(settings.model_pack, hash_cache=_hash_cache(settings), download=False)
    except ModelPackError:
        return {}
    providers = choose_providers(settings.device.strip().lower(), available_providers())
    out: dict[ModelRole, LandmarkModel] = {}
    for role, points in ((ModelRole.LANDMARK_2D106, 106), (ModelRole.LANDMARK_3D68, 68)):
        model = pack.models.get(role)
        if model is not None:
            session = open_session(model.path, providers, name=str(model.path))
            out[role] = LandmarkModel(session, points, model.graph_normalises_input)
    return out
