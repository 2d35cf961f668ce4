"""`rbv index` / `rbv embed` end to end with the real model pack on real photos:
faces found, re-runs do nothing, failures retried, parallel workers, kill -9."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest

from rbv.config import Settings
from rbv.faces.analyzer import load_analyzer
from rbv.faces.sessions import default_threads
from rbv.faces.types import FaceAnalyzer, ImageFaces
from rbv.jobs.library.catalogue import run_catalogue
from rbv.jobs.library.embed import run_embed
from rbv.jobs.library.scanning import opencv_on_calling_threads
from rbv.media.types import DecodedImage
from rbv.store import Database
from tests.conftest import FACES, MISC, PACK, run_cli
from tests.pgserver import PasswordServer
from tests.support.analyzers import Wrapped

pytestmark = pytest.mark.slow  # ~20 s: indexes real photos with the model many times

PEOPLE = {
    "Barack_Obama": ["fr_obama.jpg", "fr_obama2.jpg"],
    "Joe_Biden": ["fr_biden.jpg", "fr_biden2_exif8.jpg"],
    "Angelina_Jolie": ["deepface_img1.jpg", "deepface_img2.jpg"],
}
HARD = ["immich_IMG_2682.heic", "insightface_bulk_image_T1.jpeg", "insightface_rotate_rot_90.jpg",
        "fr_32bit.png", "insightface_bulk_view.jpg", "immich_portrait.jpg",
        "immich_portrait-orientation-6.jpg", "insightface_t1.jpg"]


def _photos() -> list[Path]:
    return [FACES / who / name for who, names in PEOPLE.items() for name in names] + [
        MISC / name for name in HARD]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {"RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir), **extra}


def _rows(url: str, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def _scans_by_name(url: str) -> dict[str, tuple]:  # type: ignore[type-arg]
    rows = _rows(url, "SELECT p.path, s.status, s.face_count, s.attempts, s.error "
                      "FROM face_scans s JOIN image_paths p ON p.image_id = s.image_id")
    return {Path(r[0]).name: r[1:] for r in rows}


def test_index_finds_faces_and_a_second_run_does_no_detection_work(
    cli, settings: Settings
) -> None:
    url = str(settings.database_url)
    first = run_cli(cli, "index", "-d", url, *map(str, _photos()), "--json",
                    env=_env(settings))
    assert first.exit_code == 0, first.output
    assert "Model pack scrfd_sface on CPUExecutionProvider" in first.stderr
    report = json.loads(first.stdout)
    assert report["embed"]["images"] == len(_photos()) and report["failed"] == 0
    scans = _scans_by_name(url)
    for names in PEOPLE.values():
        for name in names:
            assert scans[name][:2] == ("done", 1), name
    assert scans["immich_IMG_2682.heic"][:2] == ("done", 0)  # HEIC, machinery only
    assert scans["insightface_bulk_view.jpg"][:2] == ("done", 0)  # landscape
    assert scans["insightface_bulk_image_T1.jpeg"][:2] == ("done", 1)  # EXIF-rotated
    assert scans["insightface_rotate_rot_90.jpg"][0] == "done"  # PNG named .jpg
    assert scans["fr_32bit.png"][:2] == ("done", 1)  # RGBA
    assert scans["insightface_t1.jpg"][1] >= 5  # group photo
    # The EXIF-rotated copy yields the faces of the upright one, at the same places.
    boxes = {}
    for name in ("immich_portrait.jpg", "immich_portrait-orientation-6.jpg"):
        boxes[name] = np.array(sorted(_rows(
            url, "SELECT f.x1, f.y1, f.x2, f.y2 FROM face_detections f JOIN image_paths p "
                 "ON p.image_id = f.image_id WHERE p.path LIKE %s", f"%/{name}")))
    assert boxes["immich_portrait.jpg"].shape == (2, 4)
    np.testing.assert_allclose(boxes["immich_portrait-orientation-6.jpg"],
                               boxes["immich_portrait.jpg"], atol=12)

    faces_before = _rows(url, "SELECT id FROM face_detections ORDER BY id")
    again = run_cli(cli, "index", "-d", url, *map(str, _photos()), "--json", env=_env(settings))
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["catalogue"]["unchanged"] == len(_photos())
    assert report["embed"]["images"] == 0
    assert _rows(url, "SELECT id FROM face_detections ORDER BY id") == faces_before
    assert _rows(url, "SELECT command, status FROM runs ORDER BY id") == [("index", "ok")] * 2


def test_same_person_embeds_closer_than_different_people(
    cli, settings: Settings, db: Database
) -> None:
    url = str(settings.database_url)
    paths = [FACES / who / name for who, names in PEOPLE.items() for name in names]
    assert run_cli(cli, "index", "-d", url, *map(str, paths), env=_env(settings)).exit_code == 0
    with db.connect() as conn:  # pgvector registered: embeddings come back as vectors
        rows = conn.execute("SELECT p.path, e.embedding FROM face_detections f "
                            "JOIN face_embeddings e ON e.face_id = f.id "
                            "JOIN image_paths p ON p.image_id = f.image_id").fetchall()
    who = [Path(r[0]).parent.name for r in rows]
    emb = np.stack([r[1].to_numpy() for r in rows])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    sim = emb @ emb.T
    same = [sim[i, j] for i in range(len(who)) for j in range(i) if who[i] == who[j]]
    diff = [sim[i, j] for i in range(len(who)) for j in range(i) if who[i] != who[j]]
    assert len(same) == 3
    assert min(same) > max(diff), (same, diff)


def test_hnsw_index_is_built_after_the_first_load_and_rebuilt_for_a_big_one(
    cli, settings: Settings, db: Database
) -> None:
    url = str(settings.database_url)
    first = [FACES / who / names[0] for who, names in PEOPLE.items()]
    assert run_cli(cli, "index", "-d", url, *map(str, first), env=_env(settings)).exit_code == 0
    with db.connect() as conn:
        pack = conn.execute("SELECT id FROM model_packs").fetchone()[0]  # type: ignore[index]
        index = f"face_embeddings_hnsw_pack{pack}"
        built = conn.execute("SELECT oid FROM pg_class WHERE relname = %s", (index,)
                             ).fetchone()
    assert built is not None  # the first run's faces are in: the index exists
    rest = [FACES / who / name for who, names in PEOPLE.items() for name in names[1:]]
    assert run_cli(cli, "index", "-d", url, *map(str, rest), env=_env(settings)).exit_code == 0
    with db.connect() as conn:
        again = conn.execute("SELECT oid FROM pg_class WHERE relname = %s", (index,)
                             ).fetchone()
    # twice as many photos as the pack had faces: dropped before the load, built after
    assert again is not None and again[0] != built[0]


def test_undecodable_image_is_recorded_retried_and_done_once_fixed(
    cli, settings: Settings, tmp_path: Path
) -> None:
    url = str(settings.database_url)
    good = FACES / "Barack_Obama" / "fr_obama.jpg"
    shutil.copy(good, tmp_path / "ok.jpg")
    data = (MISC / "fr_two_people.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    first = run_cli(cli, "index", "-d", url, str(tmp_path), env=_env(settings))
    assert first.exit_code == 3, first.output
    assert f"Error: {tmp_path / 'cut.jpg'}: the JPEG file is truncated" in first.stderr
    scans = _scans_by_name(url)
    assert scans["ok.jpg"][:2] == ("done", 1)
    assert scans["cut.jpg"][0] == "failed" and scans["cut.jpg"][2] == 1
    assert "truncated" in scans["cut.jpg"][3]

    retry = run_cli(cli, "index", "-d", url, str(tmp_path), "--json", env=_env(settings))
    assert retry.exit_code == 3
    assert json.loads(retry.stdout)["embed"]["failed"] == 1  # retried, still broken
    assert _scans_by_name(url)["cut.jpg"][2] == 2  # attempts

    shutil.copy(MISC / "fr_two_people.jpg", tmp_path / "cut.jpg")  # the file is restored
    second = run_cli(cli, "index", "-d", url, str(tmp_path), "--json", env=_env(settings))
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["catalogue"]["unchanged"] == 1  # ok.jpg is not read again
    assert report["embed"]["images"] == 1 and report["embed"]["faces"] == 2
    scans = _scans_by_name(url)
    assert scans["cut.jpg"][:2] == ("done", 2)
    assert _rows(url, "SELECT count(*) FROM face_scans WHERE status <> 'done'") == [(0,)]


def _rbv(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    return subprocess.Popen([sys.executable, "-m", "rbv", *args], env={**full, **env},
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_waiters(url: str, n: int, workers: Sequence[subprocess.Popen[str]]) -> None:
    """Until ``n`` sessions of the database wait on a lock (or a worker has ended)."""
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and all(w.poll() is None for w in workers):
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()
            if waiting is not None and waiting[0] >= n:
                return
            time.sleep(0.05)
    raise AssertionError(f"{n} embed processes never waited on the queue")


def test_two_embed_processes_share_the_queue_and_never_repeat_an_image(
    cli, settings: Settings
) -> None:
    url = str(settings.database_url)
    photos = sorted(FACES.glob("*/*"))[:24]
    assert run_cli(cli, "index", "-d", url, "--no-embed", *map(str, photos)).exit_code == 0
    env = _env(settings, RBV_SCAN_BATCH_SIZE="2", RBV_CONCURRENCY="2")
    # The queue is held until both wait on it, so neither can take every batch while
    # the other is still starting (a busy CI machine: one did all 24 images).
    with psycopg.connect(url) as hold:
        hold.execute("LOCK TABLE face_scans IN ACCESS EXCLUSIVE MODE")
        workers = [_rbv(env, "embed", "-d", url, "--json") for _ in range(2)]
        _wait_for_waiters(url, 2, workers)
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert sum(r["images"] for r in reports) == len(photos)  # each image exactly once
    assert all(r["images"] > 0 for r in reports)  # both did work
    assert _rows(url, "SELECT status, count(*), sum(attempts) FROM face_scans GROUP BY 1") == [
        ("done", len(photos), len(photos))]
    faces = _rows(url, "SELECT count(*) FROM face_detections")[0][0]
    assert faces == sum(r["faces"] for r in reports)


def _face_rows(url: str) -> list[tuple]:  # type: ignore[type-arg]
    return _rows(url, "SELECT i.sha256, round(f.x1), round(f.y1), round(f.x2), round(f.y2) "
                      "FROM face_detections f JOIN images i ON i.id = f.image_id ORDER BY 1, 2, 3")


def test_kill_9_during_index_then_rerun_equals_an_uninterrupted_run(
    cli, settings: Settings, pg_server: PasswordServer, tmp_path: Path
) -> None:
    photos = sorted(FACES.glob("*/*"))[::6][:28]
    for p in photos:
        shutil.copy(p, tmp_path / f"{p.parent.name}_{p.name}")
    reference = str(settings.database_url)
    env = _env(settings, RBV_SCAN_BATCH_SIZE="2")
    assert run_cli(cli, "index", "-d", reference, str(tmp_path), env=env).exit_code == 0
    expected = _face_rows(reference)

    name = f"rbv_kill_{os.getpid()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.url(name)
    assert run_cli(cli, "migrate", "-d", url).exit_code == 0
    rng = random.Random(7)
    kills = 0
    done_sql = "SELECT count(*) FROM face_scans WHERE status = 'done'"
    for _ in range(5):  # until two runs were killed mid-way (a fast run may finish first)
        if kills >= 2:
            break
        # Kill at a random point after this process has committed some new work.
        target = _rows(url, done_sql)[0][0] + rng.randint(1, 4) if kills else 1
        proc = _rbv(env, "index", "-d", url, str(tmp_path))
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            if _rows(url, done_sql)[0][0] >= target:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.15))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            # A signal that lands while the process is exiting after a finished run
            # kills nothing that matters: that run is recorded ok, not interrupted.
            last = _rows(url, "SELECT status FROM runs ORDER BY id DESC LIMIT 1")
            kills += last != [("ok",)]
        proc.communicate()
    assert kills >= 2
    final = _rbv(env, "index", "-d", url, str(tmp_path), "--json")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert _face_rows(url) == expected
    assert _rows(url, "SELECT count(*) FROM face_scans WHERE status <> 'done'") == [(0,)]
    # Each kill lost at most the batch being analyzed and the one decoding ahead of it.
    redone = _rows(url, "SELECT sum(attempts) - count(*) FROM face_scans")[0][0]
    assert redone <= kills * 2 * 2
    dupes = _rows(url, "SELECT count(*) FROM (SELECT sha256 FROM images GROUP BY 1 "
                       "HAVING count(*) > 1) d")
    assert dupes == [(0,)]
    statuses = [r[0] for r in _rows(url, "SELECT status FROM runs ORDER BY id")]
    assert statuses.count("interrupted") == kills  # killed runs are marked by the next one
    assert _rows(url, "SELECT status FROM runs ORDER BY id DESC LIMIT 1") == [("ok",)]




class _WantsBytes(Wrapped):
    """The real analyzer behind the interface of a remote one: it asks for each file's
    original bytes and analyzes one image at a time."""

    wants_original_bytes = True

    def __init__(self, inner: FaceAnalyzer) -> None:
        super().__init__(inner)
        self.got_original: list[bool] = []

    def analyze(self, image: DecodedImage) -> ImageFaces:
        self.got_original.append(image.data == image.path.read_bytes())
        return self.inner.analyze(image)


def test_any_face_analyzer_works_and_can_ask_for_original_bytes(
    settings: Settings, db: Database
) -> None:
    photos = [FACES / who / name for who, names in PEOPLE.items() for name in names]
    run_catalogue(db, settings, photos)
    analyzer = _WantsBytes(load_analyzer(str(PACK), device="cpu"))
    first = run_embed(db, settings, analyzer, limit=4)
    assert (first.images, first.faces) == (4, 4)
    rest = run_embed(db, settings, analyzer)
    assert (rest.images, rest.faces) == (2, 2)
    assert analyzer.got_original == [True] * 6
    with db.connect() as conn:
        assert conn.execute("SELECT command, status, counts->>'images' FROM runs ORDER BY id"
                            ).fetchall() == [("embed", "ok", "4"), ("embed", "ok", "2")]


class _Batching(Wrapped):
    """The real analyzer taking ``batch_images`` images a call, as on a GPU; records the
    size of each call."""

    def __init__(self, inner: FaceAnalyzer, batch_images: int) -> None:
        super().__init__(inner)
        self.batch_images = batch_images
        self.calls: list[int] = []

    def analyze_many(self, images: Sequence[DecodedImage]) -> list[ImageFaces]:
        self.calls.append(len(images))
        return self.inner.analyze_many(images)


def test_a_batching_analyzer_gets_a_full_batch_per_call_and_each_image_once(
    settings: Settings, db: Database
) -> None:
    # On a GPU each inference thread hands the device a full batch per call: a claim
    # then holds one batch per thread (here 2 × 4 images, over a scan batch of 3).
    photos = _photos()  # 14
    run_catalogue(db, settings, photos)
    analyzer = _Batching(load_analyzer(str(PACK), device="cpu"), batch_images=4)
    done = run_embed(db, settings.with_overrides(inference_workers=2, scan_batch_size=3),
                     analyzer)
    assert done.images + done.failed == len(photos)
    assert sum(analyzer.calls) == len(photos)
    assert sorted(analyzer.calls, reverse=True) == [4, 4, 4, 2]  # claims of 8, then 6
    with db.connect() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT image_id) FROM face_scans"
                            " WHERE status <> 'pending'").fetchone() == (14, 14)



class _Priorities(Wrapped):
    """The real analyzer, noting the niceness of each thread an image is prepared on
    (the decoding threads)."""

    def __init__(self, inner: FaceAnalyzer) -> None:
        super().__init__(inner)
        self.niceness: set[int] = set()

    def prepare(self, image: DecodedImage) -> DecodedImage:
        self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return self.inner.prepare(image)


@pytest.mark.skipif(default_threads() < 2 or os.getpriority(os.PRIO_PROCESS, 0) > 9,
                    reason="needs 2 CPUs, and room below this process's priority")
def test_decoding_yields_to_inference_only_where_a_session_runs_several_threads(
    settings: Settings, db: Database
) -> None:
    # One single-threaded session per core: decoding at a lower priority would only let
    # other programs starve the inference threads. One session on every core: its
    # threads wait for each other, so decoding must not take a core from one of them.
    run_catalogue(db, settings, [FACES / who / name for who, names in PEOPLE.items()
                                 for name in names])
    own = os.getpriority(os.PRIO_PROCESS, 0)
    per_core = _Priorities(load_analyzer(str(PACK), device="cpu", threads=1))
    run_embed(db, settings.with_overrides(inference_workers=default_threads()), per_core,
              limit=3)
    assert per_core.niceness == {own}
    pooled = _Priorities(load_analyzer(str(PACK), device="cpu"))
    assert run_embed(db, settings.with_overrides(inference_workers=1), pooled).images == 3
    assert pooled.niceness == {own + 10}

class _OpenCvThreads(Wrapped):
    """The real analyzer, noting OpenCV's thread count wherever the scan calls it."""

    def __init__(self, inner: FaceAnalyzer) -> None:
        super().__init__(inner)
        self.seen: set[int] = set()

    def prepare(self, image: DecodedImage) -> DecodedImage:
        self.seen.add(cv2.getNumThreads())
        return self.inner.prepare(image)

    def analyze(self, image: DecodedImage) -> ImageFaces:
        self.seen.add(cv2.getNumThreads())
        return self.inner.analyze(image)


