"""The embedded PostgreSQL and rbv's own files on a shared machine (issue 54 #1, #2, #5,
#10): no other local user reaches the server or trusts its way in, running as root opens
no folder of the host, nothing rbv makes is readable by others, and a server killed
leaves nothing that stops the next start. Another local user is a real second uid
(``setpriv``), so these run as root."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from rbv.store.server.postmaster import postgres_bin
from rbv.store.server.private import socket_dir
from tests.conftest import FACES, PACK

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                       reason="acting as another local user needs root and setpriv"),
    pytest.mark.slow,  # ~15 s: subprocesses as other users
]

NOBODY = 65534
DEADLINE_S = 300


def _as(uid: int, gid: int, *command: str, reach_all: bool = False) -> list[str]:
    """``command`` run as another local user; ``reach_all``: one that passes every
    folder's permissions (to test what the server itself lets in)."""
    caps = ["--inh-caps=+dac_override", "--ambient-caps=+dac_override"] if reach_all else []
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *caps, *command]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "RBV_DATABASE_URL", "XDG_RUNTIME_DIR")}
    return {**env, "RBV_DATA_DIR": str(data_dir), "RBV_SERVER_LINGER": "0", **extra}


def _rbv(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rbv", *args], env=env, text=True,
                          capture_output=True, timeout=DEADLINE_S, check=False)


def _socket_dir(pgdata: Path) -> Path:
    return Path((pgdata / "postmaster.pid").read_text().splitlines()[4].strip())


