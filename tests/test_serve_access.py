"""`rbv serve` on a shared machine (issue 31 #1-#3): only the browser that opened the
printed URL gets anything (another local user, a real second uid when the tests run as
root, is refused everywhere); bad input is a 400 with one line, never a 500; a database
that goes away under a running server is a 503 page, and the server carries on once it
is back."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import psutil
import psycopg
import pytest

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from rbv.serve.inputs import MAX_FACES
from tests.conftest import run_cli
from tests.serve_client import (
    Client,
    Reply,
    ctrl_c,
    database_state,
    face_ids,
    serve_process,
    sign_in,
)

pytestmark = pytest.mark.slow  # ~10 s: rbv serve in subprocesses


def _rows(settings: Settings, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(str(settings.database_url)) as conn:
        return conn.execute(query).fetchall()


def _every_kind_of_page(client: Client, settings: Settings) -> list[str]:
    """A path of each kind the server answers: pages, images, static files, the API."""
    person = str(_rows(settings, "SELECT person_id FROM face_detections "
                                 "WHERE person_id IS NOT NULL LIMIT 1")[0][0])
    face = face_ids(client.get(f"/person/{person}").text)[0]
    image = int(_rows(settings, f"SELECT image_id FROM face_detections WHERE id = {face}"
                      )[0][0])
    return ["/", f"/person/{person}", f"/face/{face}.jpg", f"/photo/{image}.jpg",
            f"/photo/{image}", f"/photo-of/{face}", f"/photos?person={person}",
            "/suggestions", "/history", "/api/names?q=a", "/static/app.js",
            "/static/app.css", "/favicon.ico", "/no-such-page"]


def _refused(reply: Reply, server: ReviewServer) -> bool:
    return (reply.status == 403 and server.token.encode() not in reply.body
            and b"rbv serve" in reply.body and "set-cookie" not in
            {k.lower() for k in reply.headers})


def test_only_the_browser_that_opened_the_printed_url_gets_anything(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """The printed URL's key signs a browser in (a cookie, the key dropped from the
    address); without that cookie every page, image and API request is refused with a
    page saying to open the printed URL, and no write passes, token or not."""
    server, client = served
    paths = _every_kind_of_page(client, faces_settings)
    for path in paths:
        assert client.get(path).status in (200, 204, 303, 404), path
    stranger = Client(server, signed_in=False)
    for path in paths:
        answer = stranger.get(path)
        assert _refused(answer, server), (path, answer.status, answer.body[:200])
        assert "Open the address" in answer.text
    person = paths[1].rsplit("/", 1)[1]
    for cookie in ("", "rbv-session-1=x", f"rbv-session-{server.port}=wrong", "junk;;=="):
        stranger.cookie = cookie
        hidden = stranger.post("hide", {"person": person})  # even with the page's token
        assert hidden.status == 403 and "rbv serve" in hidden.json()["error"], hidden.text
    assert _rows(faces_settings, "SELECT count(*) FROM person_edits") == [(0,)]
    # A wrong key signs nobody in; the right one keeps the rest of the address.
    stranger.cookie = ""
    assert _refused(stranger.get("/?token=wrong"), server)
    assert _refused(stranger.get(f"/?token={server.access.key}&token=x"), server)
    reply, cookie = sign_in(f"{client.origin}{paths[1]}?token={server.access.key}&limit=5")
    assert reply.status == 303
    assert reply.headers["location"] == f"{server.access.base}{paths[1]}?limit=5"
    assert reply.headers["referrer-policy"] == "no-referrer"
    stranger.cookie = cookie
    assert stranger.get(paths[1] + "?limit=5").status == 200


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None
                    or shutil.which("curl") is None,
                    reason="needs root (to run curl as another user) and setpriv, curl")
def test_another_local_user_gets_nothing(served: tuple[ReviewServer, Client],
                                         faces_settings: Settings, tmp_path: Path) -> None:
    """As uid `nobody`, curl every kind of page, then post an edit: all refused, and the
    page's token never shown (issue 31 #1: it was, and `nobody` could hide persons and
    download photos)."""
    server, client = served
    paths = _every_kind_of_page(client, faces_settings)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl",
                 "-s", "-o", "-", "-w", "\n%{http_code}"]
    for path in paths:
        done = subprocess.run([*as_nobody, client.base + path], capture_output=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        body, _, status = done.stdout.rpartition(b"\n")
        assert status == b"403", (path, status, body[:200])
        assert server.token.encode() not in body
    person = paths[1].rsplit("/", 1)[1]
    done = subprocess.run([*as_nobody, "-X", "POST", "-H", "Content-Type: application/json",
                           "-H", f"X-RBV-Token: {server.token}",
                           "--data", json.dumps({"person": person}),
                           client.base + "/api/hide"], capture_output=True, timeout=120,
                          check=False)
    assert done.stdout.rpartition(b"\n")[2] == b"403", done.stdout
    assert _rows(faces_settings, "SELECT count(*) FROM person_edits") == [(0,)]
    # the same curl as this user, with the cookie of the printed URL, gets the page
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                           f"Cookie: {client.cookie}", client.base + "/"],
                          capture_output=True, timeout=120, check=False)
    assert done.stdout == b"200"


def test_bad_input_is_a_400_with_one_line(served: tuple[ReviewServer, Client],
                                          faces_settings: Settings) -> None:
    """Issue 31 #2: NUL in a query, JSON nested deep, counts and ids that are not whole
    numbers in range, control characters in a name: each a 400 (413: too many faces)
    with one line, nothing written; ids are JSON integers, never a string, float or
    bool."""
    server, client = served
    person = str(_rows(faces_settings, "SELECT person_id FROM face_detections "
                                       "WHERE person_id IS NOT NULL LIMIT 1")[0][0])
    for path in ("/?q=%00", "/photos?person=%00", "/api/names?q=%00", "/?q=a%00b&page=2"):
        answer = client.get(path)
        assert answer.status == 400 and "NUL" in answer.text, (path, answer.text)

    def post(action: str, raw: str) -> Reply:
        return client.request("POST", f"/api/{action}", raw.encode(),
                              {"Content-Type": "application/json",
                               "X-RBV-Token": client.token})

    deep = 1000
    bodies = [
        ("undo", '{"count": -5}'), ("undo", '{"count": 1e999}'), ("undo", '{"count": "abc"}'),
        ("undo", f'{{"count": {2**64}}}'), ("undo", '{"count": true}'),
        ("undo", '{"edit": "abc"}'), ("undo", f'{{"edit": {2**63}}}'),
        *[("reject", json.dumps({"person": person})[:-1] + f', "faces": {faces}}}')
          for faces in ("[1e999]", f"[{2**70}]", '"12"', "[1.9]", "[true]", "[-1]", "[[1]]",
                        '{"1": 1}')],
        ("name", json.dumps({"person": person, "name": "\u0000x"})),
        ("name", json.dumps({"person": person, "name": "Evil\x1b[2J"})),
        ("merge", json.dumps({"person": person, "source": "a\u0000"})),
        ("move", json.dumps({"faces": [1], "to": "\u0000"})),
        ("same", '{"faces": ' + "[" * deep + "]" * deep + "}"),
        ("hide", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ]
    for action, raw in bodies:
        answer = post(action, raw)
        assert answer.status == 400, (action, raw[:80], answer.status, answer.text[:300])
        error = answer.json()["error"]
        assert "\n" not in error and "bug" not in error, error
    too_many = client.post("same", {"faces": list(range(1, MAX_FACES + 2))})
    assert too_many.status == 413 and f"at most {MAX_FACES:,}" in too_many.json()["error"]
    assert _rows(faces_settings, "SELECT count(*) FROM person_edits") == [(0,)]
    assert _rows(faces_settings, "SELECT count(*) FROM person_names") == [(0,)]
    # what is right still works
    assert client.post("name", {"person": person, "name": "Ada"}).status == 200
    undone = client.post("undo", {"count": 1})
    assert undone.status == 200, undone.text


def test_bad_query_values_are_a_400_never_read_otherwise(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """A page number, face limit, filter or face id in the address that is not one the
    page takes is refused (400, one line naming it), never clamped or replaced by the
    default; values in range still give the page."""
    _, client = served
    person, image = _rows(faces_settings, "SELECT person_id, image_id FROM face_detections "
                                          "WHERE person_id IS NOT NULL LIMIT 1")[0]
    bad = {"/?page=0": "page must be a whole number from 1 to 1,000,000, not \"0\"",
           "/?page=abc": "page must be", "/?page=1000001": "page must be",
           "/?page=" + "9" * 40: "page must be", "/?page=%EF%BC%92": "page must be",
           "/?filter=nope": "filter must be one of all, named, unnamed, hidden",
           f"/person/{person}?limit=0": "limit must be a whole number from 1 to 100,000",
           f"/person/{person}?limit=1.5": "limit must be",
           f"/photo/{image}?face=-3": "face must be a whole number from 1 to"}
    for path, why in bad.items():
        answer = client.get(path)
        assert answer.status == 400 and why in html.unescape(answer.text), (path, answer.text)
    for path in ("/?page=2", "/?filter=named", f"/person/{person}?limit=100000",
                 f"/photo/{image}?face=1"):
        assert client.get(path).status == 200, path


def _pairs_page(server: ReviewServer, client: Client) -> list[tuple[str, str]]:
    """The (keep, other) persons of the pairs page, once the suggestions are ranked."""
    server.queue.warm().join()
    pairs = re.findall(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"',
                       client.get("/pairs").text)
    assert pairs
    return pairs


def test_one_person_twice_and_what_is_not_text_are_refused(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """Issue 54 #9: `POST /api/pairs` with `[[P, P]]` merged another person into P, a
    dismiss with keep == other marked another pair as different people, a lone
    surrogate (`"\\ud800"`) was a 500, `application/jsonX` passed as JSON. Each is
    now a 4xx with one line, and nothing changes."""
    server, client = served
    url = str(faces_settings.database_url)
    p = _pairs_page(server, client)[0][0]
    before = database_state(url)

    def raw(action: str, body: str, kind: str = "application/json") -> Reply:
        return client.request("POST", f"/api/{action}", body.encode(),
                              {"Content-Type": kind, "X-RBV-Token": client.token})

    twice = [("pairs", {"shown": [[p, p]], "same": [[p, p]]}),
             ("pairs", {"shown": [[p, p]], "same": []}),
             *[(a, {"keep": p, "other": p}) for a in ("accept", "dismiss", "skip")],
             ("grid", {"keep": p, "same": [p], "shown": [p]})]
    for action, body in twice:
        answer = client.post(action, body)
        assert answer.status == 400 and "itself" in answer.json()["error"], answer.text
    surrogate = '"\\ud800"'
    every = ", ".join(f'"{k}": {surrogate}' for k in ("person", "name", "source", "to",
                                                      "keep", "other"))
    for action in server.actions.table:
        for body in (f"{{{every}, \"faces\": [1]}}", f'{{{surrogate}: 1}}',
                     f'{{"person": "{p}", "name": "Ada\\udfff"}}'):
            answer = raw(action, body)
            assert answer.status == 400, (action, body, answer.status, answer.text)
            assert "surrogate" in answer.json()["error"], answer.text
    for kind in ("application/jsonX", "application/json-patch+json", "text/json",
                 "application/json; charset=latin-1", "application/json, text/plain"):
        answer = raw("name", json.dumps({"person": p, "name": "Ada"}), kind)
        assert answer.status == 415, (kind, answer.status)
    assert database_state(url) == before
    assert raw("name", json.dumps({"person": p, "name": "Ada"}),
               "application/json; charset=UTF-8").status == 200


def test_a_pair_merged_elsewhere_meanwhile_is_refused_and_nothing_changes(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """A page shows the pair (A, B); meanwhile `rbv persons merge A B` ran in a terminal,
    so the pair is one person now. Every answer about it from that page that would edit
    (ticked, not ticked, accept, dismiss) is a 4xx with one line and changes nothing:
    "not ticked" marked two faces of the one person as different people."""
    server, client = served
    url = str(faces_settings.database_url)
    keep, other = _pairs_page(server, client)[0]
    done = run_cli(cli, "-d", url, "persons", "merge", keep, other)
    assert done.exit_code == 0, done.output
    before = database_state(url)
    for action, body in [("pairs", {"shown": [[keep, other]], "same": [[keep, other]]}),
                         ("pairs", {"shown": [[keep, other]], "same": []}),
                         *[(a, {"keep": keep, "other": other})
                           for a in ("accept", "dismiss")]]:
        answer = client.post(action, body)
        assert 400 <= answer.status < 500, (action, answer.status, answer.text)
        assert "\n" not in answer.json()["error"].strip(), answer.text
    assert database_state(url) == before


def _stop_postmaster(pgdata: Path) -> None:
    """Stop the embedded server as an administrator would (fast shutdown: connections
    get AdminShutdown) and wait until it is gone."""
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGINT)
    psutil.Process(pid).wait(120)


def test_a_database_gone_is_a_503_page_and_serve_carries_on_when_it_is_back(
        tmp_path: Path) -> None:
    """`rbv serve` on the embedded server, which is stopped under it: the next request
    is a 503 page naming the database (no 500, no traceback), and the one after is
    served again by an embedded server started again, as a command would."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env |= {"RBV_DATA_DIR": str(tmp_path / "rbv"), "RBV_SERVER_LINGER": "0"}
    pgdata = (tmp_path / "rbv" / "pg").resolve()
    rbv = [sys.executable, "-m", "rbv"]
    subprocess.run([*rbv, "migrate"], env=env, check=True, capture_output=True, timeout=300)
    with serve_process(["--port", "0"], env) as process:
        assert process.stdout is not None
        printed = process.stdout.readline().split()[-1]
        signed_in, cookie = sign_in(printed)
        root = urljoin(printed, signed_in.headers["location"])  # the start's folder

        def get(path: str) -> Reply:
            request = urllib.request.Request(root + path.lstrip("/"),
                                             headers={"Cookie": cookie})
            try:
                with urllib.request.urlopen(request, timeout=120) as r:
                    return Reply(r.status, r.read(), dict(r.headers))
            except urllib.error.HTTPError as exc:
                return Reply(exc.code, exc.read(), dict(exc.headers))

        assert get("/").status == 200
        _stop_postmaster(pgdata)
        gone = get("/")
        assert gone.status == 503, gone.text[:300]
        assert "Database unavailable" in gone.text and "stopped" in gone.text
        back = get("/")
        assert back.status == 200, back.text[:300]
        assert get("/history").status == 200
        out, err = ctrl_c(process, 120)
    assert process.returncode == 0, err
    assert "Traceback" not in err and "bug in rbv" not in err, err
    assert not (pgdata / "postmaster.pid").exists()  # the last rbv out stopped it
