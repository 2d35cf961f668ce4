"""`--ml-uri` against the REAL Immich machine-learning server (../shared/immich/
machine-learning), serving the SFace pack under the Immich name ``buffalo_l``.

The set-up installs the server's locked dependencies once into a cache outside the repo
(keyed by its uv.lock; ~30 s the first time) and starts it on 127.0.0.1; a failed
install or start fails these tests. scripts/bench/ml_uri_parity.py measures all of
../shared/data/faces and misc; here a subset (every misc file, EXIF 3/6/8 copies, three
identity folders incl. HEIC) keeps the time modest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from rbv.config import Settings
from rbv.mlapi.pool import ServerPool
from rbv.store import open_database
from rbv.store.server.locks import lock_pack_preparation
from rbv.store.server.migrations import apply_pending
from tests.conftest import FACES, MISC, PACK, SHARED, run_cli
from tests.support.immich_ml import (
    SERVED_NAME,
    ImmichMl,
    ImmichMlSetupError,
    ensure_venv,
    free_port,
    match_faces,
    write_oriented_copies,
    write_square_pack,
)
from tests.test_workers import _db_rows, _rbv, _wait_for

pytestmark = pytest.mark.slow  # ~30 s: indexes through the Immich-ML stand-in server

SOURCE = SHARED / "immich" / "machine-learning"
PEOPLE = ("Barack_Obama", "Katy_Perry", "Jerry_Seinfeld")  # Katy_Perry has a HEIC
REMOTE_PACK = f"remote:{SERVED_NAME}@127.0.0.1"


@pytest.fixture(scope="module")
def immich_ml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImmichMl]:
    try:
        venv = ensure_venv(SOURCE)
        server = ImmichMl(SOURCE, venv, tmp_path_factory.mktemp("immich-ml"),
                          PACK / "det_500m.onnx",
                          PACK / "face_recognition_sface_2021dec_int8bq_ort.onnx").start()
    except ImmichMlSetupError as exc:
        pytest.fail(f"the real Immich ML server is needed: {exc}")
    yield server
    server.stop()


@pytest.fixture
def server(immich_ml: ImmichMl) -> ImmichMl:
    """The module's server, running (a test may have killed it)."""
    if immich_ml._proc is None:
        immich_ml.start()
    return immich_ml


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {"RBV_DATA_DIR": str(settings.data_dir), **extra}


