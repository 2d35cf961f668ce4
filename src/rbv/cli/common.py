"""What every command shares: the database option, settings lookup, output helpers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rbv.config import Settings

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="PostgreSQL URL (postgresql://user:pass@host/db). Default: $DATABASE_URL, "
        "else rbv's embedded PostgreSQL under the data directory.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document for scripts.")]


def settings_of(ctx: typer.Context, **overrides: Any) -> Settings:
    """The settings built at the CLI root, with this command's options applied."""
    root = ctx.find_root().obj
    if not isinstance(root, Settings):  # invoked without the root callback (tests)
        root = Settings.from_env({})
    return root.with_overrides(**overrides)


def print_json(document: Any) -> None:
    """Write ``document`` as JSON on stdout (paths and datetimes as strings)."""
    sys.stdout.write(json.dumps(document, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
