"""A refusal's remedies (:class:`rbv.errors.Remedy`) worded as the command lines that do
them: the jobs say what would resolve a refusal as data, and only here does it become
``rbv persons merge … --keep-name …``."""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rbv.errors import ConfigError, RbvError, Remedy

SHORT = 8
"""Characters of a person's id a command line needs (ids are resolved by prefix)."""


def _id(value: object) -> str:
    return str(value)[:SHORT] if isinstance(value, uuid.UUID) else shlex.quote(str(value))


def _ids(values: Sequence[object]) -> str:
    return " ".join(_id(v) for v in values)


def _merge(a: Mapping[str, Any]) -> str:
    line = f"rbv persons merge {_ids(a['persons'])}"
    if a.get("keep_name") is not None:
        line += f" --keep-name {shlex.quote(a['keep_name'])}"
    if a.get("keep_born") is not None:
        line += f" --keep-born {a['keep_born']}"
    return line


def _name(a: Mapping[str, Any]) -> str:
    line = f"rbv persons name {_id(a['person'])} {shlex.quote(a['name'])}"
    return line + (" --force" if a.get("force") else "")


def _split(a: Mapping[str, Any]) -> str:
    line = f"rbv persons split {_id(a['person'])}"
    if a.get("threshold") is not None:
        line += f" --threshold {a['threshold']:g}"
    return line + (" --dry-run" if a.get("dry_run") else "")


def _faces_add(a: Mapping[str, Any]) -> str:
    x, y, w, h = (round(v) for v in a["box"])
    line = f"rbv faces add {shlex.quote(str(a['photo']))} --box {x},{y},{w},{h}"
    return line + (f" --person {_id(a['person'])}" if a.get("person") is not None else "")


def _move(a: Mapping[str, Any]) -> str:
    line = f"rbv persons move {_ids(a['faces'])}"
    return line + (f" --to {_id(a['to'])}" if a.get("to") is not None else "")


_COMMANDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "merge": _merge,
    "name": _name,
    "move": _move,
    "not_this_person": lambda a: (f"rbv persons not-this-person {_id(a['person'])} "
                                  f"{_ids(a['faces'])}"),
    "cover": lambda a: f"rbv persons cover {_id(a['person'])} {a['face']}",
    "show": lambda a: f"rbv persons show {_id(a['person'])}",
    "history": lambda a: "rbv persons history",
    "undo": lambda a: "rbv persons undo",
    "is_a_face": lambda a: f"rbv faces is-a-face {_ids(a['faces'])}",
    "born": lambda a: f"rbv persons born {_id(a['person'])} YYYY-MM-DD",
    "refine": lambda a: "rbv refine OUT",
    "list": lambda a: "rbv persons list",
    "index": lambda a: "rbv index " + " ".join(shlex.quote(str(p)) for p in a["paths"]),
    "cluster_full": lambda a: "rbv cluster --full",
    "unhide": lambda a: f"rbv persons unhide {_id(a['person'])}",
    "split": _split,
    "review": lambda a: f"rbv persons review {_id(a['person'])} --limit {a['limit']}",
    "faces_add": _faces_add,
    "import_xmp": lambda a: (f"rbv import-xmp {shlex.quote(str(a['folder']))} "
                             f"--min-iou {a['min_iou']:g}"),
}
_OPTIONS = {"override": "pass --override to do it anyway (the later decision wins: those "
                        "records are removed, and `rbv persons undo` puts them back)",
            "model_pack": "name the pack's folder with --model-pack",
            "no_ml_server": "run without --ml-uri",
            "migrate": "run `rbv migrate`",
            "db_start": "`rbv db start` starts one and prints its URL",
            "own_server": "or pass --database URL / set DATABASE_URL",
            "check_url": "check --database / DATABASE_URL",
            "own_data_dir": "use a folder of your own (--data-dir or RBV_DATA_DIR)",
            "calibrate": "calibrate this pack with `rbv eval --calibrate --store`",
            "choose_pack": "pass --model-pack NAME or set RBV_MODEL_PACK",
            "pack_folder": "or pass --model-pack PATH (or set RBV_MODEL_PACK) to a folder "
                           "holding the .onnx files",
            "index_first": "run `rbv index` first",
            "embedded_server": "or omit --database / DATABASE_URL to use rbv's embedded "
                               "PostgreSQL, which includes it",
            "refine_manifest": "run `rbv refine OUT` and pass OUT/refine_manifest.json",
            "refine_again": "run `rbv refine OUT` again",
            "export_xmp": "re-run `rbv export-xmp`"}
