"""RemoteFaceAnalyzer: one remote Immich-ML server (``--ml-uri``); the
:class:`~rbv.faces.types.FaceAnalyzer` of a run is :class:`rbv.mlapi.pool.ServerPool`
over one or more of them.

Each image goes to ``POST <url>/predict`` as upright pixels: Immich-ML decodes what it
gets with PIL and applies no EXIF orientation, so a JPEG is sent as is only when its
orientation is 1 (and rbv decoded it at full size); anything else (rotated or big
JPEGs, HEIF, PNG, TIFF, ...) is sent as a lossless PNG of the upright pixels rbv
decoded (see :func:`upright_payload`). Boxes come back in the sent image's pixels and
are scaled to the oriented original.

At start, :meth:`RemoteFaceAnalyzer.probe` checks the server: ``GET /ping`` (no answer:
:class:`InferenceUnavailable`), then one tiny ``/predict`` of a 96-pixel face
(``probe_face.jpg``: Barack Obama's official portrait, a US-government work in the
public domain), which tells whether the server serves the model (Immich-ML answers HTTP
500 to a name it does not know: exit 1 with its answer and the names it accepts) and
the width of its embeddings.

:meth:`RemoteFaceAnalyzer.request` is one attempt; connection errors, timeouts and HTTP
5xx raise :class:`TransientFailure`, which the pool retries on another server, then with
exponential backoff (``backoff_s`` × 1, 2, 4: 5, 10, 20 s by default; 3 retries), as
the start-up probe is retried here.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import httpx
from PIL import Image
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from rbv.bounded_http import BodyTooLarge, bounded_client, deadline, read_json
from rbv.errors import (
    ConfigError,
    InferenceError,
    InferenceServerWrong,
    InferenceUnavailable,
    InferenceWrongAnswer,
    Remedy,
)
from rbv.faces.types import ImageFaces, PackInfo
from rbv.media.types import DecodedImage
from rbv.mlapi.protocol import embedding_width, parse_prediction, predict_entries

RETRIES = 3
STOP_AFTER_FAILED_IMAGES = 3
"""Images in a row that exhausted their retries before the run stops: one such image
is skipped (the server may choke on it), a row of them means the server is down, and
going on would only spend 35 s of backoff per image to mark them all failed."""
DEFAULT_MIN_SCORE = 0.5  # the local analyzer's detection threshold, so results agree
DEFAULT_TIMEOUT_S = 120.0
IMMICH_FACE_MODELS = ("buffalo_l", "buffalo_m", "buffalo_s", "antelopev2")
"""The face model names Immich-ML serves (``immich_ml/models/constants.py``); it reads
``<cache>/facial-recognition/<name>/{detection,recognition}/model.onnx``."""
KNOWN_EMBEDDING_DIMS = dict.fromkeys(IMMICH_FACE_MODELS, 512)
"""Widths used only when the start-up probe finds no face to measure (a detector that
misses the probe face); else ``RBV_ML_EMBEDDING_DIM``."""
PROBE_MIN_SCORE = 0.5  # the probe face scores ~0.85 with SCRFD-500M, more with bigger ones


class TransientFailure(Exception):
    """An attempt failed the way a busy, restarting or unreachable server fails (worth
    trying again, here or on another server)."""


class _Refused(Exception):
    """Internal: the server answered 4xx, or 5xx where that means "not served" (probe)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {' '.join(text.split())[:200]}")
        self.status = status


