"""Deciding an image's type from its first bytes, never from its file name."""

from __future__ import annotations

from pathlib import Path

HEAD_BYTES = 32
"""How many leading bytes :func:`sniff_format` needs."""

# ISO-BMFF brands of HEIF/HEIC stills and sequences that pillow-heif decodes.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs",
                b"mif1", b"msf1"}

IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".bmp", ".dib",
    ".gif", ".heic", ".heif", ".hif",
})
"""Names that promise an image: such a file that is not one is reported, not ignored."""


def sniff_format(head: bytes) -> str | None:
    """The Pillow format name (JPEG, PNG, WEBP, TIFF, BMP, GIF, HEIF) of a file that
    starts with ``head``, or None when it is not an image rbv reads."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 14:
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


def looks_like_image_name(path: Path) -> bool:
    """Whether the file name claims to be an image (by its suffix)."""
    return path.suffix.lower() in IMAGE_SUFFIXES
