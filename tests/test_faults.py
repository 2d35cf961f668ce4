"""Fault injection (issue #14): rbv killed with SIGKILL / SIGTERM / SIGINT at several
points of index, cluster --full, a persons edit, refine and export-swap; the database
server killed mid-command; the database's disk full. After each fault the command is run
again, and the library must end up exactly as an uninterrupted run leaves it: the same
faces and boxes, persons, names, manual decisions and output files, no run left
``running``, and the embedded server stopped once the last rbv process is gone.

Everything runs on a handful of photos, each fault test against a PostgreSQL server of
its own (killing it, or a test failing half-way, cannot take the next test down), in real
subprocesses (so signals are real). A fault is placed by an event, never by a delay: the
test holds a lock on a table the command must write, waits until the command is blocked
on it (so the command is surely mid-run), and then strikes; a fault that did not land
fails the test.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psutil
import psycopg
import pytest

from rbv.store.server import postmaster
from rbv.store.server.embedded import DATABASE_NAME
from tests.conftest import FACES, PACK, SFACE_THRESHOLD
from tests.pgserver import PasswordServer

pytestmark = pytest.mark.slow  # rbv subprocesses killed at ten points, servers killed

PHOTOS = [FACES / who / name for who in ("Barack_Obama", "Madonna")
          for name in sorted(os.listdir(FACES / who))[:4]]
REFINE = ("--min-face", "30", "--min-images", "3")
SWAP = ("--min-face", "30", "--top", "3")
KILLS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
STOPPED_BY = {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 143, signal.SIGINT: 130}
"""The exit status of a command stopped mid-run by each signal."""
WRITES = {"index": "face_detections", "cluster": "face_detections",
          "persons": "person_rejections", "refine": "runs", "export-swap": "runs"}
"""The table each stage writes first (``runs``: where a stage records itself starting)."""
DEADLINE_S = 120  # a hung command fails the test instead of hanging the suite


@dataclass
class Library:
    """One library under test: its database, photos and output folders."""

    server: PasswordServer
    dbname: str
    root: Path

    @property
    def url(self) -> str:
        return self.server.url(self.dbname)

    @property
    def photos(self) -> Path:
        return self.root / "photos"

    @property
    def out(self) -> Path:
        return self.root / "sets"

    @property
    def swap(self) -> Path:
        return self.root / "swap"

    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.url, "RBV_MODEL_PACK": str(PACK),
                "RBV_DATA_DIR": str(self.root / "data")}

    def rows(self, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()

    # -- the pipeline, one command per stage ---------------------------------------------

    def stage(self, name: str) -> list[str]:
        if name == "index":
            return ["index", str(self.photos)]
        if name == "cluster":
            return ["cluster", "--full", "--threshold", str(SFACE_THRESHOLD)]
        if name in ("name", "persons"):
            # The person holding the first face is named, then that face is rejected
            # from it: a name and a manual decision, made the same way in every library.
            first = self.rows("SELECT f.id, f.person_id FROM face_detections f JOIN images i "
                              "ON i.id = f.image_id ORDER BY i.sha256, f.x1 LIMIT 1")[0]
            if name == "name":
                return ["persons", "name", str(first[1]), "Ada Lovelace"]
            return ["persons", "not-this-person", str(first[1]), str(first[0])]
        if name == "refine":
            return ["refine", str(self.out), *REFINE]
        assert name == "export-swap"
        return ["export-swap", str(self.out / "refine_manifest.json"), str(self.swap), *SWAP]

    def run(self, name: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "rbv", *self.stage(name)], env=self.env(),
                              text=True, capture_output=True, timeout=DEADLINE_S)
        assert done.returncode == 0, (name, done.stderr)
        return done

    def start(self, name: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "rbv", *self.stage(name)],
                                env=self.env(), text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def snapshot(self) -> dict[str, object]:
        """What a user relies on, independent of row ids and timestamps."""
        faces = self.rows(
            "SELECT f.id, i.sha256, round(f.x1), round(f.y1), round(f.x2), round(f.y2), "
            "f.person_id, f.assigned_by FROM face_detections f JOIN images i "
            "ON i.id = f.image_id")
        key = {r[0]: (r[1], *map(float, r[2:6])) for r in faces}
        persons: dict[object, set[object]] = {}
        for r in faces:
            if r[6] is not None:
                persons.setdefault(r[6], set()).add(key[r[0]])
        names = dict(self.rows("SELECT person_id, name FROM person_names"))
        rejected = {(key[f], frozenset(persons.get(p, ())))
                    for f, p in self.rows("SELECT face_id, person_id FROM person_rejections")}
        return {
            "faces": sorted(key.values()),
            "persons": sorted(sorted(map(str, s)) for s in persons.values()),
            "names": sorted((names[p], sorted(map(str, s))) for p, s in persons.items()
                            if p in names),
            "manual": sorted(key[r[0]] for r in faces if r[7] == "manual"),
            "rejections": sorted(str(r) for r in rejected),
            "images": self.rows("SELECT count(*), count(*) FILTER (WHERE status = 'ok') "
                                "FROM images"),
            "running": self.rows("SELECT count(*) FROM runs WHERE status = 'running'"),
            "out": _tree(self.out),
            "swap": _tree(self.swap),
        }


def _tree(folder: Path) -> list[tuple[str, object]]:
    """Output files by folder and content (crop names carry face ids, which differ
    between databases; zip members are compared by content, not by their dates)."""
    found: list[tuple[str, object]] = []
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if not path.is_file() or path.name.startswith("."):
            continue
        where = str(path.parent.relative_to(folder))
        if path.suffix == ".json":
            json.loads(path.read_text())  # whole, never half-written
            found.append((where, path.name))
        elif path.suffix == ".fsz":
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
                found.append((where, tuple(hashlib.sha256(z.read(n)).hexdigest()
                                           for n in sorted(z.namelist()))))
        else:
            found.append((where, hashlib.sha256(path.read_bytes()).hexdigest()))
    return sorted(found, key=str)


STAGES = ["index", "cluster", "name", "persons", "refine", "export-swap"]
KILLED_STAGES = {"index", "cluster", "persons", "refine", "export-swap"}


@pytest.fixture(scope="module")
def reference_server() -> Iterator[PasswordServer]:
    """The uninterrupted run's server: no fault ever touches it."""
    with PasswordServer.running() as s:
        yield s


