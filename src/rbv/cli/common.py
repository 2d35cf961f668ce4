"""What commands share: every option used by more than one command (each defined once,
its help built from the default it names), settings lookup, output helpers."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from rbv.config import Settings
from rbv.faces.defaults import DEFAULT_DET_THRESHOLD, DEFAULT_MIN_FACE
from rbv.media.path_map import ENV_SEPARATOR as PATH_MAP_SEPARATOR
from rbv.media.path_map import PathMap

if TYPE_CHECKING:
    from rbv.library import Library

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
PLAIN_HELP = None
"""Every rbv Typer's ``rich_markup_mode``: --help as click writes it, plain text wrapped
between words at the terminal's width. Typer's Rich tables label every flag ``<bool>``
(--help included) and, at 80 columns, cut option names and help short with "…"; neither
has a setting, and changing them took Typer's internals."""


class CommandGroup(TyperGroup):
    """A group of commands (rbv, `rbv persons`, …) that, run bare, shows its help on
    stderr and exits 2, as Typer does, but by :class:`typer.Exit`: the usage error Typer
    raises for it has no public name to tell it from the others, which rbv words as
    one ``Error:`` line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help(), err=True)
            raise typer.Exit(2)
        return super().parse_args(ctx, args)


def command_group(help: str) -> typer.Typer:
    """The Typer app of a group of commands: plain --help, its help when run bare."""
    return typer.Typer(help=help, cls=CommandGroup, no_args_is_help=True,
                       rich_markup_mode=PLAIN_HELP)


_DEFAULTS = Settings()
_F = TypeVar("_F", bound=Callable[..., Any])
PersonArg = Annotated[str, typer.Argument(help="Name, unique part of a name, uuid or uuid "
                                          "prefix (4+ chars).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Say what would change; "
                                            "change nothing.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document for scripts.")]
ModelPackOption = Annotated[
    str | None,
    typer.Option("--model-pack", help="Model pack, by name (in ~/.insightface/models) or "
                 "folder: the models a run uses, and whose faces it works on (faces of "
                 "different packs are never compared). Default: $RBV_MODEL_PACK; else the "
                 "library's only pack (from the folder it last ran from), else buffalo_l in "
                 "a library without faces; with several packs, name one.",
                 show_default=False),
]
AttributeModelOption = Annotated[
    Path | None,
    typer.Option("--attribute-model", help="An age and gender model (.onnx, e.g. "
                 "faceres_age_gender.onnx): each face without an estimate gets an "
                 "estimated age and gender. Default: $RBV_ATTRIBUTE_MODEL, else the one in "
                 "the pack's folder, else none.", show_default=False, metavar="PATH"),
]
DeviceOption = Annotated[
    str | None,
    typer.Option("--device", help="auto | cuda | directml | cpu; a GPU by number: cuda:1, "
                 "several: cuda:0,1 or cuda:all (4 inference workers each). Default: "
                 "$RBV_DEVICE, else auto (CUDA, then DirectML, then CPU).", show_default=False),
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option("--concurrency", "-j", min=1, help="Threads reading and decoding images "
                 "while faces are analyzed. Default: $RBV_CONCURRENCY, else "
                 f"{_DEFAULTS.concurrency}.",
                 show_default=False),
]
DetThresholdOption = Annotated[
    float | None,
    typer.Option("--det-threshold", min=0.0, max=1.0, help="Minimum face detection score. "
                 f"Default: $RBV_DET_THRESHOLD, else {DEFAULT_DET_THRESHOLD}.",
                 show_default=False),
]
MinFaceOption = Annotated[
    int | None,
    typer.Option("--min-face", min=0, help="Ignore faces whose short edge is smaller (original "
                 f"pixels). Default: $RBV_MIN_FACE, else {DEFAULT_MIN_FACE}.", show_default=False),
]
MlUriOption = Annotated[
    list[str] | None,
    typer.Option("--ml-uri", help="Send images to this Immich machine-learning server "
                 "(POST URL/predict) instead of running models here; the model is "
                 "--model-pack's name. Repeat it (or separate URLs by commas or spaces) to "
                 "share the images across several servers serving the same model: one that "
                 "stops answering is skipped and tried again. Default: $RBV_ML_URI (URLs "
                 "separated by commas and/or spaces).", show_default=False),
]

PathMapOption = Annotated[
    list[str] | None,
    typer.Option("--path-map", help="STORED=LOCAL: read a catalogued path under STORED "
                 "at LOCAL on this machine (the library mounted elsewhere), and catalogue "
                 "what is found under LOCAL as STORED (repeatable; the longest prefix "
                 f"wins). Default: $RBV_PATH_MAP (maps separated by '{PATH_MAP_SEPARATOR}').",
                 show_default=False),
]


def path_map_of(specs: list[str] | None) -> PathMap | None:
    """The ``--path-map`` options as a map (None when none was given)."""
    return PathMap.parse(specs) if specs else None


def settings_of(ctx: typer.Context, **overrides: Any) -> Settings:
    """The settings built at the CLI root, with this command's options applied."""
    root = ctx.find_root().obj
    if not isinstance(root, Settings):  # invoked without the root callback (tests)
        root = Settings.from_env({})
    return root.with_overrides(**overrides)


def library_of(ctx: typer.Context, database: str | None = None, **overrides: Any) -> Library:
    """The library a command works on: the database of ``--database`` (else of the
    root's settings), with this command's other options applied (:func:`settings_of`).
    The command says the carry's losses a run returns (:func:`rbv.cli.embed.say_losses`)."""
    from rbv.library import Library

    return Library.from_settings(settings_of(ctx, database_url=database, **overrides),
                                 says_losses=True)


def say(text: str, *, err: bool = False) -> None:
    """Print a paragraph wrapped between words to the terminal's width ($COLUMNS first,
    as Rich reads it; 80 when there is no terminal); a command in it stays whole when it
    has no space in it."""
    width = max(40, shutil.get_terminal_size().columns)
    typer.echo(textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False),
               err=err)


def print_json(document: Any) -> None:
    """Write ``document`` as JSON on stdout (paths and datetimes as strings)."""
    sys.stdout.write(json.dumps(document, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def help_from(*defaults: Any, **values: Any) -> Callable[[_F], _F]:
    """Fill the ``{name}`` placeholders of a command's docstring (its ``--help``) from the
    fields of the dataclass instances ``defaults`` and from ``values``, so a help text
    never restates a number that is defined elsewhere."""
    names: dict[str, Any] = {}
    for d in defaults:
        names.update(asdict(d))
    names.update(values)

    def fill(command: _F) -> _F:
        doc = command.__doc__ or ""
        for key, value in names.items():
            doc = doc.replace("{" + key + "}", f"{value:g}" if isinstance(value, float)
                              else str(value))
        command.__doc__ = doc
        return command

    return fill
