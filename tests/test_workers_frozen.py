"""A worker frozen past its lease (issue 62 #9, the attacker's replay): two real
``rbv embed`` processes share 19 photos; one is stopped (SIGSTOP) holding claims, the
other takes them back when the lease lapses, then the first goes on (SIGCONT). Each
report counts what that worker stored, no image twice, and the frozen worker's report
says what was taken from it. (Before the fix a frozen worker reported 12 images
scanned, and the two 27 for 19.)"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.words import counted
from tests.conftest import FACES, PACK, run_cli
from tests.test_workers import _db_rows, _rbv, _wait_for

N_PHOTOS = 19
LEASE_S = 4

# Who stored what, by the database itself: every claim, and every scan stored, with the
# worker that held it (a scan stored is no longer held by anyone).
_SCAN_LOG = """
CREATE TABLE scan_log (image_id bigint, worker text, event text);
CREATE FUNCTION scan_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'running' AND OLD.status <> 'running' THEN  -- not a renewal
        INSERT INTO scan_log VALUES (NEW.image_id, NEW.worker, 'claimed');
    ELSIF NEW.status = 'done' AND OLD.status = 'running' THEN
        INSERT INTO scan_log VALUES (NEW.image_id, OLD.worker, 'stored');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER scan_logged AFTER UPDATE ON face_scans
    FOR EACH ROW EXECUTE FUNCTION scan_logged();
"""

_HELD = "SELECT image_id FROM face_scans WHERE worker = %s AND status = 'running'"
_BUSY = ("SELECT state FROM pg_stat_activity WHERE datname = current_database() "
         "AND application_name = 'rbv' AND state <> 'idle'")
_LAPSED = ("SELECT 1 FROM face_scans WHERE worker = %s AND status = 'running' "
           "HAVING max(renewed_at) < now() - make_interval(secs => %s)")


def _freeze_past_lease(proc: subprocess.Popen[str], url: str, worker: str) -> set[int]:
    """Stop the worker (the only one running) while it holds claims, and wait until its
    lease lapses; the claims it holds then. A worker stopped inside a transaction
    would keep its rows locked past any lease (another matter): then it goes on and is
    stopped again."""
    while True:
        _wait_for(proc, url, _HELD, worker)
        proc.send_signal(signal.SIGSTOP)
        held = {r[0] for r in _db_rows(url, _HELD, worker)}
        while held and not _db_rows(url, _LAPSED, worker, LEASE_S):
            time.sleep(0.05)
        if held and not _db_rows(url, _BUSY):
            return held
        proc.send_signal(signal.SIGCONT)


def _run_of(url: str, pid: int) -> dict:  # type: ignore[type-arg]
    """The counts the worker recorded in ``runs``."""
    [(counts,)] = _db_rows(url, "SELECT counts FROM runs WHERE command = 'embed' AND pid = %s",
                           pid)
    return counts  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_frozen_worker_reports_only_what_it_stored_and_what_was_taken_from_it(
    cli, settings: Settings, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(FACES.glob("*/*"))[::10][:N_PHOTOS]:
        shutil.copy(p, photos / f"{p.parent.name}_{p.name}")
    url = str(settings.database_url)
    assert run_cli(cli, "index", "-d", url, "--no-embed", str(photos)).exit_code == 0
    assert _db_rows(url, "SELECT count(*) FROM images") == [(N_PHOTOS,)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_SCAN_LOG)
    env = {"RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir),
           "RBV_SCAN_BATCH_SIZE": "2", "RBV_CONCURRENCY": "1", "RBV_INFERENCE_WORKERS": "1",
           "RBV_CLAIM_LEASE_S": str(LEASE_S)}
    host = socket.gethostname()
    frozen = _rbv(env, "embed", "-d", url)  # its report in words
    procs = [frozen]
    try:
        frozen_id = f"{host}:{frozen.pid}"
        held = _freeze_past_lease(frozen, url, frozen_id)
        other = _rbv(env, "embed", "-d", url, "--json")
        procs.append(other)
        other_id = f"{host}:{other.pid}"
        # The other worker takes the lapsed claims back as it starts; then both go on.
        _wait_for(other, url, "SELECT 1 WHERE NOT EXISTS (" + _HELD + ")", frozen_id)
        frozen.send_signal(signal.SIGCONT)
        (said, err), (out, err2) = (p.communicate(timeout=300) for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.communicate()
    assert [p.returncode for p in procs] == [0, 0], (said, err, out, err2)
    assert _db_rows(url, "SELECT status, count(*) FROM face_scans GROUP BY 1") == [
        ("done", N_PHOTOS)]

    log = _db_rows(url, "SELECT image_id, worker, event FROM scan_log")
    stored = {w: sorted(i for i, who, e in log if who == w and e == "stored")
              for w in (frozen_id, other_id)}
    claimed = {w: [i for i, who, e in log if who == w and e == "claimed"]
               for w in (frozen_id, other_id)}
    # Each image was stored once, by one of the two.
    assert sorted(stored[frozen_id] + stored[other_id]) == sorted(
        r[0] for r in _db_rows(url, "SELECT id FROM images"))

    reports = {frozen_id: _run_of(url, frozen.pid), other_id: json.loads(out)}
    faces = dict(_db_rows(url, "SELECT image_id, face_count FROM face_scans"))
    for worker, report in reports.items():
        assert report["failed"] == 0
        assert report["images"] == len(stored[worker]), (worker, reports, log)
        assert report["faces"] == sum(faces[i] for i in stored[worker])
    assert sum(r["images"] for r in reports.values()) == N_PHOTOS
    # What was claimed and not stored was taken over by the other worker, and said so.
    for worker, report in reports.items():
        assert report["taken_over"] == len(claimed[worker]) - len(stored[worker])
    assert reports[frozen_id]["taken_over"] >= len(held) > 0
    text = " ".join(said.split())
    pack = reports[other_id]["pack"]
    assert f"Scanned {counted(len(stored[frozen_id]), 'image')} with {pack}:" in text
    assert (f"{counted(reports[frozen_id]['taken_over'], 'image')} it had claimed went to "
            "another worker when its lease lapsed") in text
