"""A later manual decision supersedes the earlier one it contradicts (README "How rbv
treats your fixes"): on real faces, real PostgreSQL, through the CLI runner."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from rbv.config import Settings
from rbv.words import counted
from tests.conftest import SFACE_THRESHOLD, run_cli

pytestmark = pytest.mark.slow  # ~12 s: edits between cluster runs on real faces


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

    dry = _ok(cli, "-d", url, "persons", "move", str(face), "--to", "Pat", "--dry-run")
    assert f"It would override the earlier decision that face {face} is not {p}" in dry.stdout
    assert _dump(s) == before_move
    moved = _ok(cli, "-d", url, "persons", "move", str(face), "--to", "Pat")
    assert (f"overrides the earlier decision that face {face} is not {p}" in moved.stdout
            and counted(len(members) - 1, "'different' link") in moved.stdout), moved.stdout
    assert _rows(s, "SELECT count(*) FROM person_rejections WHERE face_id = %s", face) == [(0,)]
    assert _rows(s, "SELECT count(*) FROM cannot_links WHERE %s IN (face_a, face_b)",
                 face) == [(0,)]
    # One logged edit: undo gives the rejection and its links back, exactly.
    _ok(cli, "-d", url, "persons", "undo")
    assert _dump(s) == before_move
    _ok(cli, "-d", url, "persons", "move", str(face), "--to", "Pat")

    _cluster(cli, url, "--full", method=method)
    assert set(_faces_of(s, p)) >= set(members)


def _person_of(settings: Settings, face: int) -> str | None:
    row = _rows(settings, "SELECT person_id FROM face_detections WHERE id = %s", face)[0][0]
    return None if row is None else str(row)


def test_merge_refuses_to_bring_back_a_rejected_face_unless_told(
        cli, faces_settings: Settings) -> None:
    """Issue 21 item 4: faces same F G (G in X); not-this-person T F; cluster; merge T X
    put F back in T, its rejection and 'different' links still recorded, and audit saw
    nothing."""
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    t, x = _largest(cli, url, 0)["id"], _largest(cli, url, 1)["id"]
    face, other = _faces_of(s, t)[0], _faces_of(s, x)[0]
    _ok(cli, "-d", url, "faces", "same", str(face), str(other))
    _ok(cli, "-d", url, "persons", "not-this-person", t, str(face))
    _cluster(cli, url)
    assert _person_of(s, face) == x  # the "same" link took it to X
    before = _dump(s)

    refused = run_cli(cli, "-d", url, "persons", "merge", t, x)
    assert refused.exit_code == 1
    assert refused.output.count("\n") == 1 and refused.output.startswith("Error: ")
    assert f"the earlier decision that face {face} is not {t}" in refused.output
    assert "'different' link" in refused.output and "--override" in refused.output
    assert _dump(s) == before  # nothing changed
    assert "--override" in run_cli(cli, "-d", url, "persons", "merge", t, x,
                                   "--dry-run").output
    assert _dump(s) == before

    merged = _ok(cli, "-d", url, "persons", "merge", t, x, "--override")
    assert f"This overrides the earlier decision that face {face} is not {t}" in merged.stdout
    assert _person_of(s, face) == t
    assert _rows(s, "SELECT count(*) FROM person_rejections WHERE face_id = %s", face) == [(0,)]
    audit = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert audit["rejected_inside"] == [] and audit["different_inside"] == []
    history = json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)
    assert f"overrides the earlier decision that face {face} is not {t}" in \
        history[0]["summary"]
    _ok(cli, "-d", url, "persons", "undo")  # one edit: the decisions come back
    assert _dump(s) == before
    _ok(cli, "-d", url, "persons", "merge", t, x, "--override")
    _cluster(cli, url, "--full")
    assert _person_of(s, face) == _person_of(s, other) == t


def test_faces_same_against_a_rejection_is_refused_unless_told(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    p = _largest(cli, url)["id"]
    members = _faces_of(s, p)
    a, b = members[:2]
    _ok(cli, "-d", url, "persons", "move", str(b), "--to", p)  # b is P's by hand
    _ok(cli, "-d", url, "persons", "not-this-person", p, str(a))
    refused = run_cli(cli, "-d", url, "faces", "same", str(a), str(b))
    assert refused.exit_code == 1 and refused.output.count("\n") == 1, refused.output
    assert f"the earlier decision that face {a} is not {p}" in refused.output
    linked = " ".join(  # its lines are wrapped at the terminal's width
        _ok(cli, "-d", url, "faces", "same", str(a), str(b), "--override").stdout.split())
    assert f"This overrides the earlier decision that face {a} is not {p}" in linked
    # and the rejection's links with P's faces, recorded with it
    assert counted(len(members) - 1, "'different' link") + f" (faces {a}-{b}," in linked
    assert _rows(s, "SELECT count(*) FROM person_rejections WHERE face_id = %s", a) == [(0,)]
    _cluster(cli, url)
    assert _person_of(s, a) == p


def test_not_this_person_lifts_a_same_link_with_the_person_and_says_so(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    p = _largest(cli, url)["id"]
    a, b = _faces_of(s, p)[:2]
    _ok(cli, "-d", url, "faces", "same", str(a), str(b))
    told = _ok(cli, "-d", url, "persons", "not-this-person", p, str(a)).stdout
    assert f"This overrides 1 'same' link (faces {min(a, b)}-{max(a, b)})" in told
    assert _rows(s, "SELECT count(*) FROM must_links") == [(0,)]
    _cluster(cli, url, "--full")
    assert _person_of(s, a) != p and _person_of(s, b) == p


def test_audit_reports_contradicted_decisions_and_fix_takes_out_automatic_faces(
        cli, faces_settings: Settings) -> None:
    """The state the old `persons merge` left (a face back in a person it was rejected
    from, with its 'different' links), made by SQL: audit said "No problems found"."""
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    t = _largest(cli, url)["id"]
    f, g, h, *rest = _faces_of(s, t)
    _ok(cli, "-d", url, "persons", "not-this-person", t, str(f), str(g))
    # Back in T as an old merge left them: f by hand, g automatically; h-rest[0] apart.
    _rows(s, "UPDATE face_detections SET person_id = %s, assigned_by = 'manual' "
          "WHERE id = %s", t, f)
    _rows(s, "UPDATE face_detections SET person_id = %s, assigned_by = 'cluster' "
          "WHERE id = %s", t, g)
    _rows(s, "INSERT INTO cannot_links VALUES (%s, %s)", h, rest[0])
    found = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert {(r["face"], r["assigned_by"]) for r in found["rejected_inside"]} == {
        (f, "manual"), (g, "cluster")}
    # the rejection's own links are part of its finding: only the other pair is listed
    assert [d["faces"] for d in found["different_inside"]] == [[h, rest[0]]]
    assert found["unassign_contradicting"] == {t: sorted([g, rest[0]])}

    told = _ok(cli, "-d", url, "audit").stdout
    assert (f"Face {f} (manual) is in person {t} it was rejected from; decide by hand: "
            f"`rbv persons not-this-person {t} {f}` (it is not) or `rbv persons move {f} "
            f"--to {t}` (it is).") in told
    assert f"Face {g} (cluster) is in person {t} it was rejected from; --fix unassigns it." \
        in told
    before = _dump(s)
    fixed = _ok(cli, "-d", url, "audit", "--fix").stdout
    assert "2 from persons they were rejected from or linked apart in." in fixed
    assert _person_of(s, g) is None and _person_of(s, rest[0]) is None
    assert _person_of(s, f) == _person_of(s, h) == t  # the user's call, and untouched
    after = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert after["unassign_contradicting"] == {}
    assert {r["face"] for r in after["rejected_inside"]} == {f}
    _ok(cli, "-d", url, "persons", "undo")  # the repair is one logged edit
    assert _dump(s) == before

    # The user settles it: f is T after all (the later decision wins everywhere).
    _ok(cli, "-d", url, "persons", "move", str(f), "--to", t)
    settled = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert {r["face"] for r in settled["rejected_inside"]} == {g}
    assert not any(f in d["faces"] for d in settled["different_inside"])


def test_fix_takes_the_fewest_automatic_faces_and_never_a_manual_one() -> None:
    from rbv.jobs.persons.audit import contradicting_faces
    from rbv.store.queries.audit import ApartInside, RejectedInside

    p, q = (uuid.UUID(int=1), uuid.UUID(int=2))
    star = [ApartInside(p, 1, (1, n), ("cluster", "cluster")) for n in range(2, 8)]
    assert contradicting_faces([], star) == {p: [1]}  # not the six others
    manual = [ApartInside(q, 1, (1, 2), ("manual", "cluster")),
              ApartInside(q, 1, (3, 4), ("manual", "manual"))]
    assert contradicting_faces([RejectedInside(9, q, 1, "manual")], manual) == {q: [2]}
    assert contradicting_faces([RejectedInside(9, q, 1, "match")], []) == {q: [9]}


@pytest.mark.parametrize("method", ["connected", "evidence"])
def test_the_readme_sql_reset_leaves_no_face_stranded(cli, faces_settings: Settings,
                                                      method: str) -> None:
    """Issue 21 item 5: after `persons move`, the README's reset left faces 'manual'
    without a person: cluster said it clustered them and assigned nothing, stats kept
    them unassigned for good, audit found empty persons."""
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full", method=method)
    p = _largest(cli, url)["id"]
    hand = _faces_of(s, p)[:3]
    _ok(cli, "-d", url, "persons", "move", *map(str, hand))
    _ok(cli, "-d", url, "persons", "name", p, "Pat")
    total = _rows(s, "SELECT count(*) FROM face_detections")[0][0]
    with psycopg.connect(url, autocommit=True) as conn:  # the README's reset, verbatim
        conn.execute("UPDATE face_detections SET person_id = NULL;")
        conn.execute("DELETE FROM persons;")
    assert _rows(s, "SELECT count(*) FROM face_detections WHERE assigned_by IS NOT NULL") \
        == [(0,)]  # no decision is left without its person

    report = _cluster(cli, url, method=method)
    assert report["clustered"] + report["matched"] == total
    made = _rows(s, "SELECT count(*) FROM persons")[0][0]
    assert report["new_persons"] == made
    assert _rows(s, "SELECT count(*) FROM face_detections WHERE person_id IS NULL") == [(0,)]
    assert all(_person_of(s, f) is not None for f in hand)
    stats = json.loads(_ok(cli, "-d", url, "stats", "--json").stdout)
    assert [pk["unassigned_faces"] for pk in stats["packs"]] == [0]
    audit = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert audit["empty_persons"] == [] and audit["rejected_inside"] == []
    again = _cluster(cli, url, method=method)
    assert again["clustered"] == again["new_persons"] == 0


def test_a_face_rejected_from_a_merged_person_is_rejected_from_the_target(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    t, x = _largest(cli, url, 0)["id"], _largest(cli, url, 1)["id"]
    z = _faces_of(s, x)[0]
    _ok(cli, "-d", url, "persons", "not-this-person", x, str(z))
    _ok(cli, "-d", url, "persons", "merge", t, x)
    assert (z, uuid.UUID(t)) in _rows(s, "SELECT face_id, person_id FROM person_rejections")
    _cluster(cli, url)
    _cluster(cli, url, "--full")
    assert _person_of(s, z) != t


def test_resetting_one_person_by_sql_clears_its_hand_placed_faces(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    p = _largest(cli, url)["id"]
    _ok(cli, "-d", url, "persons", "merge", p, _largest(cli, url, 1)["id"], "--override")
    with psycopg.connect(url, autocommit=True) as conn:  # README: reset one person
        conn.execute("DELETE FROM persons WHERE id = %s", (p,))
    assert _rows(s, "SELECT count(*) FROM face_detections WHERE person_id IS NULL "
                 "AND assigned_by IS NOT NULL") == [(0,)]
    report = _cluster(cli, url)
    assert report["new_persons"] >= 1
    assert _rows(s, "SELECT count(*) FROM face_detections WHERE person_id IS NULL") == [(0,)]


def test_moving_a_face_lifts_its_same_link_with_a_face_placed_elsewhere_by_hand(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    p, q = _largest(cli, url, 0)["id"], _largest(cli, url, 1)["id"]
    a, b = _faces_of(s, p)[0], _faces_of(s, q)[0]
    _ok(cli, "-d", url, "faces", "same", str(a), str(b))
    quiet = _ok(cli, "-d", url, "persons", "move", str(b), "--to", q).stdout
    assert "overrides" not in quiet  # a is placed automatically: nothing contradicted
    told = _ok(cli, "-d", url, "persons", "move", str(a), "--to", p).stdout
    assert f"This overrides 1 'same' link (faces {min(a, b)}-{max(a, b)})" in told
    assert _rows(s, "SELECT count(*) FROM must_links") == [(0,)]
    _cluster(cli, url, "--full")
    assert (_person_of(s, a), _person_of(s, b)) == (p, q)
