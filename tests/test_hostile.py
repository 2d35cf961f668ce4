"""Hostile input (issue #14): odd file names and file kinds, hostile manifests and
Immich answers, every numeric option outside its range on every command, no traceback
from any command, and no secret in any output or process list."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import shutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import typer

from rbv.cli.app import app, effective_range, numeric_kind
from rbv.config import Settings
from rbv.immich.assets import ImmichAsset
from rbv.immich.paths import resolve_inside, safe_relative_path
from tests.conftest import IMMICH_KEY, MISC, run_cli
from tests.pgserver import PASSWORD

PHOTO = MISC / "fr_two_people.jpg"


def _rows(settings: Settings, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(str(settings.database_url)) as conn:
        return conn.execute(sql).fetchall()


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error: ")]


# --- file names and file kinds -------------------------------------------------------------

def test_odd_names_and_kinds_are_catalogued_or_reported_on_one_line(
        cli, settings: Settings, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(PHOTO, lib / ("x" * 251 + ".jpg"))  # the longest name a file system takes
    shutil.copy(PHOTO, lib / "new\nline.jpg")
    (lib / "text\nfile.jpg").write_text("not a photo")  # reported, and on one line
    shutil.copy(PHOTO, os.fsdecode(bytes(lib) + b"/\xff\xfe.jpg"))
    deep = lib
    for _ in range(9):  # a path longer than PostgreSQL can index
        deep = deep / ("d" * 240)
    deep.mkdir(parents=True)
    shutil.copy(PHOTO, deep / "deep.jpg")
    os.mkfifo(lib / "fifo.jpg")  # would block a reader forever
    (lib / "folder.jpg").mkdir()
    with (lib / "sparse.jpg").open("wb") as f:  # 64 MB of holes, no image
        f.truncate(64 << 20)
    result = run_cli(cli, "index", "-d", str(settings.database_url), "--no-embed", str(lib))
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    errors = _errors(result.stderr)
    assert len(errors) == len(result.stderr.splitlines()) == 3, result.stderr
    joined = "\n".join(errors)
    assert "text\\nfile.jpg" in joined
    assert "deep.jpg: path longer than" in joined and "sparse.jpg: not an image" in joined
    names = sorted(Path(p).name for (p,) in _rows(settings, "SELECT path FROM image_paths"))
    assert names == sorted(["x" * 251 + ".jpg", "new\nline.jpg", "text\nfile.jpg",
                            "sparse.jpg", "\\xff\\xfe.jpg"])  # not UTF-8: catalogued


# --- Immich answers --------------------------------------------------------------------------

@pytest.mark.parametrize("item", [
    {"id": "../../../../x/evil"}, {"id": "/etc/passwd"}, {"id": 17}, {"id": None}, {},
    {"id": "a" * 65}, {"id": "ok-id", "exifInfo": "not an object"},
])
def test_hostile_asset_listings_are_refused(item: dict[str, Any]) -> None:
    with pytest.raises((ValueError, KeyError, TypeError, AttributeError)):
        ImmichAsset.from_json({"type": "IMAGE", "originalPath": "/x.jpg", **item})


@pytest.mark.parametrize("original", ["../../../../etc/cron.d/x.jpg", "/etc/passwd",
                                      "C:\\Windows\\x.jpg", "library/../../../x.jpg",
                                      "a/\x00b/.././c.jpg", "", "..", "/"])
def test_server_paths_stay_inside_the_staging_folder(tmp_path: Path, original: str) -> None:
    relative = safe_relative_path(original, "../name.jpg", "0d1f")
    assert resolve_inside(tmp_path, relative).is_relative_to(tmp_path.resolve())


def test_wrong_types_in_an_immich_search_page_fail_only_that_asset(
        cli, settings: Settings, immich_library, immich_spec, tmp_path: Path) -> None:
    from rbv.testing.immich_server import FakeImmich

    big = [a for a in immich_library if a.truth == "big_face"][:2]
    hostile = dataclasses.replace(big[0], id="/abs/olute", original_path="../../../x.jpg")
    server = FakeImmich([hostile, big[1]], IMMICH_KEY, immich_spec).start()
    try:
        result = run_cli(cli, "-d", str(settings.database_url), "immich-stage", "--out",
                         str(tmp_path / "out"), "--url", server.url, "--no-index", "--json",
                         "--retry-wait", "0.01", "--timeout", "5",
                         env={"IMMICH_API_KEY": IMMICH_KEY})
    finally:
        server.stop()
    assert result.exit_code == 3, result.output
    got = json.loads(result.stdout)
    assert got["staged"] == 1 and got["failed"] == 1
    assert all(p.resolve().is_relative_to((tmp_path / "out").resolve())
               for p in tmp_path.rglob("*"))


# --- every numeric option, outside its range, on every command --------------------------------

def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _filler(param: Any) -> list[str]:
    """A plausible value for a required parameter (so parsing reaches the options)."""
    kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = typing.get_args(kind)
    kind = args[0] if typing.get_origin(kind) in (list, tuple) and args else kind
    value = "x"
    if numeric_kind(param):
        value = "1"
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        value = str(next(iter(kind)).value)
    return [value] if param.param_type_name == "argument" else [max(param.opts, key=len),
                                                                 value]


def _required(command: Any) -> list[str]:
    return [a for p in command.params if p.required for a in _filler(p)]


def _out_of_range_cases() -> list[Any]:
    root = typer.main.get_command(app)
    cases = []
    for path, command in _commands(root):
        args = _required(command)
        for p in command.params:
            kind = numeric_kind(p)
            if p.param_type_name != "option" or kind is None:
                continue
            low, high = effective_range(p)
            flag = max(p.opts, key=len)
            step = 1 if kind is int else 0.001
            values: list[object] = [] if low is None else [low - step]
            values += [] if high is None else [high + step]
            if kind is float:
                values.append(float("nan"))
            for v in values:
                cases.append(pytest.param(path, flag, str(v), args,
                                          id=f"{' '.join(path)} {flag}={v}"))
    return cases


@pytest.mark.parametrize(("path", "flag", "value", "args"), _out_of_range_cases())
def test_numeric_option_outside_its_range_is_one_usage_error(
        cli, path: tuple[str, ...], flag: str, value: str, args: list[str]) -> None:
    # An unreachable database: a value that got past parsing would fail there instead.
    result = run_cli(cli, "-d", "postgresql://nobody@127.0.0.1:1/x", *path, flag, value,
                     *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = _errors(result.output)
    assert len(errors) == 1 and flag in errors[0], result.output


def test_the_table_covers_every_numeric_option() -> None:
    root = typer.main.get_command(app)
    numeric = {(path, max(p.opts, key=len)) for path, command in _commands(root)
               for p in command.params if p.param_type_name == "option" and numeric_kind(p)}
    covered = {(c.values[0], c.values[1]) for c in _out_of_range_cases()}
    assert numeric and numeric == covered


# --- no command lets an exception out as a traceback ------------------------------------------

def _all_commands() -> list[Any]:
    root = typer.main.get_command(app)
    out = []
    for path, command in _commands(root):
        args = _required(command)
        out.append(pytest.param(path, args, id=" ".join(path)))
    return out


@pytest.mark.parametrize(("path", "args"), _all_commands())
def test_no_command_shows_a_traceback_or_a_secret(cli, tmp_path: Path, path: tuple[str, ...],
                                                  args: list[str]) -> None:
    """Each command against a server that is down, with the password in the URL, an
    Immich URL with credentials and an API key in the environment."""
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"
    env = {"IMMICH_URL": f"http://alice:{PASSWORD}@127.0.0.1:1", "IMMICH_API_KEY": IMMICH_KEY,
           "RBV_DATA_DIR": str(tmp_path / "data")}
    result = run_cli(cli, "-d", url, *path, *args, env=env)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code in (1, 2), result.output
    assert len(_errors(result.output)) == 1, result.output
    assert PASSWORD not in result.output and IMMICH_KEY not in result.output


@pytest.mark.parametrize("where", ["--database", "DATABASE_URL", "RBV_DATABASE_URL"])
def test_database_password_is_never_shown_wherever_it_is_given(cli, settings: Settings,
                                                              where: str) -> None:
    bad = str(settings.database_url).replace(PASSWORD, PASSWORD + "-wrong")
    for url in (bad, bad.replace("@127.0.0.1", "@127.0.0.1:notaport"),
                bad.replace("postgresql://", "postgresql:/")):
        args = ["-d", url] if where == "--database" else []
        env = {} if where == "--database" else {where: url}
        result = run_cli(cli, *args, "stats", env=env)
        assert result.exit_code in (1, 2), result.output
        assert PASSWORD not in result.output, result.output


def test_ml_uri_credentials_are_never_shown(cli, settings: Settings) -> None:
    result = run_cli(cli, "-d", str(settings.database_url), "index", str(PHOTO),
                     "--ml-uri", f"http://alice:{PASSWORD}@127.0.0.1:1",
                     "--model-pack", "scrfd_sface")
    assert result.exit_code == 2, result.output
    assert len(_errors(result.output)) == 1 and PASSWORD not in result.output
    assert PASSWORD not in json.dumps(_rows(settings, "SELECT parameters FROM runs"))

