"""`rbv photos`: photos by who is in them (all given persons, none of --without, a date
range), listed or gathered into a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg

from rbv.config import Settings
from tests.conftest import FACES, MISC, import_folders, run_cli


def _photos(cli, settings: Settings, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = run_cli(cli, "-d", str(settings.database_url), "photos", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_photos_with_all_persons_without_others_in_a_date_range(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    import_folders(cli, faces_settings)
    group = str(MISC / "fr_obama_and_biden.jpg")
    both = _photos(cli, faces_settings, "-p", "Barack_Obama", "--person", "joe_biden")
    assert [p["paths"] for p in both["photos"]] == [[group]]
    assert both["persons"] == ["Barack_Obama", "Joe_Biden"]

    obama = _photos(cli, faces_settings, "-p", "Barack_Obama")
    paths = [p["paths"][0] for p in obama["photos"]]
    assert group in paths and len(paths) >= len(list((FACES / "Barack_Obama").iterdir()))
    assert next(p for p in obama["photos"] if p["paths"][0] == group)["others"] == ["Joe_Biden"]
    alone = _photos(cli, faces_settings, "-p", "Barack_Obama", "--without", "Joe_Biden")
    assert len(alone["photos"]) == len(paths) - 1 and group not in str(alone)

    solo = sorted(p for p in paths if p != group)
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        for path, when in zip(solo, ("2018-12-31 23:59", "2019-01-01 00:00",
                                     "2021-12-31 20:00", "2022-01-01 00:00"), strict=False):
            conn.execute("UPDATE images SET taken_at = %s WHERE id = (SELECT image_id FROM "
                         "image_paths WHERE path = %s)", (when, path))
    dated = _photos(cli, faces_settings, "-p", "Barack_Obama", "--from", "2019", "--to", "2021")
    assert [p["paths"][0] for p in dated["photos"]] == solo[1:3]
    day = _photos(cli, faces_settings, "-p", "Barack_Obama", "--from", "2021-12-31",
                  "--to", "2021-12-31")
    assert [p["paths"][0] for p in day["photos"]] == [solo[2]]

    album = tmp_path / "album"
    linked = _photos(cli, faces_settings, "-p", "Barack_Obama", "--link-to", str(album))
    assert {a["action"] for a in linked["album"]} == {"linked"}
    assert sorted(os.readlink(p) for p in album.iterdir()) == sorted(paths)
    again = _photos(cli, faces_settings, "-p", "Barack_Obama", "--link-to", str(album))
    assert {a["action"] for a in again["album"]} == {"present"}
    copies = tmp_path / "copies"
    copied = _photos(cli, faces_settings, "-p", "Joe_Biden", "--copy-to", str(copies))
    assert {a["action"] for a in copied["album"]} == {"copied"}
    assert all(not p.is_symlink() and p.stat().st_size > 0 for p in copies.iterdir())

    text = run_cli(cli, "-d", str(faces_settings.database_url), "photos", "-p", "Joe_Biden")
    assert text.exit_code == 0 and f"{group}  (with Barack_Obama)" in text.stdout


def test_photos_errors_are_one_line(cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    unknown = run_cli(cli, "-d", url, "photos", "-p", "Nobody At All")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("Error: no person matches")
    import_folders(cli, faces_settings)
    bad = run_cli(cli, "-d", url, "photos", "-p", "Joe_Biden", "--from", "last year")
    assert bad.exit_code == 1 and "is not a date" in bad.stderr


def _photos_of_ada(settings: Settings, analyzer, lib: Path) -> None:  # type: ignore[no-untyped-def]
    """Index ``lib`` and put one face of each of its photos in a person named Ada."""
    from rbv.jobs.library.index import run_index
    from rbv.store import open_database
    from rbv.store.queries.persons import new_person, place_faces, set_name

    run_index(open_database(settings), settings, [lib], analyzer=analyzer)
    with psycopg.connect(str(settings.database_url)) as conn:
        pack = conn.execute("SELECT id FROM model_packs").fetchone()[0]
        person = new_person(conn, pack, source="manual")
        set_name(conn, person, "Ada")
        faces = [r[0] for r in conn.execute(
            "SELECT DISTINCT ON (image_id) id FROM face_detections ORDER BY image_id, id")]
        place_faces(conn, faces, person)
        conn.commit()


def test_album_photos_bring_their_xmp_sidecars(cli, settings: Settings, sface_analyzer,
                                              tmp_path: Path) -> None:
    import shutil

    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    (lib / "b").mkdir()
    for folder in ("a", "b"):  # two photos of one name: the album renames the second
        shutil.copy(MISC / "fr_two_people.jpg" if folder == "a" else
                    MISC / "fr_obama_and_biden.jpg", lib / folder / "photo.jpg")
    (lib / "a" / "photo.jpg.xmp").write_text("<x:xmpmeta>a full</x:xmpmeta>")
    (lib / "b" / "photo.xmp").write_text("<x:xmpmeta>b short</x:xmpmeta>")  # Lightroom's
    _photos_of_ada(settings, sface_analyzer, lib)

    copies = tmp_path / "copies"
    copied = _photos(cli, settings, "-p", "Ada", "--copy-to", str(copies))
    names = {p.name: p for p in copies.iterdir()}
    assert len(copied["album"]) == 2
    (renamed,) = [n for n in names if n.startswith("photo-") and n.endswith(".jpg")]
    assert names["photo.jpg.xmp"].read_text() == "<x:xmpmeta>a full</x:xmpmeta>"
    assert names[renamed.removesuffix(".jpg") + ".xmp"].read_text() == \
        "<x:xmpmeta>b short</x:xmpmeta>"
    assert sorted(len(a["sidecars"]) for a in copied["album"]) == [1, 1]

    album = tmp_path / "album"
    _photos(cli, settings, "-p", "Ada", "--link-to", str(album))
    links = {os.readlink(p) for p in album.iterdir()}
    assert {str(lib / "a" / "photo.jpg.xmp"), str(lib / "b" / "photo.xmp")} <= links
    again = _photos(cli, settings, "-p", "Ada", "--link-to", str(album))
    assert {a["action"] for a in again["album"]} == {"present"}


def test_album_copies_are_the_users_alone(cli, settings: Settings, sface_analyzer,
                                         tmp_path: Path) -> None:
    """Issue 62 #6: ``--copy-to`` into a folder that exists copied each photo with its
    mode (0644): another user read a copy where the album folder let them pass. Copies
    and their sidecars are 0600 whatever the photo's mode and the umask, with the photo's
    bytes and time."""
    import shutil
    import stat
    import subprocess
    import tempfile

    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "photo.jpg"
    shutil.copy(MISC / "fr_obama_and_biden.jpg", photo)
    (lib / "photo.jpg.xmp").write_text("<x:xmpmeta>who</x:xmpmeta>")
    for path in lib.iterdir():
        path.chmod(0o644)
    os.utime(photo, (1_500_000_000, 1_500_000_000))
    _photos_of_ada(settings, sface_analyzer, lib)

    passable = Path(tempfile.mkdtemp())  # other users may pass (not list) to the album
    passable.chmod(0o711)
    album = passable / "album"
    album.mkdir(mode=0o711)
    umask = os.umask(0o022)
    try:
        copied = _photos(cli, settings, "-p", "Ada", "--copy-to", str(album))
        assert [a["action"] for a in copied["album"]] == ["copied"]
        copies = sorted(album.iterdir())
        assert [p.name for p in copies] == ["photo.jpg", "photo.jpg.xmp"]
        assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in copies} == {oct(0o600)}
        assert copies[0].read_bytes() == photo.read_bytes()
        assert copies[0].stat().st_mtime == 1_500_000_000
        if os.geteuid() == 0 and shutil.which("setpriv"):  # another local user: a real uid
            seen = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", "cat", str(copies[0])],
                                  capture_output=True, check=False)
            assert seen.returncode != 0 and not seen.stdout
    finally:
        os.umask(umask)
        shutil.rmtree(passable)
