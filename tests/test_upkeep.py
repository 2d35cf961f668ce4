"""Library upkeep: `rbv index` notices moved and deleted files, `rbv audit [--fix]`,
`rbv prune [--dry-run]`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from pathlib import Path

import psycopg

from rbv.config import Settings
from rbv.jobs.persons.audit import faces_to_unassign
from rbv.store.queries.audit import ConflictFace, SamePhotoConflict
from tests.conftest import FACES, MISC, PACK, run_cli


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _index(cli, settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    return run_cli(cli, "index", "-d", str(settings.database_url), "--no-embed", *args)


def _faces(settings: Settings) -> dict[str, list[tuple[int, object]]]:
    """Face ids and persons by file name of the image's paths (missing paths included)."""
    out: dict[str, list[tuple[int, object]]] = {}
    for path, face, person in _rows(
            settings, "SELECT p.path, f.id, f.person_id FROM image_paths p "
            "JOIN face_detections f ON f.image_id = p.image_id ORDER BY f.id"):
        out.setdefault(Path(path).name, []).append((face, person))
    return out


def test_index_notices_moves_and_deletions_under_a_symlinked_root_and_prune_removes_them(
        cli, settings: Settings, tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "2023").mkdir(parents=True)
    shutil.copy(FACES / "Barack_Obama" / "fr_obama.jpg", real / "2023" / "obama.jpg")
    shutil.copy(MISC / "fr_two_people.jpg", real / "2023" / "two.jpg")
    shutil.copy(FACES / "Joe_Biden" / "fr_biden2_exif8.jpg", real / "biden.jpg")
    lib = tmp_path / "lib"  # the library is reached through a symlink
    lib.symlink_to(real)
    first = run_cli(cli, "index", "-d", str(settings.database_url), "--model-pack", str(PACK),
                    str(lib))
    assert first.exit_code == 0, first.output
    person = uuid.uuid4()
    _rows(settings, "INSERT INTO persons (id, pack_id) SELECT %s, id FROM model_packs", person)
    _rows(settings, "UPDATE face_detections SET person_id = %s, assigned_by = 'manual'", person)
    before = _faces(settings)
    assert set(before) == {"obama.jpg", "two.jpg", "biden.jpg"}

    (real / "2024").mkdir()
    os.rename(real / "2023" / "obama.jpg", real / "2024" / "obama renamed.jpg")  # a move
    os.unlink(real / "biden.jpg")  # a deletion
    result = _index(cli, settings, str(lib))
    assert result.exit_code == 0, result.output
    assert "0 new images, 0 aliases" in result.stdout
    assert "1 moved, 1 missing" in result.stdout
    paths = dict(_rows(settings, "SELECT path, missing_since IS NOT NULL FROM image_paths"))
    assert paths == {f"{lib}/2024/obama renamed.jpg": False, f"{lib}/2023/two.jpg": False,
                     f"{lib}/biden.jpg": True}  # paths as given: through the symlink
    after = _faces(settings)
    assert after["obama renamed.jpg"] == before["obama.jpg"]  # same faces, same person
    assert after["biden.jpg"] == before["biden.jpg"]  # kept until pruned
    stats = json.loads(run_cli(cli, "stats", "-d", str(settings.database_url), "--json").stdout)
    assert (stats["images"]["missing_paths"], stats["images"]["missing_images"]) == (1, 1)
    _rows(settings, "UPDATE face_scans SET status = 'pending'")  # as if never scanned
    embed = run_cli(cli, "embed", "-d", str(settings.database_url), "--model-pack", str(PACK),
                    "--dry-run")
    assert "Would scan 2 images" in embed.stdout, embed.output  # not the missing one
    _rows(settings, "UPDATE face_scans SET status = 'done'")

    shutil.copy(FACES / "Joe_Biden" / "fr_biden2_exif8.jpg", real / "biden.jpg")  # it is back
    back = _index(cli, settings, str(lib), "--json")
    assert json.loads(back.stdout)["catalogue"]["returned"] == 1
    assert _rows(settings, "SELECT count(*) FROM image_paths WHERE missing_since IS NOT NULL"
                 ) == [(0,)]

    os.unlink(real / "biden.jpg")
    assert "0 moved, 1 missing" in _index(cli, settings, str(lib)).stdout
    dry = run_cli(cli, "prune", "-d", str(settings.database_url), "--dry-run")
    assert dry.exit_code == 0, dry.output
    biden_faces = len(before["biden.jpg"])
    assert dry.stdout.startswith(f"Would remove 1 missing photos with {biden_faces} faces")
    assert _faces(settings)["biden.jpg"] == before["biden.jpg"]
    done = run_cli(cli, "prune", "-d", str(settings.database_url), "--json")
    assert done.exit_code == 0, done.output
    pruned = json.loads(done.stdout)
    assert [line.split(": ", 1)[1] for line in pruned.pop("decisions_deleted")] == [
        f"face {f} goes with the missing photo, which was placed by hand in an unnamed person"
        for f, _person in before["biden.jpg"]]  # every decision deleted is said
    assert pruned == {"images": 1, "faces": biden_faces, "paths": 1,
                      "decisions_kept": [], "dry_run": False}
    assert set(_faces(settings)) == {"obama renamed.jpg", "two.jpg"}
    assert _rows(settings, "SELECT count(*) FROM images") == [(2,)]
    assert _rows(settings, "SELECT count(*) FROM persons WHERE id = %s", person) == [(1,)]
    assert _rows(settings, "SELECT command, status FROM runs WHERE command = 'prune'"
                 ) == [("prune", "ok")]


