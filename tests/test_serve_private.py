"""`rbv serve` on a shared machine, issue 54: the session cookie alone gets nothing (a
browser sends it to every port of 127.0.0.1, another user's server too); `--open`
never puts the key on a command line and never waits for the browser; the review
cache is its user's alone; signing in never sends the browser off the server; a
connection that sends no request is closed."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from rbv.config import Settings
from rbv.serve import app as serve_app
from rbv.serve.app import ReviewServer
from tests.serve_client import Client, ctrl_c, serve_process, serving, sign_in
from tests.test_serve_access import _every_kind_of_page, _refused, _rows

pytestmark = pytest.mark.slow  # ~8 s: rbv serve's cache and files checked as another uid

AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
as_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None
                             or shutil.which("curl") is None,
                             reason="needs root (to act as another user), setpriv, curl")


def test_the_session_cookie_alone_gets_nothing(served: tuple[ReviewServer, Client],
                                               faces_settings: Settings) -> None:
    """Issue 54 #3: a browser signed in sent its cookie to another user's server on
    another port, and that user, with the cookie alone, read every name and renamed a
    person. Now every address is under the start's secret folder: the cookie without
    it (or with another folder) is refused everywhere, and the refusal names neither
    the folder nor the page's token. The cookie itself is only sent under the folder."""
    server, client = served
    paths = _every_kind_of_page(client, faces_settings)
    assert all(client.get(p).status in (200, 204, 303, 404) for p in paths)
    folder = client.base.removeprefix(client.origin)
    for base in (client.origin, f"{client.origin}/s/{'A' * 43}", client.base[:-1]):
        for path in paths:
            answer = client.request("GET", path, base=base)
            assert _refused(answer, server), (base, path, answer.status, answer.body[:200])
            assert folder.encode() not in answer.body
        renamed = client.request("POST", "/api/name",
                                 b'{"person": "%s", "name": "renamed by another user"}'
                                 % paths[1].rsplit("/", 1)[1].encode(),
                                 {"Content-Type": "application/json",
                                  "X-RBV-Token": client.token}, base=base)
        assert renamed.status == 403, renamed.text
    assert _rows(faces_settings, "SELECT count(*) FROM person_edits") == [(0,)]
    assert f"Path={folder}/;" in sign_in(server.url)[0].headers["set-cookie"]


