"""Building the face analyzer a run uses, from the settings."""

from __future__ import annotations

from rbv.config import Settings
from rbv.faces.types import FaceAnalyzer


def load_face_analyzer(settings: Settings) -> FaceAnalyzer:
    """The local ONNX Runtime analyzer for ``settings.model_pack`` on ``settings.device``
    (or, with ``settings.ml_uri``, the remote server's analyzer for that model).

    Model file hashes are remembered in the data directory, so a run does not re-hash
    the pack. Raises the face engine's errors (pack missing, device unavailable).
    """
    if settings.ml_uri:  # a remote Immich-ML server does the work
        from rbv.mlapi.client import remote_analyzer

        return remote_analyzer(settings)
    from rbv.faces.analyzer import load_analyzer  # heavy import: only when embedding

    analyzer: FaceAnalyzer = load_analyzer(
        settings.model_pack, device=settings.device, det_size=settings.det_size,
        det_threshold=settings.det_threshold, min_face=settings.min_face,
        hash_cache=settings.data_dir / "model-hashes.json",
    )
    return analyzer
