"""Drawing a face by hand in a decoded picture: landmarks from the pack's detector run
around the box (or placed from the box), aligned and embedded as a scan's faces are.
``rbv faces add`` (:mod:`rbv.jobs.persons.drawn`) draws a new face with it; the carry
after a pixel edit (:mod:`rbv.jobs.library.carry`) draws a drawn face again in the new
content."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.config import Settings
from rbv.errors import ConfigError, ImageUnreadable, Remedy, printable
from rbv.faces.defaults import DEFAULT_MIN_FACE
from rbv.jobs.library.same_photo import shows_catalogued
from rbv.media.decode import decode_image
from rbv.store.queries.faces import NewFace
from rbv.store.queries.images import image_formats, image_paths_of, known_paths

if TYPE_CHECKING:
    from rbv.faces.analyzer import LocalFaceAnalyzer
    from rbv.faces.types import FaceAnalyzer
    from rbv.media.types import DecodedImage

DRAWN_DET_THRESHOLD = 0.3
"""The score a detection inside a drawn box needs (a scan takes 0.5): the user says a
face is there, the detector only says where its eyes are."""
MARGIN = 0.5
"""The detector looks at the box and this share of its long side around it."""
MOSTLY_INSIDE = 0.5
"""A detection is the drawn face when at least this share of it lies in the box."""
BOX_LANDMARKS = np.array([[0.27, 0.40], [0.73, 0.40], [0.50, 0.59], [0.30, 0.73],
                          [0.70, 0.73]], np.float32)
"""Where the eyes, nose tip and mouth corners of a face lie in its box, as shares of
the box's width and height (the median over SCRFD's faces of data/faces, made
symmetric)."""


@dataclass(frozen=True)
class DrawnFace:
    """A face drawn in one picture, embedded (pixels of the upright original)."""

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2: the box drawn
    landmarks: NDArray[np.float32]  # (5, 2)
    det_score: float
    blur: float
    embedding: NDArray[np.float32]
    drawn: str  # 'detector' | 'box'

    def new_face(self, image_id: int, pack_id: int) -> NewFace:
        return NewFace(image_id, pack_id, self.bbox,
                       [float(v) for v in self.landmarks.ravel()], self.det_score,
                       self.blur, self.embedding, self.drawn)


def local_analyzer(analyzer: FaceAnalyzer) -> LocalFaceAnalyzer | None:
    """The local analyzer behind ``analyzer`` (one GPU's of a set), or None for a remote
    server's (it embeds whole photos only: no face can be drawn with it)."""
    from rbv.faces.analyzer import DeviceSet, LocalFaceAnalyzer

    if isinstance(analyzer, DeviceSet):
        return analyzer.analyzers[0]
    return analyzer if isinstance(analyzer, LocalFaceAnalyzer) else None


def draw(analyzer: LocalFaceAnalyzer, image: DecodedImage,
         box: tuple[float, float, float, float]) -> DrawnFace:
    """The face in ``box`` (x1, y1, x2, y2 in original pixels) of the decoded ``image``:
    landmarks from the detector run around the box, or from the box; aligned, its blur
    measured and embedded as a scan's faces are."""
    from rbv.faces.alignment import align_face
    from rbv.faces.analyzer import as_rgb
    from rbv.faces.quality import laplacian_variance

    rgb = as_rgb(image.rgb)
    scale = float(image.scale)
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (v / scale for v in box)
    margin = MARGIN * max(x2 - x1, y2 - y1)
    cx1, cy1 = max(0, int(x1 - margin)), max(0, int(y1 - margin))
    cx2, cy2 = min(width, int(np.ceil(x2 + margin))), min(height, int(np.ceil(y2 + margin)))
    found = analyzer.detector.detect(np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2]),
                                     DRAWN_DET_THRESHOLD)
    best, best_iou = None, 0.0
    for i in range(len(found)):
        dx1, dy1, dx2, dy2 = (float(v) for v in found.boxes[i])
        dx1, dx2, dy1, dy2 = dx1 + cx1, dx2 + cx1, dy1 + cy1, dy2 + cy1
        inter = max(0.0, min(x2, dx2) - max(x1, dx1)) * max(0.0, min(y2, dy2) - max(y1, dy1))
        area = max(1e-6, (dx2 - dx1) * (dy2 - dy1))
        union = area + (x2 - x1) * (y2 - y1) - inter
        if inter >= MOSTLY_INSIDE * area and inter / union > best_iou:
            best, best_iou = i, inter / union
    if best is not None:
        marks = found.keypoints[best].astype(np.float32) + np.array([cx1, cy1], np.float32)
        score, how = float(found.scores[best]), "detector"
    else:
        marks = (np.array([x1, y1], np.float32)
                 + BOX_LANDMARKS * np.array([x2 - x1, y2 - y1], np.float32))
        score, how = 0.0, "box"
    crop = align_face(rgb, marks, analyzer.recognizer.input_size)
    embedding = analyzer.recognizer.embed([crop])[0]
    return DrawnFace(tuple(float(v) for v in box),  # type: ignore[arg-type]
                     (marks * scale).astype(np.float32), score, laplacian_variance(crop),
                     np.asarray(embedding, np.float32), how)


def decode(conn: psycopg.Connection, settings: Settings, analyzer: LocalFaceAnalyzer,
           image_id: int) -> DecodedImage:
    """The catalogued image's pixels, as a scan decodes them for ``analyzer``, read from
    the first of its paths that is still there. Refused (:class:`ConfigError`) when that
    file no longer shows the photo catalogued (its pixels were changed or replaced since
    the last ``rbv index``): a face drawn on it would be cut from another picture."""
    stored = image_paths_of(conn, [image_id]).get(image_id, [])
    known = known_paths(conn, stored)
    fmt = image_formats(conn, [image_id]).get(image_id)
    for path in stored:
        local = settings.path_map.to_local(path)
        try:
            st = os.stat(local)
        except FileNotFoundError:
            continue
        except OSError:
            break  # decoding says why it cannot be read
        was = known.get(path)
        if was is None or not shows_catalogued(Path(local), was, st):
            raise ConfigError(f"{printable(local)} changed since it was indexed; nothing "
                              "was drawn: index it again, then draw the face",
                              remedies=[Remedy("index", {"paths": [local]})])
        return decode_image(image_id, [local], fmt, analyzer.decode_long_edge,
                            settings.max_image_pixels, False)
    return decode_image(image_id, [settings.path_map.to_local(p) for p in stored], fmt,
                        analyzer.decode_long_edge, settings.max_image_pixels, False)


def redraw(analyzer: LocalFaceAnalyzer, image: DecodedImage,
           box: tuple[float, float, float, float], frame: tuple[int, int]
           ) -> DrawnFace | None:
    """The face drawn at ``box`` drawn again in a new picture (its place carried into the
    new frame), or None when the box falls outside it."""
    width, height = frame
    x1, y1 = max(0.0, box[0]), max(0.0, box[1])
    x2, y2 = min(float(width), box[2]), min(float(height), box[3])
    if x2 - x1 < DEFAULT_MIN_FACE or y2 - y1 < DEFAULT_MIN_FACE:
        return None
    try:
        return draw(analyzer, image, (x1, y1, x2, y2))
    except ImageUnreadable:
        return None
