"""``dedup``: byte-identical files and visual near-duplicates among catalogued photos.

Two photos are near-duplicates (one was re-encoded, resized or slightly cropped from
the other) when they are candidates, because

- their perceptual hashes differ in at most ``strong_bits`` of 64 bits, or
- they hold a face each that the recognizer finds very similar (cosine similarity ≥
  ``face_similarity``),

AND pass a second check, independent of the hash: at least ``min_matches`` keypoints of
the two pictures (plain borders cut off) lie where one resize-crop-shift puts them,
spread over the picture (:mod:`rbv.media.keypoints`), or, warped onto each other by the
shared faces' landmarks, the whole overlapping area correlates (≥ ``min_correlation``, see
:mod:`rbv.faces.overlay`; a big crop keeps too few keypoints). A crop moves the hash
far more than a re-encode does but is still the same pixels; another photo of the same
person can have a face just as similar, but its hair, clothes and background do not
line up. A group is one in which every two photos pass the second check, never a chain
of pairs: 79 photos of different children on a plain grey border (``data/family``)
hashed within 10 bits of each other.

Measured on real photos (4 identities × 7 photos, each re-encoded at JPEG quality 35,
halved, cropped 6 % per side, cropped 10 % top-left): variants differ from their source
in 0–2 bits (re-encode, resize) and 6–28 bits (crops), with face similarity ≥ 0.85 and
correlation ≥ 0.85; different photos of one person differ in ≥ 18 bits and correlate
≤ 0.78 even when their faces score 0.88.

Candidate pairs come from an exact multi-index Hamming search
(:func:`rbv.media.phash.pairs_within`: 1M photos in about 1.5 min) and, for face
agreement, from each face's nearest neighbours in the pack.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.knn import nearest
from rbv.cluster.union_find import roots
from rbv.errors import ImageUnreadable, PackNotFound
from rbv.faces.overlay import overlay_correlation
from rbv.jobs.recording import recorded_run
from rbv.media.decode import decode_for_detection
from rbv.media.keypoints import MIN_SPREAD, Keypoints, keypoints, matching_points
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.phash import hamming, pairs_within, phash
from rbv.media.types import DecodedImage
from rbv.store import Database
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.faces import face_landmarks
from rbv.store.queries.facesets import first_paths
from rbv.store.queries.image_hashes import (
    all_hashes,
    byte_identical,
    images_without_hash,
    save_hashes,
)
from rbv.store.queries.images import image_formats, image_paths_of
from rbv.store.queries.pack_lookup import find_pack

HASH_LONG_EDGE = 256
"""Photos are decoded this small for hashing (JPEG draft mode makes it almost free)."""


@dataclass(frozen=True)
class DedupParams:
    """When two photos are near duplicates (see the module doc for each value's role)."""

    strong_bits: int = 10
    face_similarity: float = 0.80
    min_correlation: float = 0.82
    min_matches: int = 30


@dataclass
class ExactGroup:
    image_id: int
    sha256: str
    paths: list[str]


@dataclass
class NearGroup:
    image_ids: list[int]
    paths: list[str]
    max_bits: int
    by_face: bool  # some pair was joined by face agreement


@dataclass
class DedupReport:
    exact: list[ExactGroup] = field(default_factory=list)
    near: list[NearGroup] = field(default_factory=list)
    hashed: int = 0
    images: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def hash_new_images(db: Database, max_pixels: int,
                    advance: Callable[[int], None] = lambda n: None) -> tuple[int, list[str]]:
    """Hash every catalogued image that has no hash yet (incremental)."""
    with db.connect() as conn:
        todo = images_without_hash(conn)
        paths = image_paths_of(conn, [i for i, _ in todo])
    done, failed = 0, []
    batch: list[tuple[int, int]] = []
    for image_id, fmt in todo:
        img = _decode_small(paths.get(image_id, []), fmt, image_id, max_pixels)
        value = None if img is None else phash(img.rgb)
        if value is None:
            failed.append(f"image {image_id} ({(paths.get(image_id) or ['?'])[0]}): "
                          "no readable path; retried next run")
        else:
            batch.append((image_id, value))
        advance(1)
        if len(batch) >= 500:
            with db.transaction() as conn:
                save_hashes(conn, batch)
            done += len(batch)
            batch = []
    if batch:
        with db.transaction() as conn:
            save_hashes(conn, batch)
        done += len(batch)
    return done, failed


Agreement = dict[tuple[int, int], tuple[float, int, int]]


def face_agreement(db: Database, pack_name: str | None, min_similarity: float) -> Agreement:
    """(image a, image b) → (best face similarity, face in a, face in b), for photo
    pairs sharing a face at or above ``min_similarity`` (a < b)."""
    with db.connect() as conn:
        try:
            pack = find_pack(conn, pack_name, sole_fallback=True)
        except PackNotFound:
            return {}
        faces = load_faces(conn, pack)
    if len(faces) < 2:
        return {}
    graph = nearest(faces.embeddings, faces.embeddings, min(11, len(faces)))
    out: Agreement = {}
    for row in range(len(faces)):
        a = int(faces.image_ids[row])
        for j, s in zip(graph.neighbors[row].tolist(), graph.similarities[row].tolist(),
                        strict=True):
            if j < 0 or s < min_similarity:
                continue
            b = int(faces.image_ids[j])
            if a != b:
                key = (min(a, b), max(a, b))
                pair = (int(faces.ids[row]), int(faces.ids[j]))
                if a > b:
                    pair = pair[::-1]
                if key not in out or s > out[key][0]:
                    out[key] = (float(s), *pair)
    return out


def candidate_pairs(ids: NDArray[np.int64], hashes: NDArray[np.int64], agree: Agreement,
                    strong_bits: int) -> list[tuple[int, int, bool]]:
    """Pairs (image a, image b, found by face only) whose hashes differ in at most
    ``strong_bits`` or that share a face (``agree``): candidates, to be confirmed."""
    pairs = [(int(ids[i]), int(ids[j]), False) for i, j, _ in pairs_within(hashes, strong_bits)]
    seen = {(a, b) for a, b, _ in pairs}
    known = set(ids.tolist())
    pairs += [(a, b, True) for a, b in sorted(agree)
              if (a, b) not in seen and a in known and b in known]
    return pairs


PairPixels = Callable[[int, int, int, int], float]


class FaceOverlay:
    """Decodes photos small and correlates pairs aligned on one face each."""

    def __init__(self, db: Database, max_pixels: int) -> None:
        self._db = db
        self._max_pixels = max_pixels

    def __call__(self, image_a: int, face_a: int, image_b: int, face_b: int) -> float:
        with self._db.connect() as conn:
            points = face_landmarks(conn, [face_a, face_b])
            paths = image_paths_of(conn, [image_a, image_b])
            formats = image_formats(conn, [image_a, image_b])
        if points.get(face_a) is None or points.get(face_b) is None:
            return 0.0
        decoded = []
        for image in (image_a, image_b):
            img = _decode_small(paths.get(image, []), formats.get(image, "JPEG"), image,
                                self._max_pixels)
            if img is None:
                return 0.0
            decoded.append(img)
        (da, db_), (pa, pb) = decoded, (points[face_a], points[face_b])
        return overlay_correlation(
            da.rgb, np.asarray(pa, np.float32).reshape(5, 2) / da.scale,
            db_.rgb, np.asarray(pb, np.float32).reshape(5, 2) / db_.scale)


class SamePhoto:
    """The second check of a candidate pair: the two pictures' keypoints match
    (:mod:`rbv.media.keypoints`), or, for photos sharing a face (``agree``), the photos
    aligned on that face correlate pixel-wise (:class:`FaceOverlay`; a big crop keeps
    too few keypoints). Each photo is decoded once, each pair checked once."""

    def __init__(self, db: Database, max_pixels: int, params: DedupParams,
                 agree: Agreement, overlay: PairPixels | None = None) -> None:
        self._db = db
        self._max_pixels = max_pixels
        self._params = params
        self._agree = agree
        self._overlay = overlay or FaceOverlay(db, max_pixels)
        self._points: dict[int, Keypoints | None] = {}
        self._pairs: dict[tuple[int, int], bool] = {}

    def _keypoints(self, image: int) -> Keypoints | None:
        if image not in self._points:
            with self._db.connect() as conn:
                paths = image_paths_of(conn, [image]).get(image, [])
                fmt = image_formats(conn, [image]).get(image, "JPEG")
            img = _decode_small(paths, fmt, image, self._max_pixels)
            self._points[image] = None if img is None else keypoints(img.rgb)
        return self._points[image]

    def __call__(self, image_a: int, image_b: int) -> bool:
        key = (min(image_a, image_b), max(image_a, image_b))
        if key not in self._pairs:
            a, b = self._keypoints(key[0]), self._keypoints(key[1])
            points, spread = (0, 0.0) if a is None or b is None else matching_points(a, b)
            same = points >= self._params.min_matches and spread >= MIN_SPREAD
            if not same and key in self._agree:
                _, face_a, face_b = self._agree[key]
                same = (self._overlay(key[0], face_a, key[1], face_b)
                        >= self._params.min_correlation)
            self._pairs[key] = same
        return self._pairs[key]


def _decode_small(paths: list[str], fmt: str, image_id: int,
                  max_pixels: int) -> DecodedImage | None:
    for path in paths:
        try:
            return decode_for_detection(Path(path), fmt, image_id=image_id,
                                        long_edge=HASH_LONG_EDGE, max_pixels=max_pixels)
        except (ImageUnreadable, OSError):
            continue
    return None


def group_pairs(pairs: list[tuple[int, int, bool]], same: Callable[[int, int], bool],
                bits: Callable[[int, int], int]) -> list[tuple[list[int], int, bool]]:
    """Groups of images (sorted ids) in which every two pass ``same``, with their
    largest hash distance (``bits``) and whether a face found any two: the candidate
    ``pairs`` that pass are joined into connected sets, and each set is cut, in id
    order, into groups whose members all pass ``same`` with one another."""
    linked = []
    by_face = set()
    for a, b, face in pairs:
        if same(a, b):
            linked.append((a, b))
            if face:
                by_face.add((min(a, b), max(a, b)))
    root = roots(linked)
    joined: dict[int, list[int]] = {}
    for x in sorted(root):
        joined.setdefault(root[x], []).append(x)
    out = []
    for members in joined.values():
        groups: list[list[int]] = []
        for m in members:
            home = next((g for g in groups if all(same(m, x) for x in g)), None)
            if home is None:
                groups.append([m])
            else:
                home.append(m)
        for g in groups:
            if len(g) > 1:
                two = list(itertools.combinations(g, 2))
                out.append((g, max(bits(a, b) for a, b in two),
                            any(p in by_face for p in two)))
    return sorted(out, key=lambda g: g[0][0])


def near_groups(db: Database, pack_name: str | None, params: DedupParams,
                max_pixels: int) -> tuple[int, list[tuple[list[int], int, bool]]]:
    """The number of hashed photos and their near-duplicate groups (the candidates
    :func:`candidate_pairs` finds, confirmed by :class:`SamePhoto`)."""
    with db.connect() as conn:
        ids, hashes = all_hashes(conn)
    agree = face_agreement(db, pack_name, params.face_similarity)
    pairs = candidate_pairs(ids, hashes, agree, params.strong_bits)
    hash_of = dict(zip(ids.tolist(), hashes.tolist(), strict=True))
    return len(ids), group_pairs(pairs, SamePhoto(db, max_pixels, params, agree),
                                 lambda a, b: hamming(hash_of[a], hash_of[b]))


def run_dedup(db: Database, pack_name: str | None, params: DedupParams, *,
              max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
              advance: Callable[[int], None] = lambda n: None) -> DedupReport:
    """Hash new photos, then report exact and near-duplicate groups."""
    report = DedupReport()
    with recorded_run(db, "dedup", {"pack": pack_name, **asdict(params)}) as run:
        report.hashed, report.failed = hash_new_images(db, max_pixels, advance)
        with db.connect() as conn:
            report.exact = [ExactGroup(i, s, p) for i, s, p in byte_identical(conn)]
        report.images, groups = near_groups(db, pack_name, params, max_pixels)
        with db.connect() as conn:
            paths = first_paths(conn, [i for g in groups for i in g[0]])
        report.near = [NearGroup(m, [paths.get(i, "?") for i in m], d, f)
                       for m, d, f in groups]
        run.counts = {"images": report.images, "hashed": report.hashed,
                      "exact_groups": len(report.exact), "near_groups": len(report.near)}
        if report.failed:
            run.status = "partial"
    return report
