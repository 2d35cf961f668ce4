"""`rbv serve` over HTTP with a real client: pages read the database, every action is
the logged edit the CLI makes (it lands in the database and undo reverts it), and the
server refuses cross-site writes, foreign Host headers and paths in image URLs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from tests.conftest import run_cli
from tests.serve_client import (
    Client,
    ctrl_c,
    face_ids,
    person_there,
    serve_process,
    sign_in,
    twin_database,
)
from tests.serve_client import database_state as _state

pytestmark = pytest.mark.slow  # ~10 s: the web app through many pages

HOSTILE = '<script>console.error("pwned")</script> Ada & "Bob"'


def _persons(settings: Settings) -> list[tuple[str, str | None, int]]:
    """(id, name, faces) of the visible persons, most faces first."""
    with psycopg.connect(str(settings.database_url)) as conn:
        return [(str(r[0]), r[1], int(r[2])) for r in conn.execute(
            "SELECT p.id, n.name, count(f.id) FROM persons p "
            "LEFT JOIN person_names n ON n.person_id = p.id "
            "JOIN face_detections f ON f.person_id = p.id "
            "WHERE p.merged_into IS NULL AND NOT p.hidden GROUP BY p.id, n.name "
            "ORDER BY count(f.id) DESC, p.id")]


def _scalar(settings: Settings, query: str, *args: object) -> object:
    with psycopg.connect(str(settings.database_url)) as conn:
        row = conn.execute(query, args).fetchone()
        return row[0] if row else None


def test_pages_show_the_library_and_images_come_from_the_cache(
        served: tuple[ReviewServer, Client], faces_settings: Settings, tmp_path: Path) -> None:
    server, client = served
    persons = _persons(faces_settings)
    grid = client.get("/")
    assert grid.status == 200 and f"{len(persons):,} persons" in grid.text
    assert grid.text.index(persons[0][0]) < grid.text.index(persons[-1][0])  # largest first
    assert server.token in grid.text  # the page's script needs it

    page = client.get(f"/person/{persons[0][0]}")
    assert page.status == 200
    shown = face_ids(page.text)
    assert len(shown) == persons[0][2]
    crop = client.get(f"/face/{shown[0]}.jpg")
    assert crop.status == 200 and crop.body[:2] == b"\xff\xd8"
    cached = list((tmp_path / "cache" / "faces").glob("*.jpg"))
    assert len(cached) == 1 and cached[0].name.startswith(f"{shown[0]}_")

    photo_page = client.get(f"/photo-of/{shown[0]}")  # follows the redirect
    assert photo_page.status == 200 and 'class="box focus"' in photo_page.text
    image_id = _scalar(faces_settings, "SELECT image_id FROM face_detections WHERE id = %s",
                       shown[0])
    assert client.get(f"/photo/{image_id}.jpg").body[:2] == b"\xff\xd8"
    unnamed = client.get("/?filter=named")
    assert "0 persons" in unnamed.text


def test_cached_images_follow_the_photo_an_id_names_now(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """A database made again (or another one served with the same data folder) gives
    ids to other photos: the cache never answers with the photo an id named before."""
    _, client = served
    url = str(faces_settings.database_url)
    with psycopg.connect(url) as conn:
        (a, face_a), (b, _) = conn.execute(
            "SELECT image_id, min(id) FROM face_detections GROUP BY image_id "
            "ORDER BY image_id LIMIT 2").fetchall()
    photo, crop = client.get(f"/photo/{a}.jpg").body, client.get(f"/face/{face_a}.jpg").body
    with psycopg.connect(url) as conn:  # id a now names b's photo, and b a's
        digests = dict(conn.execute("SELECT id, sha256 FROM images WHERE id IN (%s, %s)",
                                    (a, b)).fetchall())
        conn.execute("UPDATE images SET sha256 = %s WHERE id = %s", ("0" * 64, a))
        conn.execute("UPDATE images SET sha256 = %s WHERE id = %s", (digests[a], b))
        conn.execute("UPDATE images SET sha256 = %s WHERE id = %s", (digests[b], a))
        conn.execute("UPDATE image_paths SET image_id = CASE image_id WHEN %(a)s THEN %(b)s "
                     "ELSE %(a)s END WHERE image_id IN (%(a)s, %(b)s)", {"a": a, "b": b})
    again = client.get(f"/photo/{a}.jpg")
    assert again.status == 200 and again.body != photo
    assert client.get(f"/face/{face_a}.jpg").body != crop


def test_photos_of_several_persons_together(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """What `rbv photos -p A -p B` finds: the photos with all of them, each person named
    and linked."""
    _, client = served
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        image, a, b = conn.execute(
            "SELECT f.image_id, min(f.person_id::text), max(f.person_id::text) "
            "FROM face_detections f WHERE f.person_id IS NOT NULL GROUP BY f.image_id "
            "HAVING count(DISTINCT f.person_id) >= 2 ORDER BY f.image_id LIMIT 1").fetchone()
        together = {r[0] for r in conn.execute(
            "SELECT image_id FROM face_detections WHERE person_id = %s INTERSECT "
            "SELECT image_id FROM face_detections WHERE person_id = %s", (a, b))}
    assert client.post("name", {"person": a, "name": "Ada"}).status == 200
    page = client.get(f"/photos?person={a}&person={b}").text
    base = client.base.removeprefix(client.origin)  # every link is under it
    assert sorted(int(i) for i in re.findall(rf'href="{base}/photo/(\d+)"', page)) == \
        sorted(together) and image in together
    assert (f'<a href="{base}/person/{a}">Ada</a> and <a href="{base}/person/{b}">'
            f'unnamed {b[:8]}</a>') in page
    alone = _persons(faces_settings)[-1][0]
    if alone not in (a, b):
        assert "No photo shows all of them" in client.get(
            f"/photos?person={a}&person={alone}").text


def test_edits_land_in_the_database_and_undo_reverts_them(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    (a, _, _), (b, _, b_faces) = _persons(faces_settings)[:2]

    named = client.post("name", {"person": a, "name": HOSTILE})
    assert named.status == 200, named.text
    assert _scalar(faces_settings, "SELECT name FROM person_names WHERE person_id = %s",
                   a) == HOSTILE
    grid = client.get("/?q=Ada").text
    assert "&lt;script&gt;" in grid and "<script>console" not in grid

    clash = client.post("name", {"person": b, "name": HOSTILE.upper()}).json()
    assert clash["confirm"] == "merge" and clash["other"] == a

    faces = face_ids(client.get(f"/person/{b}").text)[:3]
    rejected = client.post("reject", {"person": b, "faces": faces})
    assert rejected.status == 200, rejected.text
    edit = rejected.json()["edit"]
    assert _scalar(faces_settings, "SELECT count(*) FROM person_rejections "
                   "WHERE person_id = %s", b) == 3
    assert len(face_ids(client.get(f"/person/{b}").text)) == b_faces - 3

    assert client.post("undo", {"edit": edit + 1, "count": 1}).status == 409  # not newest
    undone = client.post("undo", {"edit": edit, "count": 1})
    assert undone.status == 200, undone.text
    assert _scalar(faces_settings, "SELECT count(*) FROM person_rejections") == 0
    assert _scalar(faces_settings, "SELECT count(*) FROM face_detections "
                   "WHERE person_id = %s", b) == b_faces
    assert "undone by #" in client.get("/history").text

    moved = client.post("move", {"faces": faces[:1], "to": HOSTILE})
    assert moved.status == 200, moved.text
    assert str(_scalar(faces_settings, "SELECT person_id FROM face_detections WHERE id = %s",
                       faces[0])) == a
    assert client.post("hide", {"person": b}).status == 200
    assert _scalar(faces_settings, "SELECT hidden FROM persons WHERE id = %s", b) is True
    assert b in client.get("/?filter=hidden").text

    # A refused edit is one message and changes nothing.
    same_photo = client.post("reject", {"person": a, "faces": [10**12]})
    assert same_photo.status == 409 and "no face with id" in same_photo.json()["error"]


def test_new_person_same_person_merge_in_unhide_skip_and_the_name_clash_merge(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    (a, _, a_faces), (b, _, b_faces), (c, _, c_faces) = _persons(faces_settings)[:3]

    # New person from two of A's faces: the answer leads to its page.
    two = face_ids(client.get(f"/person/{a}").text)[:2]
    made = client.post("new", {"faces": two}).json()
    new = made["go"].rsplit("/", 1)[1]
    assert made["ok"] and made["go"] == f"/person/{new}" and new != a
    assert sorted(face_ids(client.get(made["go"]).text)) == sorted(two)

    # Same person: a must-link between the faces picked.
    pair = [two[0], face_ids(client.get(f"/person/{a}").text)[0]]
    assert client.post("same", {"faces": pair}).status == 200
    assert _scalar(faces_settings, "SELECT count(*) FROM must_links") == 1

    # Merge in, by a typed name; the merged person's page follows to the kept one.
    assert client.post("name", {"person": c, "name": "Carol"}).status == 200
    # The named one is kept, whichever side it is (issue 51).
    merged = client.post("merge", {"person": b, "source": "carol"}).json()
    assert merged["ok"] and merged["go"] == f"/person/{c}"
    assert str(_scalar(faces_settings, "SELECT merged_into FROM persons WHERE id = %s",
                       b)) == c
    assert len(face_ids(client.get(f"/person/{b}").text)) == b_faces + c_faces
    assert client.post("merge", {"person": b, "source": b}).status == 409  # itself

    # Naming B with a name A has: offered the merge, which the page then posts.
    assert client.post("name", {"person": a, "name": "Ada"}).status == 200
    clash = client.post("name", {"person": c, "name": "ada"}).json()
    assert clash["confirm"] == "merge" and clash["other"] == a
    assert _scalar(faces_settings, "SELECT merged_into FROM persons WHERE id = %s",
                   c) is None  # nothing done before the answer
    # C is 'Carol': two names merge only as the page posts it, the name typed kept
    assert client.post("merge", {"person": clash["other"], "source": c}).status == 409
    assert client.post("merge", {"person": clash["other"], "source": c,
                                 "keep_name": "ada"}).status == 200
    assert str(_scalar(faces_settings, "SELECT merged_into FROM persons WHERE id = %s",
                       c)) == a

    # Hide, then unhide.
    assert client.post("hide", {"person": a}).status == 200
    assert a not in client.get("/").text and a in client.get("/?filter=hidden").text
    assert client.post("unhide", {"person": a}).status == 200
    assert _scalar(faces_settings, "SELECT hidden FROM persons WHERE id = %s", a) is False


def test_a_skipped_suggestion_is_not_shown_again(served: tuple[ReviewServer, Client]
                                                  ) -> None:
    _, client = served

    def current() -> tuple[str, str] | None:
        m = re.search(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"',
                      client.get("/suggestions").text)
        return (m[1], m[2]) if m else None

    first = current()
    assert first is not None
    assert client.post("skip", {"keep": first[0], "other": first[1]}).json()["edit"] is None
    assert current() != first


def test_suggestions_accept_dismiss_and_never_again(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    import re

    def current() -> tuple[str, str] | None:
        page = client.get("/suggestions").text
        m = re.search(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"', page)
        return (m[1], m[2]) if m else None

    first = current()
    assert first is not None
    accepted = client.post("accept", {"keep": first[0], "other": first[1]})
    assert accepted.status == 200, accepted.text
    assert str(_scalar(faces_settings, "SELECT merged_into FROM persons WHERE id = %s",
                       first[1])) == first[0]
    second = current()
    assert second is not None and second != first
    dismissed = client.post("dismiss", {"keep": second[0], "other": second[1]})
    assert dismissed.status == 200, dismissed.text
    assert _scalar(faces_settings, "SELECT count(*) FROM cannot_links") == 1
    assert current() != second


def test_cross_site_writes_foreign_hosts_and_paths_are_refused(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    person = _persons(faces_settings)[0][0]
    body = {"person": person, "name": "Mallory"}
    assert client.post("name", body, token=None).status == 403
    assert client.post("name", body, token="wrong").status == 403
    assert client.post("name", body, Origin="http://evil.example").status == 403
    form = client.request("POST", "/api/name", json.dumps(body).encode(),
                          {"Content-Type": "text/plain", "X-RBV-Token": client.token})
    assert form.status == 415
    port = client.origin.rsplit(":", 1)[1]
    assert client.get("/", Host="evil.example:80").status == 421
    assert client.get("/", Host=f"evil.example:{port}").status == 421
    assert client.get("/", Host=f"localhost:{port}").status == 200
    assert client.post("name", body, Host=f"localhost:{port}",
                       Origin=f"http://127.0.0.1:{port}").status == 403  # not its origin
    assert client.post("name", body, Host=f"rebound.example:{client.origin.rsplit(':', 1)[1]}"
                       ).status == 421
    assert _scalar(faces_settings, "SELECT count(*) FROM person_names") == 0
    for path in ("/face/../../../etc/passwd", "/face/%2e%2e%2fetc%2fpasswd.jpg",
                 "/photo/1.jpg/../../etc/passwd", "/static/../app.py", "/face/1e3.jpg"):
        assert client.get(path).status == 404, path


def test_edits_beside_a_running_cluster_are_kept_or_refused_whole(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """The server takes the pack's lock only while an edit runs: `rbv cluster` runs
    beside it; an edit that meets a running clustering is refused with one message
    (nothing half-done), and every edit that was accepted survives the clustering."""
    import threading

    from rbv.errors import ClusterBusy
    from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
    from rbv.store import open_database

    _, client = served
    persons = [p for p, _, _ in _persons(faces_settings)]
    db = open_database(faces_settings)
    runs: list[str] = []
    stop = threading.Event()

    def clustering() -> None:
        while not stop.is_set():
            try:
                cluster_pack(db, None, ClusterOptions(threshold=0.7, full=True))
                runs.append("ok")
            except ClusterBusy:
                runs.append("busy")

    worker = threading.Thread(target=clustering)
    worker.start()
    accepted, refused = {}, 0
    try:
        # Twelve names, then on (renaming the same twelve) until one has landed beside a
        # finished run: on a busy machine one run may hold the lock through all twelve.
        for i in range(2_000):
            person, name = persons[i % 12], f"Person {i}"
            answer = client.post("name", {"person": person, "name": name})
            if answer.status == 200:
                accepted[person] = name
            else:
                assert answer.status == 409 and "is running" in answer.json()["error"]
                refused += 1
            if i >= 11 and accepted and "ok" in runs:
                break
    finally:
        stop.set()
        worker.join()
    assert "ok" in runs and accepted
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        names = dict(conn.execute("SELECT person_id::text, name FROM person_names").fetchall())
    assert names == accepted
    assert "rbv cluster ran at" in client.get("/").text
    print(f"\n{len(accepted)} edits accepted, {refused} refused while clustering; "
          f"cluster runs: {runs.count('ok')} done, {runs.count('busy')} met an edit")


def test_the_command_prints_its_url_first_and_stops_cleanly_on_ctrl_c(
        faces_settings: Settings, tmp_path: Path) -> None:
    import os
    import urllib.parse
    import urllib.request

    env = {**os.environ, "DATABASE_URL": str(faces_settings.database_url),
           "RBV_DATA_DIR": str(tmp_path / "data")}
    with serve_process(["--port", "0"], env) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Serving on http://127.0.0.1:"), first
        printed = first.split()[-1]
        signed_in, cookie = sign_in(printed)
        assert signed_in.status == 303 and cookie
        # the key leaves the address bar, for the start's secret folder
        assert re.fullmatch(r"/s/[\w-]{43}/", signed_in.headers["location"])
        attributes = signed_in.headers["set-cookie"].lower()
        assert "httponly" in attributes and "samesite=strict" in attributes
        root = urllib.parse.urljoin(printed, signed_in.headers["location"])
        with urllib.request.urlopen(urllib.request.Request(root, headers={"Cookie": cookie}),
                                    timeout=60) as r:
            assert r.status == 200
        out, err = ctrl_c(process, 60)
    assert process.returncode == 0, err
    assert out.strip() == "Stopped." and err == ""
    assert printed.split("token=")[1] not in out + err  # printed once, on the start line
    assert (tmp_path / "data" / "serve-cache").is_dir()


def test_suggestions_show_at_once_after_a_restart_and_never_a_settled_pair(
        cli, faces_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The ranking is kept in the cache: a restarted server shows a suggestion without
    ranking the pack again; after persons changed elsewhere it shows the kept ranking
    (saying so) less the pairs settled since, while it ranks afresh."""
    from rbv.serve.queue import SuggestionQueue
    from rbv.store import open_database

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    db = open_database(faces_settings)
    kept = tmp_path / "suggestions.json"
    first = SuggestionQueue(db, None, kept)
    first.warm().join()
    pair = first.next()
    assert pair is not None and kept.is_file()
    ranked = [(s.keep.id, s.other.id) for s in first.ranker.ranking.suggestions]  # type: ignore[union-attr]
    assert len(ranked) >= 2

    again, note = SuggestionQueue(db, None, kept).next_or_waiting()
    assert again is not None and note == ""
    assert (again.suggestion.keep.id, again.suggestion.other.id) == ranked[0]

    keep, other = ranked[0]
    done = run_cli(cli, "-d", url, "persons", "merge", str(keep), str(other))
    assert done.exit_code == 0, done.output
    queue = SuggestionQueue(db, None, kept)
    stale, note = queue.next_or_waiting()
    assert note.startswith("Persons changed since these suggestions were ranked")
    shown = [] if stale is None else [stale.suggestion.keep.id, stale.suggestion.other.id]
    assert other not in shown  # merged away: never offered
    queue.warm().join()
    fresh, note = queue.next_or_waiting()
    assert note == ""
    assert fresh is None or other not in (fresh.suggestion.keep.id, fresh.suggestion.other.id)


