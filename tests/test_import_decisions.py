"""Imports name no face themselves, so they override no decision (issue 21, README "How
rbv treats your fixes"): `import-folders` and `import-xmp` leave a face placed by hand
where it is, never put a face in a person it was rejected from or beside a face it is
linked `different` with, nor apart from a hand-placed face it is linked `same` with, and
say so for each face. `audit` reports two faces linked `same` placed by hand in two
persons. Real photos, real PostgreSQL, through the CLI runner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
from PIL import Image

from rbv.config import Settings
from tests.conftest import FACES, MISC, PACK, import_folders, run_cli
from tests.support.sidecars import mwg_sidecar
from tests.test_manual_decisions import _cluster, _faces_of, _largest, _ok, _person_of, _rows


def test_import_folders_again_keeps_what_was_decided_by_hand_and_says_so(
        cli, faces_settings: Settings) -> None:
    """A face moved out of an imported person by hand went back to it on the next
    import, silently; a rejected face was skipped without a word."""
    s = faces_settings
    url = str(s.database_url)
    first = import_folders(cli, s)
    obama = next(i["person_id"] for i in first["identities"] if i["name"] == "Barack_Obama")
    moved, rejected, linked, kept, *_ = _faces_of(s, obama)
    _ok(cli, "-d", url, "persons", "move", str(moved))  # into a new person, by hand
    elsewhere = _person_of(s, moved)
    _ok(cli, "-d", url, "persons", "not-this-person", "Barack_Obama", str(rejected))
    _rows(s, "UPDATE face_detections SET person_id = NULL WHERE id = %s", linked)
    _ok(cli, "-d", url, "faces", "different", str(linked), str(kept))

    again = run_cli(cli, "-d", url, "import-folders", str(FACES / "Barack_Obama"),
                    "--model-pack", str(PACK), "--no-index")
    assert again.exit_code == 0, again.output
    assert _person_of(s, moved) == elsewhere
    assert _person_of(s, rejected) != obama and _person_of(s, linked) != obama
    assert _person_of(s, kept) == obama
    said = again.stdout
    assert (f"face {moved} not given to Barack_Obama: it was placed by hand in person "
            f"{elsewhere}, and that earlier decision stands") in said, said
    assert (f"face {rejected} not given to Barack_Obama: it was rejected from that person"
            in said), said
    assert f"face {linked} not given to Barack_Obama: it is linked 'different' with face " \
        f"{kept}" in said, said
    audit = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert audit["rejected_inside"] == [] and audit["different_inside"] == []


def _areas(settings: Settings, photo: Path) -> list[tuple[int, tuple[str, ...]]]:
    """The photo's faces, left to right: (id, normalised MWG area as strings)."""
    w, h = Image.open(photo).size
    rows = _rows(settings, "SELECT f.id, f.x1, f.y1, f.x2, f.y2 FROM face_detections f "
                 "JOIN image_paths p ON p.image_id = f.image_id WHERE p.path = %s "
                 "ORDER BY f.x1", str(photo))
    return [(int(i), (str((x1 + x2) / 2 / w), str((y1 + y2) / 2 / h), str((x2 - x1) / w),
                      str((y2 - y1) / h))) for i, x1, y1, x2, y2 in rows]


def test_import_xmp_never_moves_a_hand_placed_face_nor_breaks_a_link(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    """A face placed by hand in an unnamed person was moved to the sidecar's name; a face
    linked `same` with a face placed by hand in another person was put elsewhere."""
    from rbv.jobs.library.index import run_index
    from rbv.store import open_database

    url = str(settings.database_url)
    lib = tmp_path / "lib"
    lib.mkdir()
    two, obama = lib / "two.jpg", lib / "obama.jpg"
    shutil.copy(MISC / "fr_two_people.jpg", two)
    shutil.copy(FACES / "Barack_Obama" / "fr_obama.jpg", obama)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    (a, area_a), (b, area_b) = _areas(settings, two)
    ((c, _),) = _areas(settings, obama)
    _ok(cli, "-d", url, "persons", "move", str(a))  # a: by hand, in a person of its own
    mine = _person_of(settings, a)
    _ok(cli, "-d", url, "persons", "move", str(c))
    _ok(cli, "-d", url, "persons", "name", str(_person_of(settings, c)), "Cy")
    _ok(cli, "-d", url, "faces", "same", str(b), str(c))  # b is Cy
    w, h = Image.open(two).size
    (lib / "two.jpg.xmp").write_bytes(mwg_sidecar((str(w), str(h)),
                                                  [("Ann", area_a), ("Dan", area_b)]))

    done = run_cli(cli, "-d", url, "import-xmp", str(lib), "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    reasons = {c["name"]: c["reason"] for c in report["conflicts"]}
    assert reasons == {
        "Dan": f"the face is linked 'same' with face {c}, placed by hand in another person"}
    # a is alone in the person made by hand: that person is Ann (issue 51), a stays
    assert [(n["name"], n["person"]) for n in report["persons_named"]] == [("Ann", mine)]
    assert report["assigned"] == 0
    assert _person_of(settings, a) == mine and _person_of(settings, b) is None


def test_audit_reports_faces_linked_same_but_placed_by_hand_in_two_persons(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    p, q = _largest(cli, url, 0)["id"], _largest(cli, url, 1)["id"]
    a, b = _faces_of(s, p)[0], _faces_of(s, q)[0]
    _ok(cli, "-d", url, "persons", "move", str(a), "--to", p)
    _ok(cli, "-d", url, "persons", "move", str(b), "--to", q)
    # as an import before this fix, or SQL, left it: a "same" link across the two
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO must_links (face_a, face_b) VALUES (%s, %s)",
                     (min(a, b), max(a, b)))
    found = json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)
    assert found["same_apart"] == [{"faces": [min(a, b), max(a, b)],
                                    "persons": [_person_of(s, min(a, b)),
                                                _person_of(s, max(a, b))],
                                    "pack": "scrfd_sface"}]
    told = _ok(cli, "-d", url, "audit").stdout
    first, second = min(a, b), max(a, b)
    pf, ps = _person_of(s, first), _person_of(s, second)
    assert (f"Faces {first} and {second} are linked as one person but placed by hand in "
            f"two persons, {pf} and {ps}; decide by hand: `rbv persons move {first} --to "
            f"{ps}` (they are one) or `rbv persons move {first} --to {pf}` (they are not: "
            "the link goes).") in told, told
    _ok(cli, "-d", url, "audit", "--fix")  # the user's call: --fix leaves it
    assert json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)["same_apart"] != []
    _ok(cli, "-d", url, "persons", "move", str(first), "--to", pf)  # they are not
    assert json.loads(_ok(cli, "-d", url, "audit", "--json").stdout)["same_apart"] == []
    assert _rows(s, "SELECT count(*) FROM must_links") == [(0,)]
