"""Workers on several machines (issue 53, item 4): a machine that has the library under
another root maps paths (``--path-map STORED=LOCAL``) and neither catalogues the photos
again nor marks them missing; a claim of a worker that died elsewhere is taken back
after its lease, not before; ``rbv stats`` shows who works on what."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.errors import ConfigError
from rbv.faces.types import FaceAnalyzer, ImageFaces
from rbv.jobs.library.embed import run_embed
from rbv.media.path_map import PathMap
from rbv.media.types import DecodedImage
from rbv.store import Database
from rbv.store.queries.packs import register_pack
from rbv.store.queries.scans import (
    claim_pending_images,
    enqueue_catalogued,
    release_dead_claims,
    renew_claims,
)
from rbv.store.server.locks import lock_pack_preparation
from tests.conftest import FACES, MISC, PACK, run_cli
from tests.pgserver import PasswordServer
from tests.support.analyzers import Wrapped
from tests.test_index_queue import _setup

# --- the map ----------------------------------------------------------------------------


def test_longest_prefix_wins_on_whole_components_and_bytes_are_kept() -> None:
    m = PathMap.parse(["/mnt/photos=/Volumes/photos", "/mnt/photos/2023/=/Volumes/y2023",
                       "/=/srv/root"])
    assert m.to_local("/mnt/photos/a/b.jpg") == "/Volumes/photos/a/b.jpg"
    assert m.to_local("/mnt/photos/2023/c.jpg") == "/Volumes/y2023/c.jpg"  # longest wins
    assert m.to_local("/mnt/photos") == "/Volumes/photos"
    assert m.to_local("/mnt/photos2/d.jpg") == "/srv/root/mnt/photos2/d.jpg"  # not /mnt/photos
    assert m.to_stored("/Volumes/y2023/c.jpg") == "/mnt/photos/2023/c.jpg"
    assert m.to_stored("/Volumes/photos2/e.jpg") == "/Volumes/photos2/e.jpg"  # outside: as is
    odd = os.fsdecode(b"/mnt/photos/\xc9t\xe9/caf\xe9.jpg")  # not UTF-8: surrogate escapes
    assert os.fsencode(m.to_local(odd)) == b"/Volumes/photos/\xc9t\xe9/caf\xe9.jpg"
    assert m.to_stored(m.to_local(odd)) == odd
    assert PathMap().to_local("/mnt/photos/a.jpg") == "/mnt/photos/a.jpg"


def test_rbv_path_map_holds_several_maps() -> None:
    s = Settings.from_env({"RBV_PATH_MAP": "/mnt/a=/Volumes/a:/mnt/b=/Volumes/b"})
    assert s.path_map.pairs == (("/mnt/a", "/Volumes/a"), ("/mnt/b", "/Volumes/b"))
    assert Settings.from_env({"RBV_CLAIM_LEASE_S": "90"}).claim_lease_s == 90
    with pytest.raises(ConfigError, match="RBV_CLAIM_LEASE_S"):
        Settings.from_env({"RBV_STALE_CLAIM_MINUTES": "30"})


@pytest.mark.parametrize(("spec", "said"), [
    ("/mnt/photos", "not STORED=LOCAL (e.g. /mnt/photos=/Volumes/photos)"),
    ("=/Volumes/photos", "not STORED=LOCAL (e.g. /mnt/photos=/Volumes/photos)"),
    ("/mnt/photos=", "not STORED=LOCAL (e.g. /mnt/photos=/Volumes/photos)"),
    ("", "not STORED=LOCAL (e.g. /mnt/photos=/Volumes/photos)"),
    ("mnt/photos=/Volumes/photos", "both paths must be absolute"),
    ("/mnt/photos=Volumes", "both paths must be absolute"),
])
def test_a_bad_map_is_one_error_line(cli, settings: Settings, spec: str, said: str) -> None:
    for command in ("embed", "index"):
        result = run_cli(cli, command, "-d", str(settings.database_url), "--path-map", spec,
                         *(["--no-embed", str(MISC)] if command == "index" else []))
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines() == [f"Error: path map {spec!r}: {said}"]


# --- the catalogue under another root ---------------------------------------------------


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _index_json(cli, settings: Settings, *args: str) -> dict:  # type: ignore[type-arg, no-untyped-def]
    result = run_cli(cli, "index", "-d", str(settings.database_url), "--no-embed", "--json",
                     *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["catalogue"]  # type: ignore[no-any-return]


def test_index_under_another_root_neither_catalogues_again_nor_marks_missing(
    cli, settings: Settings, tmp_path: Path
) -> None:
    stored = tmp_path / "mnt" / "photos"  # where the first machine had the library
    (stored / "2023").mkdir(parents=True)
    shutil.copy(FACES / "Barack_Obama" / "fr_obama.jpg", stored / "2023" / "obama.jpg")
    shutil.copy(FACES / "Joe_Biden" / "fr_biden.jpg", stored / "biden.jpg")
    shutil.copy(MISC / "insightface_t1.jpg", os.fsdecode(os.fsencode(stored) + b"/caf\xe9.jpg"))
    assert _index_json(cli, settings, str(stored))["new_images"] == 3
    before = _rows(settings, "SELECT path_bytes, image_id FROM image_paths ORDER BY 1")

    # This machine has it elsewhere (a symlinked root), and not at the stored root at all.
    real = tmp_path / "disk"
    stored.rename(real)
    local = tmp_path / "Volumes" / "photos"
    local.parent.mkdir()
    local.symlink_to(real)
    mapped = ("--path-map", f"{stored}={local}")
    c = _index_json(cli, settings, str(local), *mapped)
    assert (c["unchanged"], c["new_images"], c["aliases"], c["missing"]) == (3, 0, 0, 0)
    assert _rows(settings, "SELECT path_bytes, image_id FROM image_paths ORDER BY 1") == before
    # A subfolder target maps too; what is new there is catalogued under the stored name,
    # and a photo deleted here is missing under its stored name.
    shutil.copy(FACES / "Joe_Biden" / "fr_biden2_exif8.jpg", local / "2023" / "biden2.jpg")
    (local / "2023" / "obama.jpg").unlink()
    (local / "2023" / "keep.jpg").write_bytes((local / "biden.jpg").read_bytes())
    c = _index_json(cli, settings, str(local / "2023"), *mapped)
    assert (c["new_images"], c["aliases"], c["missing"]) == (1, 1, 1)
    assert _rows(settings, "SELECT path, missing_since IS NOT NULL FROM image_paths "
                           "WHERE path LIKE %s ORDER BY 1", f"{stored}/2023/%") == [
        (f"{stored}/2023/biden2.jpg", False), (f"{stored}/2023/keep.jpg", False),
        (f"{stored}/2023/obama.jpg", True)]
    assert _rows(settings, "SELECT count(*) FROM image_paths WHERE path LIKE %s",
                 f"{tmp_path}/Volumes/%") == [(0,)]


# --- the lease --------------------------------------------------------------------------


def _age(conn: psycopg.Connection, worker: str, seconds: float) -> None:
    """Let ``seconds`` pass (by the database's clock) since the worker renewed."""
    conn.execute("UPDATE face_scans SET claimed_at = claimed_at - make_interval(secs => %s), "
                 "renewed_at = renewed_at - make_interval(secs => %s) WHERE worker = %s",
                 (seconds, seconds, worker))


def test_a_claim_of_a_worker_dead_elsewhere_is_taken_back_after_the_lease_not_before(
    db: Database,
) -> None:
    pack_id = _setup(db, 3)
    here = socket.gethostname()
    elsewhere = "other-machine:4242"  # SIGKILLed there: this host cannot see its process
    lease = 600.0
    with db.connect(autocommit=True) as conn:
        start = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        gone = claim_pending_images(conn, pack_id, elsewhere, 1, max_attempts=3,
                                    failed_before=start)
        working = claim_pending_images(conn, pack_id, "third-machine:7", 1, max_attempts=3,
                                       failed_before=start)
        _age(conn, elsewhere, lease - 5)
        assert release_dead_claims(conn, pack_id, here, lambda pid: False, lease) == 0
        # A worker that renews keeps its claim however long it works on it.
        _age(conn, "third-machine:7", 3 * lease)
        assert renew_claims(conn, pack_id, "third-machine:7") == 1
        _age(conn, elsewhere, 10)  # now past the lease
        assert release_dead_claims(conn, pack_id, here, lambda pid: False, lease) == 1
        rows = conn.execute("SELECT image_id, status, worker FROM face_scans ORDER BY 1"
                            ).fetchall()
        assert rows == [(gone[0].image_id, "pending", None),
                        (working[0].image_id, "running", "third-machine:7"),
                        (3, "pending", None)]


class _Clock(Wrapped):
    """The real analyzer; the first image it analyzes also moves time on for one other
    worker's claims past the lease (a worker on another machine that died meanwhile)."""

    def __init__(self, inner: FaceAnalyzer, db: Database, worker: str, lease: float) -> None:
        super().__init__(inner)
        self.db, self.worker, self.lease = db, worker, lease
        self.moved = False

    def analyze(self, image: DecodedImage) -> ImageFaces:
        if not self.moved:
            self.moved = True
            with self.db.connect(autocommit=True) as conn:
                _age(conn, self.worker, self.lease + 1)
        return self.inner.analyze(image)


def test_a_running_worker_takes_back_what_a_dead_worker_elsewhere_held(
    cli, settings: Settings, db: Database, sface_analyzer, tmp_path: Path
) -> None:
    photos = sorted((FACES / "Barack_Obama").iterdir())[:3]
    result = run_cli(cli, "index", "-d", str(settings.database_url), "--no-embed",
                     *map(str, photos))
    assert result.exit_code == 0, result.output
    elsewhere = "other-machine:4242"
    with db.transaction() as conn:
        pack = register_pack(conn, sface_analyzer.pack.name, sface_analyzer.pack.files,
                             sface_analyzer.pack.embedding_dim)
        enqueue_catalogued(conn, pack.id)
        start = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    with db.connect(autocommit=True) as conn:
        held = claim_pending_images(conn, pack.id, elsewhere, 1, max_attempts=5,
                                    failed_before=start)
    s = Settings(database_url=settings.database_url, data_dir=settings.data_dir,
                 scan_batch_size=1, inference_workers=1, concurrency=1)
    analyzer = _Clock(sface_analyzer, db, elsewhere, s.claim_lease_s)
    summary = run_embed(db, s, analyzer, record=False)  # type: ignore[arg-type]
    assert analyzer.moved and summary.images == 3 and summary.failed == 0
    assert _rows(settings, "SELECT status, attempts, worker FROM face_scans WHERE image_id = %s",
                 held[0].image_id) == [("done", 2, None)]


# --- rbv stats ----------------------------------------------------------------------------


def test_stats_shows_who_works_on_what(cli, settings: Settings, db: Database) -> None:
    url = str(settings.database_url)
    pack_id = _setup(db, 5)
    quiet = run_cli(cli, "stats", "-d", url, "--json")
    assert json.loads(quiet.stdout)["workers"] == []
    assert "Working now" not in run_cli(cli, "stats", "-d", url).stdout
    with db.connect(autocommit=True) as conn:
        start = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        for worker, n in (("alpha:11", 3), ("beta:22", 1)):
            claim_pending_images(conn, pack_id, worker, n, max_attempts=3, failed_before=start)
        _age(conn, "beta:22", 700)
    workers = json.loads(run_cli(cli, "stats", "-d", url, "--json").stdout)["workers"]
    assert [(w["worker"], w["pack"], w["images"], w["lease_lapsed"]) for w in workers] == [
        ("beta:22", "sface", 1, True), ("alpha:11", "sface", 3, False)]
    assert all(w["claimed_since"] <= w["renewed_at"] for w in workers)
    text = run_cli(cli, "stats", "-d", url, env={"COLUMNS": "120"}).stdout
    lines = text[text.index("Working now"):].splitlines()
    beta = next(line for line in lines if "beta:22" in line)
    alpha = next(line for line in lines if "alpha:11" in line)
    assert "lapsed" in beta and " 1 " in beta
    assert "held" in alpha and " 3 " in alpha
    # A shorter lease (RBV_CLAIM_LEASE_S) lapses alpha too.
    short = run_cli(cli, "stats", "-d", url, "--json", env={"RBV_CLAIM_LEASE_S": "0.001"})
    assert all(w["lease_lapsed"] for w in json.loads(short.stdout)["workers"])


# --- item 5, this part: two workers under two roots, a third killed mid-batch ------------


def _rbv(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    return subprocess.Popen([sys.executable, "-m", "rbv", *args], env={**full, **env},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _db_rows(url: str, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _face_rows(url: str) -> list[tuple]:  # type: ignore[type-arg]
    return _db_rows(url, "SELECT i.sha256, round(f.x1), round(f.y1), round(f.x2), round(f.y2) "
                         "FROM face_detections f JOIN images i ON i.id = f.image_id "
                         "ORDER BY 1, 2, 3, 4, 5")


def _wait_for(proc: subprocess.Popen[str], url: str, sql: str, *params: object) -> None:
    """Until the query finds a row (the process must still run meanwhile)."""
    while not _db_rows(url, sql, *params):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)


@pytest.mark.slow
def test_workers_under_two_roots_and_one_killed_embed_each_image_once(
    cli, settings: Settings, pg_server: PasswordServer, tmp_path: Path
) -> None:
    stored = tmp_path / "mnt" / "photos"
    stored.mkdir(parents=True)
    photos = sorted(FACES.glob("*/*"))[::8][:16]
    for p in photos:
        shutil.copy(p, stored / f"{p.parent.name}_{p.name}")
    shutil.copy(MISC / "insightface_t1.jpg", os.fsdecode(os.fsencode(stored) + b"/caf\xe9.jpg"))
    n = len(photos) + 1
    env = {"RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir),
           "RBV_SCAN_BATCH_SIZE": "2", "RBV_CONCURRENCY": "1", "RBV_INFERENCE_WORKERS": "1"}
    reference = str(settings.database_url)  # one local run of the same photos
    assert run_cli(cli, "index", "-d", reference, str(stored), env=env).exit_code == 0
    expected = _face_rows(reference)

    name = f"rbv_roots_{os.getpid()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.url(name)
    assert run_cli(cli, "migrate", "-d", url).exit_code == 0
    assert run_cli(cli, "index", "-d", url, "--no-embed", str(stored)).exit_code == 0
    # The stored root exists on no worker's machine: each sees the library under its own.
    real = tmp_path / "disk"
    stored.rename(real)
    roots = [tmp_path / "root_a", tmp_path / "root_b"]
    for root in roots:
        root.symlink_to(real)
    maps = [("--path-map", f"{stored}={root}") for root in roots]

    # The three start together: held at the start (the pack's preparation lock) until all
    # three have loaded the model, so each claims work before the first is killed.
    with psycopg.connect(url) as gate:
        lock_pack_preparation(gate)
        doomed = _rbv(env, "embed", "-d", url, *maps[0])
        workers = [_rbv(env, "embed", "-d", url, "--json", *m) for m in maps]
        _wait_for(doomed, url, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                               "AND NOT granted HAVING count(*) = 3")
    held_sql = "SELECT image_id FROM face_scans WHERE worker = %s AND status = 'running'"
    for w in [doomed, *workers]:  # each past its start (where dead claims are taken back)
        _wait_for(w, url, held_sql, f"{socket.gethostname()}:{w.pid}")
    doomed_id = f"{socket.gethostname()}:{doomed.pid}"
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()  # reaped: its pid is gone
    held = {r[0] for r in _db_rows(url, held_sql, doomed_id)}  # unless already taken back
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert all(r["images"] > 0 and r["failed"] == 0 for r in reports)
    assert _db_rows(url, "SELECT status, count(*) FROM face_scans GROUP BY 1") == [("done", n)]
    # What the killed worker held was taken back and done by the others: a second attempt.
    taken_back = {r[0] for r in _db_rows(url, "SELECT image_id FROM face_scans "
                                              "WHERE attempts = 2")}
    assert taken_back and held <= taken_back
    assert _db_rows(url, "SELECT count(*) FROM face_scans WHERE attempts > 2") == [(0,)]
    assert sum(r["images"] for r in reports) <= n
    assert _face_rows(url) == expected  # the same faces as one local run, none twice
    assert sum(r["faces"] for r in reports) <= len(expected)
    assert _db_rows(url, "SELECT count(*), count(DISTINCT path_bytes) FROM image_paths"
                         " WHERE path LIKE %s", f"{stored}/%") == [(n, n)]
