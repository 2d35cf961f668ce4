"""Pixels of catalogued photos, square face crops cut from them, and the face tiles a
person looks at."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from rbv.errors import ImageUnreadable
from rbv.media.decode import decode_for_detection
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.types import DecodedImage

Box = tuple[float, float, float, float]

TILE_RULE = "centred-outlined-1"
"""How :func:`face_tile` cuts and marks a tile; part of every cached tile's key, so a
tile cut by an earlier rule is never served again."""
BEYOND_PHOTO = (96, 96, 96)
"""A tile's pixels beyond the photo's edge: a neutral grey, not a shifted window."""
OUTLINE = (255, 214, 0)
"""The meant face's box when another face shares its tile: a bright yellow ..."""
OUTLINE_SHADE = (20, 20, 20)
"""... with a dark line outside it, so it shows on a light background too."""
MISSING = (72, 72, 72)
"""The "photo missing" tile's grey, darker than :data:`BEYOND_PHOTO`."""
FACE_PAD = 0.3
"""The padding around a face's box in every face tile (review pages, serve, contact
sheets), as a share of the box's size."""
TIGHTEST_PAD = 0.05
"""The least padding a tile shrinks to so that a larger face beside it shows less."""
PAD_STEP = 0.05
"""How much padding each step of that shrinking takes off."""

PhotoLocator = Callable[[int], tuple[str | None, list[str]]]
"""An image id's format and every known path of it (present ones first):
``rbv.store.queries.images.photo_files`` over a connection."""


class PhotoSource:
    """Decodes catalogued images by id (any of their paths that still exists), keeping
    the last one decoded, since crops of one photo usually come together."""

    def __init__(self, locate: PhotoLocator, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 long_edge: int = 0) -> None:
        self._locate = locate
        self._max_pixels = max_pixels
        self._long_edge = long_edge
        self._last: DecodedImage | None = None

    def load(self, image_id: int) -> DecodedImage:
        """Upright RGB of the image; raises :class:`ImageUnreadable` when no path of it
        can be decoded any more."""
        if self._last is not None and self._last.image_id == image_id:
            return self._last
        fmt, paths = self._locate(image_id)
        reasons = []
        for path in paths:
            if not Path(path).is_file():
                reasons.append(f"{path}: missing")
                continue
            try:
                self._last = decode_for_detection(
                    Path(path), fmt or "JPEG", image_id=image_id, long_edge=self._long_edge,
                    max_pixels=self._max_pixels)
                return self._last
            except ImageUnreadable as exc:
                reasons.append(f"{path}: {exc}")
        why = "; ".join(reasons) or "no path"
        raise ImageUnreadable(f"image {image_id} cannot be read ({why})")


