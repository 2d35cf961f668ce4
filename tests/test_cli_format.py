"""How the CLI shows things: flags in --help, speeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from typer.main import get_command

from rbv.cli.app import COMMANDS, LazyCommands, app
from rbv.cli.progress import rate
from tests.conftest import run_cli


@pytest.mark.parametrize(("per_second", "shown"), [
    (126155.3, "126,000 img/s"), (1234.5, "1,230 img/s"), (999.7, "1,000 img/s"),
    (12.345, "12.3 img/s"), (0.5123, "0.512 img/s"), (0.0, "0 img/s"),
])
def test_rates_show_three_significant_digits(per_second: float, shown: str) -> None:
    assert rate(per_second) == shown


@pytest.mark.parametrize("command", [[], ["persons", "list"], ["persons", "split"],
                                     ["import-folders"]])
def test_boolean_flags_show_no_type_in_help(cli, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(cli, *command, "--help")
    assert result.exit_code == 0, result.output
    assert "--" in result.stdout and "<bool>" not in result.stdout


def test_what_rbv_changes_in_typer_still_holds(cli) -> None:  # type: ignore[no-untyped-def]
    """rbv leans on Typer internals (typer is capped in pyproject.toml): its usage errors
    (``typer._click.exceptions``) become one ``Error:`` line, except "no arguments", which
    is the help; ``TyperOption.display_type_rich`` gives flags no type, while options
    that take a value keep theirs. A Typer that moves these fails here."""
    for command in ([], ["persons"]):
        shown = run_cli(cli, *command)
        assert shown.exit_code == 2 and "Error" not in shown.output, shown.output
        assert shown.output.lstrip().startswith(f"Usage: rbv {' '.join(command)}".rstrip())
    wrong = run_cli(cli, "persons", "list", "--limit", "x")
    assert wrong.exit_code == 1 and wrong.output.count("\n") == 1, wrong.output
    assert wrong.output.startswith("Error: Invalid value for '--limit'")
    assert wrong.output.rstrip().endswith("(see `rbv persons list --help`)")
    rows = {line.split()[1]: line for line in run_cli(cli, "--help").output.splitlines()
            if line.startswith("│ --")}
    assert "<path>" in rows["--data-dir"] and "<str>" in rows["--database"]
    for flag in ("--version", "--install-completion", "--help"):
        assert "<" not in rows[flag], rows[flag]


def _helps() -> Iterator[tuple[list[str], Any]]:
    """Every command's path and click command, groups and the root included."""
    commands = LazyCommands(dict(COMMANDS))
    yield [], get_command(app)
    for name in COMMANDS:
        yield [name], commands[name]
        for sub_name, sub in getattr(commands[name], "commands", {}).items():
            yield [name, sub_name], sub


@pytest.mark.parametrize(("path", "command"), [
    pytest.param(path, command, id=" ".join(["rbv", *path])) for path, command in _helps()])
def test_every_help_at_80_columns_cuts_no_name_and_no_word(
        cli, path: list[str], command: Any) -> None:  # type: ignore[no-untyped-def]
    """Issue 52 #8: at 80 columns `refine --help` showed "--outlier-min-clu…" and many
    commands "(postgresql://user:pass@…" in --database's help. Every option name is whole,
    every line fits, no "…" is added, and the --database help reads whole (a word wider
    than its column folds onto the next line)."""
    shown = run_cli(cli, *path, "--help", env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    words = {w for line in lines for w in line.replace("│", " ").split()}
    for param in command.params:
        for name in (*param.opts, *param.secondary_opts):
            assert not name.startswith("-") or name in words, (name, shown.stdout)
    written = " ".join([command.help or "", *(getattr(p, "help", None) or ""
                                              for p in command.params)])
    assert shown.stdout.count("…") <= written.count("…"), shown.stdout
    database = next((p.help for p in command.params if p.name == "database"), None)
    if database:
        assert "".join(database.split()) in "".join(shown.stdout.replace("│", "").split())
