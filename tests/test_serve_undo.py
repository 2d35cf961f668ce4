"""`rbv serve`'s Undo is exact beside other edits (issue 28): the toast names the edit
the browser made, never the newest one in the log, and its Undo is refused, changing
nothing, when a command edited since, wherever that edit lands. The command's edit is
run at the exact point of each gap, by wrapping the function the server calls there
(no sleeps, no timing)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from rbv.config import Settings
from rbv.jobs.persons import person_details
from rbv.serve.app import ReviewServer
from rbv.store.queries import edits as edit_queries
from tests.conftest import run_cli
from tests.serve_client import Client


def _two_persons(url: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT DISTINCT person_id::text FROM face_detections "
                            "WHERE person_id IS NOT NULL ORDER BY 1 LIMIT 2").fetchall()
    assert len(rows) == 2
    return rows[0][0], rows[1][0]


def _names(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT person_id::text, name FROM person_names").fetchall())


def _edits(url: str) -> dict[int, str]:
    """Logged edits in effect (not undone, not undos): id -> summary."""
    with psycopg.connect(url) as conn:
        return {int(i): s for i, s in conn.execute(
            "SELECT id, summary FROM person_edits WHERE undone_by IS NULL AND undoes IS NULL")}


def _after_first_call(monkeypatch: pytest.MonkeyPatch, owner: object, attr: str,
                      meanwhile: Callable[[], None]) -> None:
    """The first call of ``owner.attr`` runs as usual, then ``meanwhile`` runs before it
    returns to its caller: an edit landing exactly there. The wrapper removes itself
    first (``meanwhile`` may call the same function)."""
    original = getattr(owner, attr)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        monkeypatch.setattr(owner, attr, original)
        meanwhile()
        return result

    monkeypatch.setattr(owner, attr, wrapped)


def _command_names(cli, url: str, person: str, name: str) -> Callable[[], None]:  # type: ignore[no-untyped-def]
    def name_it() -> None:
        done = run_cli(cli, "-d", url, "persons", "name", person, name)
        assert done.exit_code == 0, done.output
    return name_it


def test_the_toast_undoes_the_browsers_edit_though_a_command_edited_before_it_answered(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A command's edit lands after the browser's edit is made, before the server
    answers: the answer still names the browser's edit."""
    _, client = served
    url = str(faces_settings.database_url)
    a, b = _two_persons(url)
    _after_first_call(monkeypatch, person_details, "name", _command_names(cli, url, b, "Grace"))

    named = client.post("name", {"person": a, "name": "Ada"})
    assert named.status == 200, named.text
    assert _names(url) == {a: "Ada", b: "Grace"}  # both edits landed
    edit = named.json()["edit"]
    (command_edit,) = (i for i, s in _edits(url).items() if s.startswith(f"named {b} "))

    refused = client.post("undo", {"edit": edit, "count": 1})
    assert refused.status == 409, refused.text
    assert _names(url) == {a: "Ada", b: "Grace"}  # nothing was undone
    assert refused.json()["error"] == (
        f"edit #{edit} is not the newest edit in effect any more: edit #{command_edit} "
        f"(named {b} 'Grace') was made since (see the history); nothing was undone")
    assert _edits(url)[edit] == f"named {a} 'Ada'"

    # Once the command's edit is undone, the toast's Undo undoes the browser's.
    assert run_cli(cli, "-d", url, "persons", "undo").exit_code == 0
    assert client.post("undo", {"edit": edit, "count": 1}).status == 200
    assert _names(url) == {}


def test_undo_is_refused_when_a_command_edits_between_the_check_and_the_undo(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser's edit is the newest when its Undo reads the log; a command's edit
    lands right after that read: the undo refuses it rather than undo the command's."""
    _, client = served
    url = str(faces_settings.database_url)
    a, b = _two_persons(url)
    named = client.post("name", {"person": a, "name": "Ada"})
    assert named.status == 200, named.text
    edit = named.json()["edit"]
    assert _edits(url) == {edit: f"named {a} 'Ada'"}

    _after_first_call(monkeypatch, edit_queries, "undoable_edits",
                      _command_names(cli, url, b, "Grace"))
    refused = client.post("undo", {"edit": edit, "count": 1})
    assert refused.status == 409, refused.text
    assert _names(url) == {a: "Ada", b: "Grace"}  # the command's edit landed; none undone
    (command_edit,) = set(_edits(url)) - {edit}
    assert refused.json()["error"] == (
        f"edit #{edit} is not the newest edit in effect any more: edit #{command_edit} "
        f"(named {b} 'Grace') was made since (see the history); nothing was undone")
