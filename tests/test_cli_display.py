"""What users read at an 80-column terminal, and shell completion."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rbv.cli.tables import print_table
from rbv.config import Settings
from tests.conftest import run_cli

LONG_NAME = "Arnold_Schwarzenegger"


def _rendered(table: Table, **kwargs: object) -> str:
    out = io.StringIO()
    print_table(table, console=Console(file=out, width=80), **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def test_a_wide_table_leaves_out_optional_columns_before_cutting_a_name() -> None:
    table = Table("faceset", "name", "in", "outliers", "small", "dups", "dropped", "written",
                  "candidates")
    table.add_row("faceset_001", "Jerry_Seinfeld", "12", "1", "2", "3", "0", "10", "4")
    text = _rendered(table, optional=["candidates", "dups"])
    assert "faceset_001" in text and "Jerry_Seinfeld" in text and "…" not in text
    assert "candidates" not in text and "written" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_persons_list_at_80_columns_shows_whole_short_ids_names_and_pack(
    cli, faces_settings: Settings
) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    assert run_cli(cli, "-d", url, "persons", "name", persons[0]["id"], LONG_NAME
                   ).exit_code == 0
    result = run_cli(cli, "-d", url, "persons", "list", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    for person in persons:  # the first 8 characters: any unique prefix is accepted
        assert any(line.split()[:1] == [person["id"][:8]] for line in lines), person["id"]
    named = next(line for line in lines if persons[0]["id"][:8] in line)
    assert LONG_NAME in named
    assert "persons of scrfd_sface" in result.stdout  # one pack: named once, in the title
    # A name wider than the terminal folds; the ids stay whole (issue 31 #8: a
    # 20,000-character name wrapped the id column; names now stop at 200, issue 62)
    wide = "Ada" + "x" * 197
    assert run_cli(cli, "-d", url, "persons", "name", persons[0]["id"], wide).exit_code == 0
    result = run_cli(cli, "-d", url, "persons", "list", env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for person in persons:
        assert any(line.split()[:1] == [person["id"][:8]] for line in lines), person["id"]
    assert "".join(w for line in lines for w in line.split() if set(w) <= set("Adax")) == wide
    stats = run_cli(cli, "-d", url, "stats", env={"COLUMNS": "80"})
    assert stats.exit_code == 0, stats.output
    assert "…" not in stats.stdout and "scrfd_sface " in stats.stdout


def test_at_80_columns_the_setting_wraps_a_short_list_names_its_option_and_none_is_said(
        cli, faces_settings: Settings) -> None:
    """Issue 52 #6: `cluster` and `stats` printed the clustering setting (the impostor
    model's mu, sigma, tau …) on one ~200-character line, cut mid-word by the terminal;
    `persons list` said "(first 50)" without the option that lists more; `dedup` printed
    "0 byte-identical groups" over an empty table."""
    url = str(faces_settings.database_url)
    clustered = run_cli(cli, "-d", url, "cluster", "--verbose", env={"COLUMNS": "80"})
    assert clustered.exit_code == 0, clustered.output
    check = json.loads(run_cli(cli, "-d", url, "stats", "--json").stdout
                       )["packs"][0]["clustering"]
    setting, in_words = check["setting"], check["in_words"]
    assert "impostor model mu" in setting and len(setting) > 80
    stats = run_cli(cli, "-d", url, "stats", "--verbose", env={"COLUMNS": "80"})
    for shown in (clustered, stats):
        lines = shown.stdout.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= 80, shown.stdout
        assert f"scrfd_sface: {setting}" in " ".join(shown.stdout.split())
    # Issue 62 #12: without --verbose, stats words the setting without mu, sigma, tau.
    plain = run_cli(cli, "-d", url, "stats", env={"COLUMNS": "80"}).stdout
    assert f"scrfd_sface: {in_words}" in " ".join(plain.split())
    assert "mu " not in plain and "sigma" not in plain and "tau" not in plain

    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    listed = run_cli(cli, "-d", url, "persons", "list", "--limit", "3", env={"COLUMNS": "80"})
    assert listed.stdout.splitlines()[-1] == (
        f"The first 3 shown: --limit 0 lists all {len(persons)} (--limit N the first N).")
    every = run_cli(cli, "-d", url, "persons", "list", "--limit", "0", env={"COLUMNS": "80"})
    assert "--limit" not in every.stdout
    assert sum(line.split()[:1] in ([p["id"][:8]] for p in persons)
               for line in every.stdout.splitlines()) == len(persons)

    dedup = run_cli(cli, "-d", url, "dedup", env={"COLUMNS": "80"})
    assert dedup.exit_code == 0, dedup.output
    report = json.loads(run_cli(cli, "-d", url, "dedup", "--json").stdout)
    assert not report["exact"] and not report["near"]
    assert dedup.stdout.splitlines() == [
        "No byte-identical files: no content is found under two paths.",
        f"No near-duplicate photos among {report['images']} photos."]


def _from_bash(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``rbv ARGS`` typed at a bash prompt: Typer finds the user's shell among its parent
    processes, so a suite started outside a shell (cron, a detached job) must not decide
    what these commands see."""
    rbv = shlex.join([str(Path(sys.executable).with_name("rbv")), *args])  # the entry point
    return subprocess.run(["bash", "-c", f"{rbv}; exit $?"], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(home), "DATABASE_URL": ""},
                          timeout=300)


def test_shell_completion_is_shown_installed_and_completes_commands(
    cli, tmp_path: Path
) -> None:
    shown = _from_bash("--show-completion", "bash", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "_RBV_COMPLETE=complete_bash" in shown.stdout

    installed = _from_bash("--install-completion", "bash", home=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert "rbv" in (tmp_path / ".bashrc").read_text()
    assert "_RBV_COMPLETE" in (tmp_path / ".bash_completions" / "rbv.sh").read_text()

    # what bash asks when the user presses Tab after `rbv ref` and `rbv refine --min-i`
    for words, expected in (("rbv ref", "refine"), ("rbv refine --min-i", "--min-images")):
        done = run_cli(cli, env={"_RBV_COMPLETE": "complete_bash", "COMP_WORDS": words,
                                 "COMP_CWORD": str(len(words.split()) - 1)})
        assert done.exit_code == 0, done.output
        assert done.stdout.split() == [expected]
