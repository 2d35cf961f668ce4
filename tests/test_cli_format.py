"""How the CLI shows things: flags in --help, speeds."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.main import get_command

from rbv.cli.app import COMMANDS, LazyCommands, app, reflow_help
from rbv.cli.common import PLAIN_HELP
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


@pytest.mark.parametrize("group", [[], ["persons"], ["faces"], ["db"]])
def test_a_group_run_bare_shows_its_help(cli, group: list[str]) -> None:  # type: ignore[no-untyped-def]
    """`rbv` or `rbv persons` alone is a request for help, not a usage error."""
    shown = run_cli(cli, *group)
    assert shown.exit_code == 2 and "Error" not in shown.output, shown.output
    assert shown.output.lstrip().startswith(f"Usage: rbv {' '.join(group)}".rstrip())
    assert "Commands:" in shown.output


@pytest.mark.parametrize(("args", "error", "help_of"), [
    (["persons", "list", "--limit", "x"], "Invalid value for '--limit'", "rbv persons list"),
    (["persons", "list", "--bogus"], "No such option: --bogus", "rbv persons list"),
    (["bogus"], "No such command 'bogus'", "rbv")])
def test_a_usage_error_is_one_line_naming_the_help(  # type: ignore[no-untyped-def]
        cli, args: list[str], error: str, help_of: str) -> None:
    wrong = run_cli(cli, *args)
    assert wrong.exit_code == 1 and wrong.output.count("\n") == 1, wrong.output
    assert wrong.output.startswith(f"Error: {error}"), wrong.output
    assert wrong.output.rstrip().endswith(f"(see `{help_of} --help`)"), wrong.output


def test_options_that_take_a_value_show_its_type_in_help(cli) -> None:  # type: ignore[no-untyped-def]
    names = {}
    shown = run_cli(cli, "--help").stdout
    for line in shown.partition("\nOptions:\n")[2].splitlines():
        option, _, _ = line.strip().partition("  ")
        if not option.startswith("-"):
            continue
        for name in option.replace(",", " ").split():
            names.setdefault(name, option)
    assert names["--data-dir"] == "--data-dir <path>"
    assert names["--database"] == "-d, --database <str>"
    for flag in ("--version", "--install-completion", "--help"):
        assert "<" not in names[flag], names[flag]


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
    commands "(postgresql://user:pass@…" in --database's help. Every line fits, every
    option name is whole, no "…" is added, the --database help reads whole, a group
    lists each command with its first paragraph whole, and every line of an example
    is one line of the help, as written (to be copied)."""
    shown = run_cli(cli, *path, "--help", env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    words = {w for line in lines for w in line.replace(",", " ").split()}
    for param in command.params:
        for name in (*param.opts, *param.secondary_opts):
            assert not name.startswith("-") or name in words, (name, shown.stdout)
    written = " ".join([command.help or "", *(getattr(p, "help", None) or ""
                                              for p in command.params)])
    assert shown.stdout.count("…") <= written.count("…"), shown.stdout
    read = "".join(shown.stdout.split())
    database = next((p.help for p in command.params if p.name == "database"), None)
    if database:
        assert "".join(database.split()) in read
    for sub in getattr(command, "commands", {}).values():
        first = inspect.cleandoc(sub.help or "").split("\n\n")[0]
        assert "".join(first.split()) in read, (first, shown.stdout)
    shown_lines = {line.strip() for line in lines}
    for block in inspect.cleandoc(command.help or "").split("\n\n"):
        block = block.removeprefix("\b\n")
        if block.startswith(" "):
            for line in block.splitlines():
                assert line.strip() in shown_lines, (line, shown.stdout)


def test_an_example_of_several_lines_keeps_its_line_breaks() -> None:
    """A paragraph's line breaks are the docstring's, not the reader's: --help joins them;
    an indented block (an example, a shell session) is shown line for line."""
    one = typer.Typer(rich_markup_mode=PLAIN_HELP)

    @one.command()
    def serve() -> None:
        """Serve the review pages on
        a local port.

        Example:

            rbv db start
            rbv serve --port 8000
        """

    command = get_command(one)
    reflow_help(command)
    shown = typer.Context(command, info_name="serve", terminal_width=80).get_help()
    lines = [line.strip() for line in shown.splitlines()]
    assert "Serve the review pages on a local port." in lines
    assert lines[lines.index("rbv db start") + 1] == "rbv serve --port 8000", shown