"""Remedies that are an option to give or a command to run, in a phrase of their own."""

_VARIABLES = {"url": "IMMICH_URL", "ml_uri": "RBV_ML_URI"}
"""Environment variables that set a setting where its option is not given."""


def _check(a: Mapping[str, Any]) -> str:
    variable = _VARIABLES.get(a["setting"])
    return f"check {option(a['setting'])}" + (f" / {variable}" if variable else "")


def _extra(a: Mapping[str, Any]) -> str:
    return (f"install rbv's {a['extra']} extra (`uv sync --extra {a['extra']}`, or "
            f"`pip install 'rbv[{a['extra']}]'`)")


_PHRASES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "check": _check,
    "check_server": lambda a: _check(a) + " and that the server is up",
    "device": lambda a: "use " + " or ".join(f"{option('device')} {d}" for d in a["devices"]),
    "install_extra": _extra,
    "data_dir": lambda a: (f"pass {option('data_dir')} {shlex.quote(str(a['path']))} "
                           "(or set RBV_DATA_DIR) instead"),
}
"""Remedies that are an option to give (or a setting to check), in a phrase made of
their arguments."""


_SEE = {"list", "history", "show"}
"""Remedies that show what to act on rather than act: worded "see `…`"."""


def command(remedy: Remedy) -> str:
    """The remedy as the command line (or the option) that does it, in backticks."""
    if remedy.action in _OPTIONS:
        return _OPTIONS[remedy.action]
    if remedy.action in _PHRASES:
        return _PHRASES[remedy.action](remedy.args)
    if remedy.action in _SEE:
        return f"see `{_COMMANDS[remedy.action](remedy.args)}`"
    return f"`{_COMMANDS[remedy.action](remedy.args)}`"


_NOT_AN_OPTION = {"det_size": "RBV_DET_SIZE"}
"""Settings that no option sets, worded as the environment variable that does; every
other setting is the option ``--`` and its name with ``-`` for ``_``."""


def option(setting: str) -> str:
    """The option (or environment variable) of a setting named by its keyword."""
    return _NOT_AN_OPTION.get(setting, "--" + setting.replace("_", "-"))


def in_words(refused: RbvError) -> str:
    """The error's message (with the option it is about) and its remedies as commands,
    on one line."""
    text = str(refused)
    if isinstance(refused, ConfigError) and refused.setting is not None:
        text += f" ({option(refused.setting)})"
    if not refused.remedies:
        return text
    joined = "; " if refused.remedies[0].action in {*_OPTIONS, *_PHRASES, *_SEE} else ": "
    return f"{text}{joined}" + " or ".join(command(r) for r in refused.remedies)


def command_line(remedy: Remedy) -> str:
    """The remedy as the bare command line that does it (a page's or a JSON report's
    ``command``)."""
    return _COMMANDS[remedy.action](remedy.args)


def steps(remedies: Sequence[Remedy]) -> str:
    """Remedies done one after the other, each as its command and what it does:
    "`rbv faces is-a-face 7` takes the mark back, then `rbv persons move 7 --to Ada`
    puts it there"."""
    return ", then ".join(f"{command(r)} {r.label}".rstrip() for r in remedies)


def with_remedies(text: str, remedies: Sequence[Remedy]) -> str:
    """``text`` (a reason in words) and its remedies as commands, on one line, as
    :func:`in_words` words an error's."""
    return in_words(RbvError(text, remedies=remedies))
