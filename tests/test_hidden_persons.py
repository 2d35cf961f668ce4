"""Issue 54 item 8c: a hidden person stays hidden through every automatic run and
method. `persons hide P` then `cluster --full --method connected --threshold 0.25` put
P's 24 faces in a visible person and left P empty; the default method scattered a
7-face hidden person into visible persons. A re-cluster leaves a hidden person's faces
where they are: together, in the hidden person, and never in a visible one."""

from __future__ import annotations

import json

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import SFACE_THRESHOLD, run_cli


def _ok(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, (args, done.output)
    return str(done.stdout)


def _faces_of(url: str, person: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {int(r[0]) for r in conn.execute(
            "SELECT id FROM face_detections WHERE person_id = %s", (person,))}


RUNS = {
    "connected 0.25": ("--full", "--method", "connected", "--threshold", "0.25"),
    "evidence (default)": ("--full",),
    "agglomerative": ("--full", "--method", "agglomerative"),
    "hdbscan": ("--full", "--method", "hdbscan"),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_a_hidden_person_keeps_its_faces_through_a_full_recluster(
        cli, faces_settings: Settings, run: str) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--full", "--method", "connected",
        "--threshold", str(SFACE_THRESHOLD))
    persons = json.loads(_ok(cli, url, "persons", "list", "--json", "--limit", "0"))
    hidden = persons[1]["id"]  # a person of several faces, not the largest
    faces = _faces_of(url, hidden)
    assert len(faces) >= 3
    _ok(cli, url, "persons", "hide", hidden)

    _ok(cli, url, "cluster", *RUNS[run])
    assert _faces_of(url, hidden) == faces  # not emptied, not scattered, none joined

    with psycopg.connect(url) as conn:  # and the person is still hidden
        assert conn.execute("SELECT hidden FROM persons WHERE id = %s",
                            (hidden,)).fetchone() == (True,)