@pytest.fixture
def server() -> Iterator[PasswordServer]:
    """A fault test's own server."""
    with PasswordServer.running() as s:
        yield s


def _library(server: PasswordServer, root: Path, name: str) -> Library:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    lib = Library(server, name, root)
    lib.photos.mkdir(parents=True)
    for p in PHOTOS:
        shutil.copy(p, lib.photos / f"{p.parent.name}_{p.name}")
    done = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=lib.env(), text=True,
                          capture_output=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    return lib


@pytest.fixture(scope="module")
def reference_library(reference_server: PasswordServer,
                      tmp_path_factory: pytest.TempPathFactory) -> Library:
    """A library the whole pipeline ran on, uninterrupted."""
    lib = _library(reference_server, tmp_path_factory.mktemp("reference"), "reference")
    for name in STAGES:
        lib.run(name)
    return lib


@pytest.fixture(scope="module")
def reference(reference_library: Library) -> dict[str, object]:
    """The uninterrupted pipeline's result."""
    result = reference_library.snapshot()
    assert result["swap"] and result["names"] and result["rejections"]
    return result


FINISHING = 4242
"""The advisory lock a run recording its success waits for (see _stop_at_finishing)."""


def _stop_at_finishing(url: str) -> None:
    """Make a run that records its success (``runs``: running -> ok or partial) wait,
    before it does, for the advisory lock FINISHING whenever the test holds it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"""
            CREATE FUNCTION test_wait_finishing() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock({FINISHING}); RETURN NEW; END $$;
            CREATE TRIGGER test_wait_finishing BEFORE UPDATE ON runs FOR EACH ROW
            WHEN (OLD.status = 'running' AND NEW.status IN ('ok', 'partial'))
            EXECUTE FUNCTION test_wait_finishing()""")


@contextlib.contextmanager
def _held(url: str, *tables: str) -> Iterator[psycopg.Connection]:
    """Hold ``tables`` against writes (reads go on), or with none the advisory lock
    FINISHING, until the block ends: a command that writes one of them (or records its
    success) waits there, mid-run, for the test to strike."""
    with psycopg.connect(url) as conn:
        if tables:
            conn.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
        else:
            conn.execute(f"SELECT pg_advisory_xact_lock({FINISHING})")
        yield conn
        conn.rollback()


def _wait_blocked(proc: subprocess.Popen[str], url: str, locker: psycopg.Connection,
                  port: int | None = None) -> None:
    """Wait until ``proc`` is blocked by ``locker``'s lock; fail if it ended first. With
    ``port`` (a TCP server) the waiting backend must be one of this process's
    connections, a killed predecessor's backend may linger; on the embedded server (a
    socket) the process is the server's only other client."""
    me = locker.info.backend_pid
    with psycopg.connect(url, autocommit=True) as watcher:
        while proc.poll() is None:
            ports: list[int] = []
            if port is not None:
                with contextlib.suppress(psutil.Error):
                    ports = [c.laddr.port for c in psutil.Process(proc.pid).net_connections(
                        "tcp") if c.raddr and c.raddr.port == port]
            if watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid)) "
                    "AND (%s OR client_port = ANY(%s))", (me, port is None, ports)).fetchone():
                return
            time.sleep(0.02)  # polls the event: the command blocked
    pytest.fail(f"the command ended before the fault could strike: {proc.communicate()}")


