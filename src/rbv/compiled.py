"""numba's ``njit``, with the compiled code cached where it can neither go stale nor be
planted by another user.

numba keys a cached function on its own file's time stamp, but reads the whole index of
the cache (the argument types of every compiled signature) before it compares the stamp:
after rbv's clustering code changed, an index that the old code wrote next to the
sources named a type that no longer existed, and every clustering failed
(``AttributeError: Can't get attribute '_Parts' on <module
'rbv.cluster.evidence_merge'>``) until the cache was deleted by hand. A ``pip install
-U`` leaves those files behind too (they are in no package record). So the cache lives in
a folder named after a digest of the compiled code's sources (the modules that compile
functions and every rbv module they import, as their code may read it), in the user's own
cache folder (0700): new code, new folder. A change to any other module (the
interpreted merge loop, say) keeps the folder, so the next run does not spend some 40
s compiling again. A ``NUMBA_CACHE_DIR`` the user set is kept.

numba's cache files are pickles, which run code when read: a folder on the way that
another user owns (planted, or a home shared by mistake) is never used; the code is then
compiled into a private temporary folder, removed when the process ends.
"""

from __future__ import annotations

import ast
import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numba
import platformdirs

njit = numba.njit
PACKAGE = Path(__file__).resolve().parent  # src/rbv


def code_digest(package: Path = PACKAGE) -> str:
    """A digest of the sources of the modules of ``package`` (the ``rbv`` package's
    folder) that compile functions (import ``njit`` from here, or numba itself) and of
    every module of it they import, directly or not: the compiled code, the functions it
    calls and the types and constants it takes."""
    digest = hashlib.sha256()
    for path in sorted(compiled_sources(package)):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def compiled_sources(package: Path = PACKAGE) -> set[Path]:
    """The files :func:`code_digest` reads."""
    imports: dict[Path, list[tuple[str, list[str]]]] = {}  # each file parsed once

    def of(path: Path) -> list[tuple[str, list[str]]]:
        if path not in imports:
            imports[path] = _imports(path)
        return imports[path]

    me = Path(__file__).resolve()
    todo = [path for path in package.rglob("*.py") if path != me and _may_compile(path)
            and any(name == "numba" or name.startswith("numba.")
                    or (name == "rbv.compiled" and "njit" in names)
                    for name, names in of(path))]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, names in of(path):
            if name != "rbv" and not name.startswith("rbv."):
                continue
            todo += [found for found in (_module_file(package, f"{name}.{n}") for n in names)
                     if found is not None]  # ``from rbv.cluster import evidence``
            found = _module_file(package, name)
            todo += [] if found is None else [found]
    return seen


def _may_compile(path: Path) -> bool:
    """Whether a file may import ``njit`` from here, or numba itself: only those are
    parsed (parsing all of rbv took 0.8 s)."""
    text = path.read_bytes()
    return b"import numba" in text or b"from numba" in text \
        or b"from rbv.compiled import" in text


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """The modules a file imports at its top level (what compiled functions can
    reach), each with the names taken from it."""
    out = []
    for node in ast.parse(path.read_bytes(), str(path)).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def _module_file(package: Path, name: str) -> Path | None:
    """The file of module ``name`` (``rbv.…``) in ``package``, if it is one of its."""
    parts = name.split(".")[1:]
    for path in (package.joinpath(*parts).with_suffix(".py") if parts else None,
                 package.joinpath(*parts, "__init__.py")):
        if path is not None and path.is_file():
            return path
    return None


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
