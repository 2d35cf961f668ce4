"""One bad path never stops a run (issue 54 item 10): a folder tree deeper than a path
may be (PATH_MAX), a FIFO named like a photo, a photo replaced by a FIFO, and an
`export-xmp --out` that is a file are each said on one line, and the rest is done."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rbv.config import Settings
from tests.conftest import MISC, PACK, run_cli
from tests.test_faults_files import PHOTOS, _named_library
from tests.test_hostile import _errors
from tests.test_library_paths import _rows

NAME = "d" * 200


def _deep_tree(top: Path, levels: int, photo: Path) -> Path:
    """``levels`` folders of 200-byte names, one in the other, under ``top``, with
    ``photo`` at the bottom: made relative to folder descriptors, as no path reaches it.
    Returns the first folder whose path is longer than the catalogue takes (2000 bytes)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(NAME, dir_fd=fd)
            deeper = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        out = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(photo.read_bytes())
    finally:
        os.close(fd)
    folder = top
    while len(os.fsencode(folder)) <= 2000:
        folder /= NAME
    return folder


def test_a_tree_deeper_than_path_max_and_fifos_are_said_and_the_rest_is_indexed(
        cli, settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in PHOTOS:
        shutil.copyfile(MISC / name, lib / name)
    too_long = _deep_tree(lib, 22, MISC / PHOTOS[0])
    assert len(os.fsencode(lib)) + 22 * (len(NAME) + 1) > os.pathconf(lib, "PC_PATH_MAX")
    os.mkfifo(lib / "fifo.jpg")  # opening it to read would block forever
    url = str(settings.database_url)

    first = run_cli(cli, "index", "-d", url, "--model-pack", str(PACK), str(lib))

    assert first.exit_code == 3, first.output
    assert _errors(first.stderr) == [
        f"Error: {too_long}: path longer than 2000 bytes; nothing under it is catalogued "
        "(move it to a shorter path)",
        f"Error: {lib / 'fifo.jpg'}: cannot read: not a regular file but a FIFO (named pipe)"]
    assert sorted(Path(p).name for (p,) in _rows(settings, "SELECT path FROM image_paths")
                  ) == sorted(PHOTOS)
    assert _rows(settings, "SELECT count(*) FROM face_detections")[0][0] >= 4

    photo = lib / PHOTOS[1]  # a catalogued photo replaced by a FIFO
    photo.unlink()
    os.mkfifo(photo)
    again = run_cli(cli, "index", "-d", url, "--model-pack", str(PACK), str(lib))

    assert again.exit_code == 3, again.output
    assert (f"Error: {photo}: cannot read: not a regular file but a FIFO (named pipe)"
            in _errors(again.stderr))
    failed = dict(_rows(settings, "SELECT path, error FROM catalogue_failures"))
    assert failed.keys() == {str(lib / "fifo.jpg"), str(photo)}
    assert failed[str(photo)] == "cannot read: not a regular file but a FIFO (named pipe)"


def test_export_xmp_out_that_is_a_file_is_one_error(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _named_library(lib, settings, sface_analyzer)
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0::/root:/bin/sh\n")
    before = sorted(tmp_path.rglob("*"))
    for out in (a_file, a_file / "sidecars"):
        result = run_cli(cli, "-d", str(settings.database_url), "export-xmp", "--out",
                         str(out))
        assert result.exit_code == 1, result.output
        assert _errors(result.stderr) == result.stderr.splitlines() == [
            f"Error: {out} "
            + ("is" if out == a_file else f"is inside {a_file}, which is")
            + " not a folder; pass a folder for the sidecars (--out)"]
    assert sorted(tmp_path.rglob("*")) == before
    assert a_file.read_text() == "root:x:0:0::/root:/bin/sh\n"
