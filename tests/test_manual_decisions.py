"""A later manual decision supersedes the earlier one it contradicts (README "How rbv
treats your fixes"): on real faces, real PostgreSQL, through the CLI runner."""

from __future__ import annotations

import json

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import SFACE_THRESHOLD, run_cli


def _ok(cli, *args: str):  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args)
    assert done.exit_code == 0, done.output
    return done


def _rows(settings: Settings, query: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _cluster(cli, url: str, *extra: str, method: str = "connected") -> dict:  # type: ignore[no-untyped-def,type-arg]
    setting = ["--threshold", str(SFACE_THRESHOLD)] if method == "connected" else []
    done = _ok(cli, "-d", url, "cluster", "--method", method, *setting, "--json", *extra)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _largest(cli, url: str, rank: int = 0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    persons = json.loads(_ok(cli, "-d", url, "persons", "list", "--json", "--limit", "0").stdout)
    return persons[rank]  # type: ignore[no-any-return]


def _faces_of(settings: Settings, person: str) -> list[int]:
    return [int(r[0]) for r in _rows(settings, "SELECT id FROM face_detections "
                                     "WHERE person_id = %s ORDER BY id", person)]


def _dump(settings: Settings) -> dict[str, list[str]]:
    keys = {"face_detections": "id", "person_rejections": "face_id, person_id",
            "cannot_links": "face_a, face_b", "must_links": "face_a, face_b",
            "persons": "id", "person_names": "person_id"}
    return {t: [r[0] for r in _rows(settings, f"SELECT t::text FROM {t} t ORDER BY {k}")]
            for t, k in keys.items()}


@pytest.mark.parametrize("method", ["connected", "evidence"])
def test_moving_a_rejected_face_back_keeps_the_person_whole(
        cli, faces_settings: Settings, method: str) -> None:
    """Issue 21 item 3: not-this-person P F, cluster --full, move F --to P, cluster
    --full emptied P (the rejection's cannot-links were kept)."""
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full", method=method)
    person = _largest(cli, url)
    p = person["id"]
    _ok(cli, "-d", url, "persons", "name", p, "Pat")
    members = _faces_of(s, p)
    face = members[len(members) // 2]
    _ok(cli, "-d", url, "persons", "not-this-person", "Pat", str(face))
    assert _rows(s, "SELECT count(*) FROM cannot_links WHERE %s IN (face_a, face_b)",
                 face)[0][0] == len(members) - 1
    _cluster(cli, url, "--full", method=method)
    assert face not in _faces_of(s, p)
    before_move = _dump(s)

    moved = _ok(cli, "-d", url, "persons", "move", str(face), "--to", "Pat")
    assert (f"overrides the earlier decision that face {face} is not {p}" in moved.stdout
            and f"{len(members) - 1} 'different' link(s)" in moved.stdout), moved.stdout
    assert _rows(s, "SELECT count(*) FROM person_rejections WHERE face_id = %s", face) == [(0,)]
    assert _rows(s, "SELECT count(*) FROM cannot_links WHERE %s IN (face_a, face_b)",
                 face) == [(0,)]
    # One logged edit: undo gives the rejection and its links back, exactly.
    _ok(cli, "-d", url, "persons", "undo")
    assert _dump(s) == before_move
    _ok(cli, "-d", url, "persons", "move", str(face), "--to", "Pat")

    _cluster(cli, url, "--full", method=method)
    assert set(_faces_of(s, p)) >= set(members)
