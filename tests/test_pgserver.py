"""The tests' own PostgreSQL (tests/pgserver.py): reachable by its user for as long as
it runs, whatever other pytest runs do meanwhile, and gone when its tests are done."""

from __future__ import annotations

import os
import select
import stat

from rbv.store.server.postmaster import server_user
from tests.pgserver import PasswordServer

ENDS_WITHIN_S = 60


def test_the_way_to_the_servers_data_is_its_users_own_or_open_to_all(
        pg_server: PasswordServer) -> None:
    """Issue 63 #6: under pytest -n 2, the session server's `pg_ctl stop` was refused
    ("could not access directory …/popen-gw0/pgserver0/data: Permission denied") and the
    server was left running. As root it runs as its own user, let through pytest's 0700
    folders by an ACL entry; a pytest run started meanwhile makes /tmp/pytest-of-USER
    0700 again, which masks that entry. No folder on the way may need one."""
    uid = server_user().uid
    for folder in pg_server.pgdata.parents:
        mode = folder.stat().st_mode
        assert folder.stat().st_uid == uid or mode & stat.S_IXOTH, (folder, oct(mode))


def test_a_server_is_stopped_and_its_folder_removed_when_done() -> None:
    with PasswordServer.running() as server:
        pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        postmaster = os.pidfd_open(pid)  # readable once the process has ended
    try:
        assert not server.pgdata.parent.exists()
        # pg_ctl returns when the pid file is gone, a moment before the process ends
        ended, _, _ = select.select([postmaster], [], [], ENDS_WITHIN_S)
        assert ended, f"PostgreSQL {pid} still runs {ENDS_WITHIN_S} s after it was stopped"
    finally:
        os.close(postmaster)
