"""Opening images: header-only probing for the catalogue, and upright RGB for detection.

Pillow's own decompression-bomb check is replaced by rbv's (a configurable pixel limit,
checked from the header before any pixel is decoded), so the error names the setting.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pillow_heif
from numpy.typing import NDArray
from PIL import Image, ImageOps

from rbv.errors import ImageTooLarge, ImageUnreadable
from rbv.media.exif import ExifInfo, read_exif
from rbv.media.orientation import SIDEWAYS
from rbv.media.types import DecodedImage

pillow_heif.register_heif_opener()
Image.MAX_IMAGE_PIXELS = None  # rbv's guard (check_pixels) takes its place


@dataclass(frozen=True)
class ImageProbe:
    """What the header of an image says (no pixels decoded)."""

    format: str
    width: int  # after EXIF orientation
    height: int
    exif: ExifInfo


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse images whose pixel count could exhaust memory when decoded."""
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width}×{height} = {width * height / 1e6:.0f} megapixels is over the "
            f"{max_pixels / 1e6:.0f} MP limit (a decompression bomb?); raise "
            "RBV_MAX_IMAGE_PIXELS if the image is genuine"
        )


@contextmanager
def open_image(path: Path, fmt: str, max_pixels: int) -> Iterator[Image.Image]:
    """Open ``path`` as format ``fmt`` (decided by content) after the pixel guard."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's chatter about odd metadata
            im = Image.open(path, formats=[fmt])
    except OSError as exc:
        raise ImageUnreadable(_reason(exc, fmt)) from None
    except (ValueError, SyntaxError) as exc:  # some plugins raise these on bad headers
        raise ImageUnreadable(f"not a valid {fmt} file ({exc})") from None
    with im:
        check_pixels(im.width, im.height, max_pixels)
        yield im


def probe_image(path: Path, fmt: str, max_pixels: int) -> ImageProbe:
    """Read the header: oriented size and EXIF. Raises :class:`ImageUnreadable`."""
    with open_image(path, fmt, max_pixels) as im:
        exif = read_exif(im)
        width, height = im.size
        applied = im.info.get("original_orientation")
        if isinstance(applied, int) and 1 <= applied <= 8:
            # pillow-heif already turned the pixels upright and reset the tag to 1;
            # keep the camera's value on record.
            exif = replace(exif, orientation=applied)
        elif exif.orientation in SIDEWAYS:
            width, height = height, width
        if width < 1 or height < 1:
            raise ImageUnreadable(f"the header says the image is {width}×{height} pixels")
        return ImageProbe(fmt, width, height, exif)


def decode_for_detection(
    path: Path,
    fmt: str,
    *,
    image_id: int,
    long_edge: int,
    max_pixels: int,
    keep_bytes: bool = False,
) -> DecodedImage:
    """Upright RGB pixels for the face analyzer.

    Big JPEGs are decoded at a reduced size (draft mode: 1/2, 1/4 or 1/8 scale, almost
    free) as long as the long edge stays at or above ``long_edge``; other formats are
    decoded fully, then reduced by an integer factor. ``scale`` maps back to the
    original. ``keep_bytes`` also returns the file's bytes (for a remote analyzer).
    """
    data = path.read_bytes() if keep_bytes else None
    with open_image(path, fmt, max_pixels) as im:
        raw_w, raw_h = im.size
        orientation = _orientation(im)
        rgb = None
        if fmt == "JPEG" and im.mode in ("RGB", "L"):
            rgb = _jpeg_with_opencv(data if data is not None else path.read_bytes(),
                                    (raw_w, raw_h), long_edge)
        try:
            if rgb is None:
                if fmt == "JPEG" and long_edge > 0 and max(raw_w, raw_h) > long_edge:
                    ratio = long_edge / max(raw_w, raw_h)
                    im.draft("RGB", (math.ceil(raw_w * ratio), math.ceil(raw_h * ratio)))
                im.load()
                upright = ImageOps.exif_transpose(im) or im
                factor = max(upright.size) // long_edge if long_edge > 0 else 1
                if factor >= 2:
                    upright = upright.reduce(factor)
                rgb = to_rgb(upright)
        except ImageUnreadable:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageUnreadable(_reason(exc, fmt)) from None
    original = (raw_h, raw_w) if orientation in SIDEWAYS else (raw_w, raw_h)
    scale = max(original) / max(rgb.shape[1], rgb.shape[0])
    return DecodedImage(image_id=image_id, path=path, rgb=rgb, scale=scale,
                        original_size=original, data=data)


def _jpeg_with_opencv(data: bytes, size: tuple[int, int], long_edge: int
                      ) -> NDArray[np.uint8] | None:
    """A whole RGB or greyscale JPEG decoded by OpenCV: the same libjpeg-turbo DCT
    scaling as Pillow's draft mode (1/2, 1/4, 1/8 while the long edge stays ≥
    ``long_edge``), EXIF orientation applied, then the same integer reduction; the same
    pixels for ~15 % less CPU than Pillow's path on the test JPEGs (the libjpeg-turbo
    bindings measured in ``scripts/bench/bench_decode.py`` are within ±10 % of it: the cost
    is libjpeg-turbo's). None for a file that does not end in the JPEG end
    marker (OpenCV would fill a truncated one with grey instead of failing) or that
    OpenCV cannot read: Pillow's path then decodes it or names the problem."""
    import cv2

    if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    flag = cv2.IMREAD_COLOR
    if 0 < long_edge < max(size):  # the scale Pillow's draft() picks for decode_for_detection
        ratio = long_edge / max(size)
        scale = min(n // math.ceil(n * ratio) for n in size)
        for k, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                           (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if scale >= k:
                flag = reduced
                break
    # OpenCV ≥ 4.10 has libjpeg-turbo write RGB itself: no BGR image to convert after.
    in_rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if in_rgb is not None:
        flag = flag & ~cv2.IMREAD_COLOR | in_rgb
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if pixels is None or pixels.ndim != 3:
        return None
    rgb = pixels if in_rgb is not None else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    factor = max(rgb.shape[:2]) // long_edge if long_edge > 0 else 1
    if factor >= 2:
        return to_rgb(Image.fromarray(rgb).reduce(factor))
    return np.ascontiguousarray(rgb)


def to_rgb(im: Image.Image) -> NDArray[np.uint8]:
    """H×W×3 uint8 from any mode: alpha is composited on white, 16-bit is scaled down,
    palettes are expanded."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(values * (255.0 / peak), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if im.mode == "P" or im.mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) else 1


def _reason(exc: BaseException, fmt: str) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text or "broken data stream" in text:
        return f"the {fmt} file is truncated or damaged"
    if "cannot identify image file" in text:
        return f"not a readable {fmt} image"
    return f"cannot decode {fmt}: {text}"


def decode_image(image_id: int, paths: list[str], fmt: str | None, long_edge: int,
            max_pixels: int, keep_bytes: bool) -> DecodedImage:
    """Decode the image from the first of its paths that can still be read."""
    if not paths or fmt is None:
        raise ImageUnreadable("no readable path is catalogued for this image")
    missing = []
    for path in paths:
        try:
            return decode_for_detection(Path(path), fmt, image_id=image_id, long_edge=long_edge,
                                        max_pixels=max_pixels, keep_bytes=keep_bytes)
        except FileNotFoundError:
            missing.append(path)
        except PermissionError as exc:
            raise ImageUnreadable(f"cannot read: {exc.strerror}") from None
        except OSError as exc:
            raise ImageUnreadable(f"cannot read: {exc.strerror or exc}") from None
    raise ImageUnreadable(f"file no longer exists ({', '.join(missing)}); re-run index")