def test_a_scan_runs_opencv_on_its_own_threads_and_gives_its_pool_back(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The scan's decoding and inference threads keep the cores busy; OpenCV's own pool
    # under each of them only made them wait (a GPU run: 536 -> 678 images/s). A
    # program using rbv as a library gets its OpenCV setting back after the run.
    run_catalogue(db, settings, _photos()[:3])
    before = cv2.getNumThreads()
    cv2.setNumThreads(max(2, before))
    try:
        analyzer = _OpenCvThreads(load_analyzer(str(PACK), device="cpu"))
        assert run_embed(db, settings, analyzer).images == 3
        assert analyzer.seen == {1}
        assert cv2.getNumThreads() == max(2, before)
        # OpenCV's own setting, where the user made one, rules
        monkeypatch.setenv("OPENCV_FOR_THREADS_NUM", "2")
        run_catalogue(db, settings, _photos()[3:5])
        kept = _OpenCvThreads(load_analyzer(str(PACK), device="cpu"))
        assert run_embed(db, settings, kept).images == 2
        assert kept.seen == {max(2, before)}
    finally:
        cv2.setNumThreads(before)


def test_scans_at_once_in_one_process_restore_opencv_after_the_last(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two scans overlapping (the library used from two threads): the first to end must
    # not give OpenCV its pool back under the other, nor the last leave it at 1.
    monkeypatch.delenv("OPENCV_FOR_THREADS_NUM", raising=False)
    before = cv2.getNumThreads()
    cv2.setNumThreads(max(2, before))
    try:
        first, second = opencv_on_calling_threads(), opencv_on_calling_threads()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert cv2.getNumThreads() == 1
        second.__exit__(None, None, None)
        assert cv2.getNumThreads() == max(2, before)
    finally:
        cv2.setNumThreads(before)


def test_embed_dry_run_counts_the_work_and_writes_nothing(cli, settings: Settings) -> None:
    url = str(settings.database_url)
    photos = [FACES / who / names[0] for who, names in PEOPLE.items()]
    assert run_cli(cli, "index", "-d", url, "--no-embed", *map(str, photos)).exit_code == 0
    dry = run_cli(cli, "embed", "-d", url, "--dry-run", env=_env(settings))
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == "Would scan 3 images with scrfd_sface; nothing was written."
    assert _rows(url, "SELECT count(*) FROM model_packs") == [(0,)]
    one = run_cli(cli, "embed", "-d", url, "--limit", "1", env=_env(settings))
    assert one.exit_code == 0, one.output
    assert one.stdout.startswith("Scanned 1 image with scrfd_sface: 1 face,")
    dry = run_cli(cli, "embed", "-d", url, "--dry-run", "--json", env=_env(settings))
    assert json.loads(dry.stdout) == {"pack": "scrfd_sface", "would_scan": 2}
