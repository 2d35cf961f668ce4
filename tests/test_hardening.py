"""Issue #14, defects 1–11: each reproduction from the adversarial run, now one clear
``Error:`` line (or the right result), never a traceback, never a write outside OUT."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.errors import ModelPackError
from rbv.mlapi.client import RemoteFaceAnalyzer
from rbv.store.queries.packs import register_pack
from tests.conftest import FACES, IMMICH_KEY, MISC, PACK, SFACE_THRESHOLD, run_cli
from tests.pgserver import PASSWORD

pytestmark = pytest.mark.slow  # ~25 s: rbv subprocesses in hostile setups

PHOTO = MISC / "fr_two_people.jpg"
ROOT = Path(__file__).resolve().parents[1]


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(str(settings.database_url)) as conn:
        return conn.execute(sql, params).fetchall()


def _one_error_line(result, code: int = 1) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def _env(settings: Settings) -> dict[str, str]:
    return {"RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir)}


# 1. A file name that is not UTF-8 is catalogued like any other, run after run.
def test_non_utf8_file_name_is_catalogued_with_the_batch(
        cli, settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(PHOTO, lib / "good.jpg")
    shutil.copy(MISC / "insightface_t1.jpg", os.fsdecode(bytes(lib) + b"/caf\xe9.jpg"))
    url = str(settings.database_url)
    first = run_cli(cli, "index", "-d", url, "--no-embed", str(lib))
    assert first.exit_code == 0 and "2 new images" in first.stdout, first.output
    again = run_cli(cli, "index", "-d", url, "--no-embed", str(lib))  # found again
    assert again.exit_code == 0 and "0 new images" in again.stdout, again.output
    assert "2 unchanged" in again.stdout
    assert sorted(bytes(p)[len(bytes(lib)):] for (p,) in _rows(
        settings, "SELECT path_bytes FROM image_paths")) == [b"/caf\xe9.jpg", b"/good.jpg"]


# 2. A postmaster.pid naming another process: that process is neither trusted nor signalled.
def test_stale_pid_file_is_set_aside_and_no_foreign_process_is_signalled(tmp_path: Path
                                                                         ) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env["RBV_DATA_DIR"] = str(tmp_path / "rbv")
    first = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, text=True,
                           capture_output=True, timeout=120)
    assert first.returncode == 0, first.stderr
    pgdata = (tmp_path / "rbv" / "pg").resolve()
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        for text in (f"{bystander.pid}\n{pgdata}\n1700000000\n5432\n/tmp\n\n0 0\nready   \n",
                     "", "not a pid file\n"):
            (pgdata / "postmaster.pid").write_text(text)
            again = subprocess.run([sys.executable, "-m", "rbv", "stats", "--json"], env=env,
                                   text=True, capture_output=True, timeout=120)
            assert again.returncode == 0, (text, again.stderr)
            assert "Traceback" not in again.stderr
            assert bystander.poll() is None, "rbv signalled a process it did not start"
            # And the embedded server rbv started was stopped when rbv exited.
            assert not (pgdata / "postmaster.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()


# 3. export-swap never writes or deletes outside OUT, and bad manifests are one line.
@pytest.mark.parametrize("case", ["parent", "absolute", "no_faces", "no_folder", "bad_id",
                                  "out_is_file", "not_a_list"])
def test_export_swap_refuses_hostile_manifests(cli, faces_settings: Settings, tmp_path: Path,
                                               case: str) -> None:
    settings = faces_settings  # faces of a real pack: an export would get to writing
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.png").write_bytes(b"precious")
    out = tmp_path / "out"
    fs: dict[str, object] = {"folder": "faceset_001", "faces": [{"id": 1}]}
    if case == "parent":
        fs["folder"] = "../victim"
    elif case == "absolute":
        fs["folder"] = str(victim)
    elif case == "no_faces":
        del fs["faces"]
    elif case == "no_folder":
        del fs["folder"]
    elif case == "bad_id":
        fs["faces"] = [{"id": "1; DROP"}]
    elif case == "out_is_file":
        out.write_text("a file")
    manifest = tmp_path / "refine_manifest.json"
    body = {"facesets": fs if case == "not_a_list" else [fs]}
    manifest.write_text(json.dumps(body))
    result = run_cli(cli, "-d", str(settings.database_url), "export-swap", str(manifest),
                     str(out), env=_env(settings))
    _one_error_line(result)
    assert (victim / "keep.png").read_bytes() == b"precious"
    assert sorted(p.name for p in victim.iterdir()) == ["keep.png"]
    assert not list(tmp_path.glob("*.fsz"))
    assert not list(tmp_path.glob("*/*.fsz"))


# 4. An asset id from the server never becomes a path (nor a request path).
def test_immich_asset_id_with_dots_is_refused(cli, settings: Settings, immich_library,
                                              immich_spec, tmp_path: Path) -> None:
    from tests.support.immich_server import FakeImmich

    big = [a for a in immich_library if a.truth == "big_face"][:3]
    hostile = dataclasses.replace(big[0], id="../../../../x/evil")
    out = tmp_path / "a" / "b" / "c" / "staging"
    sentinel = (out / "alice" / ".rbv-partial" / "../../../../x/evil.part").resolve()
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("not yours")
    server = FakeImmich([hostile, *big[1:]], IMMICH_KEY, immich_spec).start()
    try:
        result = run_cli(cli, "--database", str(settings.database_url), "immich-stage",
                         "--out", str(out), "--url", server.url, "--no-index", "--json",
                         "--user", "alice", "--retry-wait", "0.01", "--timeout", "5",
                         env={"IMMICH_API_KEY": IMMICH_KEY})
    finally:
        server.stop()
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert summary["staged"] == 2 and summary["failed"] == 1
    assert "malformed asset" in summary["errors"][0]["error"]
    assert sentinel.read_text() == "not yours"
    assert server.downloads.keys() == {a.id for a in big[1:]}


# 5. A remote pack has its own name; a name is never given to two packs.
def test_remote_pack_is_named_after_the_server_and_names_are_unique(db) -> None:
    remote = RemoteFaceAnalyzer("http://gpu-box:3003", "scrfd_sface")
    assert remote.pack.name == "remote:scrfd_sface@gpu-box"
    with db.transaction() as conn:
        local = register_pack(conn, "scrfd_sface", {"det.onnx": "a" * 64}, 128)
        other = register_pack(conn, remote.pack.name, remote.pack.files, 128)
        assert other.id != local.id
    with pytest.raises(ModelPackError, match="already registered as 'scrfd_sface'"), \
            db.transaction() as conn:
        register_pack(conn, "scrfd_sface", {"det.onnx": "b" * 64}, 128)


def test_migration_renames_packs_that_share_a_name(empty_db_url: str) -> None:
    from rbv.store import open_database
    from rbv.store.server.migrations import apply_pending

    db = open_database(Settings(database_url=empty_db_url), require_schema=False)
    apply_pending(db)
    sql = (ROOT / "migrations" / "0008_unique_pack_names.sql").read_text()
    with db.transaction() as conn:  # the state an older rbv could leave
        conn.execute("DROP INDEX model_packs_name_key")
        for fp in ("a", "b"):
            conn.execute("INSERT INTO model_packs (name, fingerprint, files, embedding_dim) "
                         "VALUES ('scrfd_sface', %s, '{}', 128)", (fp,))
        conn.execute(sql)
        names = [r[0] for r in conn.execute("SELECT name FROM model_packs ORDER BY id")]
    assert names[0] == "scrfd_sface" and names[1].startswith("scrfd_sface#")


# 6. Person edits: ranges, self-merge, unknown and out-of-range face ids.
def test_person_edits_refuse_bad_input_and_change_nothing(cli, faces_settings: Settings
                                                          ) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", str(SFACE_THRESHOLD)).exit_code == 0
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    x = persons[0]["id"]
    manual = "SELECT count(*) FROM face_detections WHERE assigned_by = 'manual'"
    for args in (["persons", "split", x, "--threshold", "5"],
                 ["persons", "split", x, "--threshold", "-1"],
                 ["persons", "merge", x, x],
                 ["persons", "move", "999999", "--to", x],
                 ["persons", "move", "999999"],
                 ["persons", "not-this-person", x, "999999"],
                 ["persons", "not-this-person", x, str(2**63)]):
        _one_error_line(run_cli(cli, "-d", url, *args))
    assert _rows(faces_settings, manual) == [(0,)]
    # A finished run ends after it starts (finished_at used to be the transaction's start).
    assert _rows(faces_settings, "SELECT bool_and(finished_at > started_at) FROM runs "
                                 "WHERE command = 'cluster'") == [(True,)]


# 7. The database dies mid-command, or its disk fills: one line, and the right code.
def test_database_failures_mid_command_are_one_line() -> None:
    from rbv.store.server.connection import database_error

    full = database_error(psycopg.errors.DiskFull("could not extend file: No space left"))
    assert full is not None and full.exit_code == 1 and "disk is full" in str(full)
    gone = database_error(psycopg.errors.AdminShutdown("terminating connection due to "
                                                       "administrator command\nmore"))
    assert gone is not None and gone.exit_code == 2 and "re-run" in str(gone)
    assert "\n" not in str(gone)


def test_one_rule_says_the_database_connection_was_lost() -> None:
    """The commands and rbv serve decide "the connection was lost" by one rule, in one
    wording: no SQL state or class 08/57P; a deadlock or a lock timeout is not a lost
    connection, but a command that meets one still ends in one line (exit 2) that says the
    server stopped it, never "a bug in rbv"."""
    from rbv.serve.app import _database_lost
    from rbv.store.server.connection import connection_lost, database_error

    dropped = psycopg.OperationalError("server closed the connection unexpectedly\nmore")
    lost = "the database server stopped or the connection was lost (server closed the " \
           "connection unexpectedly)"
    assert connection_lost(dropped) == _database_lost(dropped) == lost
    assert str(database_error(dropped)).startswith(lost + "; ")
    assert connection_lost(psycopg.errors.CrashShutdown("crash")) is not None
    for other in (psycopg.errors.DeadlockDetected("deadlock detected"),
                  psycopg.errors.LockNotAvailable("could not obtain lock")):
        assert connection_lost(other) is None and _database_lost(other) is None
        stopped = database_error(other)
        assert stopped is not None and stopped.exit_code == 2
        assert str(stopped).startswith("the database server stopped this command (")
    assert database_error(psycopg.ProgrammingError("syntax error")) is None


def test_two_refines_on_one_out_do_not_delete_each_others_files(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    from rbv.jobs.out_lock import writing_folder

    url, out = str(faces_settings.database_url), tmp_path / "sets"
    with writing_folder(out, "refine"):  # another refine is writing OUT
        busy = run_cli(cli, "-d", url, "refine", str(out), "--min-face", "30",
                       "--min-images", "3")
        assert "another rbv refine" in _one_error_line(busy)
    done = run_cli(cli, "-d", url, "refine", str(out), "--min-face", "30", "--min-images", "3",
                   "--json")
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "refine_manifest.json").read_text())
    files = [f["file"] for fs in manifest["facesets"] for f in fs["faces"]]
    assert files and all((out / f).is_file() for f in files)


# 8. A run killed by SIGTERM is closed as interrupted; one killed by SIGKILL is closed by
#    the next command (stats included); a finished run ends after it starts.
def _rbv(settings: Settings, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": str(settings.database_url),
           "RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir)}
    return subprocess.Popen([sys.executable, "-m", "rbv", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_running(settings: Settings, proc: subprocess.Popen[str]) -> None:
    while proc.poll() is None:
        if _rows(settings, "SELECT 1 FROM runs WHERE status = 'running'"):
            return
        time.sleep(0.05)
    pytest.fail(f"the run ended before it could be killed: {proc.communicate()}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_index_is_never_left_running(cli, settings: Settings, sig: int) -> None:
    proc = _rbv(settings, "index", str(FACES / "Barack_Obama"), str(FACES / "Madonna"))
    _wait_for_running(settings, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
        assert _rows(settings, "SELECT status FROM runs") == [("interrupted",)]
    shown = run_cli(cli, "-d", str(settings.database_url), "stats", "--json")
    assert shown.exit_code == 0, shown.output
    assert _rows(settings, "SELECT status, finished_at > started_at FROM runs") == [
        ("interrupted", True)]


# 9. Exit codes: usage errors are 1 (2 means "server down, re-run"); a missing target is 1.
def test_usage_errors_and_missing_targets_exit_1(cli, settings: Settings) -> None:
    url = str(settings.database_url)
    assert "--bogus" in _one_error_line(run_cli(cli, "-d", url, "index", "--bogus", "x"))
    _one_error_line(run_cli(cli, "no-such-command"))
    missing = _one_error_line(run_cli(cli, "-d", url, "index", "/nonexistent"))
    assert "no such file or folder: /nonexistent" in missing
    assert _rows(settings, "SELECT count(*) FROM runs") == [(0,)]


# 10. Secrets never leave: an unparseable URL, Immich credentials in the URL, psql's argv.
def test_unparseable_database_url_is_not_echoed(cli) -> None:
    for url in (f"postgresql://u:{PASSWORD}@host:notaport/x",
                f"postgresql://u:{PASSWORD}@[bad/x", f"host=h password={PASSWORD} port=x"):
        result = run_cli(cli, "-d", url, "stats")
        assert _one_error_line(result).startswith("Error: ")
        assert PASSWORD not in result.output


def test_immich_url_credentials_are_not_echoed(cli, settings: Settings, tmp_path: Path) -> None:
    result = run_cli(cli, "-d", str(settings.database_url), "immich-stage", "--out",
                     str(tmp_path), "--url", f"http://alice:{PASSWORD}@127.0.0.1:1",
                     "--timeout", "1", "--retry-wait", "0.01", "--no-index",
                     env={"IMMICH_API_KEY": IMMICH_KEY})
    assert result.exit_code == 2, result.output
    assert PASSWORD not in result.output and IMMICH_KEY not in result.output
    assert PASSWORD not in "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_psql_gets_the_password_from_its_environment_not_its_arguments(settings: Settings
                                                                       ) -> None:
    import psutil

    proc = _rbv(settings, "psql", "-c", "SELECT pg_sleep(3)")
    seen: list[str] = []
    try:
        while proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    seen.append(" ".join(child.cmdline()))
            seen.append(" ".join(psutil.Process(proc.pid).cmdline()))
            time.sleep(0.1)
    except psutil.NoSuchProcess:
        pass
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert any("psql" in c for c in seen), seen
    assert not any(PASSWORD in c for c in seen)


# 11. Content replaced at the same path: the old image goes, with its faces.
def test_replaced_content_drops_the_old_image_and_its_faces(cli, settings: Settings,
                                                            tmp_path: Path) -> None:
    photo = tmp_path / "lib" / "photo.jpg"
    photo.parent.mkdir()
    shutil.copy(PHOTO, photo)
    url = str(settings.database_url)
    assert run_cli(cli, "-d", url, "index", str(photo.parent), env=_env(settings)).exit_code == 0
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    shutil.copy(MISC / "insightface_t1.jpg", photo)
    again = run_cli(cli, "-d", url, "index", str(photo.parent), env=_env(settings))
    assert again.exit_code == 0, again.output
    assert _rows(settings, "SELECT count(*) FROM images") == [(1,)]
    orphans = ("SELECT count(*) FROM face_detections f WHERE NOT EXISTS "
               "(SELECT 1 FROM image_paths p WHERE p.image_id = f.image_id)")
    assert _rows(settings, orphans) == [(0,)]


def test_a_run_whose_pid_was_taken_over_is_closed(db) -> None:
    """kill -9, then the pid is reused by another process: the run is still closed."""
    import socket

    from rbv.jobs.recording import close_dead_runs_here

    with db.transaction() as conn:
        conn.execute("INSERT INTO runs (command, parameters, host, pid) VALUES "
                     "('index', '{\"process_started\": 12345.0}', %s, %s)",
                     (socket.gethostname(), os.getpid()))  # alive, but not that process
        conn.execute("INSERT INTO runs (command, parameters, host, pid) VALUES "
                     "('index', '{}', %s, %s)", (socket.gethostname(), os.getpid()))
    assert close_dead_runs_here(db) == 1
    with db.connect() as conn:
        assert sorted(r[0] for r in conn.execute("SELECT status FROM runs")) == [
            "interrupted", "running"]


def test_printable_shows_every_text_on_one_line() -> None:
    """What an error quotes (a file name's raw bytes, a name a web request sent with a
    lone surrogate, a newline) is shown escaped on one line, never raised on."""
    from rbv.errors import printable

    assert printable("Mad\udcffonna") == "Mad\\xffonna"  # a non-UTF-8 byte of a path
    assert printable("Ada\ud800") == "Ada\\ud800"  # JSON's "\ud800": no byte it stands for
    assert printable("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
