"""A photo is its image data: whether a file on disk still shows the photo the catalogue
knows at that path. Its size and mtime match, or else its sha256 does, or else its image
data does (only its tags changed, by another program or by rbv itself). Whatever writes
onto a photo (``export-xmp``) or draws on its pixels (``faces add``) asks this first: a
photo whose pixels changed since the last ``rbv index`` is another photo."""

from __future__ import annotations

import os
from pathlib import Path

from rbv.errors import ImageUnreadable
from rbv.formats.atomic import Digest
from rbv.media.image_data import image_data_hash
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.store.queries.images import KnownPath


def same_photo(photo: Path, known: KnownPath) -> bool:
    """``photo``'s bytes are those indexed, or else its image data is. False when it
    cannot be read or its structure is broken."""
    try:
        if Digest.of_file(photo).sha256 == known.sha256:
            return True
        return (known.image_hash is not None and known.format is not None
                and image_data_hash(photo, known.format, DEFAULT_MAX_IMAGE_PIXELS)
                == known.image_hash)
    except (OSError, ImageUnreadable):
        return False


def shows_catalogued(photo: Path, known: KnownPath, st: os.stat_result) -> bool:
    """``photo`` (whose status is ``st``) is the photo catalogued as ``known``: unchanged
    since indexed by size and mtime, or else by :func:`same_photo`."""
    return known.unchanged(st.st_size, st.st_mtime) or same_photo(photo, known)
