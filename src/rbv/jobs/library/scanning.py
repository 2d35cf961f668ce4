"""Scanning the queue of a pack: claim images, decode them on worker threads while the
analyzer runs, and commit faces and scan status per batch (the pipeline of
:mod:`rbv.jobs.library.embed`, also run by its helper processes).

The pipeline keeps one batch ahead of the one being analyzed: its images decode on
I/O threads (OpenCV and Pillow release the GIL) and its work waits in the inference
pool's queue, so an inference thread that finishes its part of one batch goes on
with the next batch while this thread writes the finished one to the database; no
inference thread waits for the other at a batch boundary. The work is queued image
by image (a device batch per task only for an analyzer that batches across images,
i.e. on a GPU), so the threads also finish a run together.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg

from rbv.config import Settings
from rbv.errors import ImageUnreadable, InferenceServerDown
from rbv.faces.estimates import FaceEstimate
from rbv.faces.types import Face, FaceAnalyzer, ImageFaces
from rbv.jobs.library.analyzer import session_threads
from rbv.jobs.library.carry import CarrySummary
from rbv.jobs.recording import process_alive
from rbv.jobs.reporting import Problem, Reporter
from rbv.media.decode import decode_image
from rbv.media.path_map import PathMap
from rbv.media.types import DecodedImage
from rbv.store import Database
from rbv.store.queries.clip import store_clip_embeddings
from rbv.store.queries.faces import NewFace
from rbv.store.queries.images import image_formats, image_paths_of
from rbv.store.queries.packs import (
    PackRow,
)
from rbv.store.queries.scans import (
    ScanClaim,
    ScanFailure,
    claim_pending_images,
    complete_scans,
    release_claims,
    release_dead_claims,
    renew_claims,
)
from rbv.store.server.locks import server_now

if TYPE_CHECKING:
    from rbv.faces.attributes import AttributeModel


@dataclass
class EmbedSummary:
    """What one embed pass did (this worker only)."""

    pack: str = ""
    images: int = 0  # scanned and stored (with any number of faces)
    faces: int = 0
    no_faces: int = 0  # images scanned with zero faces
    failed: int = 0
    # claimed, then taken back by another worker before this one stored them (its lease
    # lapsed): the other worker reports them
    taken_over: int = 0
    seconds: float = 0.0
    failures: list[Problem] = field(default_factory=list)
    carry: CarrySummary = field(default_factory=CarrySummary)  # edited photos' decisions
    servers: list[dict[str, object]] = field(default_factory=list)  # --ml-uri: images each
    helpers: list[int] = field(default_factory=list)  # images each helper process stored

    @property
    def images_per_s(self) -> float:
        return (self.images + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"pack": self.pack, "images": self.images, "faces": self.faces,
                "images_without_faces": self.no_faces, "failed": self.failed,
                "taken_over": self.taken_over,
                "seconds": round(self.seconds, 3),
                "images_per_s": round(self.images_per_s, 2),
                "failures": [str(p) for p in self.failures],
                "carried_faces": self.carry.carried, "dropped_faces": self.carry.dropped,
                "servers": self.servers, "helper_images": self.helpers}


@dataclass
class _Slice:
    """What an inference thread made of some of a batch's claims."""

    unreadable: list[ScanFailure]  # decoding failed
    found: dict[int, ImageFaces]
    failed: list[ScanFailure]  # analysis failed
    paths: dict[int, str]  # image id -> the path it was decoded from
    estimates: dict[int, list[FaceEstimate | None]]  # image id -> its faces' ages, genders


@dataclass
class _Batch:
    claims: list[ScanClaim]
    decoded: list[Future[DecodedImage]]
    analyzed: list[Future[_Slice]]


def worker_id() -> str:
    """``host:pid``: what a claim records, so dead claims of this host can be found."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _yield_to_inference() -> None:
    """Lower a decode thread's CPU priority by 10 (Linux: per thread). ONNX Runtime's
    intra-op threads wait for each other at every parallel step, so a decode thread
    that takes a core from one of them stalls them all; at a lower priority decoding
    fills the cores' idle moments instead."""
    with contextlib.suppress(AttributeError, OSError):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + 10))


