"""ServerPool: the :class:`~rbv.faces.types.FaceAnalyzer` of one or more Immich-ML
servers (``--ml-uri``, repeatable).

At start every server is pinged and probed at once (:meth:`ServerPool.start`): those
that answer must serve the model with one embedding width (else exit 1, naming the
server); one that does not answer is skipped, noted in :attr:`providers`, and tried
again during the run; if none answers the run does not start (exit 2).

Requests go to the free server that has waited longest among those with the fewest
requests in flight (the inference threads call at once). A request that fails on one
server goes at once to the next that has not failed it; the server that failed is
marked down and gets requests again :data:`RETRY_DOWN_AFTER` first waits later (a
server that never answered is probed first, and one that then serves another model or
width is not used). When every server has failed the image, the backoff schedule of one
server applies (``backoff_s`` × 1, 2, 4, trying every server after each wait); an image
that still fails is left for the next run, and after
:data:`~rbv.mlapi.client.STOP_AFTER_FAILED_IMAGES` such images in a row the run stops
(:class:`InferenceServerDown`: exit 2, claims handed back). A server that answers what
no recognizer gives (:class:`~rbv.errors.InferenceWrongAnswer`) is failed like one that
does not answer, at its start-up check too; when every server tried answered so, the
image fails at once, with no backoff (a wait does not change a server's answer).
Servers serving one model return the same embeddings, so which one answered an image
does not matter; :meth:`ServerPool.servers` says how many each answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rbv.config import DEFAULT_MODEL_PACK, Settings
from rbv.errors import (
    ConfigError,
    InferenceServerDown,
    InferenceServerWrong,
    InferenceUnavailable,
    InferenceWrongAnswer,
)
from rbv.faces.defaults import DEFAULT_DECODE_LONG_EDGE
from rbv.faces.types import ImageFaces
from rbv.media.types import DecodedImage
from rbv.mlapi.client import (
    RETRIES,
    STOP_AFTER_FAILED_IMAGES,
    RemoteFaceAnalyzer,
    TransientFailure,
    upright_payload,
)
from rbv.mlapi.protocol import predict_entries

RETRY_DOWN_AFTER = 6
"""A server that failed a request gets requests again this many first backoff waits
later (30 s by default), while others answer."""


def remote_analyzer(settings: Settings) -> ServerPool:
    """The analyzer for ``--ml-uri`` (one or more servers): the model is the pack's name
    (a pack folder's name when ``--model-pack`` is a path); every server is checked at
    start (see :meth:`ServerPool.start`)."""
    pack = settings.model_pack or DEFAULT_MODEL_PACK
    model = Path(pack).name if "/" in pack or "\\" in pack else pack
    servers = [RemoteFaceAnalyzer(url, model, embedding_dim=settings.ml_embedding_dim,
                                  clip_model=settings.ml_clip_model,
                                  min_score=settings.det_threshold,
                                  min_face=settings.min_face, backoff_s=settings.ml_backoff_s)
               for url in dict.fromkeys(settings.ml_uri)]
    return ServerPool(servers, backoff_s=settings.ml_backoff_s).start()


@dataclass(eq=False)
class _Seat:
    """One server and what the pool knows of it."""

    server: RemoteFaceAnalyzer
    probed: bool = True  # False: it did not answer at start; probe before using it
    down_until: float | None = None  # None: up; else when to try it again
    problem: str | None = None  # why it is down or not used
    unusable: bool = False  # serves another model or width
    in_flight: int = 0
    answered: int = 0
    chosen_at: int = 0  # a ticket: among idle servers the one chosen longest ago goes


class ServerPool:
    """Detects and embeds faces on the servers of ``--ml-uri``, sharing the images."""

    wants_original_bytes = True
    batch_images = 1  # one request per image either way
    decode_long_edge = DEFAULT_DECODE_LONG_EDGE

    def prepare(self, image: DecodedImage) -> DecodedImage:
        return image  # the server decodes what it is sent

    def __init__(self, servers: Sequence[RemoteFaceAnalyzer], *, backoff_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._seats = [_Seat(server) for server in servers]
        first = servers[0]
        self.pack = first.pack
        self.providers = [f"remote {s.url}" for s in servers]
        self._model, self._min_score, self._clip_model = \
            first.model, first.min_score, first.clip_model
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._tickets = 0
        self._failed_in_a_row = 0
        self._stopped: str | None = None  # the message of the stop, once stopped

    def __repr__(self) -> str:
        return f"ServerPool({[s.server.url for s in self._seats]!r})"

    def start(self) -> ServerPool:
        """Ping and probe every server at once. Raises :class:`ConfigError` (exit 1)
        when one serves another model or width, :class:`InferenceUnavailable` (exit 2)
        when none answers; the others that do not answer are tried again later."""
        def check(server: RemoteFaceAnalyzer) -> InferenceUnavailable | None:
            # A server whose check's answer is wrong (InferenceServerWrong) is skipped too.
            try:
                server.probe()
            except InferenceUnavailable as exc:
                return exc
            return None

        with ThreadPoolExecutor(len(self._seats), thread_name_prefix="rbv-probe") as probes:
            outcomes = list(probes.map(check, [seat.server for seat in self._seats]))
        answering = [seat for seat, failed in zip(self._seats, outcomes, strict=True)
                     if failed is None]
        if not answering:
            if len(outcomes) == 1 and outcomes[0] is not None:
                raise outcomes[0]
            found = [r for failed in outcomes if failed is not None for r in failed.remedies]
            raise InferenceUnavailable(
                "none of the inference servers answers: " + "; ".join(map(str, outcomes)),
                remedies=[r for k, r in enumerate(found) if r not in found[:k]])
        widths = {seat.server.url: seat.server.pack.embedding_dim for seat in answering}
        if len(set(widths.values())) > 1:
            raise ConfigError(
                f"the inference servers serve model {self._model!r} with different "
                "embedding widths (" + ", ".join(f"{url}: {dim}" for url, dim in widths.items())
                + "); give only servers with the same model files", setting="ml_uri")
        self.pack = self._seats[0].server.pack_with(answering[0].server.pack.embedding_dim)
        retry_at = self._clock() + RETRY_DOWN_AFTER * self._backoff_s
        for k, (seat, failed) in enumerate(zip(self._seats, outcomes, strict=True)):
            if failed is not None:
                seat.probed, seat.down_until, seat.problem = False, retry_at, str(failed)
                why = "sends wrong answers" if isinstance(failed, InferenceServerWrong) \
                    else "does not answer"
                self.providers[k] += f" ({why}: skipped, tried again later)"
        return self

    def close(self) -> None:
        for seat in self._seats:
            seat.server.close()

    def servers(self) -> list[dict[str, object]]:
        """Each server: its URL, how many images it answered, and why it is down or not
        used (None while it answers)."""
        with self._lock:
            return [{"url": seat.server.url, "images": seat.answered,
                     "problem": seat.problem if seat.down_until is not None or seat.unusable
                     else None} for seat in self._seats]

    def analyze(self, image: DecodedImage) -> ImageFaces:
        """Faces of one image (boxes in oriented original pixels, unit-length
        embeddings) and its CLIP embedding, if any, from whichever server answers."""
        with self._lock:
            if self._stopped is not None:  # every server was declared down: no more tries
                raise InferenceServerDown(self._stopped)
        name, payload, mime = upright_payload(image)
        files = {"image": (name, payload, mime)}
        data = {"entries": predict_entries(self._model, self._min_score, self._clip_model)}
        seat, found = self._answer(files, data, image)
        if not self.pack.embedding_dim:  # never probed: the first answer sets the width
            self.pack = seat.server.pack
        return found

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        """Faces of each image, one request per image (the protocol has no batches)."""
        return [self.analyze(image) for image in images]

    def count_faces(self, rgb: NDArray[np.uint8], min_score: float) -> int:
        """How many faces scoring at least ``min_score`` the servers find in ``rgb``."""
        height, width = rgb.shape[:2]
        found = self.analyze(DecodedImage(0, Path("crop.png"), rgb, 1.0, (width, height)))
        return sum(1 for f in found.faces if f.det_score >= min_score)

    def _answer(self, files: dict[str, tuple[str, bytes, str]], data: dict[str, str],
                image: DecodedImage) -> tuple[_Seat, ImageFaces]:
        """A server and the faces it found: every server that may take the request is
        tried, then again after each backoff wait. A server that answers what no
        recognizer gives is failed like one that does not answer; when every server
        tried did so, no wait would change their answers: the image fails at once."""
        last = "no server was free to try"
        for attempt in range(RETRIES + 1):
            if attempt:
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            tried: set[_Seat] = set()
            wrong = transient = False
            while (seat := self._take(tried)) is not None:
                tried.add(seat)
                try:
                    found = seat.server.faces(self._ask(seat, files, data), image)
                except TransientFailure as exc:
                    last, transient = str(exc), True
                    self._release(seat, failed=last)
                    continue
                except InferenceWrongAnswer as exc:
                    last, wrong = f"the inference server at {seat.server.url} sent {exc}", True
                    self._release(seat, failed=last)
                    continue
                except BaseException:  # refused image: the server is fine
                    self._release(seat, failed=None)
                    raise
                self._release(seat, failed=None, answered=True)
                return seat, found
            if wrong and not transient:
                raise self._failed(last, retried=False)
        raise self._failed(last)

    def _take(self, tried: set[_Seat]) -> _Seat | None:
        """The server to try next, or None when none is left to try for this attempt:
        a down server whose wait is over (one request at a time tells whether it is
        back), else the up server with the fewest requests in flight that was chosen
        longest ago, else (every server is down) any untried one."""
        with self._lock:
            now = self._clock()
            left = [s for s in self._seats if s not in tried and not s.unusable]
            up = [s for s in left if s.down_until is None]
            due = [s for s in left if s.down_until is not None and s.down_until <= now]
            if due and up:
                seat = due[0]
                seat.down_until = now + RETRY_DOWN_AFTER * self._backoff_s  # others wait
            elif up:
                seat = min(up, key=lambda s: (s.in_flight, s.chosen_at))
            elif left and not any(s.down_until is None for s in self._seats if not s.unusable):
                seat = left[0]
            else:
                return None
            self._tickets += 1
            seat.chosen_at = self._tickets
            seat.in_flight += 1
            return seat

    def _ask(self, seat: _Seat, files: dict[str, tuple[str, bytes, str]],
             data: dict[str, str]) -> Any:
        """One request to ``seat``'s server; one that never answered is probed first."""
        server = seat.server
        if not seat.probed:
            try:
                server.probe(retries=0)
            except InferenceUnavailable as exc:
                raise TransientFailure(str(exc)) from None
            except ConfigError as exc:
                self._unusable(seat, str(exc))
                raise TransientFailure(str(exc)) from None
            if server.pack.embedding_dim != self.pack.embedding_dim:
                problem = (f"{server.url} serves {server.pack.embedding_dim}-dimensional "
                           f"embeddings, the others {self.pack.embedding_dim}; not used")
                self._unusable(seat, problem)
                raise TransientFailure(problem)
            seat.probed = True
        return server.request(files, data)

    def _unusable(self, seat: _Seat, problem: str) -> None:
        with self._lock:
            seat.unusable, seat.problem = True, problem

    def _release(self, seat: _Seat, *, failed: str | None, answered: bool = False) -> None:
        with self._lock:
            seat.in_flight -= 1
            if failed is not None:
                seat.down_until = self._clock() + RETRY_DOWN_AFTER * self._backoff_s
                seat.problem = seat.problem if seat.unusable else failed
            elif answered:
                seat.down_until, seat.problem = None, None
                seat.answered += 1
                self._failed_in_a_row = 0

    def _where(self) -> str:
        urls = [seat.server.url for seat in self._seats]
        if len(urls) == 1:
            return f"the inference server at {urls[0]}"
        return f"every inference server ({', '.join(urls)})"

    def _failed(self, last: str, *, retried: bool = True) -> InferenceUnavailable:
        """The error for an image that exhausted its retries (or, not ``retried``, that
        every server tried answered wrongly): the run stops at the
        STOP_AFTER_FAILED_IMAGES-th in a row. Workers failing at the same time all
        report that one stop (not a count past the limit)."""
        with self._lock:
            if self._stopped is None:
                self._failed_in_a_row += 1
                n = self._failed_in_a_row
                if n >= STOP_AFTER_FAILED_IMAGES:
                    self._stopped = (
                        f"{self._where()} failed {n} images in a row, each after "
                        f"{RETRIES} retries ({last}); stopped. Images not done are left "
                        "for the next run: re-run when it is back" if retried else
                        f"{last}, for {n} images in a row; stopped. Images not done are "
                        "left for the next run: re-run when the server is fixed")
            if self._stopped is not None:
                return InferenceServerDown(self._stopped)
        if not retried:
            return InferenceUnavailable(f"{last}; the image is retried on the next run")
        return InferenceUnavailable(
            f"{self._where()} failed {RETRIES + 1} times ({last}); the image is retried "
            "on the next run")
