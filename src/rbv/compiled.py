"""numba's ``njit``, with the compiled code cached where it can neither go stale nor be
planted by another user.

numba keys a cached function on its own file's time stamp, but reads the whole index of
the cache (the argument types of every compiled signature) before it compares the stamp:
after rbv's clustering code changed, an index that the old code wrote next to the
sources named a type that no longer existed, and every clustering failed
(``AttributeError: Can't get attribute '_Parts' on <module
'rbv.cluster.evidence_merge'>``) until the cache was deleted by hand. A ``pip install
-U`` leaves those files behind too (they are in no package record). So the cache lives in
a folder named after a digest of the clustering code's sources, in the user's own cache
folder (0700): new code, new folder. A ``NUMBA_CACHE_DIR`` the user set is kept.

numba's cache files are pickles, which run code when read: a folder on the way that
another user owns (planted, or a home shared by mistake) is never used; the code is then
compiled into a private temporary folder, removed when the process ends.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numba
import platformdirs

njit = numba.njit
HERE = Path(__file__).resolve().parent / "cluster"  # the compiled functions


def code_digest(folder: Path = HERE) -> str:
    """A digest of the sources of every module in ``folder`` (the compiled functions and
    the types they take)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_folder(root: Path | None = None) -> Path:
    """The folder compiled code of this code is cached in (made 0700 on the way).
    Raises ``OSError`` where one on the way belongs to another user."""
    root = root or Path(platformdirs.user_cache_dir("rbv", appauthor=False))
    folder = root / "numba" / code_digest()
    me = os.geteuid() if hasattr(os, "geteuid") else None
    for level in (root, root / "numba", folder):
        level.mkdir(mode=0o700, exist_ok=True, parents=True)
        st = level.stat()
        if me is not None and st.st_uid != me:
            raise PermissionError(f"{level} belongs to another user")
        if st.st_mode & 0o077:
            level.chmod(0o700)  # ours, left open by something else
    return folder


def _private_scratch() -> str:
    """A folder of this process alone (0700), removed when it ends."""
    folder = tempfile.mkdtemp(prefix="rbv-numba-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


if not os.environ.get("NUMBA_CACHE_DIR"):
    try:
        numba.config.CACHE_DIR = str(cache_folder())  # type: ignore[attr-defined]
    except OSError:  # not writable, or not the user's own: compiled for this run alone
        numba.config.CACHE_DIR = _private_scratch()  # type: ignore[attr-defined]