def _decode_priority(settings: Settings) -> Callable[[], None] | None:
    """Decode threads yield to inference only where a session runs several threads: one
    per core (the CPU's default) has no pool to stall, and decoding below other programs
    starved it (2 cores, load 5-7: waits on decodes 1.1-4.3 % of the time, else ≤ 0.1 %)."""
    return _yield_to_inference if session_threads(settings) > 1 else None


@dataclass
class _OpenCvHold:
    """The scans of this process now running, and OpenCV's thread count before them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    scans: int = 0
    before: int = 0


_OPENCV = _OpenCvHold()


@contextlib.contextmanager
def opencv_on_calling_threads() -> Iterator[None]:
    """OpenCV's own thread pool off while a scan runs (restored after): the scan's
    decoding and inference threads already keep the cores busy, and OpenCV's threads
    under each of them (resizing, alignment, the blur measure) only wait for each other.
    Measured on an H200 with 16 cores (``bench_device.py``, 10,720 photos): 536 → 678
    images/s, 8.2 → 6.0 cores busy. OpenCV's own ``OPENCV_FOR_THREADS_NUM``, where set,
    is left to rule. The setting is the process's: scans running at once in one process
    (the library used from threads) set it with the first and restore it with the last."""
    if os.environ.get("OPENCV_FOR_THREADS_NUM"):
        yield
        return
    import cv2

    with _OPENCV.lock:
        if _OPENCV.scans == 0:
            _OPENCV.before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _OPENCV.scans += 1
    try:
        yield
    finally:
        with _OPENCV.lock:
            _OPENCV.scans -= 1
            if _OPENCV.scans == 0:
                cv2.setNumThreads(_OPENCV.before)


def scan_queue(
    db: Database,
    settings: Settings,
    analyzer: FaceAnalyzer,
    pack: PackRow,
    summary: EmbedSummary,
    report: Reporter,
    *,
    limit: int | None = None,
    keep_bytes: bool | None = None,
    attributes: AttributeModel | None = None,
    run_start: datetime | None = None,
) -> None:
    """Claim, decode, analyze and store batches of ``pack``'s queued images until the
    queue is empty (or ``limit`` images are claimed), adding what was done to
    ``summary``; a helper process (:mod:`rbv.jobs.library.embed_helpers`) runs it too.
    ``run_start``: when the run began by the database's clock (default: now); an image
    that failed since is not tried again in this run, by any of its processes."""
    if keep_bytes is None:
        keep_bytes = analyzer.wants_original_bytes
    long_edge = analyzer.decode_long_edge
    me = worker_id()
    workers = max(1, settings.inference_workers)
    # A batching analyzer (a GPU) takes its images a full device batch per call: a claim
    # then holds one such slice per inference thread.
    step = max(1, analyzer.batch_images)
    batch_size = max(1, settings.scan_batch_size, workers * step if step > 1 else 0)
    with opencv_on_calling_threads(), db.connect(autocommit=True) as conn, ThreadPoolExecutor(
        max(1, settings.concurrency), thread_name_prefix="rbv-decode",
        initializer=_decode_priority(settings),
    ) as pool, ThreadPoolExecutor(workers, thread_name_prefix="rbv-infer") as inference:
        run_start = run_start or server_now(conn)
        claimed = 0
        in_hand: list[_Batch] = []

        def claim_next() -> _Batch | None:
            nonlocal claimed
            want = batch_size if limit is None else min(batch_size, limit - claimed)
            if want <= 0:
                return None
            renew_claims(conn, pack.id, me)  # the lease of the batches in hand
            claims = _claim(conn, settings, pack, me, want, run_start)
            if not claims:
                return None
            claimed += len(claims)
            batch = _Batch(claims, [], [])
            in_hand.append(batch)  # from now on an interruption hands these claims back
            batch.decoded = _submit_decodes(conn, pool, claims, long_edge,
                                            settings.max_image_pixels, keep_bytes,
                                            settings.path_map, analyzer.prepare)
            # Queued now behind the batch before: a device batch a task for an analyzer
            # that batches across images, else one image a task, so the threads share
            # the work image by image and neither idles at the run's end.
            batch.analyzed = [inference.submit(_analyze_slice, analyzer, claims[i:i + step],
                                               batch.decoded[i:i + step], attributes)
                              for i in range(0, len(claims), step)]
            return batch

        try:
            current = claim_next()
            while current is not None:
                upcoming = claim_next()  # decodes and queues while `current` is analyzed
                _finish_batch(conn, pack, me, current, summary, report)
                in_hand.remove(current)
                current = upcoming
        finally:
            for batch in in_hand:  # interrupted: hand the claims back
                for analyzed in batch.analyzed:  # before its decodes: they wait on them
                    analyzed.cancel()
                for decoded in batch.decoded:
                    decoded.cancel()
                # If the connection is gone, the claims are taken back as dead ones later.
                with contextlib.suppress(psycopg.Error):
                    release_claims(conn, pack.id, me, [c.image_id for c in batch.claims])


def _claim(conn: psycopg.Connection, settings: Settings, pack: PackRow, me: str, want: int,
           run_start: datetime) -> list[ScanClaim]:
    """The next claims; when the queue looks empty, after taking back the claims of
    dead workers (a worker on another machine whose lease lapsed during this run)."""
    def claim() -> list[ScanClaim]:
        return claim_pending_images(conn, pack.id, me, want,
                                    max_attempts=settings.max_scan_attempts,
                                    failed_before=run_start)

    claims = claim()
    if not claims and release_dead_claims(conn, pack.id, socket.gethostname(), process_alive,
                                          settings.claim_lease_s):
        claims = claim()
    return claims


def _submit_decodes(
    conn: psycopg.Connection,
    pool: ThreadPoolExecutor,
    claims: Sequence[ScanClaim],
    long_edge: int,
    max_pixels: int,
    keep_bytes: bool,
    path_map: PathMap,
    prepare: Callable[[DecodedImage], DecodedImage],
) -> list[Future[DecodedImage]]:
    """Each claim's image decoded, and prepared for the analyzer, on the decoding threads."""
    ids = [c.image_id for c in claims]
    paths = image_paths_of(conn, ids)
    formats = image_formats(conn, ids)
    return [
        pool.submit(_prepared, prepare, c.image_id,
                    [path_map.to_local(p) for p in paths.get(c.image_id, [])],
                    formats.get(c.image_id), long_edge, max_pixels, keep_bytes)
        for c in claims
    ]


