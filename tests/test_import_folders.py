"""`rbv import-folders` on identity folders of data/faces: named persons, bystanders
dropped, group photos routed to every known person in them, re-runs idempotent."""

from __future__ import annotations

import json

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import FACES, FOLDER_IDENTITIES, MISC, PACK, import_folders, run_cli

pytestmark = pytest.mark.slow  # ~8 s: import-folders end to end on data/faces


def _persons_of(conn: psycopg.Connection, photo: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT n.name FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id "
        "JOIN person_names n ON n.person_id = f.person_id WHERE p.path = %s",
        (str(MISC / photo),))}


def test_import_names_persons_after_folders_and_routes_group_photos(
    cli, faces_settings: Settings
) -> None:
    report = import_folders(cli, faces_settings)
    assert sorted(i["name"] for i in report["identities"]) == sorted(FOLDER_IDENTITIES)
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        names = dict(conn.execute(
            "SELECT n.name, count(f.id) FROM person_names n JOIN persons p ON p.id = n.person_id "
            "LEFT JOIN face_detections f ON f.person_id = p.id GROUP BY n.name").fetchall())
        for identity in FOLDER_IDENTITIES:
            photos = [p for p in (FACES / identity).iterdir()]
            # every photo of the folder has its person's face, group photos add more
            assert names[identity] >= len(photos) - 1, (identity, names[identity])
        assert _persons_of(conn, "fr_obama_and_biden.jpg") == {"Barack_Obama", "Joe_Biden"}
        assert _persons_of(conn, "fr_kit_with_rose.jpg") == {"Kit_Harington", "Rose_Leslie"}
        assert _persons_of(conn, "deepface_couple.jpg") == {"Angelina_Jolie"}  # no Brad folder
        manual = conn.execute("SELECT count(*) FROM face_detections WHERE person_id IS NOT NULL "
                              "AND assigned_by IS DISTINCT FROM 'manual'").fetchone()[0]
        persons = conn.execute("SELECT count(*) FROM persons").fetchone()[0]
    assert manual == 0  # imported faces are manual: no re-cluster undoes them

    again = import_folders(cli, faces_settings)
    assert sum(i["assigned"] for i in again["identities"]) == 0
    assert not any(i["created"] for i in again["identities"])
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM persons").fetchone()[0] == persons


