"""Transport limits (issue 21 #9): a server that drips bytes hits the whole-request time
limit (not a per-read one), an endless JSON answer stops at the size limit with an error
naming it, and a huge XMP sidecar is refused per file without being read whole.

The dripping and endless servers are tiny real HTTP servers on 127.0.0.1 started here;
rbv runs as a subprocess so a hang fails the test (by its timeout) instead of blocking it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rbv.config import Settings
from rbv.errors import InferenceUnavailable
from tests.conftest import IMMICH_KEY, MISC

pytestmark = pytest.mark.slow  # ~30 s: servers driven to their transport limits

VERSION = b'{"major": 1, "minor": 132, "patch": 3}'
Serve = Callable[[socket.socket, bytes], None]


def _answer(body: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def drip_headers(conn: socket.socket, request: bytes) -> None:
    """A status line, then one header byte every 0.2 s, for ever."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
    while True:
        conn.sendall(b"a")
        time.sleep(0.2)


def drip_body(conn: socket.socket, request: bytes) -> None:
    """The version probe answers; every other request gets its headers, then one body
    byte every 0.2 s, for ever."""
    if b"/server/version" in request.split(b"\r\n", 1)[0]:
        conn.sendall(_answer(VERSION))
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n[")
    while True:
        conn.sendall(b"0")
        time.sleep(0.2)


def endless_json(conn: socket.socket, request: bytes) -> None:
    """The version probe answers; the search page is a JSON array that never ends,
    streamed as fast as the client reads it (chunked: no length to refuse it by)."""
    if b"/server/version" in request.split(b"\r\n", 1)[0]:
        conn.sendall(_answer(VERSION))
        return
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"0," * (1 << 19)
    conn.sendall(b"1\r\n[\r\n")
    while True:
        conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")


@pytest.fixture
def raw_server() -> Iterator[Callable[[Serve], str]]:
    """Starts a server answering every connection with ``serve``; returns its URL."""
    listeners: list[socket.socket] = []

    def start(serve: Serve) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def one(conn: socket.socket) -> None:
            with conn:
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        got = conn.recv(65536)
                        if not got:
                            return
                        request += got
                    serve(conn, request)
                except OSError:
                    pass  # the client hung up: what a limit does

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=one, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()


_MEASURED = """
import os, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "rbv", *sys.argv[1:]])
with open(os.environ["RBV_TEST_PEAK"], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(done.returncode)
"""


def _rbv(*args: str, timeout: float, env: dict[str, str] | None = None
         ) -> tuple[subprocess.CompletedProcess[str], int]:
    """rbv as a subprocess: the result and its peak RSS in MiB (measured by a parent of
    its own, whose only child it is)."""
    peak_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"rbv-peak-{os.getpid()}"
    done = subprocess.run([sys.executable, "-c", _MEASURED, *args], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "DATABASE_URL": "", "RBV_DATABASE_URL": "",
                               "RBV_TEST_PEAK": str(peak_file), **(env or {})})
    peak = int(peak_file.read_text()) >> 10
    peak_file.unlink()
    return done, peak


@pytest.mark.parametrize("serve", [drip_headers, drip_body], ids=["headers", "body"])
def test_immich_stage_timeout_bounds_each_whole_request(
        settings: Settings, raw_server, tmp_path: Path, serve: Serve) -> None:
    url = raw_server(serve)
    done, _ = _rbv("-d", str(settings.database_url), "immich-stage", "--out",
                   str(tmp_path / "out"), "--url", url, "--no-index", "--timeout", "2",
                   "--retry-wait", "0.01", timeout=600,
                   env={"IMMICH_API_KEY": IMMICH_KEY})
    # A server that drips forever: only a limit on the whole request ends the run (one
    # on each read would never fire); the 600 s above only keeps a hang from blocking.
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert "no complete answer within 2 s" in done.stderr, done.stderr


def test_an_endless_json_answer_stops_at_the_size_limit(
        settings: Settings, raw_server, tmp_path: Path) -> None:
    url = raw_server(endless_json)
    done, peak = _rbv("-d", str(settings.database_url), "immich-stage", "--out",
                      str(tmp_path / "out"), "--url", url, "--no-index",
                      "--timeout", "300", "--retry-wait", "0.01", timeout=600,
                      env={"IMMICH_API_KEY": IMMICH_KEY})
    assert done.returncode == 1, done.stderr
    assert "larger than the 64 MiB rbv reads from a JSON answer" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert peak < 1024, f"peak RSS {peak} MiB"


def test_a_dripping_inference_server_hits_the_timeout(raw_server) -> None:
    from rbv.media.types import DecodedImage
    from rbv.mlapi.client import RemoteFaceAnalyzer
    from rbv.mlapi.pool import ServerPool

    url = raw_server(drip_headers)
    analyzer = ServerPool([RemoteFaceAnalyzer(url, "buffalo_l", embedding_dim=512,
                                              timeout_s=1.0)],
                          backoff_s=0.01, sleep=lambda s: None)
    import numpy as np

    image = DecodedImage(1, Path("x.png"), np.zeros((8, 8, 3), np.uint8), 1.0, (8, 8))
    outcome: list[BaseException] = []

    def analyze() -> None:
        try:
            analyzer.analyze(image)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=analyze, daemon=True)  # a hang fails, never blocks
    worker.start()
    worker.join(600)  # the server drips for ever: only a whole-request limit ends it
    assert not worker.is_alive(), "the request outlived its time limit"
    assert isinstance(outcome[0], InferenceUnavailable), outcome
    assert "no complete answer within 1 s" in str(outcome[0])
    analyzer.close()


def test_a_huge_sidecar_is_refused_without_being_read(
        settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    from rbv.jobs.library.index import run_index
    from rbv.store import open_database

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(MISC / "fr_two_people.jpg", lib / "two.jpg")
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    sidecar = lib / "two.jpg.xmp"
    with sidecar.open("wb") as f:  # 200 MB: a packet, then padding as XMP allows it
        f.write(b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>')
        for _ in range(200):
            f.write(b" " * (1 << 20))
    done, peak = _rbv("-d", str(settings.database_url), "import-xmp", str(lib),
                      timeout=600)
    assert done.returncode == 3, done.stderr
    assert f"Error: {sidecar}: the sidecar is larger than the 16 MiB" in done.stderr
    assert peak < 1024, f"peak RSS {peak} MiB"
