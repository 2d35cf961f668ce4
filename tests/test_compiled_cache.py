"""numba's compiled code is cached per version of the compiled code, in the user's own
cache folder (0700): an index the old code wrote never reaches the new code (it named a
type that had moved, and every clustering failed until the cache was deleted by hand)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rbv.compiled import PACKAGE, cache_folder, code_digest, compiled_sources

PROBE = """
import numba, rbv.cluster.evidence_merge_loop, rbv.cluster.evidence_singles
print(numba.config.CACHE_DIR)
"""


def test_the_cache_folder_changes_with_the_compiled_code_alone(tmp_path: Path) -> None:
    """A change to a module that compiles functions, or to a module it imports (a type
    it takes moved away), makes a new folder; a change to the code that only calls it
    (the interpreted merge loop, say) keeps the folder, and the compiled code with it."""
    rbv = tmp_path / "rbv"
    (rbv / "cluster").mkdir(parents=True)
    (rbv / "compiled.py").write_text("import numba\nnjit = numba.njit\n")
    (rbv / "cluster" / "kernels.py").write_text(
        "from rbv.compiled import njit\nfrom rbv.cluster.parts import Parts\n")
    (rbv / "cluster" / "parts.py").write_text("class Parts:\n    pass\n")
    (rbv / "cluster" / "own.py").write_text("import numba\n")  # numba's own njit
    (rbv / "cluster" / "loop.py").write_text("from rbv.cluster import kernels\n")
    before = code_digest(rbv)
    assert code_digest(rbv) == before
    (rbv / "cluster" / "loop.py").write_text("from rbv.cluster import kernels\nX = 1\n")
    assert code_digest(rbv) == before
    for changed, text in (("parts.py", "class Moved:\n    pass\n"),  # a type moved away
                          ("own.py", "import numba\nX = 1\n")):
        kept = (rbv / "cluster" / changed).read_text()
        (rbv / "cluster" / changed).write_text(text)
        assert code_digest(rbv) != before, changed
        (rbv / "cluster" / changed).write_text(kept)
    assert code_digest(rbv) == before


def test_rbvs_digest_reads_its_compiled_modules_and_not_the_interpreted_loop() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in compiled_sources()}
    assert {"compiled.py", "cluster/evidence_kernels.py", "cluster/evidence_merge_loop.py",
            "cluster/evidence_singles.py", "cluster/knn_search.py"} <= names
    assert "cluster/evidence_heap.py" not in names and "cluster/evidence.py" not in names


def test_compiled_code_is_cached_in_a_private_folder_of_this_code(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    folder = Path(out)
    assert folder == tmp_path / "cache" / "rbv" / "numba" / code_digest()
    for level in (folder, folder.parent, folder.parent.parent):
        assert level.stat().st_mode & 0o777 == 0o700, level
    # a folder left open is closed again; a NUMBA_CACHE_DIR the user set is kept
    folder.chmod(0o755)
    assert cache_folder(tmp_path / "cache" / "rbv") == folder
    assert folder.stat().st_mode & 0o777 == 0o700
    mine = tmp_path / "mine"
    kept = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env={**env, "NUMBA_CACHE_DIR": str(mine)}, check=True)
    assert kept.stdout.strip() == str(mine)


NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="acting as another local user needs root and setpriv")
def test_another_user_neither_reads_the_cache_nor_plants_one(tmp_path: Path) -> None:
    """The cache holds pickles, which run code when numba reads them: another local user
    can list nothing in it, and a folder of theirs on the way is never read."""
    tmp_path.chmod(0o755)  # the test's own folder open: the cache's modes alone decide
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    made = Path(subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                               text=True, check=True).stdout.strip())
    assert any(made.iterdir())  # compiled code cached there
    other = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    for level in (made, made.parent, made.parent.parent):
        looked = subprocess.run([*other, "ls", str(level)], capture_output=True, text=True,
                                check=False)
        assert looked.returncode != 0 and "Permission denied" in looked.stderr, level
    # the same folder, had another user made it first: never read, nor written
    shutil.rmtree(made)
    made.mkdir(mode=0o777)
    os.chown(made, NOBODY, NOBODY)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert Path(out) != made and Path(out).name.startswith("rbv-numba-")
    assert not any(made.iterdir())
    assert not Path(out).exists()  # removed when the process ended
