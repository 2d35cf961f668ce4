"""The ``rbv`` command: root options, command registration, error handling."""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import signal
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

# Typer vendors click; its usage errors are not re-exported under a public name.
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from rbv import __version__
from rbv.cli import (
    cluster,
    dedup,
    embed,
    enrich,
    era,
    eval,
    export_swap,
    export_xmp,
    immich_push,
    immich_stage,
    import_folders,
    import_xmp,
    index,
    migrate,
    persons,
    photos,
    psql,
    refine,
    show,
    stats,
)
from rbv.cli.common import DatabaseOption
from rbv.config import Settings
from rbv.errors import EXIT_ERROR, RbvError, printable
from rbv.store.connection import database_error, redact


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that runs are closed as ``interrupted``, open
    transactions roll back and the embedded server is stopped on the way out."""


_in_command = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    # Once the command is over the process is on its way out (closing the embedded
    # server, say): let that finish rather than break it with an exception.
    if _in_command.is_set():
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


class _RbvGroup(TyperGroup):
    """Turns every failure into one ``Error: …`` line and an exit code cron can trust:
    1 the user's input or setup (usage errors included), 2 a server needed by the run is
    down or died, 3 finished with failed items (set by the commands), 130/143 Ctrl-C /
    SIGTERM. A traceback is shown only with ``RBV_DEBUG=1``."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        with _one_line_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        check_numbers(self)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        _in_command.set()
        try:
            with _one_line_errors():
                return super().invoke(ctx)
        finally:
            _in_command.clear()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


INT64_MAX = 2**63 - 1
"""No count or id rbv takes is larger (PostgreSQL's bigint): a larger one is a typo."""


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
        return (-INT64_MAX if low is None else low, INT64_MAX if high is None else high)
    if low is None and high is None:
        return (0.0, 1.0) if "threshold" in (param.name or "") else (0.0, None)
    return low, high


def check_numbers(group: Any) -> None:
    """Hold every numeric parameter of every command to :func:`effective_range` (and
    finite), once: a value outside it is a usage error, before the command runs."""
    for command in group.commands.values():
        if hasattr(command, "commands"):
            check_numbers(command)
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
        raise _fail(str(exc), exc.exit_code) from None
    except NoArgsIsHelpError:
        raise
    except UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        raise _fail(exc.format_message() + where, EXIT_ERROR) from None
    except Terminated:
        typer.echo("Terminated; work committed so far is kept. Re-run to continue.", err=True)
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted; work committed so far is kept. Re-run to continue.", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if os.environ.get("RBV_DEBUG"):
            raise
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
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals (they may hold secrets)
    context_settings={"help_option_names": ["-h", "--help"]},
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


app.command("migrate")(migrate.migrate)
app.command("stats")(stats.stats)
app.command("psql")(psql.psql)
app.command("index")(index.index)
app.command("embed")(embed.embed)
app.command("cluster")(cluster.cluster)
app.add_typer(persons.app, name="persons")
app.command("eval")(eval.eval_)
app.command("immich-stage")(immich_stage.immich_stage)
app.command("immich-push")(immich_push.immich_push)
app.command("enrich")(enrich.enrich)
app.command("refine")(refine.refine)
app.command("dedup")(dedup.dedup)
app.command("export-swap")(export_swap.export_swap_command)
app.command("import-folders")(import_folders.import_folders_command)
app.command("show")(show.show)
app.command("eras")(era.eras)
app.command("export-xmp")(export_xmp.export_xmp_command)
app.command("import-xmp")(import_xmp.import_xmp_command)
app.command("photos")(photos.photos_command)


def main() -> None:
    """Console-script entry point."""
    # For the whole process, shutdown included (SIGINT too: a Ctrl-C while the embedded
    # server is being stopped must not turn into a traceback).
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    app()