def _prepared(prepare: Callable[[DecodedImage], DecodedImage], image_id: int,
              paths: list[str], fmt: str | None, long_edge: int, max_pixels: int,
              keep_bytes: bool) -> DecodedImage:
    return prepare(decode_image(image_id, paths, fmt, long_edge, max_pixels, keep_bytes))


def _finish_batch(
    conn: psycopg.Connection,
    pack: PackRow,
    me: str,
    batch: _Batch,
    summary: EmbedSummary,
    report: Reporter,
) -> None:
    slices = [future.result() for future in batch.analyzed]
    failures = [f for s in slices for f in s.unreadable] + [f for s in slices for f in s.failed]
    results = {image_id: found for s in slices for image_id, found in s.found.items()}
    first_path = {image_id: path for s in slices for image_id, path in s.paths.items()}
    estimates = {image_id: e for s in slices for image_id, e in s.estimates.items()}
    faces_by_image = {
        image_id: [_new_face(image_id, pack.id, f, e) for f, e in zip(
            found.faces, estimates.get(image_id) or [None] * len(found.faces), strict=True)]
        for image_id, found in results.items()
    }
    store_clip_embeddings(conn, [  # before the scans are marked done: a crash redoes both
        (image_id, str(found.extra.get("clip_model", "clip")), found.clip_embedding)
        for image_id, found in results.items() if found.clip_embedding is not None
    ])
    stored = complete_scans(conn, pack.id, me, faces_by_image, failures)
    # What this worker stored: a claim taken back meanwhile is the new owner's to count.
    kept, failed = set(stored.images), set(stored.failed)
    faces_by_image = {i: faces for i, faces in faces_by_image.items() if i in kept}
    failures = [f for f in failures if f.image_id in failed]
    paths = image_paths_of(conn, [f.image_id for f in failures]) if failures else {}
    for failure in failures:
        where = first_path.get(failure.image_id) or next(
            iter(paths.get(failure.image_id, [])), f"image {failure.image_id}")
        problem = Problem(where, failure.error)
        summary.failures.append(problem)
        report.problem(problem)
    n_faces = sum(len(v) for v in faces_by_image.values())
    summary.images += len(faces_by_image)
    summary.faces += n_faces
    summary.no_faces += sum(1 for v in faces_by_image.values() if not v)
    summary.failed += len(failures)
    summary.taken_over += len(batch.claims) - len(kept) - len(failed)
    report.advance(len(batch.claims), faces=n_faces, errors=len(failures))


