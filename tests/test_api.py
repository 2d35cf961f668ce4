"""``from rbv import Library``: docs/api.md runs as written, and the library's edits do
to the database what the commands do."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rbv import Library
from rbv.config import Settings
from rbv.errors import PersonNotFound, Refused
from rbv.store.server.embedded import server_pid
from tests.conftest import FACES, PACK, SFACE_THRESHOLD, run_cli
from tests.pgserver import PasswordServer

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
PEOPLE = {"Angelina_Jolie": 3, "Barack_Obama": 3, "Katy_Perry": 3}  # 9 photos, 3 people


def _photos(folder: Path) -> Path:
    """A tiny library: a few real photos of each of :data:`PEOPLE`."""
    for person, count in PEOPLE.items():
        (folder / person).mkdir(parents=True)
        for photo in sorted(p for p in (FACES / person).iterdir() if p.suffix == ".jpg"
                            )[:count]:
            shutil.copy2(photo, folder / person / photo.name)
    return folder


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)


def test_every_example_of_docs_api_runs_in_order(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "rbv-data"
    places = {'"~/rbv-data"': data, '"~/Pictures"': _photos(tmp_path / "Pictures"),
              '"~/albums/ada"': tmp_path / "albums" / "ada",
              '"~/sidecars"': tmp_path / "sidecars", '"buffalo_l"': PACK}
    text = API_DOC.read_text()
    assert [p for p in places if p not in text] == []  # the doc still says each
    for placeholder, path in places.items():
        text = text.replace(placeholder, repr(str(path)))
    blocks = _python_blocks(text)
    assert len(blocks) >= 6

    scope: dict[str, Any] = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/api.md, python block {number}", "exec"), scope)
    said = " ".join(capsys.readouterr().out.split())

    ada = scope["ada"].id
    assert "9 new photos, 9 faces, 0 failed" in said
    assert "moved 1 face to" in said and "undid persons move" in said
    assert f"Ada Lovelace has {scope['ada'].faces} faces" in said
    assert "duplicate_name person" in said and "is already named 'Ada Lovelace'" in said
    assert "merge them merge" in said and "give both the name name" in said  # remedies
    # Persons found by what a user types; a split previewed; photos without a person;
    # the library's numbers
    assert "split would leave" in said and "photos of Ada Lovelace without Charles" in said
    assert "9 photos;" in said and " findings" in said
    assert f"contact sheet of {min(4, scope['ada'].faces)} faces" in said
    assert (tmp_path / "sidecars" / "ada.png").is_file()
    # Photos gathered, sidecars written, every edit in the history
    assert len(list((tmp_path / "albums" / "ada").iterdir())) == scope["ada"].images
    assert list((tmp_path / "sidecars").rglob("*.xmp"))
    # Closed: rbv's own server in the data folder has stopped
    assert server_pid((data / "pg").resolve()) is None
    with Library.open(data) as again:
        assert [e.command for e in again.history()] == [
            "persons hide", "persons undo", "persons move", "persons name"]
        assert again.person(ada).name == "Ada Lovelace"
    assert server_pid((data / "pg").resolve()) is None


def test_the_server_stops_with_the_last_library_of_its_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "rbv"
    first = Library.open(data, migrate=True)
    second = Library.open(str(data))
    pgdata = (data / "pg").resolve()
    first.close()
    assert server_pid(pgdata) is not None
    assert second.persons() == []
    second.close()
    second.close()
    assert server_pid(pgdata) is None


# -- the same edit, by the CLI and by the library, on two copies of one database ---------

EDITED = {
    "persons": "id, hidden, merged_into, source, born, cover_face_id",
    "person_names": "person_id, name",
    "face_detections": "id, person_id, assigned_by",
    "person_rejections": "face_id, person_id",
    "must_links": "face_a, face_b",
    "cannot_links": "face_a, face_b",
    "person_edits": "id, command, summary, undoes, undone_by",
    "person_edit_rows": "edit_id, table_name, row_key",
    "runs": "command, parameters, status, counts",
}


def _state(url: str, *, runs: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """What an edit changes, every row of it but its timestamps (``runs``: with the
    runs recorded, a refused edit's among them)."""
    with psycopg.connect(url) as conn:
        return {table: conn.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}"
                                    ).fetchall()
                for table, columns in EDITED.items() if runs or table != "runs"}


@pytest.fixture
def twins(cli, faces_settings: Settings, pg_server: PasswordServer) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Two copies of one clustered library: (URL the CLI edits, URL the library edits)."""
    url = str(faces_settings.database_url)
    done = run_cli(cli, "-d", url, "cluster", "--method", "connected", "--threshold",
                   str(SFACE_THRESHOLD))
    assert done.exit_code == 0, done.output
    source = url.rsplit("/", 1)[1]
    twin = f"{source}_twin"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{twin}" TEMPLATE "{source}"')
    return url, pg_server.url(twin)


def _ok(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, done.output
    return str(done.stdout)


def test_name_move_and_undo_change_the_database_as_the_commands_do(cli, twins) -> None:  # type: ignore[no-untyped-def]
    by_cli, by_library = twins
    with Library.open(by_library) as lib:
        ada, charles, *_ = lib.persons()
        face = lib.faces(charles.id)[-1].id
        steps = [
            (("persons", "name", str(ada.id), "Ada"), lambda: lib.name(ada.id, "Ada")),
            # invisible characters go, as the command removes them
            (("persons", "name", str(charles.id), "Char\u200bles"),
             lambda: lib.name(charles.id, "Char\u200bles")),
            (("persons", "move", str(face), "--to", str(ada.id)),
             lambda: lib.move([face], to=ada.id)),
            (("persons", "undo"), lambda: lib.undo()),
            (("persons", "name", str(ada.id), "Ada Lovelace"),
             lambda: lib.name(ada.id, "Ada Lovelace")),
            (("persons", "undo", "2"), lambda: lib.undo(2)),
        ]
        for command, call in steps:
            _ok(cli, by_cli, *command)
            call()
            assert _state(by_library) == _state(by_cli), command
        # the last undo took back "Ada Lovelace" and "Charles" (the move was undone)
        assert (lib.person(ada.id).name, lib.person(charles.id).name) == ("Ada", None)
        assert [e.command for e in lib.history(limit=3)] == [
            "persons undo", "persons name", "persons undo"]


def test_the_jobs_refusals_come_through_and_change_nothing(twins) -> None:  # type: ignore[no-untyped-def]
    _, url = twins
    with Library.open(url) as lib:
        ada, charles, *_ = lib.persons()
        lib.name(ada.id, "Ada")
        before = _state(url, runs=False)
        with pytest.raises(Refused, match="already named 'Ada'") as refused:
            lib.name(charles.id, "ada")
        assert [(r.action, r.args) for r in refused.value.remedies] == [
            ("merge", {"persons": [ada.id, charles.id]}),
            ("name", {"person": charles.id, "name": "ada", "force": True})]
        with pytest.raises(PersonNotFound, match="no person with id"):
            lib.person(uuid.uuid4())
        with pytest.raises(PersonNotFound, match="no face with id"):
            lib.move([10**12], to=ada.id)
        assert _state(url, runs=False) == before
        assert lib.name(charles.id, "ada", force=True).edit_id is not None