@as_root
def test_another_user_with_the_stolen_cookie_gets_nothing(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """Issue 54 #3 as it happened: uid `nobody` holds the cookie its own server was
    sent, and asks this server's every kind of page, and a rename, with it: 403 each."""
    server, client = served
    paths = _every_kind_of_page(client, faces_settings)
    curl = [*AS_NOBODY, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H",
            f"Cookie: {client.cookie}"]
    for path in [*paths, "/api/names?q=a"]:
        done = subprocess.run([*curl, client.origin + path], capture_output=True,
                              timeout=120, check=False)
        body, _, status = done.stdout.rpartition(b"\n")
        assert status == b"403", (path, status, body[:200])
        assert server.token.encode() not in body
    person = paths[1].rsplit("/", 1)[1]
    done = subprocess.run([*curl, "-H", "Content-Type: application/json", "-H",
                           f"X-RBV-Token: {server.token}", "--data",
                           f'{{"person": "{person}", "name": "renamed by another user"}}',
                           client.origin + "/api/name"], capture_output=True, timeout=120,
                          check=False)
    assert done.stdout.rpartition(b"\n")[2] == b"403", done.stdout
    assert _rows(faces_settings, "SELECT count(*) FROM person_names") == [(0,)]


def test_signing_in_never_sends_the_browser_off_the_server(
        served: tuple[ReviewServer, Client]) -> None:
    """Issue 54 #9: `/?token=KEY` asked for as `//evil.example/x` redirected there. Any
    path a browser could read as another host goes to the app's start page."""
    server, client = served
    key = server.access.key
    host, port = "127.0.0.1", server.port
    for path in ("//evil.example/x", "/\\evil.example/x", "/%2F%2Fevil.example/x",
                 "/%5Cevil.example", "///evil.example", "/\\/evil.example"):
        connection = http.client.HTTPConnection(host, port, timeout=120)
        connection.request("GET", f"{path}?token={key}")
        answer = connection.getresponse()
        location = answer.getheader("location") or ""
        connection.close()
        assert answer.status == 303, (path, answer.status)
        assert urlsplit(urljoin(client.origin + "/", location)).netloc == f"{host}:{port}"
        assert location == f"{server.access.base}/", (path, location)


def test_a_connection_that_sends_no_request_is_closed(
        served: tuple[ReviewServer, Client], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 54 #9: a connection that sent no headers was held open for ever (and one
    sending them a byte at a time too): the server closes each once its headers are
    late. The test waits for the close itself, far longer than the deadline."""
    server, client = served
    monkeypatch.setattr(serve_app, "HEADER_TIMEOUT", 1, raising=False)
    for sent in (b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=120) as s:
            s.sendall(sent)
            assert s.recv(1024) == b""  # closed by the server, no answer
    assert client.get("/").status == 200  # a request in time is answered


def _modes(folder: Path) -> dict[str, str]:
    """Everything under ``folder`` (itself too) that others or the group may use."""
    loose = {}
    for path in [folder, *folder.rglob("*")]:
        mode = path.lstat().st_mode
        if mode & 0o077:
            loose[str(path.relative_to(folder))] = stat.filemode(mode)
    return loose


def test_the_review_cache_is_its_users_alone(
        served: tuple[ReviewServer, Client], faces_settings: Settings, tmp_path: Path) -> None:
    """Issue 54 #5: face crops and photos were 0644 in 0755 folders, whatever the
    umask. After a session that served faces, photos and suggestions, nothing in the
    cache is open to the group or others; a cache an older rbv left open is closed,
    with the files in it, when a server starts."""
    umask = os.umask(0o022)  # as a user's shell has it: the cache must not depend on it
    try:
        cache = tmp_path / "data" / "serve-cache"
        with serving(faces_settings, cache) as (server, client):
            for path in _every_kind_of_page(client, faces_settings):
                assert client.get(path).status in (200, 204, 303, 404), path
            server.queue.warm().join()
            assert client.get("/pairs").status == 200
            server.queue.ranker.write()  # the ranking kept for the next start: every name
        old = tmp_path / "old-cache"
        (old / "faces").mkdir(parents=True)
        (old / "faces" / "1_abc.jpg").write_bytes(b"x")
        for path in (old, old / "faces"):
            path.chmod(0o755)
        with serving(faces_settings, old):
            pass
    finally:
        os.umask(umask)
    assert list((cache / "faces").iterdir()) and list((cache / "photos").iterdir())
    assert (cache / "suggestions.json").is_file()
    assert _modes(tmp_path / "data") == {}
    assert _modes(old) == {}


@as_root
def test_open_puts_no_key_on_a_command_line_and_never_waits_for_the_browser(
        faces_settings: Settings, tmp_path: Path) -> None:
    """Issue 54 #4: `--open` ran the browser with the URL and its key (every user reads
    it with `ps`), and a browser command that does not return kept the server from
    serving. The browser is given a page only its user can read, which sends it on;
    the server answers while the browser command still runs."""
    browser = tmp_path / "browser.sh"
    browser.write_text('#!/bin/sh\necho "browser $$ $*"\nexec sleep 100000\n')
    browser.chmod(0o755)
    data = tmp_path / "data"
    env = {**os.environ, "DATABASE_URL": str(faces_settings.database_url),
           "RBV_DATA_DIR": str(data), "BROWSER": str(browser)}
    with serve_process(["--host", "0.0.0.0", "--port", "0", "--open"], env) as process:
        browser_pid = None
        try:
            assert process.stdout is not None
            printed = process.stdout.readline().split()[-1]
            started = process.stdout.readline().split()  # the browser's own line
            assert started[0] == "browser", started
            browser_pid, argument = int(started[1]), started[2]
            key = printed.split("token=")[1]
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    assert key.encode() not in cmdline.read_bytes(), cmdline
                except (FileNotFoundError, ProcessLookupError):
                    continue
            opener = Path(urlsplit(argument).path)
            assert argument.startswith("file://") and printed in opener.read_text()
            assert stat.S_IMODE(opener.stat().st_mode) == 0o600
            assert stat.S_IMODE(opener.parent.stat().st_mode) == 0o700
            as_nobody = subprocess.run([*AS_NOBODY, "cat", str(opener)], capture_output=True,
                                       check=False, timeout=60)
            assert as_nobody.returncode != 0 and key.encode() not in as_nobody.stdout
            # the browser command still runs, and the server answers
            assert Path(f"/proc/{browser_pid}").exists()
            signed_in, cookie = sign_in(printed)
            assert signed_in.status == 303 and cookie
        finally:
            if browser_pid is not None:  # it holds the server's stdout open
                os.kill(browser_pid, signal.SIGTERM)
        out, err = ctrl_c(process, 60)
    assert process.returncode == 0, err
    assert err.startswith("Warning: listening on 0.0.0.0: anyone who can reach"), err
    assert not opener.exists()  # removed when the server stops


def test_open_on_a_machine_with_no_browser_says_so(faces_settings: Settings,
                                                   tmp_path: Path) -> None:
    """Issue 62 #14: `serve --open` over ssh (no display, no browser on PATH) opened
    nothing and said nothing. It says so on one line, and serves."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env |= {"DATABASE_URL": str(faces_settings.database_url),
            "RBV_DATA_DIR": str(tmp_path / "data"), "PATH": str(tmp_path / "no-browsers")}
    with serve_process(["--port", "0", "--open"], env) as process:
        assert process.stdout is not None
        printed = process.stdout.readline().split()[-1]
        signed_in, cookie = sign_in(printed)
        assert signed_in.status == 303 and cookie
        out, err = ctrl_c(process, 60)
    assert process.returncode == 0, err
    assert err == ("No browser found to open it in (--open): open the URL above in "
                   "yours.\n")
