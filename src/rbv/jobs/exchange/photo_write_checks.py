"""Never write onto what changed: before rbv writes a photo's sidecar or into the photo,
the photo must still be the file it indexed, a regular file, and writable.

- Its size and mtime match the catalogue, or else its sha256 does, or else its image
  data does (only its tags changed: rbv merges its regions into them): a photo whose
  pixels changed since the last ``rbv index`` is skipped (its remedy: index it again),
  and so is one that is gone, a FIFO, a device, a folder or a symlink loop (index its
  folder again). These are failures (exit 3): a re-run after ``rbv index`` does the
  work.
- A photo reached through a symlink is written into only when the link's target is
  itself a catalogued path of the same photo (inside the indexed folders).
- A read-only photo (or sidecar) is left as it is, and a sidecar that is a symlink is
  never replaced by a file: both are said, not failures (the user chose them).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rbv.errors import Remedy
from rbv.jobs.library.same_photo import shows_catalogued
from rbv.regular_files import NotRegular, is_read_only, kind_of, regular_stat
from rbv.store.queries.images import KnownPath

CHANGED = "changed since it was indexed"


@dataclass(frozen=True)
class Refusal:
    """Why a photo is not written: ``failure`` ones count as failed (exit 3);
    ``remedies``: what would let rbv write it (index it again)."""

    reason: str
    failure: bool
    remedies: tuple[Remedy, ...] = ()


def _index_again(path: Path) -> tuple[Remedy, ...]:
    return (Remedy("index", {"paths": [str(path)]}, "index it again"),)


def check_photo(photo: Path, known: KnownPath | None, target: Path, *, into: bool,
                catalogued: Callable[[str], KnownPath | None]) -> Refusal | None:
    """None when rbv may write ``target`` (the photo itself when ``into``, else its
    sidecar) for ``photo`` as catalogued (``known``); else why not."""
    if known is None:
        return Refusal(f"not in the catalogue: {CHANGED}", True, _index_again(photo))
    if known.missing:
        return Refusal("was missing when its folder was last indexed; not written", False)
    try:
        st = regular_stat(photo)
    except NotRegular as exc:  # not a photo to index: its folder's catalogue is out of date
        return Refusal(f"{exc.strerror}: {CHANGED}", True, _index_again(photo.parent))
    except FileNotFoundError:
        return Refusal(f"is gone: {CHANGED}", True, _index_again(photo.parent))
    except OSError as exc:
        return Refusal(f"cannot be looked at ({exc.strerror or exc})", True)
    if not shows_catalogued(photo, known, st):
        return Refusal(CHANGED, True, _index_again(photo))
    if into:
        return _check_into(photo, known, st, catalogued)
    return _check_sidecar(target)


def _check_into(photo: Path, known: KnownPath, st: os.stat_result,
                catalogued: Callable[[str], KnownPath | None]) -> Refusal | None:
    if os.path.islink(photo):
        real = os.path.realpath(photo)
        there = catalogued(real)
        if there is None or there.image_id != known.image_id:
            return Refusal(f"is a symlink to {real}, which is not a catalogued path of "
                           "this photo (outside the indexed folders); rbv does not write "
                           "through it", False)
    if is_read_only(st):
        return Refusal("is read-only; rbv leaves it as it is (`chmod u+w` it to let rbv "
                       "write the names into it)", False)
    return None


def _check_sidecar(sidecar: Path) -> Refusal | None:
    try:
        st = os.lstat(sidecar)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Refusal(f"its sidecar {sidecar.name} cannot be looked at "
                       f"({exc.strerror or exc})", True)
    if stat.S_ISLNK(st.st_mode):
        return Refusal(f"its sidecar {sidecar.name} is a symlink; rbv does not replace it "
                       "with a file (write the names where it points by hand, or remove "
                       "the link)", False)
    if not stat.S_ISREG(st.st_mode):
        return Refusal(f"its sidecar {sidecar.name} is {kind_of(st.st_mode)}, not a file; "
                       "rbv leaves it alone", True)
    if is_read_only(st):
        return Refusal(f"its sidecar {sidecar.name} is read-only; rbv leaves it as it is",
                       False)
    return None