def _faces(url: str, pack: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:  # type: ignore[type-arg]
    """Boxes and embeddings of one pack's faces, by image sha256."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT i.sha256, f.x1, f.y1, f.x2, f.y2, e.embedding::text FROM face_detections f "
            "JOIN face_embeddings e ON e.face_id = f.id JOIN images i ON i.id = f.image_id "
            "JOIN model_packs p ON p.id = f.pack_id WHERE p.name = %s ORDER BY 1, 2",
            (pack,)).fetchall()
        scanned = conn.execute(
            "SELECT i.sha256 FROM face_scans s JOIN images i ON i.id = s.image_id JOIN "
            "model_packs p ON p.id = s.pack_id WHERE p.name = %s AND s.status = 'done'",
            (pack,)).fetchall()
    found: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {sha: [] for (sha,) in scanned}  # type: ignore[type-arg]
    for sha, *box, vector in rows:
        found[sha].append((np.array(box), np.array(json.loads(vector), np.float32)))
    return found


def _sha_of(url: str, name: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT i.sha256 FROM images i JOIN image_paths p ON "
                           "p.image_id = i.id WHERE p.path LIKE %s", (f"%/{name}",)).fetchone()
    assert row is not None, name
    return str(row[0])


def test_the_real_server_gives_what_a_local_run_gives(cli, settings, server, tmp_path) -> None:
    url = str(settings.database_url)
    oriented = tmp_path / "oriented"
    oriented.mkdir()
    write_oriented_copies(MISC / "fr_two_people.jpg", oriented)  # EXIF 3, 6, 8
    include = [arg for who in PEOPLE for arg in ("--include", f"*/{who}/*")]
    # No RBV_ML_EMBEDDING_DIM: the width (128, not buffalo_l's usual 512) is the server's.
    remote = run_cli(cli, "index", "-d", url, str(MISC), str(oriented), str(FACES), *include,
                     "--include", "*/misc/*", "--include", "*/oriented/*",
                     "--ml-uri", server.url, "--model-pack", SERVED_NAME, "--json",
                     env=_env(settings))
    assert remote.exit_code == 0, remote.output
    # The local run sees the server's detector input: a square 640x640 (rbv pads to a
    # multiple of 32 instead; scripts/bench/ml_uri_parity.py measures that difference).
    square = write_square_pack(PACK, tmp_path / "scrfd_sface_square")
    local = run_cli(cli, "embed", "-d", url, "--model-pack", str(square), "--json",
                    env=_env(settings))
    assert local.exit_code == 0, local.output

    got, want = _faces(url, REMOTE_PACK), _faces(url, square.name)
    n_images = sum(1 for p in MISC.iterdir() if p.suffix != ".csv") + 3 + sum(
        len(list((FACES / who).iterdir())) for who in PEOPLE)
    assert len(want) >= n_images - 2  # byte-identical copies are one image
    assert set(got) == set(want)
    cosines, box_errors = [], []
    for sha, faces in want.items():
        assert len(got[sha]) == len(faces), sha
        pairs = match_faces([b for b, _ in faces], [b for b, _ in got[sha]])
        assert len(pairs) == len(faces), sha
        for i, j in pairs:
            box_errors.append(float(np.max(np.abs(faces[i][0] - got[sha][j][0]))))
            cosines.append(float(np.dot(faces[i][1], got[sha][j][1])))
    c = np.array(cosines)
    assert len(c) >= n_images
    assert max(box_errors) <= 2.0
    assert np.mean(c >= 0.999) >= 0.98 and c.min() >= 0.99
    norms = [np.linalg.norm(e) for faces in got.values() for _, e in faces]
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)  # stored L2-normalised

    # Upright: each EXIF-turned copy has the faces of the upright photo, where they are.
    upright = sorted(b.tolist() for b, _ in got[_sha_of(url, "fr_two_people.jpg")])
    assert len(upright) == 2
    for orientation in (3, 6, 8):
        turned = sorted(b.tolist() for b, _ in got[_sha_of(
            url, f"fr_two_people-exif{orientation}.jpg")])
        np.testing.assert_allclose(turned, upright, atol=4.0)  # a JPEG re-encode apart


def test_a_model_the_server_does_not_serve_is_a_setup_error(cli, settings, server) -> None:
    url = str(settings.database_url)
    # The pack folder's name, scrfd_sface, is no Immich model name: HTTP 500 at the probe.
    wrong = run_cli(cli, "index", "-d", url, str(MISC / "fr_two_people.jpg"), "--ml-uri",
                    server.url, "--model-pack", str(PACK), env=_env(settings))
    assert wrong.exit_code == 1, wrong.output
    assert "refused face model 'scrfd_sface' (HTTP 500: Internal Server Error)" \
        in wrong.stderr
    assert "buffalo_l, buffalo_m, buffalo_s, antelopev2" in wrong.stderr
    assert "in a row" not in wrong.stderr  # not retried as an outage

    width = run_cli(cli, "index", "-d", url, str(MISC / "fr_two_people.jpg"), "--ml-uri",
                    server.url, "--model-pack", SERVED_NAME,
                    env=_env(settings, RBV_ML_EMBEDDING_DIM="512"))
    assert width.exit_code == 1, width.output
    assert "returns 128-dimensional embeddings" in width.stderr


def _fresh(settings: Settings, name: str) -> Settings:
    """Another empty, migrated database on the same server as ``settings``."""
    base = str(settings.database_url)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}_{os.getpid()}"')
    s = Settings(database_url=base.rsplit("/", 1)[0] + f"/{name}_{os.getpid()}",
                 data_dir=settings.data_dir)
    apply_pending(open_database(s, require_schema=False))
    return s


def _kill_at_request(monkeypatch: pytest.MonkeyPatch, server: ImmichMl, n: int,
                     restart_after_s: float | None) -> threading.Event:
    """Kill the server just before rbv's ``n``-th image request (and start it again
    ``restart_after_s`` later); the event is set once it was killed."""
    calls = {"n": 0}
    killed = threading.Event()
    analyze = ServerPool.analyze

    def counting(self, image):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == n:
            server.kill()
            killed.set()
            if restart_after_s is not None:
                threading.Timer(restart_after_s, server.start).start()
        return analyze(self, image)

    monkeypatch.setattr(ServerPool, "analyze", counting)
    return killed


def test_server_restarts_short_outage_finishes_long_outage_exits_2_then_reruns(
        cli, settings, server, monkeypatch) -> None:
    photos = ("--include", "*/Barack_Obama/*", "--include", "*/Jerry_Seinfeld/*")
    n = sum(len(list((FACES / who).iterdir())) for who in ("Barack_Obama", "Jerry_Seinfeld"))

    def index(s: Settings, backoff: str):  # type: ignore[no-untyped-def]
        return run_cli(cli, "index", "-d", str(s.database_url), str(FACES), *photos,
                       "--ml-uri", server.url, "--model-pack", SERVED_NAME, "--json",
                       env=_env(s, RBV_ML_BACKOFF_S=backoff, RBV_INFERENCE_WORKERS="1"))

    steady = index(settings, "2")
    assert steady.exit_code == 0, steady.output
    want = _faces(str(settings.database_url), REMOTE_PACK)
    assert len(want) == n

    # Short outage: killed before the 3rd image, restarted 3 s later (it answers ~3 s
    # after that); its retries wait 3, 6, 12 s.
    short = _fresh(settings, "rbv_short_outage")
    killed = _kill_at_request(monkeypatch, server, 3, restart_after_s=3.0)
    result = index(short, "3")
    assert killed.is_set()
    assert result.exit_code == 0, result.output
    _same_faces(_faces(str(short.database_url), REMOTE_PACK), want)

    # Long outage: killed before the 3rd image and not back during the run.
    long = _fresh(settings, "rbv_long_outage")
    _kill_at_request(monkeypatch, server, 3, restart_after_s=None)
    first = index(long, "0.01")
    assert first.exit_code == 2, first.output
    assert "3 images in a row" in first.stderr and "re-run" in first.stderr
    assert len(_faces(str(long.database_url), REMOTE_PACK)) < n  # the batch is handed back
    monkeypatch.undo()
    server.start()
    second = index(long, "0.01")
    assert second.exit_code == 0, second.output
    _same_faces(_faces(str(long.database_url), REMOTE_PACK), want)
    with psycopg.connect(str(long.database_url)) as conn:  # statuses the README lists
        statuses = conn.execute("SELECT status FROM runs ORDER BY id").fetchall()
    assert statuses == [("failed",), ("ok",)]

    # Down at the start: the probe's /ping, exit 2 (an outage, not a setup error).
    server.kill()
    down = index(_fresh(settings, "rbv_down_at_start"), "0.01")
    assert down.exit_code == 2, down.output
    assert "does not answer" in down.stderr


def _same_faces(got: dict, want: dict) -> None:  # type: ignore[type-arg]
    assert got.keys() == want.keys()
    for sha, faces in want.items():
        assert len(got[sha]) == len(faces)
        for (box_g, emb_g), (box_w, emb_w) in zip(got[sha], faces, strict=True):
            np.testing.assert_allclose(box_g, box_w, atol=1e-3)
            np.testing.assert_allclose(emb_g, emb_w, atol=1e-5)



SHARED_PHOTOS = ("--include", "*/Barack_Obama/*", "--include", "*/Katy_Perry/*")  # 13, a HEIC
N_SHARED = sum(len(list((FACES / who).iterdir())) for who in ("Barack_Obama", "Katy_Perry"))


def _index_through(cli, s: Settings, *uris: str, **env: str):  # type: ignore[no-untyped-def]
    args = [a for uri in uris for a in ("--ml-uri", uri)]
    return run_cli(cli, "index", "-d", str(s.database_url), str(FACES), *SHARED_PHOTOS, *args,
                   "--model-pack", SERVED_NAME, env=_env(s, **env))


def _scans(s: Settings) -> dict[str, int]:
    with psycopg.connect(str(s.database_url)) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM face_scans GROUP BY 1")
                    .fetchall())


def test_two_urls_of_the_server_share_the_images_and_a_dead_one_is_skipped(
        cli, settings, server) -> None:
    one = _index_through(cli, settings, server.url)
    assert one.exit_code == 0, one.output
    want = _faces(str(settings.database_url), REMOTE_PACK)
    assert len(want) == N_SHARED

    shared = _fresh(settings, "rbv_shared")
    other = f"http://localhost:{server.port}"  # the same server by another name
    dead = f"http://127.0.0.1:{free_port()}"  # bound and closed: nothing listens
    # A short first wait: the dead server is tried again (and fails) during the run.
    result = _index_through(cli, shared, server.url, other, dead, RBV_ML_BACKOFF_S="0.01")

    assert result.exit_code == 0, result.output
    assert f"remote {dead} (does not answer: skipped, tried again later)" in result.stderr
    got = _faces(str(shared.database_url), REMOTE_PACK)
    _same_faces(got, want)  # every image once, the faces of the one-server run
    assert _scans(shared) == {"done": N_SHARED}
    with psycopg.connect(str(shared.database_url)) as conn:
        (counts,) = conn.execute("SELECT counts FROM runs WHERE command = 'index'").fetchone()
    by_url = {s["url"]: s for s in counts["embed"]["servers"]}
    assert by_url[server.url]["images"] > 0 and by_url[other]["images"] > 0
    assert by_url[server.url]["images"] + by_url[other]["images"] == N_SHARED
    assert by_url[dead]["images"] == 0 and "does not answer" in by_url[dead]["problem"]
    for url in (server.url, other):
        assert f"Server {url}: {by_url[url]['images']} images\n" in result.stdout
    assert f"Server {dead}: 0 images (at the end: the inference server at {dead} " \
        "does not answer" in result.stdout


def test_every_server_gone_mid_run_exits_2_keeps_what_is_done_then_the_rerun_finishes(
        cli, settings, server, monkeypatch) -> None:
    one = _index_through(cli, settings, server.url)
    assert one.exit_code == 0, one.output
    want = _faces(str(settings.database_url), REMOTE_PACK)

    gone = _fresh(settings, "rbv_all_gone")
    # RBV_ML_URI as a list; batches of 4 on one inference thread; the server dies
    # before the 7th image (the 2nd batch's 3rd).
    env = {"RBV_ML_URI": f"{server.url}, http://localhost:{server.port}",
           "RBV_ML_BACKOFF_S": "0.01", "RBV_SCAN_BATCH_SIZE": "4", "RBV_INFERENCE_WORKERS": "1"}
    killed = _kill_at_request(monkeypatch, server, 7, restart_after_s=None)
    first = _index_through(cli, gone, **env)

    assert killed.is_set()
    assert first.exit_code == 2, first.output
    assert f"every inference server ({server.url}, http://localhost:{server.port}) failed 3 " \
        "images in a row" in first.stderr
    # The 2nd batch is kept: 2 done, 2 failed everywhere (retried by the next run); the
    # 3rd image failed in a row stops the run and its batch is handed back.
    assert _scans(gone) == {"done": 6, "failed": 2, "pending": N_SHARED - 8}
    done = _faces(str(gone.database_url), REMOTE_PACK)
    _same_faces(done, {sha: want[sha] for sha in done})
    monkeypatch.undo()
    server.start()
    second = _index_through(cli, gone, **env)
    assert second.exit_code == 0, second.output
    assert _scans(gone) == {"done": N_SHARED}
    _same_faces(_faces(str(gone.database_url), REMOTE_PACK), want)
    with psycopg.connect(str(gone.database_url)) as conn:
        statuses = conn.execute("SELECT status FROM runs ORDER BY id").fetchall()
    assert statuses == [("failed",), ("ok",)]


def test_workers_under_two_roots_one_killed_through_two_urls_and_a_dead_port(
        cli, settings, server, tmp_path) -> None:
    # Issue 53's proof, all at once: three `rbv embed` workers, two seeing the library
    # under their own roots (--path-map), one killed with SIGKILL mid-run, each sending
    # to the real server under two names plus a port where nothing listens.
    stored = tmp_path / "mnt" / "photos"
    stored.mkdir(parents=True)
    photos = [p for who in ("Barack_Obama", "Katy_Perry") for p in sorted((FACES / who).iterdir())]
    for p in photos:  # 13, a HEIC among them
        shutil.copy(p, stored / f"{p.parent.name}_{p.name}")
    n = len(photos)
    env = {"RBV_DATA_DIR": str(settings.data_dir), "RBV_MODEL_PACK": SERVED_NAME,
           "RBV_SCAN_BATCH_SIZE": "2", "RBV_CONCURRENCY": "1", "RBV_INFERENCE_WORKERS": "1",
           "RBV_ML_BACKOFF_S": "0.01"}
    reference = str(settings.database_url)  # one worker, one server name
    one = run_cli(cli, "index", "-d", reference, str(stored), "--ml-uri", server.url, env=env)
    assert one.exit_code == 0, one.output
    want = _faces(reference, REMOTE_PACK)
    assert len(want) == n

    url = str(_fresh(settings, "rbv_item5").database_url)
    assert run_cli(cli, "index", "-d", url, "--no-embed", str(stored)).exit_code == 0
    real = tmp_path / "disk"
    stored.rename(real)  # the catalogued root exists on no worker's machine
    roots = [tmp_path / "root_a", tmp_path / "root_b"]
    for root in roots:
        root.symlink_to(real)
    maps = [("--path-map", f"{stored}={root}") for root in roots]
    live = [server.url, f"http://localhost:{server.port}"]
    dead = f"http://127.0.0.1:{free_port()}"
    uris = [a for u in (*live, dead) for a in ("--ml-uri", u)]

    with psycopg.connect(url) as gate:  # all three start, then claim, together
        lock_pack_preparation(gate)
        doomed = _rbv(env, "embed", "-d", url, *maps[0], *uris)
        workers = [_rbv(env, "embed", "-d", url, "--json", *m, *uris) for m in maps]
        _wait_for(doomed, url, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                               "AND NOT granted HAVING count(*) = 3")
    held_sql = "SELECT image_id FROM face_scans WHERE worker = %s AND status = 'running'"
    for w in [doomed, *workers]:
        _wait_for(w, url, held_sql, f"{socket.gethostname()}:{w.pid}")
    held = {r[0] for r in _db_rows(url, held_sql, f"{socket.gethostname()}:{doomed.pid}")}
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]

    assert _scans(Settings(database_url=url)) == {"done": n}  # nothing lost
    taken_back = {r[0] for r in _db_rows(url, "SELECT image_id FROM face_scans "
                                              "WHERE attempts = 2")}
    assert held <= taken_back  # the killed worker's claims, done by the others
    assert _db_rows(url, "SELECT count(*) FROM face_scans WHERE attempts > 2") == [(0,)]
    _same_faces(_faces(url, REMOTE_PACK), want)  # each image once, the one-worker faces
    answered = {u: sum(s["images"] for r in reports for s in r["servers"] if s["url"] == u)
                for u in (*live, dead)}
    assert answered[live[0]] > 0 and answered[live[1]] > 0 and answered[dead] == 0
    assert sum(r["images"] for r in reports) == answered[live[0]] + answered[live[1]] <= n
    assert _db_rows(url, "SELECT count(*), count(DISTINCT path_bytes) FROM image_paths"
                         " WHERE path LIKE %s", f"{stored}/%") == [(n, n)]
