"""A photo whose pixels changed (issue 29, item 2): cropped, retouched or replaced at the
same path, it is detected again, and each old face's person, hand-placement, rejections
and same/different links go to the new face that is the same face (the same place and
the same person, both required); what cannot go is said by face id, never dropped
silently. The old faces wait until their pack has found the new ones, so an interrupted
run or a later `embed` loses nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from PIL import Image, ImageEnhance

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import FACES, MISC, PACK, run_cli

pytestmark = pytest.mark.slow  # ~25 s: indexes photos edited between runs

TWO = MISC / "fr_two_people.jpg"  # 1126×661, two people side by side
OTHER = FACES / "Madonna" / sorted(p.name for p in (FACES / "Madonna").iterdir())[0]
THIRD = FACES / "Jerry_Seinfeld" / sorted(p.name for p in (FACES / "Jerry_Seinfeld").iterdir())[0]
STRANGER = FACES / "Ben_Affleck" / sorted(p.name for p in (FACES / "Ben_Affleck").iterdir())[0]


def _faces(url: str, path: Path) -> list[int]:
    """The face ids of the photo now at ``path``, left to right."""
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT f.id FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id "
            "WHERE p.path = %s ORDER BY f.x1", (str(path),))]


def _decisions(url: str, path: Path) -> list[tuple[object, ...]]:
    """What the faces of the photo at ``path`` hold, left to right: the person's name,
    how it was placed, the persons it was rejected from, and its same/different links
    (a face of the same photo named by its place, left or right, others by id)."""
    faces = _faces(url, path)
    role = {f: ("left", "right")[i] if len(faces) == 2 else str(i) for i, f in enumerate(faces)}
    out = []
    with psycopg.connect(url) as conn:
        for f in faces:
            name, how = conn.execute(
                "SELECT n.name, f.assigned_by FROM face_detections f LEFT JOIN person_names n "
                "ON n.person_id = f.person_id WHERE f.id = %s", (f,)).fetchone()
            rejected = sorted(r[0] for r in conn.execute(
                "SELECT n.name FROM person_rejections r JOIN person_names n "
                "ON n.person_id = r.person_id WHERE r.face_id = %s", (f,)))
            links = []
            for table in ("must_links", "cannot_links"):
                for a, b in conn.execute(f"SELECT face_a, face_b FROM {table} "
                                         "WHERE %s IN (face_a, face_b)", (f,)):
                    other = b if a == f else a
                    links.append((table, role.get(other, other)))
            out.append((name, how, rejected, sorted(links, key=str)))
    return out


def _ok(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, (args, done.output)
    return str(done.stdout)


def _index(cli, url: str, lib: Path, *more: str) -> str:  # type: ignore[no-untyped-def]
    """What `rbv index` said, its lines (wrapped at 80 columns) read as one text."""
    return " ".join(_ok(cli, url, "index", str(lib), "--model-pack", str(PACK), "--device",
                        "cpu", *more).split())


@pytest.fixture
def decided(cli, settings: Settings, sface_analyzer, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A library of two photos: ``two.jpg`` (left face placed by hand in 'Ada', right
    face in 'Bob', rejected from 'Cy', the two linked 'different', the right one linked
    'same' with the face of ``third.jpg``) and ``other.jpg`` (its face in 'Cy')."""
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copyfile(TWO, photo)
    shutil.copyfile(OTHER, lib / "other.jpg")
    shutil.copyfile(THIRD, lib / "third.jpg")
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    url = str(settings.database_url)
    left, right = _faces(url, photo)
    (other,) = _faces(url, lib / "other.jpg")
    (third,) = _faces(url, lib / "third.jpg")
    _ok(cli, url, "persons", "move", str(other))
    _ok(cli, url, "persons", "name", _person(url, other), "Cy")
    _ok(cli, url, "persons", "move", str(right), "--to", "Cy")
    _ok(cli, url, "persons", "not-this-person", "Cy", str(right))
    for face, name in ((left, "Ada"), (right, "Bob")):
        _ok(cli, url, "persons", "move", str(face))
        _ok(cli, url, "persons", "name", _person(url, face), name)
    _ok(cli, url, "faces", "different", str(left), str(right))
    _ok(cli, url, "faces", "same", str(right), str(third))
    before = _decisions(url, photo)
    assert before == [
        ("Ada", "manual", [], [("cannot_links", "right")]),
        ("Bob", "manual", ["Cy"],
         [("cannot_links", "left"), ("cannot_links", other), ("must_links", third)]),
    ]
    return lib, photo, before


def _person(url: str, face: int) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute("SELECT person_id FROM face_detections WHERE id = %s",
                                (face,)).fetchone()[0])


def _gone_images(url: str) -> int:
    """Images no path shows (old contents still waiting for a carry)."""
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM images i WHERE NOT EXISTS "
                                "(SELECT 1 FROM image_paths p WHERE p.image_id = i.id)"
                                ).fetchone()[0])