def test_import_of_a_missing_folder_is_one_clear_error(cli, faces_settings: Settings,
                                                       tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(cli, "-d", str(faces_settings.database_url), "import-folders",
                     str(tmp_path / "nope"), "--model-pack", str(PACK), "--no-index")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "is not a folder" in result.stderr


def test_import_reuses_a_person_named_with_spaces_for_an_underscored_folder(
        cli, faces_settings: Settings) -> None:
    first = import_folders(cli, faces_settings)
    obama = next(i for i in first["identities"] if i["name"] == "Barack_Obama")
    url = str(faces_settings.database_url)
    renamed = run_cli(cli, "-d", url, "persons", "name", obama["person_id"], "barack obama")
    assert renamed.exit_code == 0, renamed.output
    again = import_folders(cli, faces_settings)
    assert not any(i["created"] for i in again["identities"])
    assert {i["person_id"] for i in again["identities"] if i["folder"] == obama["folder"]} == {
        obama["person_id"]}
    shown = run_cli(cli, "-d", url, "persons", "show", "Barack_Obama", "--json")
    assert shown.exit_code == 0, shown.output


def test_import_through_a_symlinked_library_root_finds_the_photos(
        cli, faces_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    library = tmp_path / "library"
    library.symlink_to(FACES.parent, target_is_directory=True)  # like ../shared -> /work/shared
    args = ["-d", str(faces_settings.database_url), "import-folders",
            *(str(library / "faces" / name) for name in ("Barack_Obama", "Joe_Biden")),
            "--mixed", str(library / "misc" / "fr_obama_and_biden.jpg"),
            "--model-pack", str(PACK), "--json"]
    result = run_cli(cli, *args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for identity in report["identities"]:
        photos = len(list((FACES / identity["name"]).iterdir()))
        assert identity["photos"] == photos and identity["kept"] > 0, identity
    assert {r["identity"] for r in report["routed"]} == {"Barack_Obama", "Joe_Biden"}
    assert all(r["path"].startswith(str(library)) for r in report["routed"])


def test_import_speaks_similarity_as_cluster_does(cli, faces_settings: Settings) -> None:
    """Issue 62 #12: import-folders spoke cosine distance (`--route 0.45`, "(distance
    0.31)", a "distance" in --json) where `rbv cluster` and review speak similarity.
    Its options, printed lines and --json now say similarity (higher = same person), and
    an old option name is refused rather than silently meaning the opposite."""
    url = str(faces_settings.database_url)
    args = ["-d", url, "import-folders", *(str(FACES / n) for n in ("Barack_Obama",
                                                                     "Joe_Biden")),
            "--mixed", str(MISC / "fr_obama_and_biden.jpg"), "--model-pack", str(PACK)]
    printed = run_cli(cli, *args, env={"COLUMNS": "80"})
    assert printed.exit_code == 0, printed.output
    report = json.loads(run_cli(cli, *args, "--no-index", "--json").stdout)
    assert {r["identity"] for r in report["routed"]} == {"Barack_Obama", "Joe_Biden"}
    said = " ".join(printed.stdout.split())
    for r in report["routed"]:
        assert "distance" not in r and 0.55 <= r["similarity"] <= 1.0, r
        assert f"face {r['face_id']} → {r['identity']} (similarity {r['similarity']:.2f})" \
            in said
    assert "distance" not in printed.output and "distance" not in json.dumps(report)
    # the threshold is a similarity: none of the group photo's faces is that alike
    strict = json.loads(run_cli(cli, *args, "--no-index", "--json", "--dry-run",
                                "--route-similarity", "0.999").stdout)
    assert strict["routed"] == [] and strict["unrouted_faces"] >= 2
    for old in ("--first-pass", "--second-pass", "--route"):
        refused = run_cli(cli, *args, "--no-index", old, "0.45")
        assert refused.exit_code == 1 and f"No such option: {old}" in refused.stderr


def test_import_never_gives_a_person_two_faces_of_one_photo(cli, faces_settings: Settings
                                                            ) -> None:
    url = str(faces_settings.database_url)
    first = import_folders(cli, faces_settings)
    routed = {r["identity"]: r["face_id"] for r in first["routed"]
              if r["path"].endswith("fr_obama_and_biden.jpg")}
    obama, biden = routed["Barack_Obama"], routed["Joe_Biden"]
    # By hand, Biden's face of the photo goes to Obama (Obama's own face out first).
    assert run_cli(cli, "-d", url, "persons", "move", str(obama)).exit_code == 0
    wrong = run_cli(cli, "-d", url, "persons", "move", str(biden), "--to", "Barack_Obama")
    assert wrong.exit_code == 0, wrong.output

    args = ["-d", url, "import-folders", str(FACES / "Barack_Obama"), "--mixed",
            str(MISC / "fr_obama_and_biden.jpg"), "--model-pack", str(PACK), "--no-index"]
    again = run_cli(cli, *args)
    assert again.exit_code == 0, again.output
    assert (f"{MISC / 'fr_obama_and_biden.jpg'}: face {obama} not given to Barack_Obama: it "
            f"has face {biden} of that photo already (one face per photo); if face "
            f"{obama} is the one, `rbv persons move {biden}` takes face {biden} out, then "
            f"`rbv persons move {obama} --to Barack_Obama`.") in again.stdout
    assert f"face {obama} →" not in again.stdout
    with psycopg.connect(url) as conn:
        doubled = conn.execute("SELECT person_id, image_id FROM face_detections WHERE "
                               "person_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
                               ).fetchall()
    assert doubled == []


def test_names_and_paths_with_terminal_escapes_print_escaped(
        cli, faces_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 31 #5: a folder named with escape sequences (clear the screen, set the
    window title) is printed escaped, never raw to the terminal; since issue 54 it is
    refused as a name (one line, nothing imported), and a name an older rbv kept so is
    printed escaped by `persons list` and `persons show`."""
    import shutil

    evil = "Evil\x1b[2J\x1b]0;pwned\x07[red]Name"
    folder = tmp_path / evil
    folder.mkdir()
    for photo in sorted((FACES / FOLDER_IDENTITIES[0]).iterdir())[:3]:
        shutil.copy(photo, folder / photo.name)
    url = str(faces_settings.database_url)
    done = run_cli(cli, "-d", url, "import-folders", str(folder), "--model-pack", str(PACK))
    assert done.exit_code == 1 and "rename the folder" in done.output, done.output
    printed = [done.output]
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    with psycopg.connect(url) as conn:  # a name an older rbv kept
        assert conn.execute("SELECT count(*) FROM person_names").fetchone() == (0,)
        person = conn.execute("SELECT person_id FROM face_detections "
                              "WHERE person_id IS NOT NULL LIMIT 1").fetchone()
        assert person is not None
        conn.execute("INSERT INTO person_names (person_id, name) VALUES (%s, %s)",
                     (person[0], evil))
    for args in (["persons", "list", "--limit", "0"], ["persons", "show", str(person[0])]):
        done = run_cli(cli, "-d", url, *args)
        assert done.exit_code == 0, done.output
        printed.append(done.stdout)
    for out in printed:
        assert not any(c in out for c in "\x1b\x07"), out
        assert "Evil\\x1b[2J\\x1b]0;pwned\\x07[red]Name" in out.replace("\n", ""), out


def test_a_folder_whose_name_is_not_a_name_is_refused_before_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 54 #9: the rule `rbv persons name` and the review page keep (one line of
    text) holds for a folder's name too: a folder named with a newline or bytes that
    are not UTF-8 is refused, naming the folder, before any person is made."""
    import os

    import pytest

    from rbv.errors import ConfigError
    from rbv.jobs.exchange.import_folders import identity_folders

    (tmp_path / "Ada Lovelace").mkdir()
    assert identity_folders([tmp_path]) == [tmp_path / "Ada Lovelace"]
    for bad, said in ((b"Ada\nLovelace", "control character"), (b"Jos\xe9", "not UTF-8")):
        folder = os.path.join(os.fsencode(tmp_path), bad)
        os.mkdir(folder)
        with pytest.raises(ConfigError, match=said) as refused:
            identity_folders([tmp_path])
        assert "\n" not in str(refused.value) and "rename the folder" in str(refused.value)
        os.rmdir(folder)
