"""A running ``rbv serve`` over a clustered copy of the indexed test library, and a
plain urllib client for it (shared by the serve tests)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from rbv.store import open_database
from rbv.store.queries.paths import path_from_bytes


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_staying = urllib.request.build_opener(_Stay)


@contextmanager
def serve_process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``rbv serve ARGS`` in a process of its own (output piped, as text); killed and
    reaped on the way out if it still runs, so a failed test leaves no server behind."""
    process = subprocess.Popen([sys.executable, "-m", "rbv", "serve", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def ctrl_c(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Stop ``rbv serve`` as Ctrl-C does; its output once it has exited."""
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=timeout)


def sign_in(url: str) -> tuple[Reply, str]:
    """Open ``url`` (the one ``rbv serve`` prints) as a browser's first visit does: its
    answer (not followed) and the ``Cookie`` header the browser sends from then on."""
    try:
        with _staying.open(url, timeout=120) as r:
            reply = Reply(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as exc:
        reply = Reply(exc.code, exc.read(), dict(exc.headers))
    cookie = reply.headers.get("set-cookie") or reply.headers.get("Set-Cookie") or ""
    return reply, cookie.split(";", 1)[0]


class Client:
    """A client of the server: signed in (it opened the printed URL), unless
    ``signed_in`` is False (another local user, who never saw that URL). Paths are
    the app's (``/person/…``): each request goes to :attr:`base`, the start's secret
    folder, unless ``base`` is given."""

    def __init__(self, server: ReviewServer, *, signed_in: bool = True) -> None:
        self.origin = f"http://127.0.0.1:{server.port}"
        self.base = self.origin + server.access.base
        self.token = server.token
        self.cookie = sign_in(server.url)[1] if signed_in else ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, *, base: str | None = None
                ) -> Reply:
        sent = {**({"Cookie": self.cookie} if self.cookie else {}), **(headers or {})}
        req = urllib.request.Request((self.base if base is None else base) + path,
                                     data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return Reply(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read(), dict(exc.headers))

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, action: str, data: dict[str, Any], *, token: str | None = "",
             **headers: str) -> Reply:
        sent = {"Content-Type": "application/json", **headers}
        if token is not None:
            sent["X-RBV-Token"] = token or self.token
        return self.request("POST", f"/api/{action}", json.dumps(data).encode(), sent)


@contextmanager
def serving(settings: Settings, cache: Path, *, rank_apart: bool = False
            ) -> Iterator[tuple[ReviewServer, Client]]:
    """``rank_apart``: whole rankings made in ``rbv serve``'s ranking process; without it
    in a thread of this one, where a test holds a ranking behind an event or patches it
    (tests/test_serve_ranking_process.py tests the process)."""
    server = ReviewServer(open_database(settings), cache, port=0, rank_apart=rank_apart)
    server.start_in_thread()
    try:
        yield server, Client(server)
    finally:
        server.shutdown()
        server.server_close()


def face_ids(page: str) -> list[int]:
    return [int(f) for f in re.findall(r'data-face="(\d+)"', page)]


def database_state(url: str) -> tuple[object, ...]:
    """The persons of a database, independent of their uuids: each person as its face
    ids (with name and hidden), rejections and links by face ids, the edit commands."""
    with psycopg.connect(url) as conn:
        groups = {str(p): (tuple(sorted(faces)), name, hidden) for p, faces, name, hidden
                  in conn.execute(
                      "SELECT p.id, array_agg(f.id), n.name, p.hidden FROM persons p "
                      "JOIN face_detections f ON f.person_id = p.id "
                      "LEFT JOIN person_names n ON n.person_id = p.id "
                      "WHERE p.merged_into IS NULL GROUP BY p.id, n.name, p.hidden")}
        rejected = sorted((int(f), groups[str(p)][0] if str(p) in groups else None)
                          for f, p in conn.execute(
                              "SELECT face_id, person_id FROM person_rejections"))
        links = [sorted(map(tuple, conn.execute(f"SELECT face_a, face_b FROM {t}")))
                 for t in ("cannot_links", "must_links")]
        commands = [r[0] for r in conn.execute(
            "SELECT command FROM person_edits ORDER BY id")]
    return sorted(groups.values()), rejected, links, commands


def twin_database(cli: Any, pg_server: Any, template: str) -> str:
    """URL of a second copy of the indexed library, clustered as the served one is, for
    the same edits made with CLI commands."""
    from tests.conftest import _db_numbers, run_cli

    twin = f"rbv_test_twin_{next(_db_numbers)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{twin}" TEMPLATE "{template}"')
    url = str(pg_server.url(twin))
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    return url


def two_largest_persons(url: str) -> tuple[str, str]:
    """The ids of the two persons with the most faces (ties by id)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT person_id::text FROM face_detections WHERE person_id IS NOT NULL "
            "GROUP BY person_id ORDER BY count(*) DESC, person_id LIMIT 2").fetchall()
    return rows[0][0], rows[1][0]


def person_there(here: str, there: str, person: str) -> str:
    """The twin's person holding the faces ``person`` holds here."""
    with psycopg.connect(here) as conn:
        row = conn.execute("SELECT min(id) FROM face_detections WHERE person_id = %s",
                           (person,)).fetchone()
    with psycopg.connect(there) as conn:
        found = conn.execute("SELECT person_id FROM face_detections WHERE id = %s",
                             (row[0] if row else None,)).fetchone()
    assert found is not None and found[0] is not None
    return str(found[0])


def faces_of_person(url: str, person: str) -> int:
    """How many faces ``person`` holds now."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM face_detections WHERE person_id = %s",
                           (person,)).fetchone()
    return int(row[0]) if row else 0


def identity_of_persons(url: str, *, alone: bool = True) -> dict[str, str]:
    """Person → the folder (data/faces is one folder per person) most of its faces are
    in, counting (with ``alone``) only faces alone in their photo (another face may be
    anyone): who a truthful user sees."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT f.person_id::text, min(ip.path_bytes), (SELECT count(*) = 1 FROM "
            "face_detections o WHERE o.image_id = f.image_id) FROM face_detections f "
            "JOIN image_paths ip ON ip.image_id = f.image_id "
            "WHERE f.person_id IS NOT NULL GROUP BY f.id").fetchall()
    seen: dict[str, Counter[str]] = {}
    for person, path, by_itself in rows:
        if by_itself or not alone:
            seen.setdefault(person, Counter())[Path(path_from_bytes(path)).parent.name] += 1
    return {p: c.most_common(1)[0][0] for p, c in seen.items()}
