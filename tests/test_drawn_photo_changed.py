"""Issue 62, item 4: `rbv faces add` (and a box drawn on serve's photo page) draws on the
photo it was told about. A photo whose file was replaced since it was indexed is refused
with one line saying to re-run `rbv index`, changing nothing, as `export-xmp` refuses it;
a face is never cut from new pixels and attached to the old catalogued image."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from rbv.config import Settings
from rbv.errors import ConfigError, Remedy
from rbv.jobs.library.index import run_index
from rbv.jobs.persons.drawn import add_face
from rbv.store import open_database
from tests.conftest import FACES, MISC, PACK, run_cli

TWO = MISC / "fr_two_people.jpg"
OTHER = FACES / "Angelina_Jolie" / "deepface_img1.jpg"


def _rows(url: str) -> tuple[list[tuple], int]:
    with psycopg.connect(url) as conn:
        faces = conn.execute("SELECT id, image_id FROM face_detections ORDER BY id").fetchall()
        edits = conn.execute("SELECT count(*) FROM person_edits").fetchone()
    return faces, int(edits[0])


def test_a_photo_replaced_since_indexing_is_refused_and_nothing_is_added(
        cli, faces_settings: Settings, sface_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / TWO.name
    with Image.open(TWO) as im:
        im.convert("RGB").save(photo, format="JPEG", quality=95)
        height = im.height
    db = open_database(faces_settings)
    run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    with psycopg.connect(url) as conn:
        image = conn.execute("SELECT image_id FROM image_paths WHERE path = %s",
                             (str(photo),)).fetchone()[0]
    before = _rows(url)
    # another person's photo now lies under the indexed name
    shutil.copyfile(OTHER, photo)
    box = f"0,{height - 60},50,56"
    result = run_cli(cli, "-d", url, "faces", "add", str(photo), "--box", box,
                     "--model-pack", str(PACK))
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: {photo} changed since it was indexed; nothing was drawn: index it again, "
        f"then draw the face: `rbv index {photo}`"]
    assert _rows(url) == before
    # by image id, as serve's photo page draws: refused alike
    with pytest.raises(ConfigError, match="index it again, then draw the face") as err:
        add_face(db, faces_settings, image_id=image, box=(0, height - 60, 50, 56),
                 analyzer=sface_analyzer)
    assert "rbv " not in str(err.value)
    assert err.value.remedies == (Remedy("index", {"paths": [str(photo)]}),)
    assert _rows(url) == before
