"""Numbers that come from outside rbv (XMP files, Immich answers, an inference server's
answers), checked once where they come in.

JSON and XML carry numbers Python turns into ``inf`` (``1e400``) or ``nan``; ``int()`` of
those raises ``OverflowError`` deep inside a run. Each reader passes its numbers through
here, and a number that is not finite or not in its range becomes :class:`OutsideNumber`
(a ``ValueError``, so the readers' existing "malformed item" handling reports the one
item, and the run goes on).
"""

from __future__ import annotations

import math

BIGINT_MAX = 2**63 - 1
"""The largest PostgreSQL ``bigint``: no id or count rbv takes is larger (a larger one is
a typo or a hostile value)."""

MAX_PIXELS_PER_SIDE = 1 << 20
"""The largest image side accepted from outside (1,048,576 px: more than any camera or
panorama; a bigger number is a broken or hostile value)."""

MAX_COORDINATE = float(1 << 24)
"""The largest pixel coordinate of a box accepted from outside (in absolute value)."""

MAX_FACES_PER_IMAGE = 2_000
"""The most faces an inference server may find in one photo. Immich-ML's detector sees
every photo as a 640 × 640 square, and SCRFD scores faces below about 14 px there under
0.5: a frame tiled edge to edge with the smallest faces it keeps holds (640 / 14)² ≈
2,090, a real crowd photo a few hundred. An answer with more floods the library (20,000
faces a photo is 100,000 rows for 5 photos), so it is refused before any is read."""

EMBEDDING_NORM_RANGE = (1e-2, 1e3)
"""The norms a face embedding may have before rbv normalises it: 1 from a server that
normalises, 5-40 from the raw output of SFace and ArcFace recognizers (Immich-ML's);
two orders of magnitude either side. Outside it a vector is noise or overflow (values
of 1e20 whose norm overflows float32 normalise to all zeros)."""

MAX_EMBEDDING_DIM = 4_000
"""The widest face embedding rbv stores: pgvector's HNSW index, built on
``embedding::halfvec(dim)`` (see ``store/queries/packs.py``), takes at most 4,000
dimensions; face recognizers give 128 (SFace) to 512 (ArcFace)."""


class OutsideNumber(ValueError):
    """A number from outside that is not finite or out of its range."""


def finite(value: object, what: str, low: float = -math.inf,
           high: float = math.inf) -> float:
    """``value`` as a finite float within ``low``..``high`` (else :class:`OutsideNumber`).

    Booleans are refused (``true`` is not a number); strings are parsed."""
    if isinstance(value, bool) or value is None:
        raise OutsideNumber(f"{what} {_shown(value)} is not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OutsideNumber(f"{what} {_shown(value)} is not a number") from None
    if not math.isfinite(number):
        raise OutsideNumber(f"{what} {_shown(value)} is not a finite number")
    if not low <= number <= high:
        raise OutsideNumber(f"{what} {_shown(value)} is out of range ({low:g}..{high:g})")
    return number


def pixel_size(value: object, what: str) -> int:
    """``value`` as an image side in pixels: a whole number 1..MAX_PIXELS_PER_SIDE."""
    number = finite(value, what, 1, MAX_PIXELS_PER_SIDE)
    if number != int(number):
        raise OutsideNumber(f"{what} {_shown(value)} is not a whole number of pixels")
    return int(number)


def coordinate(value: object, what: str) -> float:
    """``value`` as a pixel coordinate of a box (finite, within ±MAX_COORDINATE)."""
    return finite(value, what, -MAX_COORDINATE, MAX_COORDINATE)


def _shown(value: object) -> str:
    """The value as the user's file or server wrote it, cut short (an error is one line)."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return repr(text[:40] + ("…" if len(text) > 40 else ""))
