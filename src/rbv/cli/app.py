"""The ``rbv`` command: root options, command registration, error handling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
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
    immich_stage,
    import_folders,
    index,
    migrate,
    persons,
    psql,
    refine,
    show,
    stats,
)
from rbv.cli.common import DatabaseOption
from rbv.config import Settings
from rbv.errors import RbvError


class _RbvGroup(TyperGroup):
    """Turns :class:`RbvError` into one ``Error: …`` line and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RbvError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted; work committed so far is kept. Re-run to continue.", err=True)
            raise typer.Exit(130) from None


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
app.command("enrich")(enrich.enrich)
app.command("refine")(refine.refine)
app.command("dedup")(dedup.dedup)
app.command("export-swap")(export_swap.export_swap_command)
app.command("import-folders")(import_folders.import_folders_command)
app.command("show")(show.show)
app.command("eras")(era.eras)


def main() -> None:
    """Console-script entry point."""
    app()
