"""Building the face analyzer a run uses, from the settings."""

from __future__ import annotations

from rbv.config import Settings
from rbv.faces.types import FaceAnalyzer


def load_face_analyzer(settings: Settings) -> FaceAnalyzer:
    """The local ONNX Runtime analyzer for ``settings.model_pack`` on ``settings.device``.

    Raises the face engine's errors (pack missing, device unavailable) unchanged.
    """
    from rbv.faces.analyzer import load_analyzer  # heavy import: only when embedding

    analyzer: FaceAnalyzer = load_analyzer(settings.model_pack, device=settings.device)
    return analyzer