class RemoteFaceAnalyzer:
    """One remote Immich-ML server that detects and embeds faces: its checks, one
    request, and what its answer says (:class:`~rbv.mlapi.pool.ServerPool` schedules)."""

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
            raise ConfigError(f"an inference server's address must start with http:// or "
                              f"https://, got {url!r}", setting="ml_uri")
        self._base = url.rstrip("/")
        # Shown in messages: never with a user:password part.
        self.url = re.sub(r"^([A-Za-z][\w+.-]*://)[^/]*@", r"\1***@", self._base)
        self.model = model
        self.clip_model = clip_model
        self.min_score = min_score
        self.min_face = min_face  # as the local analyzer: smaller faces are dropped
        self._wanted_dim = embedding_dim
        self.pack = self.pack_with(embedding_dim or 0)  # 0: learnt by probe() or 1st answer
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._timeout_s = timeout_s
        self._http = bounded_client(timeout=httpx.Timeout(timeout_s, connect=10.0))

    def __repr__(self) -> str:
        return f"RemoteFaceAnalyzer({self.url!r}, {self.model!r})"

    def pack_with(self, dim: int) -> PackInfo:
        """The pack of this server's model with embeddings ``dim`` wide."""
        # Identity: the server's model name (the files are on the server, not here).
        # Named after the server's model and host, so it never takes a local pack's name.
        host = httpx.URL(self._base).host or "server"
        return PackInfo(name=f"remote:{self.model}@{host}",
                        files={"immich-ml:facial-recognition": self.model}, embedding_dim=dim)

    def close(self) -> None:
        self._http.close()

    def ping(self) -> None:
        """Fail fast when the server is unreachable (``GET /ping``, one attempt)."""
        try:
            with deadline(min(self._timeout_s, 30.0)), \
                    self._http.stream("GET", self._base + "/ping") as resp:
                resp.raise_for_status()
                _text_start(resp)
        except httpx.HTTPError as exc:
            raise InferenceUnavailable(
                f"the inference server at {self.url} does not answer ({type(exc).__name__})",
                remedies=[Remedy("check_server", {"setting": "ml_uri"})]) from None

    def probe(self, retries: int = RETRIES) -> None:
        """Check the server before a run: it answers (else :class:`InferenceUnavailable`,
        exit 2), it serves the model (else :class:`ConfigError` with its answer and the
        names Immich-ML accepts, exit 1), that its answer is one a recognizer gives (else
        :class:`InferenceServerWrong`, exit 2), and how wide its embeddings are (the
        pack's ``embedding_dim``; ``RBV_ML_EMBEDDING_DIM`` must agree when set)."""
        self.ping()
        face = resources.files("rbv.mlapi").joinpath("probe_face.jpg").read_bytes()
        data = {"entries": predict_entries(self.model, PROBE_MIN_SCORE, None)}
        files = {"image": ("probe.jpg", face, "image/jpeg")}
        try:
            body = self._post(data, files, refused_5xx=True, retries=retries)
        except TransientFailure as exc:
            raise InferenceUnavailable(
                f"the inference server at {self.url} failed the start-up check "
                f"{retries + 1} times ({exc}); re-run when it is back") from None
        except _Refused as exc:
            names = ", ".join(IMMICH_FACE_MODELS)
            known = self.model in IMMICH_FACE_MODELS
            raise ConfigError(
                f"the inference server at {self.url} refused face model {self.model!r} "
                f"({exc}). " + (
                    "Immich-ML knows this name: check that its model files are in the "
                    "server's cache folder (facial-recognition/"
                    f"{self.model}/detection|recognition/model.onnx) and the server's log"
                    if known else
                    f"Immich-ML serves the face models {names}: name one of them as the model "
                    "pack (the name the server's model files are kept under)"),
                setting=None if known else "model_pack") from None
        try:
            width = embedding_width(body)
            with Image.open(io.BytesIO(face)) as im:  # the checks every answer gets
                parse_prediction(body, im.size, width)
        except InferenceWrongAnswer as exc:
            raise InferenceServerWrong(
                f"the inference server at {self.url} sent {exc} for the start-up check's "
                "face; not used: check the server and its model files") from None
        if width is None:  # no face found in the probe: fall back on known widths
            width = self._wanted_dim or KNOWN_EMBEDDING_DIMS.get(self.model)
            if not width:
                raise ConfigError(
                    f"could not measure the embedding width of model {self.model!r} on "
                    f"{self.url} (no face found in the probe image); set "
                    "RBV_ML_EMBEDDING_DIM")
        elif self._wanted_dim and self._wanted_dim != width:
            raise ConfigError(
                f"RBV_ML_EMBEDDING_DIM is {self._wanted_dim} but model {self.model!r} on "
                f"{self.url} returns {width}-dimensional embeddings; unset it")
        self.pack = self.pack_with(width)

    def _post(self, data: dict[str, str], files: dict[str, tuple[str, bytes, str]],
              *, refused_5xx: bool = False, retries: int = RETRIES) -> Any:
        """One ``/predict`` answer, retrying transient failures on the backoff schedule.
        Raises :class:`TransientFailure` when they last, :class:`_Refused` on HTTP 4xx (and on
        HTTP 500 with ``refused_5xx``: Immich-ML's answer to an unknown model)."""

        def attempt() -> Any:
            try:
                with deadline(self._timeout_s), self._http.stream(
                        "POST", self._base + "/predict", data=data, files=files) as resp:
                    if resp.status_code >= 300:
                        text = _text_start(resp)
                    if resp.status_code == 500 and refused_5xx:
                        raise _Refused(resp.status_code, text)
                    if resp.status_code >= 500:
                        raise TransientFailure(f"HTTP {resp.status_code}")
                    if resp.status_code >= 300:  # 4xx, or a redirect rbv does not follow
                        where = resp.headers.get("location")
                        raise _Refused(resp.status_code, text or (
                            f"a redirect to {where}: not the inference server's own address"
                            if where else ""))
                    return read_json(resp)
            except httpx.TimeoutException as exc:
                raise TransientFailure(f"{type(exc).__name__}: no complete answer within "
                                 f"{self._timeout_s:g} s") from None
            except httpx.TransportError as exc:
                raise TransientFailure(type(exc).__name__) from None
            except BodyTooLarge as exc:
                raise InferenceError(f"the inference server's answer: {exc}") from None
            except ValueError:
                raise InferenceError("the inference server sent malformed JSON") from None

        retrying = Retrying(
            retry=retry_if_exception_type(TransientFailure),
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential(multiplier=self._backoff_s, min=self._backoff_s),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)

    def request(self, files: dict[str, tuple[str, bytes, str]], data: dict[str, str]) -> Any:
        """The server's answer to one ``/predict`` (one attempt). Raises
        :class:`TransientFailure` when worth retrying, :class:`InferenceError` when the
        server refuses the image (HTTP 4xx: the image fails alone)."""
        try:
            return self._post(data, files, retries=0)
        except _Refused as exc:
            raise InferenceError(f"the inference server refused the image ({exc})") from None

    def faces(self, body: Any, image: DecodedImage) -> ImageFaces:
        """The faces of this server's ``body`` answer for ``image`` (boxes in oriented
        original pixels, unit-length embeddings) and its CLIP embedding, if any."""
        if not self.pack.embedding_dim:  # no probe: the first face sets the width
            self.pack = self.pack_with(embedding_width(body) or 0)
        found = parse_prediction(body, image.original_size, self.pack.embedding_dim or None)
        if self.min_face > 0:
            found.faces[:] = [f for f in found.faces if min(
                f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]) >= self.min_face]
        if found.clip_embedding is not None:
            found.extra["clip_model"] = self.clip_model or "clip"
        return found


