"""Issue 63: below the front ends (``cli/`` and ``serve/``) rbv speaks in ids, results
and refusals as data: no text a job, a query or a format raises or returns names an
``rbv`` command or a ``--flag``; a refusal says why and carries its remedies
(:class:`rbv.errors.Remedy`), which the CLI words as command lines and serve as buttons.

No module below the front ends holds one (there were 167 such strings when the issue
was filed)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer.main

from rbv.cli.app import app

SRC = Path(__file__).resolve().parents[1] / "src" / "rbv"
FRONT_ENDS = ("cli/", "serve/")


def _commands() -> set[str]:
    group = typer.main.get_command(app)
    return set(getattr(group, "commands", {}))


_NAMES = "|".join(sorted(_commands()))
_PATTERN = re.compile(rf"`rbv\b|\brbv (?:{_NAMES})\b|(?<![\w-])--[a-z][a-z-]+")

RECORDED = {"audit --fix"}
"""Names of commands as the edit log records them (data, not a sentence to a user)."""



def _docstrings(tree: ast.Module) -> set[int]:
    """The string expressions that are documentation (docstrings, attribute notes)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def _worded(text: str) -> bool:
    """Text that may reach a person: not one word alone (a program's argument such as
    ``--auth-local=peer``, a key)."""
    return len(text.split()) > 1 or text.startswith(" ") or text.endswith(" ")


def _found() -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(FRONT_ENDS):
            continue
        tree = ast.parse(path.read_text())
        notes = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in notes and node.value not in RECORDED
                    and _worded(node.value) and _PATTERN.search(node.value)):
                found.setdefault(rel, []).append((node.lineno, node.value))
    return found


def test_no_text_below_the_front_ends_names_a_command_or_an_option() -> None:
    found = {rel: [f"{line}: {text[:70]!r}" for line, text in hits]
             for rel, hits in _found().items()}
    assert not found, ("a job, query or format speaks in commands or options: raise "
                       f"rbv.errors.Refused (or ConfigError(setting=…)) with remedies: {found}")


def test_the_pattern_finds_a_command_and_an_option_and_not_plain_words() -> None:
    """The check above can fail: what it looks for, it finds."""
    assert _PATTERN.search("run `rbv index` first")
    assert _PATTERN.search("pass --override to do it anyway")
    assert _PATTERN.search("rbv persons merge a b")
    assert not _PATTERN.search("rbv cannot align a face drawn by hand")
    assert not _PATTERN.search("2020-01-01 -- a dash, x--y")
    assert not _worded("--auth-local=peer") and _worded(" --keep-name ")


def _all_options() -> set[str]:
    """Every option any rbv command takes (the app's own included)."""
    import click

    found: set[str] = set()

    def walk(command: click.Command) -> None:
        for param in command.params:
            found.update(o for o in param.opts if o.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    group = typer.main.get_command(app)
    walk(group)
    if isinstance(group, click.Group):  # the lazily loaded commands
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is not None:
                walk(sub)
    return found


def test_a_setting_an_error_names_is_worded_as_an_option_rbv_has() -> None:
    """A ``ConfigError(setting=…)`` below the front ends names its setting by keyword;
    the CLI words it as that option, which must be one a command takes (or the
    environment variable that sets it, where no option does)."""
    from rbv.cli.remedies import in_words, option
    from rbv.errors import ConfigError

    settings = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConfigError":
                settings.update(k.value.value for k in node.keywords if k.arg == "setting"
                                and isinstance(k.value, ast.Constant))
    options = _all_options()
    assert "--model-pack" in options and "--det-threshold" in options
    assert sorted(s for s in settings if option(s) not in options
                  and not option(s).startswith(("RBV_", "IMMICH_"))) == []
    error = ConfigError("the number of workers must be at least 1", setting="workers")
    assert "--" not in str(error)
    assert in_words(error) == "the number of workers must be at least 1 (--workers)"
    assert in_words(ConfigError("the detection size must be a multiple of 32, not 100",
                                setting="det_size")).endswith("(RBV_DET_SIZE)")
