"""RemoteFaceAnalyzer: the :class:`~rbv.faces.types.FaceAnalyzer` of a remote server.

Each image's original bytes go to ``POST <url>/predict``. Connection errors, timeouts
and HTTP 5xx are retried with exponential backoff (``backoff_s`` × 1, 2, 4: 5, 10,
20 s by default; 3 retries); then :class:`InferenceUnavailable` is raised and the
pipeline leaves the image not-done, to be retried on the next run. ``sleep`` is
injectable so tests run the same schedule without waiting.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rbv.config import Settings
from rbv.errors import ConfigError, InferenceError, InferenceServerDown, InferenceUnavailable
from rbv.faces.defaults import DEFAULT_DECODE_LONG_EDGE
from rbv.faces.types import ImageFaces, PackInfo
from rbv.media.types import DecodedImage
from rbv.mlapi.protocol import parse_prediction, predict_entries

RETRIES = 3
STOP_AFTER_FAILED_IMAGES = 3
"""Images in a row that exhausted their retries before the run stops: one such image
is skipped (the server may choke on it), a row of them means the server is down, and
going on would only spend 35 s of backoff per image to mark them all failed."""
DEFAULT_MIN_SCORE = 0.5  # the local analyzer's detection threshold, so results agree
DEFAULT_TIMEOUT_S = 120.0
KNOWN_EMBEDDING_DIMS = {"buffalo_l": 512, "buffalo_m": 512, "buffalo_s": 512,
                        "antelopev2": 512, "scrfd_sface": 128}
"""Recognizer widths of the model names an Immich-ML server serves (the pack must be
registered before the first answer arrives); others need ``RBV_ML_EMBEDDING_DIM``."""
_SENDABLE = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG: every server decodes them


def remote_analyzer(settings: Settings) -> RemoteFaceAnalyzer:
    """The analyzer for ``--ml-uri``: the model is the pack's name (a pack folder's
    name when ``--model-pack`` is a path); checks that the server answers."""
    assert settings.ml_uri is not None
    model = Path(settings.model_pack).name if "/" in settings.model_pack or "\\" in \
        settings.model_pack else settings.model_pack
    analyzer = RemoteFaceAnalyzer(settings.ml_uri, model,
                                  embedding_dim=settings.ml_embedding_dim,
                                  clip_model=settings.ml_clip_model,
                                  min_score=settings.det_threshold,
                                  min_face=settings.min_face,
                                  backoff_s=settings.ml_backoff_s)
    analyzer.ping()
    return analyzer


class _Transient(Exception):
    """Internal: an attempt failed the way a busy or restarting server fails."""


class RemoteFaceAnalyzer:
    """Detects and embeds faces on a remote Immich-ML server."""

    wants_original_bytes = True
    batches = False  # one request per image either way
    decode_long_edge = DEFAULT_DECODE_LONG_EDGE  # only for formats sent as a PNG

    def __init__(
        self,
        url: str,
        model: str,
        *,
        embedding_dim: int | None = None,
        min_score: float = DEFAULT_MIN_SCORE,
        min_face: float = 0.0,
        clip_model: str | None = None,
        backoff_s: float = 5.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--ml-uri must start with http:// or https://, got {url!r}")
        dim = embedding_dim or KNOWN_EMBEDDING_DIMS.get(model)
        if not dim:
            raise ConfigError(f"the embedding width of model {model!r} is not known to rbv; "
                              "set RBV_ML_EMBEDDING_DIM (512 for InsightFace models)")
        self._base = url.rstrip("/")
        # Shown in messages: never with a user:password part.
        self.url = re.sub(r"^([A-Za-z][\w+.-]*://)[^/]*@", r"\1***@", self._base)
        self.model = model
        self.clip_model = clip_model
        self.min_score = min_score
        self.min_face = min_face  # as the local analyzer: smaller faces are dropped
        # Identity: the server's model name (the files are on the server, not here).
        # Named after the server's model and host, so it never takes a local pack's name.
        host = httpx.URL(self._base).host or "server"
        self.pack = PackInfo(name=f"remote:{model}@{host}",
                             files={"immich-ml:facial-recognition": model}, embedding_dim=dim)
        self.providers = [f"remote {self.url}"]
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._failed_in_a_row = 0

    def __repr__(self) -> str:
        return f"RemoteFaceAnalyzer({self.url!r}, {self.model!r})"

    def close(self) -> None:
        self._http.close()

    def ping(self) -> None:
        """Fail fast when the server is unreachable (``GET /ping``, one attempt)."""
        try:
            self._http.get(self._base + "/ping").raise_for_status()
        except httpx.HTTPError as exc:
            raise InferenceUnavailable(
                f"the inference server at {self.url} does not answer ({type(exc).__name__}); "
                "check --ml-uri and that the server is up"
            ) from None

    def analyze(self, image: DecodedImage) -> ImageFaces:
        """Faces of one image (boxes in original pixels) and its CLIP embedding, if any."""
        name, payload, mime = _payload(image)
        files = {"image": (name, payload, mime)}
        data = {"entries": predict_entries(self.model, self.min_score, self.clip_model)}

        def attempt() -> Any:
            try:
                resp = self._http.post(self._base + "/predict", data=data, files=files)
            except httpx.TransportError as exc:
                raise _Transient(type(exc).__name__) from None
            if resp.status_code >= 500:
                raise _Transient(f"HTTP {resp.status_code}")
            if resp.status_code >= 400:
                raise InferenceError(f"the inference server refused the image "
                                     f"(HTTP {resp.status_code}: {resp.text[:200]})")
            try:
                return resp.json()
            except ValueError:
                raise InferenceError("the inference server sent malformed JSON") from None

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(RETRIES + 1),
            wait=wait_exponential(multiplier=self._backoff_s, min=self._backoff_s),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            body = retrying(attempt)
        except _Transient as exc:
            self._failed_in_a_row += 1
            if self._failed_in_a_row >= STOP_AFTER_FAILED_IMAGES:
                raise InferenceServerDown(
                    f"the inference server at {self.url} failed {self._failed_in_a_row} "
                    f"images in a row, each after {RETRIES} retries ({exc}); stopped. "
                    "Images not done are left for the next run: re-run when it is back"
                ) from None
            raise InferenceUnavailable(
                f"the inference server at {self.url} failed {RETRIES + 1} times ({exc}); "
                "the image is retried on the next run"
            ) from None
        self._failed_in_a_row = 0
        found = parse_prediction(body, image.original_size, self.pack.embedding_dim)
        if self.min_face > 0:
            found.faces[:] = [f for f in found.faces if min(
                f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) >= self.min_face]
        if found.clip_embedding is not None:
            found.extra["clip_model"] = self.clip_model or "clip"
        return found


    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        """Faces of each image, one request per image (the protocol has no batches)."""
        return [self.analyze(image) for image in images]

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        """How many faces scoring at least ``min_score`` the server finds in ``rgb``."""
        height, width = rgb.shape[:2]
        found = self.analyze(DecodedImage(0, Path("crop.png"), rgb, 1.0, (width, height)))
        return sum(1 for f in found.faces if f.det_score >= min_score)


def _payload(image: DecodedImage) -> tuple[str, bytes, str]:
    """The bytes to send: the original when any server can decode it, else a PNG of the
    decoded pixels (HEIF, TIFF, ...), whose size the answer's imageWidth/Height carry."""
    if image.data is not None and image.data.startswith(_SENDABLE):
        mime = "image/jpeg" if image.data[:1] == b"\xff" else "image/png"
        return image.path.name, image.data, mime
    out = io.BytesIO()
    Image.fromarray(image.rgb).save(out, "PNG")
    return image.path.stem + ".png", out.getvalue(), "image/png"
