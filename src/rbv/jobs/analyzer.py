"""Building the face analyzer a run uses, from the settings."""

from __future__ import annotations

from rbv.config import Settings
from rbv.faces.types import FaceAnalyzer


def load_face_analyzer(settings: Settings) -> FaceAnalyzer:
    """The local ONNX Runtime analyzer for ``settings.model_pack`` on ``settings.device``.

    Model file hashes are remembered in the data directory, so a run does not re-hash
    the pack. Raises the face engine's errors (pack missing, device unavailable).
    """
    from rbv.faces.analyzer import load_analyzer  # heavy import: only when embedding

    analyzer: FaceAnalyzer = load_analyzer(
        settings.model_pack, device=settings.device,
        hash_cache=settings.data_dir / "model-hashes.json",
    )
    return analyzer
