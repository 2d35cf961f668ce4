"""Defaults of the face engine's user-tunable options, defined once.

A module without heavy imports, so CLI option declarations can show them in --help
without loading ONNX Runtime or OpenCV. (The pack and device defaults live in
:class:`rbv.config.Settings`.)
"""

from __future__ import annotations

DEFAULT_DET_SIZE = 640
"""Detector input long edge in pixels (InsightFace's usual 640)."""
DEFAULT_DET_THRESHOLD = 0.5
"""Minimum detection score (InsightFace's default)."""
DEFAULT_DECODE_LONG_EDGE = 1280
"""Long edge photos are decoded at for an analyzer that does not ask for more."""
DEFAULT_MIN_FACE = 16
"""Minimum face short edge in pixels of the original photo; smaller faces are dropped
(too small to recognise; ``refine``/``export-swap`` gate much higher anyway)."""