def test_the_browser_leaves_the_database_where_the_same_commands_do(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        pg_server, faces_template: str) -> None:
    _, client = served
    here = str(faces_settings.database_url)
    twin_url = twin_database(cli, pg_server, faces_template)
    assert _state(twin_url)[0] == _state(here)[0]

    def there(person: str) -> str:
        return person_there(here, twin_url, person)

    def cli_ok(*args: str) -> None:
        done = run_cli(cli, "-d", twin_url, *args)
        assert done.exit_code == 0, done.output

    (a, _, _), (b, _, _) = _persons(faces_settings)[:2]
    for person, name in ((a, "Ada"), (b, "Grace")):
        cli_ok("persons", "name", there(person), name)
        assert client.post("name", {"person": person, "name": name}).status == 200
    faces = face_ids(client.get(f"/person/{b}").text)[:3]
    cli_ok("persons", "not-this-person", there(b), *map(str, faces))
    assert client.post("reject", {"person": b, "faces": faces}).status == 200
    for action in ("accept", "dismiss"):
        page = client.get("/suggestions").text
        keep, other = re.search(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"',
                                page).groups()  # type: ignore[union-attr]
        if action == "accept":
            cli_ok("persons", "merge", there(keep), there(other))
        else:
            before = set(_state(str(faces_settings.database_url))[2][0])
            assert client.post("dismiss", {"keep": keep, "other": other}).status == 200
            (pair,) = set(_state(str(faces_settings.database_url))[2][0]) - before
            cli_ok("faces", "different", *map(str, pair))
            continue
        assert client.post(action, {"keep": keep, "other": other}).status == 200
    cli_ok("persons", "undo")
    assert client.post("undo", {"count": 1}).status == 200
    assert _state(str(faces_settings.database_url)) == _state(twin_url)