def _assert_clean_exit(proc: subprocess.Popen[str], err: str, allowed: set[int]) -> None:
    assert proc.returncode in allowed, (proc.returncode, err)
    assert "Traceback" not in err, err
    if proc.returncode > 0:
        assert len([ln for ln in err.splitlines() if ln.startswith("Error: ")]) <= 1, err


def test_killed_at_every_stage_then_rerun_equals_an_uninterrupted_run(
        server: PasswordServer, reference: dict[str, object],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    lib = _library(server, tmp_path_factory.mktemp("killed"), "killed")
    _stop_at_finishing(lib.url)
    for n, name in enumerate(STAGES):
        if name not in KILLED_STAGES:
            lib.run(name)
            continue
        # Two kill points per stage: at the first write of its work, and with all its
        # work done, as it records its success; the signals take turns across stages.
        for sig, tables in [(KILLS[n % 3], (WRITES[name],)), (KILLS[(n + 1) % 3], ())]:
            assert _needed(lib, name), "a persons edit went through before its last fault"
            with _held(lib.url, *tables) as locker:
                proc = lib.start(name)
                _wait_blocked(proc, lib.url, locker, lib.server.port)
                proc.send_signal(sig)
            _, err = proc.communicate(timeout=DEADLINE_S)
            _assert_clean_exit(proc, err, {STOPPED_BY[sig]})
        if _needed(lib, name):
            lib.run(name)
    assert lib.snapshot() == reference


def _needed(lib: Library, stage: str) -> bool:
    """Whether ``stage`` still has to run (the persons edit is one decision: once made,
    running it again would be a second one)."""
    return stage != "persons" or not lib.rows("SELECT 1 FROM person_rejections")


def test_database_server_killed_mid_index_then_rerun_equals_an_uninterrupted_run(
        server: PasswordServer, reference: dict[str, object],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    lib = _library(server, tmp_path_factory.mktemp("dbkill"), "dbkill")
    with contextlib.suppress(psycopg.OperationalError), \
            _held(lib.url, "face_detections") as locker:  # photos catalogued, no face yet
        proc = lib.start("index")
        _wait_blocked(proc, lib.url, locker, server.port)
        server.stop_immediately()
    _, err = proc.communicate(timeout=DEADLINE_S)
    server.restart()
    # 2: "a server needed by the run died; re-run".
    _assert_clean_exit(proc, err, {2})
    assert "re-run" in err.lower()
    lib.run("index")
    _assert_index_equal(lib.snapshot(), reference)


def _assert_index_equal(got: dict[str, object], reference: dict[str, object]) -> None:
    """What index makes (the later stages are covered by the kill test above)."""
    for key in ("faces", "images", "running"):
        assert got[key] == reference[key], key


@contextlib.contextmanager
def _small_disk(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` owned by the database server's user (root only), at a path
    that user can reach."""
    where = Path(tempfile.mkdtemp(prefix="rbv-small-disk-"))
    where.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True, capture_output=True)
    try:
        entry = pwd.getpwnam("embedded_postgres")
        os.chown(where, entry.pw_uid, entry.pw_gid)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            where.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_database_disk_full_mid_index_then_rerun_equals_an_uninterrupted_run(
        server: PasswordServer, reference: dict[str, object],
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The database's tables live on a 24 MB tmpfs (a tablespace) that a filler file has
    all but filled: index fails with one line, and once space is freed a re-run ends
    where an uninterrupted run does."""
    root = tmp_path_factory.mktemp("diskfull")
    lib = _library(server, root, "diskfull")
    with _small_disk("24m") as disk:
        space = disk / "ts"
        space.mkdir()
        entry = pwd.getpwnam("embedded_postgres")
        os.chown(space, entry.pw_uid, entry.pw_gid)
        with psycopg.connect(lib.url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE small LOCATION '{space}'")
            try:
                conn.execute("ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE small")
                conn.execute("ALTER INDEX ALL IN TABLESPACE pg_default SET TABLESPACE small")
                filler = disk / "filler"
                free = shutil.disk_usage(disk).free
                with filler.open("wb") as f:
                    f.truncate(0)
                    f.write(b"\0" * max(0, free - 64 * 1024))
                done = subprocess.run([sys.executable, "-m", "rbv", *lib.stage("index")],
                                      env=lib.env(), text=True, capture_output=True,
                                      timeout=DEADLINE_S)
                assert done.returncode == 1, done.stderr
                assert "Traceback" not in done.stderr
                errors = [ln for ln in done.stderr.splitlines() if ln.startswith("Error: ")]
                assert any("disk is full" in ln for ln in errors), done.stderr
                filler.unlink()
                lib.run("index")
                _assert_index_equal(lib.snapshot(), reference)
            finally:
                conn.execute("ALTER TABLE ALL IN TABLESPACE small SET TABLESPACE pg_default")
                conn.execute("ALTER INDEX ALL IN TABLESPACE small SET TABLESPACE pg_default")
                conn.execute("DROP TABLESPACE small")


def _postgres_of(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _attached(pgdata: Path) -> list[int]:
    """The rbv processes the embedded server is shared by (the wheel's handle list)."""
    try:
        return list(json.loads((pgdata / ".handle_pids.json").read_text()))
    except (OSError, ValueError):
        return []


def _embedded_url_of(proc: subprocess.Popen[str], pgdata: Path) -> str:
    """Wait until ``proc`` uses the embedded server (it is on the server's handle list);
    the URL of rbv's database on it."""
    while proc.pid not in _attached(pgdata):
        if proc.poll() is not None:
            pytest.fail(f"the command ended before it used the server: {proc.communicate()}")
        time.sleep(0.02)  # polls the event: the process attached
    return postmaster.url(pgdata, postmaster.server_user(), DATABASE_NAME)


def test_embedded_server_stops_after_the_last_rbv_exits(tmp_path: Path) -> None:
    """index killed with SIGKILL (the server outlives it: nobody is left to stop it),
    then again with SIGTERM (now the last rbv: the server stops with it), then a clean
    re-run; no run is left running and no server is left behind."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env |= {"RBV_DATA_DIR": str(tmp_path / "rbv"), "RBV_MODEL_PACK": str(PACK)}
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in PHOTOS:
        shutil.copy(p, photos / f"{p.parent.name}_{p.name}")
    rbv = [sys.executable, "-m", "rbv"]
    subprocess.run([*rbv, "migrate"], env=env, check=True, capture_output=True,
                   timeout=DEADLINE_S)
    pgdata = (tmp_path / "rbv" / "pg").resolve()
    assert not _postgres_of(pgdata)
    for sig in (signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen([*rbv, "index", str(photos)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        url = _embedded_url_of(proc, pgdata)
        with _held(url, "face_detections", "runs") as locker:
            _wait_blocked(proc, url, locker)
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=DEADLINE_S)
        assert "Traceback" not in err, err
        assert proc.returncode == STOPPED_BY[sig], err
        if sig == signal.SIGTERM:
            assert not _postgres_of(pgdata), "the server outlived the last rbv process"
    again = subprocess.run([*rbv, "index", str(photos), "--json"], env=env, text=True,
                           capture_output=True, timeout=DEADLINE_S)
    assert again.returncode == 0, again.stderr
    stats = subprocess.run([*rbv, "stats", "--json"], env=env, text=True, capture_output=True,
                           timeout=DEADLINE_S)
    assert stats.returncode == 0, stats.stderr
    assert '"running"' not in stats.stdout, stats.stdout
    assert not _postgres_of(pgdata)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_output_disk_full_is_one_line_and_a_rerun_with_space_completes(
        reference_library: Library, reference: dict[str, object], tmp_path: Path) -> None:
    """refine writing crops onto a 64 KB disk: one line (exit 1); then with space, the
    output equals the uninterrupted run's (the database is the reference's: refine only
    reads it, and no fault touches its server)."""
    lib = replace(reference_library, root=tmp_path)
    with _small_disk("64k") as small:
        done = subprocess.run([sys.executable, "-m", "rbv", "refine", str(small), *REFINE],
                              env=lib.env(), text=True, capture_output=True,
                              timeout=DEADLINE_S)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        errors = [ln for ln in done.stderr.splitlines() if ln.startswith("Error: ")]
        assert len(errors) == 1 and "no space left" in errors[0], done.stderr
        assert errors[0].startswith(f"Error: {small}/"), done.stderr  # which disk: the path
    lib.run("refine")
    assert _tree(lib.out) == reference["out"]


def test_embedded_server_killed_under_its_last_client_is_one_error_line(
        tmp_path: Path) -> None:
    """The embedded PostgreSQL killed (SIGKILL) while index is its only client: one
    ``Error:`` line and exit 2, and no traceback from the server's exit hook after it
    (it would signal the dead server: psutil.NoSuchProcess)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env |= {"RBV_DATA_DIR": str(tmp_path / "rbv"), "RBV_MODEL_PACK": str(PACK)}
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in PHOTOS:
        shutil.copy(p, photos / f"{p.parent.name}_{p.name}")
    rbv = [sys.executable, "-m", "rbv"]
    subprocess.run([*rbv, "migrate"], env=env, check=True, capture_output=True,
                   timeout=DEADLINE_S)
    pgdata = (tmp_path / "rbv" / "pg").resolve()
    proc = subprocess.Popen([*rbv, "index", str(photos)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = _embedded_url_of(proc, pgdata)
    with contextlib.suppress(psycopg.OperationalError), \
            _held(url, "face_detections", "runs") as locker:
        _wait_blocked(proc, url, locker)
        (server,) = [p for p in _postgres_of(pgdata) if p.ppid() not in
                     {q.pid for q in _postgres_of(pgdata)}]
        server.kill()
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "NoSuchProcess" not in err, err
    assert err.rstrip().endswith("re-run; if it persists, see the server's log in its data "
                                 "directory") or "re-run when the server is up" in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and ("PostgreSQL" in errors[0] or "database" in errors[0]), err


def test_a_run_whose_database_connection_died_is_recorded_interrupted(db) -> None:  # type: ignore[no-untyped-def]
    from rbv.jobs.recording import recorded_run

    with pytest.raises(psycopg.OperationalError), \
            recorded_run(db, "index", {}) as run, db.connect() as conn:
        # What a server crash (and its recovery) does to the connection a run is using.
        with contextlib.suppress(psycopg.OperationalError):
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        conn.execute("SELECT 1")
    with db.connect() as conn:
        status = conn.execute("SELECT status FROM runs WHERE id = %s", (run.id,)).fetchone()
    assert status == ("interrupted",)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_embedded_server_on_a_full_disk_says_so_in_one_line() -> None:
    """The embedded server's data directory on a disk too small for it: one line that
    says the disk is full and where, not the pg_ctl/initdb command line."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    with _small_disk("8m") as disk:
        env["RBV_DATA_DIR"] = str(disk / "rbv")
        done = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, text=True,
                              capture_output=True, timeout=DEADLINE_S)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: could not start the embedded PostgreSQL: the disk "
                               f"holding {disk}/rbv/pg is full"), done.stderr
    assert "pg_ctl" not in done.stderr and "initdb" not in done.stderr


def test_a_data_directory_that_is_a_postgresql_folder_is_refused_untouched(
        tmp_path: Path) -> None:
    """``--data-dir`` naming a PostgreSQL server's own folder (its parent was meant):
    one line that says so and which folder to give; the folder is left as it was (a
    server started inside it made it readable by others, and PostgreSQL then refused to
    start the server it is)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    pgdata = tmp_path / "pg"
    pgdata.mkdir(mode=0o700)
    (pgdata / "PG_VERSION").write_text("17\n")
    before = sorted(p.name for p in pgdata.iterdir())
    env["RBV_DATA_DIR"] = str(pgdata)
    done = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, text=True,
                          capture_output=True, timeout=DEADLINE_S)
    assert done.returncode == 1, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines == [f"Error: the data directory {pgdata} is itself a PostgreSQL server's "
                     f"folder; rbv keeps its server in <data directory>/pg; pass "
                     f"--data-dir {tmp_path} (or set RBV_DATA_DIR) instead"], done.stderr
    assert sorted(p.name for p in pgdata.iterdir()) == before
    assert stat.S_IMODE(pgdata.stat().st_mode) == 0o700
