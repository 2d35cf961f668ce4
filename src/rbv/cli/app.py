"""The ``rbv`` command: root options, command registration, error handling."""

from __future__ import annotations

import ast
import contextlib
import errno
import functools
import importlib
import importlib.util
import inspect
import math
import os
import signal
import threading
import typing
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from rbv import __version__
from rbv.bounds import BIGINT_MAX
from rbv.cli import remedies
from rbv.cli.common import PLAIN_HELP, CommandGroup, DatabaseOption
from rbv.config import Settings
from rbv.errors import EXIT_ERROR, RbvError, printable

PRIVATE_UMASK = 0o077
"""Everything rbv and the programs it starts create is its user's alone: folders 0700,
files 0600, new sidecars and exports included (a photo rewritten keeps its own mode)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that runs are closed as ``interrupted``, open
    transactions roll back and the embedded server is stopped on the way out."""


_in_command = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    # Once the command is over the process is on its way out (closing the embedded
    # server, say): let that finish rather than break it with an exception.
    if _in_command.is_set():
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class _RbvGroup(CommandGroup):
    """Turns every failure into one ``Error: …`` line and an exit code cron can trust:
    1 the user's input or setup (usage errors included), 2 a server needed by the run is
    down or died, 3 finished with failed items (set by the commands), 130/143 Ctrl-C /
    SIGTERM. A traceback is shown only with ``RBV_DEBUG=1``."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMANDS)
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands = self.commands
        if self._listing and isinstance(commands, LazyCommands):
            return commands.stub(cmd_name)  # `rbv --help` imports no command module
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names alone: building them would import them

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        with _one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        _in_command.set()
        umask = os.umask(PRIVATE_UMASK)
        try:
            with _one_line_errors():
                return super().invoke(ctx)
        finally:
            os.umask(umask)
            _in_command.clear()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def numeric_kind(param: Any) -> type | None:
    """``int`` or ``float`` for a numeric option or argument (lists included), else None."""
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (list, tuple) and args:
        kind = args[0]
    return kind if kind in (int, float) else None


def effective_range(param: Any) -> tuple[float | None, float | None]:
    """The range a numeric parameter is held to: its declared ``min``/``max``; an integer
    is never beyond bigint; an undeclared float range is 0–1 for a threshold (rbv's
    similarity thresholds) and non-negative otherwise (sizes, seconds)."""
    low, high = param.min, param.max
    if numeric_kind(param) is int:
        return (-BIGINT_MAX if low is None else low, BIGINT_MAX if high is None else high)
    if low is None and high is None:
        return (0.0, 1.0) if "threshold" in (param.name or "") else (0.0, None)
    return low, high


def check_numbers(command: Any) -> None:
    """Hold every numeric parameter of ``command`` (of each of its subcommands, for a
    group) to :func:`effective_range` (and finite), once: a value outside it is a usage
    error, before the command runs."""
    if hasattr(command, "commands"):
        for sub in command.commands.values():
            check_numbers(sub)
    elif not getattr(command.callback, "_rbv_checked", False) and command.callback:
        command.callback = _checked(command.callback, [
            (p.name, max(p.opts, key=len) if p.param_type_name == "option" else
             (p.name or "").upper(), *effective_range(p))
            for p in command.params if numeric_kind(p) is not None])


def _checked(callback: Any, specs: list[tuple[str, str, float | None, float | None]]) -> Any:
    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name, flag, low, high in specs:
            value = kwargs.get(name)
            for v in value if isinstance(value, list | tuple) else [value]:
                if v is None:
                    continue
                if not math.isfinite(v) or (low is not None and v < low) or \
                        (high is not None and v > high):
                    span = "..".join("" if b is None else f"{b:g}" for b in (low, high))
                    raise typer.BadParameter(f"{v} is not in the range {span}",
                                             param_hint=flag)
        return callback(*args, **kwargs)

    checked._rbv_checked = True  # type: ignore[attr-defined]
    return checked


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {printable(message)}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except RbvError as exc:
        raise _fail(remedies.in_words(exc), exc.exit_code) from None
    except typer.TyperException as exc:  # a usage error, or an unreadable file argument
        # Typer's usage errors (click's) carry the context of the command they are about
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        raise _fail(exc.format_message() + where, EXIT_ERROR) from None
    except Terminated:
        typer.echo("Terminated; work committed so far is kept. Re-run to continue.", err=True)
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted; work committed so far is kept. Re-run to continue.", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except BrokenPipeError:
        raise  # `rbv … | head`: Typer exits quietly (1), not "Error: Broken pipe"
    except Exception as exc:
        if os.environ.get("RBV_DEBUG"):
            raise
        from rbv.store.server.connection import database_error, redact

        known = database_error(exc)
        if known is not None:
            raise _fail(str(known), known.exit_code) from None
        if isinstance(exc, OSError):
            what = exc.strerror or str(exc)
            if exc.errno == errno.ENOSPC:
                what = "no space left on the device; free space, then re-run"
            where = f"{exc.filename}: " if exc.filename else ""
            raise _fail(f"{where}{what}", EXIT_ERROR) from None
        raise _fail(f"unexpected {type(exc).__name__}: {redact(str(exc))} (a bug in rbv; "
                    "run with RBV_DEBUG=1 for the traceback and report it)",
                    EXIT_ERROR) from None


app = typer.Typer(
    name="rbv",
    cls=_RbvGroup,
    help="Find every face in a photo library and group faces into persons.\n\n"
    "Data lives in PostgreSQL + pgvector: rbv's own embedded server by default, "
    "or the server named by --database / DATABASE_URL.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=PLAIN_HELP,
    pretty_exceptions_enable=False,  # never print locals (they may hold secrets)
    # --help fills the terminal's width, as all of rbv's output does (click stops at 80)
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 10_000},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rbv {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database: DatabaseOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the embedded database lives. Default: $RBV_DATA_DIR or "
            "~/.local/share/rbv.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    ctx.obj = Settings.from_env(os.environ, database_url=database, data_dir=data_dir)


COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("rbv.cli.migrate", "migrate"),
    "stats": ("rbv.cli.stats", "stats"),
    "psql": ("rbv.cli.psql", "psql"),
    "db": ("rbv.cli.db", "app"),
    "index": ("rbv.cli.index", "index"),
    "embed": ("rbv.cli.embed", "embed"),
    "cluster": ("rbv.cli.cluster", "cluster"),
    "persons": ("rbv.cli.persons", "app"),
    "faces": ("rbv.cli.faces", "app"),
    "eval": ("rbv.cli.eval", "eval_"),
    "immich-stage": ("rbv.cli.immich_stage", "immich_stage"),
    "immich-push": ("rbv.cli.immich_push", "immich_push"),
    "enrich": ("rbv.cli.enrich", "enrich"),
    "refine": ("rbv.cli.refine", "refine"),
    "dedup": ("rbv.cli.dedup", "dedup"),
    "export-swap": ("rbv.cli.export_swap", "export_swap_command"),
    "discover": ("rbv.cli.discover", "discover_command"),
    "import-folders": ("rbv.cli.import_folders", "import_folders_command"),
    "show": ("rbv.cli.show", "show"),
    "eras": ("rbv.cli.era", "eras"),
    "export-xmp": ("rbv.cli.export_xmp", "export_xmp_command"),
    "import-xmp": ("rbv.cli.import_xmp", "import_xmp_command"),
    "photos": ("rbv.cli.photos", "photos_command"),
    "site": ("rbv.cli.site", "site"),
    "serve": ("rbv.cli.serve", "serve"),
    "audit": ("rbv.cli.audit", "audit"),
    "prune": ("rbv.cli.prune", "prune"),
}
"""Every command: its module and the function (or Typer app) in it. A command's module,
and the libraries it needs, are imported only when that command runs, so `rbv --help`
and light commands start fast."""


class LazyCommands(MutableMapping[str, Any]):
    """The root group's commands, each built from its module on first use."""

    def __init__(self, table: dict[str, tuple[str, str]]) -> None:
        self._table = table
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in self._table:
                raise KeyError(name)
            self._built[name] = _build(name, *self._table[name])
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._built.pop(name, None)
        self._table.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter([*self._table, *(n for n in self._built if n not in self._table)])

    def __len__(self) -> int:
        return len(set(self._table) | set(self._built))

    def stub(self, name: str) -> Any:
        """A stand-in that lists the command in `rbv --help`: its name and the first
        paragraph of its docstring, read from the module's source, not imported."""
        if name in self._built or name not in self._table:
            return self._built.get(name)
        summary = _summary(*self._table[name])
        return TyperCommand(name, help=summary, short_help=summary)


