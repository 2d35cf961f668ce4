"""Another program saves a photo (or its sidecar) while `export-xmp` works on it (issue
54 item 7): rbv never writes over that edit. The racer is a seam at the exact moment:
right after rbv read the photo, or in the last instant between rbv's final check and
its rename. The edit survives byte for byte, the photo is said on one line, the run goes
on with the other photos and exits 3, and no backup or temporary file is left."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

import rbv.formats.lease as lease
import rbv.jobs.exchange.export_xmp as export_job
from rbv.config import Settings
from rbv.formats import replace_if_unchanged
from tests.conftest import MISC, run_cli
from tests.test_faults_files import PHOTOS, _backup, _named_library, _temps

pytestmark = pytest.mark.slow  # ~8 s: export-xmp raced by edits at each step

Edit = Callable[[Path], bytes]


def _brightened(photo: Path) -> bytes:
    out = io.BytesIO()
    ImageEnhance.Brightness(Image.open(photo)).enhance(1.3).save(out, "JPEG", quality=90)
    return out.getvalue()


def saved_by_rename(photo: Path) -> bytes:
    """An editor's save: a new file renamed over the photo (made from the photo's source,
    the same bytes: the photo itself is not opened, which would wait on rbv's lease)."""
    edited = _brightened(MISC / photo.name)
    tmp = photo.with_name("editor-save.tmp")
    tmp.write_bytes(edited)
    os.replace(tmp, photo)
    return edited


def written_in_place(photo: Path) -> bytes:
    edited = _brightened(photo)
    with photo.open("r+b") as f:
        f.write(edited)
        f.truncate()
    return edited


def same_size_and_mtime(photo: Path) -> bytes:
    """One byte changed in place, the mtime put back: only the content tells."""
    st = photo.stat()
    data = bytearray(photo.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with photo.open("r+b") as f:
        f.write(data)
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


def _after_read(monkeypatch: pytest.MonkeyPatch, raced: Path, edit: Edit) -> list[bytes]:
    """Edit ``raced`` once rbv has read it and made its new version."""
    edits: list[bytes] = []
    real = export_job.verify_photo

    def racing(data: bytes, where: Path) -> None:
        if Path(where) == raced and not edits:
            edits.append(edit(raced))
        real(data, where)

    monkeypatch.setattr(export_job, "verify_photo", racing)
    return edits


def _last_instant(monkeypatch: pytest.MonkeyPatch, raced: Path, edit: Edit) -> list[bytes]:
    """Edit ``raced`` after rbv's last check, right before its new file takes the name.
    An edit in place opens the file, which waits while rbv holds its lease (that case is
    tests/test_xmp_lease.py): here it is a file system that grants none."""
    if edit is not saved_by_rename:
        monkeypatch.setattr(lease, "_SETLEASE", None)
    edits: list[bytes] = []
    real = replace_if_unchanged._exchange

    def racing(a: Path, b: Path) -> bool:
        if Path(b) == raced and not edits:
            edits.append(edit(raced))
        return real(a, b)

    monkeypatch.setattr(replace_if_unchanged, "_exchange", racing)
    return edits


def _no_swap(monkeypatch: pytest.MonkeyPatch, raced: Path, edit: Edit) -> list[bytes]:
    """A file system that cannot swap names: the check before the rename still holds."""
    monkeypatch.setattr(replace_if_unchanged, "_exchange", lambda a, b: False)
    return _after_read(monkeypatch, raced, edit)


@pytest.mark.parametrize(("window", "edit"), [
    (_after_read, saved_by_rename), (_after_read, written_in_place),
    (_after_read, same_size_and_mtime), (_last_instant, saved_by_rename),
    (_last_instant, written_in_place), (_last_instant, same_size_and_mtime),
    (_no_swap, written_in_place),
], ids=lambda f: f.__name__.strip("_"))
def test_a_photo_saved_while_exporting_keeps_the_edit(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        window: Callable[[pytest.MonkeyPatch, Path, Edit], list[bytes]], edit: Edit) -> None:
    lib = tmp_path / "lib"
    originals = _named_library(lib, settings, sface_analyzer)
    raced, other = (lib / name for name in PHOTOS)
    os.chmod(other, 0o640)
    os.chown(other, 65534, 65534)  # rbv runs as root here: the owner is kept
    edits = window(monkeypatch, raced, edit)

    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp",
                     "--write-into-files", str(lib))

    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        f"Error: {raced}: changed while exporting; not written; re-run `rbv export-xmp`"]
    assert len(edits) == 1 and raced.read_bytes() == edits[0]
    assert not _backup(raced).exists() and _temps(lib) == []
    assert _backup(other).read_bytes() == originals[other] != other.read_bytes()
    for kept in (other, _backup(other)):
        st = kept.stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 65534, 65534)


def test_a_sidecar_saved_while_exporting_keeps_the_edit(
        cli, settings: Settings, sface_analyzer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    _named_library(lib, settings, sface_analyzer, PHOTOS[:1])
    sidecar = lib / (PHOTOS[0] + ".xmp")
    sidecar.write_bytes(_packet("from another program"))
    edited = _packet("saved by another program while rbv exported")
    edits = _last_instant(monkeypatch, sidecar, lambda p: (p.write_bytes(edited), edited)[1])

    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp", str(lib))

    assert result.exit_code == 3, result.output
    assert f"Error: {sidecar}: changed while exporting" in result.stderr
    assert edits == [edited] and sidecar.read_bytes() == edited and _temps(lib) == []


def _packet(title: str) -> bytes:
    return (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt>'
            b'<rdf:li xml:lang="x-default">' + title.encode() + b'</rdf:li></rdf:Alt>'
            b'</dc:title></rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>')
