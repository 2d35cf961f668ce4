"""``rbv db start|url|stop``: the embedded server kept up for other tools (issue 62 #10).
The seed's lines take ``--database "$DATABASE_URL"`` and users fix things in psql, but
the embedded server stopped as rbv exited, so nothing gave a URL that kept working."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from rbv.config import Settings
from tests.conftest import run_cli
from tests.pgserver import PASSWORD


def _rbv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rbv", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


@pytest.mark.slow  # embedded servers started in rbv subprocesses
def test_db_start_keeps_the_embedded_server_up_for_its_url_until_db_stop(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env.update(RBV_DATA_DIR=str(tmp_path / "rbv"), RBV_SERVER_LINGER="0")
    pgdata = (tmp_path / "rbv" / "pg").resolve()

    started = _rbv("db", "start", env=env)
    assert (started.returncode, started.stderr) == (0, ""), started.stderr
    [url] = started.stdout.splitlines()  # one line: `export DATABASE_URL=$(rbv db start)`
    # The socket rbv itself uses: no password, no TCP port.
    assert url == f"postgresql://postgres@/rbv?host={pgdata}"
    held = tmp_path / "rbv" / ".pg.held"
    assert stat.S_IMODE(held.stat().st_mode) == 0o600

    # rbv has exited, and nothing is left to stop the server when a linger runs out: no
    # watcher took its place, even after a command that would have left one.
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    assert _answers(url)
    given = {**env, "DATABASE_URL": url, "RBV_SERVER_LINGER": "1"}
    assert _rbv("migrate", env=given).returncode == 0
    stats = _rbv("stats", "--json", env={**env, "RBV_SERVER_LINGER": "1"})
    assert stats.returncode == 0, stats.stderr
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
    assert _answers(url)
    again = _rbv("db", "url", env=given)  # the shell's $DATABASE_URL is that server
    assert (again.returncode, again.stdout) == (0, url + "\n"), again.stderr
    restarted = _rbv("db", "start", env=given)
    assert (restarted.returncode, restarted.stdout) == (0, url + "\n"), restarted.stderr

    stopped = _rbv("db", "stop", env=given)
    assert stopped.returncode == 0, stopped.stderr
    assert " ".join(stopped.stdout.split()) == f"Stopped the embedded server in {pgdata}."
    assert not _answers(url)
    assert not held.exists()
    gone = _rbv("db", "url", env=env)
    assert gone.returncode != 0 and gone.stdout == ""
    assert gone.stderr == (f"Error: no embedded server is kept up in {pgdata}; `rbv db "
                           "start` starts one and prints its URL\n")
    # Without the hold the last rbv out stops it again, as before.
    assert _rbv("stats", env=env).returncode == 0
    assert not _answers(url)


def test_db_commands_with_another_server_say_there_is_nothing_to_start(
        cli: CliRunner, settings: Settings, tmp_path: Path) -> None:
    for command, nothing in (("start", "nothing to start"), ("stop", "nothing to stop")):
        said = run_cli(cli, "--data-dir", str(tmp_path / "rbv"), "-d",
                       str(settings.database_url), "db", command)
        assert said.exit_code == 1
        line = said.stderr.strip()
        assert "\n" not in line and line.startswith("Error: --database / DATABASE_URL names ")
        assert f"a server rbv does not run: there is {nothing}" in line
        assert PASSWORD not in said.output and "Traceback" not in said.output
    assert not (tmp_path / "rbv" / "pg").exists()  # nothing was started
