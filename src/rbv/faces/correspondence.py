"""Which face of an edited photo is which face of the photo it was.

A photo whose pixels changed (a retouch, a crop, a resize, another file copied over it)
is detected again; a new face is the old face when both tests agree:

* **the same place**: the old box, carried into the new picture's frame, overlaps the
  new box (IoU ≥ :data:`MIN_IOU`) and the five landmarks fall where they were. The new
  frame is the old one, or the old one scaled to the new size, or the frame that one
  pair of faces implies (a crop: a scale and a shift); a frame is only possible when the
  new picture lies inside the old one scaled (a crop cannot show what the photo did not
  hold). The frame that explains most pairs wins; ties go to the simpler frame.
* **the same person**: the embeddings are at least ``min_similarity`` alike, a level two
  faces of different people reach by chance almost never (see
  :func:`rbv.cluster.calibrations` for the pack's impostor model).

Measured on ``data/faces`` with SFace (``scripts/bench/bench_face_carry.py``, 68 photos): the
main face is found again after every crop and retouch and 67 of 68 resizes to half
(same-face similarity: 5th percentile 0.88 to 0.95), never in another person's photo;
in another photo of the same person 9 of 67 times, where the embedding alone takes 51.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MIN_IOU = 0.5
"""Overlap a carried old box needs with the new box."""
LANDMARK_TOLERANCE = 0.2
"""Farthest a carried landmark may fall from the new one, as a share of the new box's
width."""
FRAME_TOLERANCE = 0.03
"""How far (as a share of its size, plus 2 px) the new picture may reach outside the old
one scaled: detector boxes are a few pixels uncertain, so a frame from one pair is too."""


@dataclass(frozen=True)
class PhotoFaces:
    """The faces of one picture, in its own pixels (after EXIF orientation)."""

    frame: tuple[int, int]  # width, height
    boxes: NDArray[np.float64]  # (n, 4): x1, y1, x2, y2
    landmarks: NDArray[np.float64] | None  # (n, 5, 2); None: not known for every face
    embeddings: NDArray[np.float32]  # (n, d), L2-normalised


@dataclass(frozen=True)
class Frame:
    """new = scale · old + shift: where the old picture's pixels are in the new one."""

    scale: float
    shift: tuple[float, float]

    def boxes(self, boxes: NDArray[np.float64]) -> NDArray[np.float64]:
        dx, dy = self.shift
        return boxes * self.scale + np.array([dx, dy, dx, dy])

    def points(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        return points * self.scale + np.array(self.shift)


def match_faces(old: PhotoFaces, new: PhotoFaces,
                min_similarity: float) -> list[tuple[int, int, float]]:
    """(old index, new index, similarity) of each face of ``new`` that is a face of
    ``old``; each face in at most one pair."""
    return match_in_frame(old, new, min_similarity)[0]


def match_in_frame(old: PhotoFaces, new: PhotoFaces, min_similarity: float
                   ) -> tuple[list[tuple[int, int, float]], Frame | None]:
    """:func:`match_faces`, and the frame the pairs were found in (None: no pair)."""
    if not len(old.boxes) or not len(new.boxes):
        return [], None
    similar = old.embeddings.astype(np.float64) @ new.embeddings.astype(np.float64).T
    alike = similar >= min_similarity
    if not alike.any():
        return [], None
    best: list[tuple[int, int, float]] = []
    best_frame: Frame | None = None
    best_score = (0, 0.0)
    for frame in _frames(old, new, alike):
        if not _inside(frame, old.frame, new.frame):
            continue
        overlap = _iou(frame.boxes(old.boxes), new.boxes)
        agree = alike & (overlap >= MIN_IOU) & _landmarks_agree(frame, old, new)
        pairs = _one_to_one(agree, overlap, similar)
        score = (len(pairs), sum(s for _, _, s in pairs))
        if score > best_score:  # strictly: a tie keeps the simpler frame found first
            best, best_frame, best_score = pairs, frame, score
    return best, best_frame


def plain_frames(old: tuple[int, int], new: tuple[int, int]) -> list[Frame]:
    """The frames a picture may be in without a face pair to tell: the same frame, and
    the old one scaled to the new size (when the proportions agree), where possible."""
    (w0, h0), (w1, h1) = old, new
    frames = [Frame(1.0, (0.0, 0.0))]
    if w0 and h0 and abs(w1 / w0 - h1 / h0) <= FRAME_TOLERANCE * max(w1 / w0, h1 / h0):
        frames.append(Frame((w1 / w0 + h1 / h0) / 2, (0.0, 0.0)))
    return [f for f in frames if _inside(f, old, new)]


def _frames(old: PhotoFaces, new: PhotoFaces, alike: NDArray[np.bool_]) -> list[Frame]:
    """The frames worth trying: the same frame, the old one scaled to the new size (when
    the proportions agree), and the one each alike pair of faces implies."""
    (w0, h0), (w1, h1) = old.frame, new.frame
    frames = [Frame(1.0, (0.0, 0.0))]
    if w0 and h0 and abs(w1 / w0 - h1 / h0) <= FRAME_TOLERANCE * max(w1 / w0, h1 / h0):
        frames.append(Frame((w1 / w0 + h1 / h0) / 2, (0.0, 0.0)))
    for i, j in zip(*np.nonzero(alike), strict=True):
        a, b = old.boxes[i], new.boxes[j]
        area_a = (a[2] - a[0]) * (a[3] - a[1])
        area_b = (b[2] - b[0]) * (b[3] - b[1])
        if area_a <= 0 or area_b <= 0:
            continue
        scale = float(np.sqrt(area_b / area_a))
        centre_a = np.array([a[0] + a[2], a[1] + a[3]]) / 2
        centre_b = np.array([b[0] + b[2], b[1] + b[3]]) / 2
        dx, dy = centre_b - scale * centre_a
        frames.append(Frame(scale, (float(dx), float(dy))))
    return frames


def _inside(frame: Frame, old: tuple[int, int], new: tuple[int, int]) -> bool:
    """The new picture lies inside the old one as ``frame`` places it."""
    (w0, h0), (w1, h1) = old, new
    dx, dy = frame.shift
    tx, ty = FRAME_TOLERANCE * w1 + 2, FRAME_TOLERANCE * h1 + 2
    return (dx <= tx and dy <= ty and dx + frame.scale * w0 >= w1 - tx
            and dy + frame.scale * h0 >= h1 - ty)


def _iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Intersection over union of every box of ``a`` with every box of ``b``."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _landmarks_agree(frame: Frame, old: PhotoFaces, new: PhotoFaces) -> NDArray[np.bool_]:
    """Whether each carried old face's landmarks fall near each new face's (all True
    when either picture's landmarks are not known)."""
    shape = (len(old.boxes), len(new.boxes))
    if old.landmarks is None or new.landmarks is None:
        return np.ones(shape, bool)
    moved = frame.points(old.landmarks)  # (n, 5, 2)
    gap = np.linalg.norm(moved[:, None] - new.landmarks[None, :], axis=-1).max(axis=-1)
    width = np.maximum(new.boxes[:, 2] - new.boxes[:, 0], 1.0)
    return np.asarray(gap <= LANDMARK_TOLERANCE * width[None, :])


def _one_to_one(agree: NDArray[np.bool_], overlap: NDArray[np.float64],
                similar: NDArray[np.float64]) -> list[tuple[int, int, float]]:
    """Pairs allowed by ``agree``, best overlap first, each face used once."""
    order = sorted(zip(*np.nonzero(agree), strict=True),
                   key=lambda p: (-overlap[p], -similar[p]))
    used_old: set[int] = set()
    used_new: set[int] = set()
    pairs = []
    for i, j in order:
        if i not in used_old and j not in used_new:
            used_old.add(int(i))
            used_new.add(int(j))
            pairs.append((int(i), int(j), float(similar[i, j])))
    return sorted(pairs)