def _text_start(resp: httpx.Response, limit: int = 4096) -> str:
    """The start of an error answer's text (all a message shows), never the whole body."""
    data = b""
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace")


def upright_payload(image: DecodedImage) -> tuple[str, bytes, str]:
    """The bytes to send: exactly the upright pixels the local analyzer would see.

    The original JPEG when its EXIF orientation is 1 and rbv decoded it at full size
    (the server's PIL decodes the same pixels; nothing is re-encoded); else a lossless
    PNG of the pixels rbv decoded (turned upright, big JPEGs at their reduced draft
    size; the answer's imageWidth/Height give the scale back to the original). A JPEG
    re-encode, even at quality 95, costs cosine 0.91 on some faces
    (scripts/bench/ml_uri_parity.py)."""
    if image.data is not None and image.data.startswith(b"\xff\xd8\xff") \
            and image.scale == 1.0 and _orientation(image.data) == 1:
        return image.path.name, image.data, "image/jpeg"
    out = io.BytesIO()
    Image.fromarray(image.rgb).save(out, "PNG", compress_level=1)
    return image.path.stem + ".png", out.getvalue(), "image/png"


def _orientation(jpeg: bytes) -> int:
    """The EXIF orientation of a JPEG (1 when absent or unreadable)."""
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