def _analyze_slice(analyzer: FaceAnalyzer, claims: Sequence[ScanClaim],
                   decoded: Sequence[Future[DecodedImage]],
                   attributes: AttributeModel | None = None) -> _Slice:
    """On an inference thread: wait for the slice's images to decode, then analyze them
    (and estimate their faces' ages and genders with ``attributes``)."""
    unreadable: list[ScanFailure] = []
    images: list[DecodedImage] = []
    for claim, future in zip(claims, decoded, strict=True):
        try:
            images.append(future.result())
        except ImageUnreadable as exc:
            unreadable.append(ScanFailure(claim.image_id, str(exc)))
        except Exception as exc:  # a decoder bug must not stop the run: record it
            unreadable.append(ScanFailure(claim.image_id, f"{type(exc).__name__}: {exc}"))
    failed: list[ScanFailure] = []
    found = _analyze(analyzer, images, failed)
    estimates = {} if attributes is None else {
        im.image_id: _estimates(attributes, im, found[im.image_id])
        for im in images if im.image_id in found}
    return _Slice(unreadable, found, failed, {im.image_id: str(im.path) for im in images},
                  estimates)


def _estimates(attributes: AttributeModel, image: DecodedImage,
               found: ImageFaces) -> list[FaceEstimate | None]:
    """Each face's age and gender from the pixels decoded for the scan (boxes taken
    back from original pixels to them); none where the model fails, for ``enrich`` to
    fill later: a face is stored all the same."""
    boxes = [tuple(v / image.scale for v in f.bbox) for f in found.faces]
    try:
        return attributes.estimate(image.rgb, boxes)  # type: ignore[arg-type]
    except Exception:  # an attribute model's failure must not lose the faces
        return [None] * len(boxes)


def _analyze(analyzer: FaceAnalyzer, images: list[DecodedImage],
             failures: list[ScanFailure]) -> dict[int, ImageFaces]:
    """Faces per image; a batch call first (recognition batched across images), then
    one image at a time if the batch fails, so one bad image fails alone."""
    if not images:
        return {}
    if analyzer.batch_images > 1 and len(images) > 1:
        try:
            found = analyzer.analyze_many(images)
            return {im.image_id: f for im, f in zip(images, found, strict=True)}
        except InferenceServerDown:  # stop the run; the claims are handed back
            raise
        except Exception:  # isolate the culprit below
            pass
    results = {}
    for image in images:
        try:
            results[image.image_id] = analyzer.analyze(image)
        except InferenceServerDown:
            raise
        except Exception as exc:
            failures.append(ScanFailure(image.image_id, f"face analysis failed: {exc}"))
    return results


def _new_face(image_id: int, pack_id: int, face: Face,
              estimate: FaceEstimate | None = None) -> NewFace:
    landmarks = None if face.landmarks is None else [float(v) for v in face.landmarks.ravel()]
    return NewFace(image_id=image_id, pack_id=pack_id, bbox=face.bbox, landmarks=landmarks,
                   det_score=face.det_score, blur=face.blur, embedding=face.embedding,
                   estimate=estimate)