def test_only_walked_folders_mark_files_missing(cli, settings: Settings, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(MISC / "fr_two_people.jpg", a / "one.jpg")
    shutil.copy(MISC / "insightface_bulk_view.jpg", b / "two.jpg")
    shutil.copy(MISC / "fr_32bit.png", b / "three.png")
    assert _index(cli, settings, str(a), str(b)).exit_code == 0

    def missing() -> list[str]:
        return [Path(p).name for (p,) in _rows(
            settings, "SELECT path FROM image_paths WHERE missing_since IS NOT NULL")]

    os.unlink(b / "three.png")
    assert _index(cli, settings, str(a)).exit_code == 0  # b not named: nothing of b missing
    assert missing() == []
    assert _index(cli, settings, str(b), "--include", "*.jpg").exit_code == 0
    assert missing() == []  # three.png was not looked for
    odd_root = os.fsdecode(bytes(tmp_path) + b"/\xff")  # a folder name that is not UTF-8
    os.mkdir(odd_root)
    shutil.copy(MISC / "fr_two_people.jpg", os.path.join(odd_root, "x.jpg"))
    assert "1 aliases" in _index(cli, settings, odd_root).stdout  # catalogued: one.jpg's copy
    os.rename(a / "one.jpg", tmp_path / "away.jpg")  # `a` now looks like an unmounted disk
    empty = _index(cli, settings, str(a))
    assert empty.exit_code == 0, empty.output
    assert f"Note: {a} holds no files (is the disk mounted?)" in " ".join(empty.stdout.split())
    assert missing() == []
    # A photo renamed to a name that is not UTF-8 is a move like any other, and back.
    os.rename(b / "two.jpg", os.fsdecode(bytes(b) + b"/caf\xe9.jpg"))
    odd = _index(cli, settings, str(b))
    assert odd.exit_code == 0, odd.output
    assert "1 moved, 1 missing" in odd.stdout  # and three.png, now looked for
    assert sorted(missing()) == ["three.png"]
    os.rename(os.fsdecode(bytes(b) + b"/caf\xe9.jpg"), b / "cafe.jpg")
    renamed = _index(cli, settings, str(b))
    assert renamed.exit_code == 0, renamed.output
    assert "1 moved, 0 missing" in renamed.stdout
    assert missing() == ["three.png"]


def test_audit_reports_and_fix_repairs_only_what_is_safe(cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    pack = _rows(s, "SELECT id FROM model_packs")[0][0]
    empty, named_empty, bob, bob2, clash = (uuid.uuid4() for _ in range(5))
    for p in (empty, named_empty, bob, bob2, clash):
        _rows(s, "INSERT INTO persons (id, pack_id) VALUES (%s, %s)", p, pack)
    _rows(s, "INSERT INTO person_names VALUES (%s, 'Ann'), (%s, 'Bob'), (%s, 'bob')",
          named_empty, bob, bob2)
    two = _rows(s, "SELECT f.id FROM face_detections f JOIN image_paths p USING (image_id) "
                "WHERE p.path LIKE '%%/fr_two_people.jpg' ORDER BY f.id")
    other = _rows(s, "SELECT f.id FROM face_detections f JOIN image_paths p USING (image_id) "
                  "WHERE p.path LIKE '%%/Barack_Obama/%%' ORDER BY f.id LIMIT 3")
    kept, dropped = two[0][0], two[1][0]
    _rows(s, "UPDATE face_detections SET person_id = %s, assigned_by = 'cluster' "
          "WHERE id = ANY(%s)", clash, [dropped, *(o[0] for o in other)])
    _rows(s, "UPDATE face_detections SET person_id = %s, assigned_by = 'manual' WHERE id = %s",
          clash, kept)
    bob_faces = _rows(s, "SELECT id FROM face_detections WHERE person_id IS NULL "
                      "ORDER BY id LIMIT 2")
    _rows(s, "UPDATE face_detections SET person_id = %s WHERE id = %s", bob, bob_faces[0][0])
    _rows(s, "UPDATE face_detections SET person_id = %s WHERE id = %s", bob2, bob_faces[1][0])
    dead_worker = f"{socket.gethostname()}:{2**22 + 12345}"  # above pid_max: never alive
    _rows(s, "UPDATE face_scans SET status = 'running', worker = %s, claimed_at = now() "
          "WHERE image_id = (SELECT min(image_id) FROM face_scans)", dead_worker)
    _rows(s, "INSERT INTO runs (command, host, pid) VALUES ('embed', %s, %s)",
          socket.gethostname(), 2**22 + 12345)
    _rows(s, "UPDATE image_paths SET missing_since = now() "
          "WHERE id = (SELECT min(id) FROM image_paths)")

    report = run_cli(cli, "audit", "-d", url, "--json")
    assert report.exit_code == 0, report.output
    found = json.loads(report.stdout)
    assert {p["id"] for p in found["empty_persons"]} == {str(empty), str(named_empty)}
    [conflict] = found["same_photo_conflicts"]
    assert conflict["person"] == str(clash) and conflict["unassign"] == [dropped]
    assert conflict["path"].endswith("/fr_two_people.jpg")
    assert [(d["name"].lower(), len(d["persons"])) for d in found["duplicate_names"]] == [
        ("bob", 2)]
    assert found["missing"]["paths"] == 1 and found["missing"]["images"] == 1
    assert [c["worker"] for c in found["stale_claims"]] == [dead_worker]
    assert [r["command"] for r in found["stale_runs"]] == ["embed"]
    assert found["fixed"] is None
    assert _rows(s, "SELECT count(*) FROM runs WHERE command = 'audit'") == [(0,)]  # read only

    would = run_cli(cli, "audit", "-d", url, "--fix", "--dry-run")
    assert ("Would fix: 1 runs marked interrupted, 1 claims put back in the queue, 1 empty "
            "unnamed persons deleted, 1 faces unassigned from same-photo conflicts, 0 from "
            "persons they were rejected from or linked apart in; nothing was written."
            ) in would.stdout, would.output
    assert json.loads(run_cli(cli, "audit", "-d", url, "--json").stdout)["findings"] == \
        found["findings"]
    fixed = run_cli(cli, "audit", "-d", url, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert ("Fixed: 1 runs marked interrupted, 1 claims put back in the queue, 1 empty "
            "unnamed persons deleted, 1 faces unassigned from same-photo conflicts, 0 from "
            "persons they were rejected from or linked apart in.") in fixed.stdout
    assert _rows(s, "SELECT id FROM persons WHERE id = ANY(%s)", [empty, named_empty]) == [
        (named_empty,)]  # a named person is the user's to delete
    assert _rows(s, "SELECT id FROM face_detections WHERE person_id = %s AND id = ANY(%s) "
                 "ORDER BY id", clash, [kept, dropped]) == [(kept,)]
    assert _rows(s, "SELECT count(*) FROM face_scans WHERE status = 'running'") == [(0,)]
    again = json.loads(run_cli(cli, "audit", "-d", url, "--json").stdout)
    assert again["same_photo_conflicts"] == [] and again["stale_claims"] == []
    assert again["stale_runs"] == []
    assert _rows(s, "SELECT status FROM runs WHERE command = 'embed'") == [("interrupted",)]
    undo = run_cli(cli, "-d", url, "persons", "undo")  # the person edits of --fix, exactly
    assert undo.exit_code == 0, undo.output
    assert _rows(s, "SELECT count(*) FROM persons WHERE id = %s", empty) == [(1,)]
    assert _rows(s, "SELECT person_id, assigned_by FROM face_detections WHERE id = %s",
                 dropped) == [(clash, "cluster")]
    assert len(again["duplicate_names"]) == 1 and again["missing"]["paths"] == 1


def test_same_photo_conflict_keeps_the_manual_face_else_the_most_similar() -> None:
    def conflict(*faces: ConflictFace) -> SamePhotoConflict:
        return SamePhotoConflict(uuid.uuid4(), 1, 7, "/p/a.jpg", faces)

    assert faces_to_unassign(conflict(ConflictFace(1, "cluster", 0.9),
                                      ConflictFace(2, "manual", 0.2))) == [1]
    assert faces_to_unassign(conflict(ConflictFace(1, "cluster", 0.3),
                                      ConflictFace(2, "match", 0.8),
                                      ConflictFace(3, "cluster", 0.5))) == [1, 3]
    assert faces_to_unassign(conflict(ConflictFace(1, "manual", 0.3),
                                      ConflictFace(2, "manual", 0.8))) is None
    assert faces_to_unassign(conflict(ConflictFace(1, "cluster", None),
                                      ConflictFace(2, "cluster", None))) is None
