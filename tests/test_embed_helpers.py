"""Helper processes of an embed run (a GPU's default for a big run): each scans from the
same queue in its own interpreter; every photo is scanned once, the run's summary and
progress count the helpers' work, and a helper's failure is one problem line."""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rbv.cli.embed import helpers_line
from rbv.config import Settings
from rbv.errors import ConfigError
from rbv.jobs.library.analyzer import load_face_analyzer
from rbv.jobs.library.catalogue import run_catalogue
from rbv.jobs.library.embed import EmbedSummary, prepare_pack, run_embed
from rbv.jobs.library.embed_helpers import (
    GPU_PROCESSES,
    HELPER_MIN_IMAGES,
    Helpers,
    helper_count,
    helper_main,
    start_helpers,
)
from rbv.jobs.library.scanning import scan_queue, worker_id
from rbv.store import Database
from rbv.store.server.locks import server_now
from tests.conftest import FACES, MISC, PACK, run_cli


class Counting:
    """A reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.items = 0
        self.faces = 0
        self.problems: list[str] = []

    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, items: int = 1, *, faces: int = 0, errors: int = 0) -> None:
        self.items += items
        self.faces += faces

    def problem(self, problem: Any) -> None:
        self.problems.append(str(problem))


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i, photo in enumerate(sorted(FACES.rglob("*.jpg"))[:n]):
        shutil.copy(photo, folder / f"{i:03d}.jpg")
    return folder


def _scans(db: Database) -> list[tuple[str, int]]:
    with db.connect() as conn:
        return conn.execute("SELECT status, count(*) FROM face_scans GROUP BY 1").fetchall()


def _faces(db: Database) -> int:
    with db.connect() as conn:
        return int(conn.execute("SELECT count(*) FROM face_detections").fetchone()[0])  # type: ignore[index]


def test_how_many_helpers_a_run_starts() -> None:
    gpu, cpu = SimpleNamespace(batch_images=32), SimpleNamespace(batch_images=1)
    auto = Settings()
    assert helper_count(auto, gpu, HELPER_MIN_IMAGES) == GPU_PROCESSES - 1  # type: ignore[arg-type]
    assert helper_count(auto, gpu, HELPER_MIN_IMAGES - 1) == 0  # type: ignore[arg-type]
    assert helper_count(auto, cpu, 10**6) == 0  # type: ignore[arg-type]
    assert helper_count(auto, gpu, None) == 0  # type: ignore[arg-type]  # a limit: alone
    chosen = Settings(embed_processes=3)
    assert helper_count(chosen, cpu, 5) == 2  # type: ignore[arg-type]
    assert helper_count(Settings(embed_processes=1), gpu, 10**6) == 0  # type: ignore[arg-type]
    remote = Settings(ml_uri=("http://ml:3003",), embed_processes=3)
    assert helper_count(remote, gpu, 10**6) == 0  # type: ignore[arg-type]  # threads feed it


def test_rbv_embed_processes_is_a_count() -> None:
    assert Settings.from_env({"RBV_EMBED_PROCESSES": "3"}).embed_processes == 3
    with pytest.raises(ConfigError, match="RBV_EMBED_PROCESSES must be 0"):
        Settings.from_env({"RBV_EMBED_PROCESSES": "-1"})
    with pytest.raises(ConfigError, match="not a whole number"):
        Settings.from_env({"RBV_EMBED_PROCESSES": "two"})


def test_a_helper_scans_the_queue_and_says_what_it_did(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # The helper's own code, run here: it loads the run's analyzer from the settings,
    # scans every queued photo and sends its progress and summary.
    run = settings.with_overrides(model_pack=str(PACK), device="cpu", inference_workers=2)
    run_catalogue(db, run, [_photos(tmp_path / "p", 12)])
    pack = prepare_pack(db, run, load_face_analyzer(run))
    messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
    helper_main(run, pack, messages)
    said = [messages.get_nowait() for _ in range(messages.qsize())]
    assert said[-1][0] == "done", said
    summary: EmbedSummary = said[-1][1]
    assert (summary.images, summary.failed) == (12, 0)
    assert summary.faces == _faces(db) > 0
    advanced = [m for m in said if m[0] == "advance"]
    assert sum(m[1] for m in advanced) == 12 and sum(m[2] for m in advanced) == summary.faces
    assert _scans(db) == [("done", 12)]


def test_a_helper_that_cannot_load_the_pack_is_said_and_sends_nothing_else(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    run = settings.with_overrides(model_pack=str(PACK), device="cpu")
    run_catalogue(db, run, [_photos(tmp_path / "p", 2)])
    pack = prepare_pack(db, run, load_face_analyzer(run))
    messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
    helper_main(run.with_overrides(model_pack=str(tmp_path / "gone")), pack, messages)
    kind, why = messages.get_nowait()
    assert kind == "failed" and "ModelPackError" in why and messages.empty()
    assert _scans(db) == [("pending", 2)]  # nothing claimed: the run's process scans them


def test_a_photo_that_failed_in_the_run_is_not_tried_again_by_its_helper(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    # The helper takes the run's start: a photo the run's own process failed is left
    # for the next run (and counted once), not tried again by a helper started later.
    run = settings.with_overrides(model_pack=str(PACK), device="cpu", inference_workers=1)
    folder = _photos(tmp_path / "p", 2)
    data = (MISC / "fr_two_people.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    run_catalogue(db, run, [folder])
    analyzer = load_face_analyzer(run)
    pack = prepare_pack(db, run, analyzer)
    with db.connect() as conn:
        started = server_now(conn)
    own = EmbedSummary()
    scan_queue(db, run, analyzer, pack, own, Counting(), run_start=started)
    assert (own.images, own.failed) == (2, 1)
    messages: queue.Queue[tuple[Any, ...]] = queue.Queue()
    helper_main(run, pack, messages, started)
    kind, helped = messages.get_nowait()
    assert kind == "done" and (helped.images, helped.failed) == (0, 0)
    with db.connect() as conn:
        assert conn.execute("SELECT attempts FROM face_scans WHERE status = 'failed'"
                            ).fetchall() == [(1,)]


def test_a_run_with_a_helper_process_scans_every_photo_once(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    run = settings.with_overrides(model_pack=str(PACK), device="cpu", inference_workers=1,
                                  embed_processes=2)
    run_catalogue(db, run, [_photos(tmp_path / "p", 24)])
    report = Counting()
    summary = run_embed(db, run, load_face_analyzer(run), reporter=report)
    assert len(summary.helpers) == 1  # it ran, and said what it stored (perhaps nothing)
    assert (summary.images, summary.failed, summary.failures) == (24, 0, [])
    assert summary.faces == _faces(db) > 0
    assert _scans(db) == [("done", 24)]  # each photo once, no claim left behind
    assert (report.items, report.faces, report.problems) == (24, summary.faces, [])


def test_an_interrupted_run_interrupts_its_helpers_and_they_hand_their_claims_back(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    run = settings.with_overrides(model_pack=str(PACK), device="cpu", inference_workers=1,
                                  embed_processes=2, scan_batch_size=2)
    run_catalogue(db, run, [_photos(tmp_path / "p", 60)])
    analyzer = load_face_analyzer(run)
    pack = prepare_pack(db, run, analyzer)
    report = Counting()
    with db.connect() as conn:
        helpers = start_helpers(run, analyzer, pack, 60, server_now(conn), report)
    deadline = time.monotonic() + 120
    while not _held_by_others(db):  # the helper has claims in hand
        assert time.monotonic() < deadline and helpers.processes[0].is_alive()
    helpers.interrupt()
    summary = EmbedSummary()
    helpers.join_into(summary, report)
    assert helpers.processes[0].exitcode == 0 and report.problems == []
    assert dict(_scans(db)).get("pending", 0) > 0  # it stopped before the queue was empty
    # The next run takes back whatever the helper still held (its process is gone) and
    # scans every photo left, once.
    again = run_embed(db, run.with_overrides(embed_processes=1), analyzer)
    assert again.images + report.items == 60 and again.failed == 0
    assert _scans(db) == [("done", 60)]


def _held_by_others(db: Database) -> bool:
    with db.connect() as conn:
        return conn.execute("SELECT count(*) FROM face_scans WHERE status = 'running' "
                            "AND worker <> %s", (worker_id(),)).fetchone()[0] > 0  # type: ignore[index]


def test_index_says_what_its_helper_scanned(cli, settings: Settings,  # type: ignore[no-untyped-def]
                                            tmp_path: Path) -> None:
    done = run_cli(cli, "-d", str(settings.database_url), "index",
                   str(_photos(tmp_path / "p", 6)), "--model-pack", str(PACK),
                   "--device", "cpu", env={"RBV_EMBED_PROCESSES": "2"})
    assert done.exit_code == 0, done.output
    said = re.search(r"Scanned 6 images: .*? A helper process scanned (\d+) of them\.",
                     " ".join(done.output.split()))
    assert said is not None, done.output
    assert 0 <= int(said.group(1)) <= 6
    assert helpers_line([]) == ""
    assert helpers_line([1200, 3, 45]) == " 3 helper processes scanned 1,200, 3 and 45 of them."


def test_a_helper_that_dies_without_a_word_is_said_by_its_own_name() -> None:
    # Helper 10's own failure line must not stand for helper 1, dead without a message.
    context = multiprocessing.get_context("spawn")
    helpers = Helpers(messages=context.Queue())
    for number in (1, 10):
        process = context.Process(target=os._exit, args=(3,), name=f"embed helper {number}")
        process.start()
        helpers.processes.append(process)
    report = Counting()
    helpers.relay = threading.Thread(target=helpers._relay, args=(report,), daemon=True)
    helpers.relay.start()
    helpers.messages.put(("failed", "embed helper 10: ModelPackError: gone"))  # type: ignore[union-attr]
    summary = EmbedSummary()
    helpers.join_into(summary, report)
    assert report.problems == ["embed helper process: embed helper 10: ModelPackError: gone",
                               "embed helper process: embed helper 1 ended with exit code 3"]