def _psql(uid: int, socket_dir: Path, *, reach_all: bool = False
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as(uid, uid, str(postgres_bin() / "psql"), "-h", str(socket_dir), "-U", "postgres",
            "-d", "rbv", "-Atc", "SELECT current_user", reach_all=reach_all),
        text=True, capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env={"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "10"})


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The embedded server of a data folder whose path is too long for its socket (a
    long NAS mount), no XDG_RUNTIME_DIR (cron, ssh, su), held up by an rbv process:
    (data folder, pgdata)."""
    data_dir = tmp_path / ("x" * 40) / ("y" * 44)
    env = _env(data_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; from rbv.config import Settings; "
         "from rbv.store import open_database; open_database(Settings.from_env(os.environ),"
         " require_schema=False).connect().close(); print('ready', flush=True); "
         "sys.stdin.readline()"],
        env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready", \
        holder.communicate(timeout=60)
    try:
        yield data_dir, (data_dir / "pg").resolve()
    finally:
        holder.communicate("\n", timeout=DEADLINE_S)


def test_another_user_cannot_reach_the_server_of_a_long_data_folder(
        running: tuple[Path, Path]) -> None:
    """#1: the socket of a data folder whose path is too long for it went to a 0755/0777
    shared folder, and the server trusted every local connection: another uid was its
    superuser. The socket's folder is 0700 and this user's (the server's, as root),
    another uid is refused there, and even one that passes every folder's permissions is
    refused by the server itself (no ``trust`` in pg_hba.conf)."""
    _, pgdata = running
    sockets = _socket_dir(pgdata)
    st = os.lstat(sockets)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert st.st_uid == pgdata.stat().st_uid
    assert _psql(0, sockets).stdout.strip() == "postgres"  # rbv's own user gets in
    for uid in (NOBODY, 1):
        refused = _psql(uid, sockets)
        assert refused.returncode != 0 and "postgres" not in refused.stdout, refused
        forced = _psql(uid, sockets, reach_all=True)
        assert forced.returncode != 0, forced
        assert "authentication failed" in forced.stderr, forced.stderr
    hba = [ln.split() for ln in (pgdata / "pg_hba.conf").read_text().splitlines()
           if ln.strip() and not ln.lstrip().startswith("#")]
    assert hba and all("trust" not in line for line in hba), hba


def test_a_socket_folder_another_user_made_first_is_refused_in_one_line(
        tmp_path: Path) -> None:
    """A short socket folder under /tmp is named after the data folder: another user can
    make it first (with a socket of their own inside). rbv checks it before use and
    refuses with one line instead of connecting there."""
    data_dir = tmp_path / ("x" * 40) / ("y" * 44)
    first = _rbv(_env(data_dir), "migrate")
    assert first.returncode == 0, first.stderr
    pgdata = (data_dir / "pg").resolve()
    sockets = socket_dir(pgdata, pgdata.stat().st_uid)
    assert sockets.parent == Path("/tmp") and not sockets.exists()  # gone with the server
    subprocess.run(_as(NOBODY, NOBODY, "mkdir", "-m", "0777", str(sockets)), check=True)
    try:
        done = _rbv(_env(data_dir), "stats")
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    assert done.returncode == 1, done
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {sockets} "), done.stderr
    assert "another user" in lines[0]


def test_root_leaves_the_folders_above_its_data_folder_closed(tmp_path: Path) -> None:
    """#2: as root, ``rbv migrate`` made a 0700 HOME and every folder above the data
    folder 0755. They keep their owner and their mode for others; the database's system
    user passes through on a search-only ACL entry of its own, so neither another user
    nor the folder's own group can list or pass it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "notes.txt").write_text("private")
    before = home.stat()
    done = _rbv(_env(home / ".local" / "share" / "rbv"), "migrate")
    assert done.returncode == 0, done.stderr
    after = home.stat()
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert stat.S_IMODE(after.st_mode) & 0o707 == 0o700, oct(after.st_mode)
    for folder in (home, home / ".local", home / ".local" / "share"):
        assert stat.S_IMODE(folder.stat().st_mode) & 0o007 == 0, folder
    for uid, gid in ((NOBODY, NOBODY), (NOBODY, before.st_gid), (1, before.st_gid)):
        for look in (["ls", str(home)], ["cat", str(home / "notes.txt")],
                     ["ls", str(home / ".local")]):
            seen = subprocess.run(_as(uid, gid, *look), capture_output=True, check=False)
            assert seen.returncode != 0, (uid, gid, look)


def test_nothing_rbv_makes_is_open_to_other_users(tmp_path: Path) -> None:
    """#5: the data folder was 0755 and what rbv wrote there 0644. After migrate, index
    and cluster, nothing in it gives others anything, and the group of a folder holds
    nothing but the server user's search-only entry (as root)."""
    data_dir = tmp_path / "rbv"
    photos = tmp_path / "photos"
    photos.mkdir()
    for person in ("Angelina_Jolie", "Barack_Obama"):
        for p in sorted((FACES / person).iterdir())[:3]:
            shutil.copy(p, photos / f"{person}_{p.name}")
    env = _env(data_dir, RBV_MODEL_PACK=str(PACK))
    for args in (["migrate"], ["index", str(photos)], ["cluster"]):
        done = _rbv(env, *args)
        assert done.returncode == 0, (args, done.stderr)
    open_to_others = subprocess.run(["find", str(data_dir), "-perm", "/o=rwx"],
                                    capture_output=True, text=True, check=True).stdout
    assert open_to_others == ""
    group = subprocess.run(["find", str(data_dir), "-perm", "/g=rwx"],
                           capture_output=True, text=True, check=True).stdout.split()
    for path in map(Path, group):  # the server user's way through, nothing else
        assert path == data_dir, path
        seen = subprocess.run(_as(NOBODY, path.stat().st_gid, "ls", str(path)),
                              capture_output=True, check=False)
        assert seen.returncode != 0
    for uid in (NOBODY, 1):
        seen = subprocess.run(_as(uid, uid, "find", str(data_dir)), capture_output=True,
                              text=True, check=False)
        assert seen.stdout.strip() in ("", str(data_dir)), seen.stdout


def _until_dead(proc: psutil.Process) -> None:
    """Wait until ``proc`` is gone or a zombie (its parent may never reap it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"{proc.pid} outlived SIGKILL")


def test_a_server_killed_starts_again_over_its_stale_lock_files(tmp_path: Path) -> None:
    """#10: a restart right after the database was killed exited 1 ("lock file … already
    exists"): the killed server's lock files named a pid that was alive again (another
    process's, or a zombie nobody reaped). The next command starts the server."""
    data_dir = tmp_path / "rbv"
    env = _env(data_dir, RBV_SERVER_LINGER="600")
    assert _rbv(env, "migrate").returncode == 0
    pgdata = (data_dir / "pg").resolve()
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    server = psutil.Process(int(lines[0]))
    sockets = _socket_dir(pgdata)
    watchers = json.loads((pgdata / ".handle_pids.json").read_text())
    server.kill()
    _until_dead(server)
    # The pid it held, now another live process of the server's user (a zombie nobody
    # reaped reads the same): PostgreSQL cannot tell it from a server still running.
    owner = pgdata.stat().st_uid
    other = subprocess.Popen(_as(owner, owner, "cat"), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)
    try:
        for lock in (pgdata / "postmaster.pid", sockets / ".s.PGSQL.5432.lock"):
            text = lock.read_text().splitlines()
            lock.write_text("\n".join([str(other.pid), *text[1:]]) + "\n")
        done = _rbv(_env(data_dir), "stats", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["images"]["images"] == 0
    finally:
        other.communicate(timeout=60)
        for pid in watchers:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGTERM)


def test_a_server_an_older_rbv_set_up_to_trust_everyone_is_closed(tmp_path: Path) -> None:
    """A data folder initdb'ed by an older rbv (``trust`` for every local connection),
    its server still running: the next command rewrites who may connect and has the
    running server reload it, so another user is refused from then on; the data stays."""
    data_dir = tmp_path / "rbv"
    env = _env(data_dir, RBV_SERVER_LINGER="600")
    assert _rbv(env, "migrate").returncode == 0
    pgdata = (data_dir / "pg").resolve()
    server = int((pgdata / "postmaster.pid").read_text().split()[0])
    watchers = json.loads((pgdata / ".handle_pids.json").read_text())
    try:
        (pgdata / "pg_hba.conf").write_text("local all all trust\nhost all all all trust\n")
        subprocess.run(_as(pgdata.stat().st_uid, pgdata.stat().st_gid,
                           str(postgres_bin() / "pg_ctl"), "-D", str(pgdata), "reload"),
                       check=True, capture_output=True)
        sockets = _socket_dir(pgdata)
        assert _psql(NOBODY, sockets, reach_all=True).returncode == 0  # as it was
        done = _rbv(env, "stats", "--json")
        assert done.returncode == 0, done.stderr
        assert int((pgdata / "postmaster.pid").read_text().split()[0]) == server
        refused = _psql(NOBODY, sockets, reach_all=True)
        assert refused.returncode != 0 and "authentication failed" in refused.stderr
        assert "trust" not in (pgdata / "pg_hba.conf").read_text()
    finally:
        watchers += json.loads((pgdata / ".handle_pids.json").read_text())  # stats' own
        for pid in watchers:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGTERM)


@pytest.fixture
def passable() -> Iterator[Path]:
    """A folder under /tmp that every user may pass through (not list)."""
    base = Path(tempfile.mkdtemp())
    base.chmod(0o711)
    yield base
    shutil.rmtree(base)


def test_the_server_users_way_through_grants_nobody_else_anything(passable: Path) -> None:
    """The ACL entry that lets the server's user through a folder changes no one else's
    rights: a group that could list the folder still can, others still cannot pass."""
    from rbv.store.server.private import grant_search

    shared = passable / "shared"  # the owner's group may list it
    shared.mkdir(mode=0o750)
    os.chown(shared, 0, NOBODY)
    inner = shared / "inner"
    inner.mkdir(mode=0o700)
    grant_search(inner / "pg", 1)  # uid 1 (daemon) as the server's user
    assert stat.S_IMODE(shared.stat().st_mode) & 0o007 == 0

    def can(uid: int, gid: int, *command: str) -> bool:
        return subprocess.run(_as(uid, gid, *command), capture_output=True).returncode == 0
    assert can(NOBODY, NOBODY, "ls", str(shared))  # the group keeps what it had
    assert not can(NOBODY, NOBODY, "ls", str(inner))
    assert not can(2, 2, "ls", str(shared)) and not can(2, 2, "stat", str(inner))
    assert can(1, 1, "stat", str(inner)) and not can(1, 1, "ls", str(inner))


def test_a_data_folder_another_user_owns_or_can_write_is_refused(passable: Path) -> None:
    """Issue 62 #2: a data folder another user made first (0777, in a sticky folder like
    /tmp) was taken as it was: `migrate` exited 0 and left it 0777, and that user could
    rename ``pg/`` away. As ssh refuses a key file, rbv refuses with one line a data folder
    another user owns, or one that (or a folder above it) another user can write, and
    changes nothing there; a sticky parent and a group of the owner's alone are fine."""
    shared = passable / "shared"  # like /tmp: every user makes folders, none moves others'
    shared.mkdir()
    shared.chmod(0o1777)
    for mode in ("0777", "0700"):
        subprocess.run(_as(NOBODY, NOBODY, "mkdir", "-m", mode, str(shared / mode)), check=True)
    open_above = passable / "open"
    open_above.mkdir()
    open_above.chmod(0o777)
    team = passable / "team"  # group nogroup: nobody's group too
    team.mkdir(mode=0o770)
    os.chown(team, 0, NOBODY)
    team.chmod(0o770)
    refusals = {shared / "0777": "(rbv's data folder) belongs to user nobody (uid 65534)",
                shared / "0700": "(rbv's data folder) belongs to user nobody (uid 65534)",
                open_above / "rbv": f"{open_above} (a folder above rbv's data folder) is "
                                    "0777: every user can write to it",
                team / "rbv": f"{team} (a folder above rbv's data folder) is 0770: group "
                              "nogroup (gid 65534) can write to it"}
    for data_dir, said in refusals.items():
        before = {p: (p.stat().st_uid, p.stat().st_mode) for p in (data_dir, data_dir.parent)
                  if p.exists()}
        done = _rbv(_env(data_dir), "migrate")
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        assert done.returncode == 1 and len(lines) == 1, (data_dir, done.stderr)
        assert lines[0].startswith("Error: ") and said in lines[0], lines[0]
        assert {p: (p.stat().st_uid, p.stat().st_mode) for p in before} == before
        assert not data_dir.exists() or not any(data_dir.iterdir())

    mine = shared / "mine"  # through the sticky folder, in a group of root's alone
    mine.mkdir(mode=0o770)
    mine.chmod(0o770)
    done = _rbv(_env(mine), "migrate")
    assert done.returncode == 0, done.stderr
    assert (mine / "pg").is_dir() and stat.S_IMODE(mine.stat().st_mode) & 0o077 == 0o010