EDITS = {
    # a crop that shifts the frame (150 px off the left, 61 off the bottom): both faces stay
    "crop": lambda im: im.crop((150, 0, im.width, im.height - 61)),
    "retouch": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.3))
    .enhance(1.1),
    "resize": lambda im: im.resize((im.width * 2 // 3, im.height * 2 // 3)),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_photo_keeps_its_faces_persons_and_decisions(
        cli, settings: Settings, decided, edit: str) -> None:
    lib, photo, before = decided
    url = str(settings.database_url)
    old = _faces(url, photo)
    with Image.open(photo) as im:
        EDITS[edit](im).save(photo, quality=92)

    out = _index(cli, url, lib)
    assert "1 photos with new image data" in out, out
    assert "2 faces of 1 edited photos found again, with their persons and decisions." in out
    assert "is gone" not in out and "could not take" not in out
    assert set(_faces(url, photo)).isdisjoint(old)  # found anew ...
    assert _decisions(url, photo) == before  # ... with every decision on it
    assert _gone_images(url) == 0  # the old content is gone once carried

    again = _ok(cli, url, "cluster", "--model-pack", str(PACK))
    assert _decisions(url, photo) == before, again


def test_a_crop_that_leaves_a_face_out_says_what_that_face_held(
        cli, settings: Settings, decided) -> None:
    lib, photo, before = decided
    url = str(settings.database_url)
    left, right = _faces(url, photo)
    with Image.open(photo) as im:  # only the right person is left
        im.crop((600, 0, im.width, im.height)).save(photo, quality=92)

    out = _index(cli, url, lib)
    lines = [line for line in out.splitlines() if "image data changed" in line]
    assert len(lines) == 1, out
    assert (f"face {left} was not found in it again: it is gone, which was placed by hand "
            f"in 'Ada', linked 'different' with face ") in lines[0]
    (kept,) = _decisions(url, photo)
    assert kept[:3] == before[1][:3]  # Bob, by hand, rejected from Cy
    assert [link for link in kept[3] if link[0] == "must_links"] == \
        [link for link in before[1][3] if link[0] == "must_links"]


@pytest.mark.parametrize("replacement", [STRANGER, MISC / "immich_prairie_falcon.jpg"],
                         ids=["another person", "no face"])
def test_another_photo_copied_over_it_carries_nothing_and_says_so(
        cli, settings: Settings, decided, replacement: Path) -> None:
    lib, photo, _ = decided
    url = str(settings.database_url)
    left, right = _faces(url, photo)
    shutil.copyfile(replacement, photo)

    out = _index(cli, url, lib)
    lines = out.split(": the photo's image data changed and ")[1:]  # one a face lost
    assert len(lines) == 2, out
    assert f"face {left} was not found in it again: it is gone, which was placed by hand " \
        f"in 'Ada', linked 'different' with face {right}" in lines[0]
    assert f"face {right} was not found in it again: it is gone, which was placed by hand " \
        f"in 'Bob', rejected from 'Cy', linked 'same' with face " in lines[1]
    assert all(d[:3] == (None, None, []) for d in _decisions(url, photo))
    assert _gone_images(url) == 0


def test_the_old_faces_wait_for_embed_and_an_interrupted_carry_loses_nothing(
        cli, settings: Settings, decided, monkeypatch: pytest.MonkeyPatch) -> None:
    lib, photo, before = decided
    url = str(settings.database_url)
    old = _faces(url, photo)
    with Image.open(photo) as im:
        EDITS["crop"](im).save(photo, quality=92)

    out = _index(cli, url, lib, "--no-embed")
    assert "their faces are found again and keep their persons and decisions once " \
        "`rbv embed` has found them" in out, out
    with psycopg.connect(url) as conn:  # the old faces and what they hold are all there
        assert conn.execute("SELECT count(*) FROM face_detections WHERE id = ANY(%s) "
                            "AND assigned_by = 'manual'", (old,)).fetchone()[0] == 2
        assert conn.execute("SELECT count(*) FROM cannot_links").fetchone()[0] == 2

    import rbv.jobs.library.carry as carry_job

    def interrupted(*args: object, **kwargs: object) -> None:
        carry_decisions(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # after the writes, before the commit

    carry_decisions = carry_job.carry_decisions
    monkeypatch.setattr(carry_job, "carry_decisions", interrupted)
    stopped = run_cli(cli, "-d", url, "embed", "--model-pack", str(PACK), "--device", "cpu")
    assert stopped.exit_code != 0
    monkeypatch.undo()
    assert _gone_images(url) == 1
    assert _decisions(url, photo) == [(None, None, [], []), (None, None, [], [])]

    out = _ok(cli, url, "embed", "--model-pack", str(PACK), "--device", "cpu")
    assert "Scanned 0 images" in out and "2 faces of 1 edited photos found again" in out, out
    assert _decisions(url, photo) == before
    assert _gone_images(url) == 0


def test_an_edit_undone_before_the_carry_is_the_old_photo_again(
        cli, settings: Settings, decided) -> None:
    lib, photo, before = decided
    url = str(settings.database_url)
    old = _faces(url, photo)
    original = photo.read_bytes()
    with Image.open(photo) as im:
        EDITS["retouch"](im).save(photo, quality=92)
    _index(cli, url, lib, "--no-embed")
    photo.write_bytes(original)  # the user took the edit back

    out = _index(cli, url, lib)
    assert _faces(url, photo) == old and _decisions(url, photo) == before, out
    assert _gone_images(url) == 0  # the retouched content, never scanned, is gone
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM image_supersessions").fetchone()[0] == 0


def test_prune_takes_the_old_content_of_a_missing_edited_photo_with_it(
        cli, settings: Settings, decided) -> None:
    lib, photo, _ = decided
    url = str(settings.database_url)
    with Image.open(photo) as im:
        EDITS["retouch"](im).save(photo, quality=92)
    _index(cli, url, lib, "--no-embed")
    assert _gone_images(url) == 1  # waiting for its faces to be carried
    photo.unlink()
    _index(cli, url, lib, "--no-embed")
    assert _gone_images(url) == 1  # missing photos keep their faces until prune

    _ok(cli, url, "prune")
    assert _gone_images(url) == 0
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == 2