def square_crop(image: DecodedImage, bbox: Box, pad: float, size: int) -> NDArray[np.uint8]:
    """A ``size``×``size`` crop of :func:`square_window` (for crops written out as data,
    ``export-swap`` and ``refine``; a tile a person looks at is :func:`face_tile`)."""
    height, width = image.rgb.shape[:2]
    x1, y1, x2, y2 = (v / image.scale for v in square_window(
        bbox, pad, width * image.scale, height * image.scale))
    return _warp(image, (x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, size, (0, 0, 0))


def square_window(bbox: Box, pad: float, width: float, height: float) -> Box:
    """The square around the face box (original pixels) in a ``width``×``height``
    photo: its side is ``(1 + 2·pad)`` times the box's long edge, but no more than the
    photo's short edge, and it is moved to lie inside the photo, so the context around
    the face comes from the photo rather than a black border (a small face in a small
    photo used to be half border). Only a face cut by the photo's edge still gets black
    beyond that edge. The face may be off the square's centre, or not its largest face:
    tiles a person looks at use :func:`tile_window`."""
    x1, y1, x2, y2 = bbox
    face = max(x2 - x1, y2 - y1)
    side = max(min(face * (1.0 + 2.0 * pad), width, height), face)
    cx = _inside((x1 + x2) / 2.0, side, width)
    cy = _inside((y1 + y2) / 2.0, side, height)
    return cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0


def face_tile(image: DecodedImage, bbox: Box, pad: float, size: int,
              others: Sequence[Box] = ()) -> NDArray[np.uint8]:
    """The ``size``×``size`` tile that shows face ``bbox`` (original pixels), the one
    rule for every tile a person looks at (``rbv serve``, ``rbv site``, contact sheets);
    ``others``: the boxes of the photo's other faces (found by the same pack).

    The tile is the square :func:`tile_window`: centred on the box's centre, never moved
    or enlarged to stay inside the photo (beyond the photo's edge it is neutral grey,
    :data:`BEYOND_PHOTO`), its side ``(1 + 2·pad)`` times the box's long edge, or less
    where that keeps the meant face the largest face in the tile.

    Marking rule: when any other face's box has some area inside the tile, the meant
    face's box is outlined in bright yellow with a dark edge (:data:`OUTLINE`: 2 px
    and 1 px below 150 px tiles, 3 px and 1 px from 150 px), drawn just outside the box
    so the face itself is not covered; a face alone in its tile is not outlined. The
    rule's name (:data:`TILE_RULE`) is part of every cached tile's key."""
    window = tile_window(bbox, pad, others)
    side = window[2] - window[0]
    cx, cy = window[0] + side / 2.0, window[1] + side / 2.0
    tile = _warp(image, cx / image.scale, cy / image.scale, side / image.scale, size,
                 BEYOND_PHOTO)
    if _shows_another(window, others):
        k = size / side
        x1, y1, x2, y2 = bbox
        _outline(tile, (k * (x1 - window[0]), k * (y1 - window[1]),
                        k * (x2 - window[0]), k * (y2 - window[1])))
    return tile


def tile_key(photo: object, bbox: Box, others: Sequence[Box], *sizes: object) -> str:
    """The sha1 (hex) of what a tile is cut from: the rule (:data:`TILE_RULE`), the
    photo, the face's box and those beside it, and the sizes it is cut at; a cached
    tile's name, so it changes when any of them does."""
    boxes = ";".join(",".join(f"{v:.1f}" for v in b) for b in [bbox, *others])
    return hashlib.sha1("|".join(str(part) for part in (TILE_RULE, photo, boxes, *sizes))
                        .encode()).hexdigest()


def tile_window(bbox: Box, pad: float, others: Sequence[Box] = ()) -> Box:
    """The square of the photo (original pixels, may reach beyond its edges) that
    :func:`face_tile` shows: centred on the box, ``(1 + 2·pad)`` × its long edge, made
    smaller (in steps, down to :data:`TIGHTEST_PAD`) while another face's box would show
    in it with as much area as the meant face's (a larger face beside it); a face that
    overlaps the meant one may still do so at the tightest, and its outline tells."""
    x1, y1, x2, y2 = bbox
    long_edge = max(x2 - x1, y2 - y1, 1e-3)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    while True:
        half = long_edge * (1.0 + 2.0 * pad) / 2.0
        window = (cx - half, cy - half, cx + half, cy + half)
        meant = _overlap(bbox, window)
        if pad <= TIGHTEST_PAD or all(_overlap(other, window) < meant for other in others):
            return window
        pad = max(TIGHTEST_PAD, pad - PAD_STEP)


def tile_marked(bbox: Box, pad: float, others: Sequence[Box]) -> bool:
    """Whether :func:`face_tile` outlines the face: another face shows in its tile."""
    return _shows_another(tile_window(bbox, pad, others), others)


def _shows_another(window: Box, others: Sequence[Box]) -> bool:
    return any(_overlap(other, window) > 0.0 for other in others)


def missing_tile(size: int) -> NDArray[np.uint8]:
    """The tile of a face whose photo is gone (missing or unreadable): dark grey with
    the words "photo missing", so it is not taken for a dark photo."""
    tile = Image.new("RGB", (size, size), MISSING)
    draw = ImageDraw.Draw(tile)
    font = ImageFont.load_default(max(10, size // 7))
    draw.multiline_text((size / 2, size / 2), "photo\nmissing", fill=(235, 235, 235),
                        font=font, anchor="mm", align="center")
    return np.asarray(tile, np.uint8)


def _warp(image: DecodedImage, cx: float, cy: float, side: float, size: int,
          border: tuple[int, int, int]) -> NDArray[np.uint8]:
    """The ``side``-wide square around (cx, cy) (decoded pixels) scaled to ``size``."""
    k = size / max(side, 1e-6)
    matrix = np.array([[k, 0.0, size / 2.0 - k * cx], [0.0, k, size / 2.0 - k * cy]])
    interpolation = cv2.INTER_AREA if k < 1.0 else cv2.INTER_CUBIC
    tile = cv2.warpAffine(image.rgb, matrix, (size, size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return np.array(tile, np.uint8)


def _overlap(a: Box, b: Box) -> float:
    """The area two boxes share."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(
        0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _outline(tile: NDArray[np.uint8], box: Box) -> None:
    """Draw the face's box (tile pixels) on ``tile``, just outside it."""
    size = tile.shape[0]
    width = 3 if size >= 150 else 2
    image = Image.fromarray(tile)
    draw = ImageDraw.Draw(image)
    x1, y1, x2, y2 = box
    draw.rectangle((x1 - width - 1, y1 - width - 1, x2 + width, y2 + width),
                   outline=OUTLINE_SHADE, width=1)
    draw.rectangle((x1 - width, y1 - width, x2 + width - 1, y2 + width - 1),
                   outline=OUTLINE, width=width)
    tile[:] = np.asarray(image)


def _inside(centre: float, side: float, extent: float) -> float:
    """``centre`` moved so a window of ``side`` around it stays within ``0..extent``
    (centred on the photo when the window is wider than it)."""
    if side >= extent:
        return extent / 2.0
    return min(max(centre, side / 2.0), extent - side / 2.0)