def _build(name: str, module: str, attribute: str) -> Any:
    loaded = importlib.import_module(module)
    target = getattr(loaded, attribute)
    command: Any
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)  # a group: it has several commands
    else:
        # completion is the root's option alone
        one = typer.Typer(add_completion=False, rich_markup_mode=PLAIN_HELP)
        # a module's CONTEXT_SETTINGS: `rbv psql` passes psql's own options on
        one.command(name, context_settings=getattr(loaded, "CONTEXT_SETTINGS", None))(target)
        command = typer.main.get_command(one)
    command.name = name
    check_numbers(command)
    reflow_help(command)
    return command


def reflow_help(command: Any) -> None:
    """Join each paragraph of the command's help (of each subcommand, for a group) into
    one line, for the terminal to wrap: the docstring's own line breaks would otherwise
    show inside --help ("kept, so" / "re-runs"). Indented blocks (examples) keep theirs:
    a ``\\b`` line before each is click's mark for text it must not rewrap. A group lists
    each subcommand with its first paragraph whole (click would cut it at 45 characters
    with "...")."""
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)
    if command.help:
        blocks = [f"\b\n{block}" if block.startswith(" ") else " ".join(block.split())
                  for block in inspect.cleandoc(command.help).split("\n\n")]
        command.help = "\n\n".join(blocks)
        command.short_help = command.short_help or blocks[0]


def _summary(module: str, attribute: str) -> str:
    spec = importlib.util.find_spec(module)
    source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == attribute:
            return " ".join((ast.get_docstring(node) or "").split("\n\n")[0].split())
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == attribute for t in node.targets):
            call = node.value
            for kw in getattr(call, "keywords", []):
                if kw.arg == "help":
                    return str(ast.literal_eval(kw.value))
    return ""


def main() -> None:
    """Console-script entry point."""
    # For the whole process, shutdown included (SIGINT too: a Ctrl-C while the embedded
    # server is being stopped must not turn into a traceback).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    os.umask(PRIVATE_UMASK)  # for the exit hooks too (the linger watcher they start)
    app()
