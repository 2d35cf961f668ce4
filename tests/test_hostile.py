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
from rbv.jobs.exchange.immich_paths import resolve_inside, safe_relative_path
from tests.conftest import IMMICH_KEY, MISC, run_cli
from tests.pgserver import PASSWORD
from tests.support.sidecars import mwg_sidecar

pytestmark = pytest.mark.slow  # ~20 s: 250 hostile inputs through index and the CLI

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
    # The first folder whose path is longer than PostgreSQL can index, however long the
    # temporary folder is (nine levels fell short of it under pytest -n 2's popen-gwN/).
    while len(os.fsencode(deep)) <= 2000:
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
    assert len(errors) == len(result.stderr.splitlines()) == 4, result.stderr
    joined = "\n".join(errors)
    assert "text\\nfile.jpg" in joined
    assert f"{deep}: path longer than 2000 bytes; nothing under it" in joined
    assert "sparse.jpg: not an image" in joined
    assert "fifo.jpg: cannot read: not a regular file but a FIFO (named pipe)" in joined
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
    from tests.support.immich_server import FakeImmich

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



# --- hostile XMP (issue #21 items 2 and 10) ------------------------------------------------

_XPACKET = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_RDF = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:mwg-rs="http://www.metadataworking'
        'group.com/schemas/regions/" xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" '
        'xmp:Rating="4">{body}</rdf:Description></rdf:RDF></x:xmpmeta>')
_TAGS = ('<dc:subject><rdf:Bag><rdf:li>beach</rdf:li></rdf:Bag></dc:subject>'
         '<dc:creator><rdf:Seq><rdf:li>{creator}</rdf:li></rdf:Seq></dc:creator>'
         '<dc:description><rdf:Alt><rdf:li xml:lang="x-default">Holidays</rdf:li></rdf:Alt>'
         '</dc:description>')
_REGION = ('<mwg-rs:Regions rdf:parseType="Resource"><mwg-rs:RegionList><rdf:Bag>'
           '<rdf:li rdf:parseType="Resource"><mwg-rs:Name>{name}</mwg-rs:Name>'
           '<mwg-rs:Type>Face</mwg-rs:Type><mwg-rs:Area stArea:x="{x}" stArea:y="{y}" '
           'stArea:w="{w}" stArea:h="{h}" stArea:unit="normalized"/></rdf:li>'
           '</rdf:Bag></mwg-rs:RegionList></mwg-rs:Regions>')
_HOSTILE_SIDECARS = {
    "entity": '<!DOCTYPE x:xmpmeta [<!ENTITY me "Jane">]>\n'
              + _RDF.format(body=_TAGS.format(creator="&me;")),
    "element": '<!DOCTYPE x:xmpmeta [<!ELEMENT foo ANY>]>\n'
               + _RDF.format(body=_TAGS.format(creator="Jane")),
    "xxe": '<!DOCTYPE x:xmpmeta [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
           + _RDF.format(body=_TAGS.format(creator="&e;")),
    "laughs": '<!DOCTYPE x:xmpmeta [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">'
                        for p, n in zip("abcdefgh", "bcdefghi", strict=True))
              + ']>\n' + _RDF.format(body=_TAGS.format(creator="&i;")),
    "malformed": _RDF.format(body=_TAGS.format(creator="Jane"))[:-40],
}


def _sidecar(photo: Path, kind: str) -> Path:
    sidecar = photo.with_name(photo.name + ".xmp")
    sidecar.write_bytes((_XPACKET + _HOSTILE_SIDECARS[kind] + '\n<?xpacket end="w"?>')
                        .encode())
    return sidecar


def _named_photos(settings: Settings, lib: Path, names: list[str]) -> list[Path]:
    """Copies of PHOTO (one image, several paths) whose faces are named."""
    from rbv.jobs.library.index import run_index
    from rbv.store import open_database
    from tests.test_xmp import _name_by_position

    lib.mkdir()
    photos = [lib / f"{name}.jpg" for name in names]
    for photo in photos:
        shutil.copy(PHOTO, photo)
    run_index(open_database(settings), settings, [lib], analyzer=_analyzer())
    _name_by_position(settings)
    return photos


def _analyzer():  # type: ignore[no-untyped-def]
    from rbv.faces.analyzer import load_analyzer
    from tests.conftest import PACK

    return load_analyzer(str(PACK), device="cpu")


def test_export_never_writes_over_a_sidecar_it_cannot_parse(
        cli, settings: Settings, tmp_path: Path, exiftool: str) -> None:
    """The issue's reproduction: exiv2 reads a sidecar with a DOCTYPE as empty, and rbv
    wrote a fresh packet over its keywords, rating, description and creator."""
    kinds = ["entity", "element", "malformed"]
    photos = _named_photos(settings, tmp_path / "lib", [*kinds, "plain"])
    sidecars = {photo: _sidecar(photo, kind) for photo, kind in zip(photos, kinds,
                                                                      strict=False)}
    before = {p: p.read_bytes() for p in sidecars.values()}
    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp")
    assert result.exit_code == 3, result.output
    errors = _errors(result.stderr)
    assert len(errors) == 3, result.stderr
    for sidecar in sidecars.values():
        assert any(str(sidecar) in e and "cannot be parsed" in e for e in errors), errors
    assert {p: p.read_bytes() for p in sidecars.values()} == before
    assert Path(str(photos[-1]) + ".xmp").is_file()  # the run went on
    import subprocess
    out = subprocess.run([exiftool, "-j", "-Rating", "-Subject",
                          str(sidecars[photos[0]])], capture_output=True, text=True)
    assert json.loads(out.stdout)[0]["Rating"] == 4  # what rbv would have wiped


def test_import_reports_unreadable_sidecars_and_malformed_regions(
        cli, settings: Settings, tmp_path: Path) -> None:
    kinds = ["xxe", "laughs", "malformed"]
    photos = _named_photos(settings, tmp_path / "lib", [*kinds, "picasa", "mp", "good"])
    with psycopg.connect(str(settings.database_url)) as conn:
        conn.execute("UPDATE face_detections SET person_id = NULL, assigned_by = NULL")
        conn.execute("DELETE FROM persons")
        x1, y1, x2, y2 = conn.execute("SELECT x1, y1, x2, y2 FROM face_detections "
                                      "ORDER BY x1 LIMIT 1").fetchone()
    for photo, kind in zip(photos, kinds, strict=False):
        _sidecar(photo, kind)
    from PIL import Image
    w, h = Image.open(PHOTO).size
    box = {"x": (x1 + x2) / 2 / w, "y": (y1 + y2) / 2 / h, "w": (x2 - x1) / w,
           "h": (y2 - y1) / h}
    picasa, mp, good = photos[3:]
    Path(str(picasa) + ".xmp").write_text(_XPACKET + _RDF.format(
        body=_REGION.format(name="Ann", **{**box, "w": "wide"})) + '\n<?xpacket end="w"?>')
    Path(str(mp) + ".xmp").write_text(_XPACKET + _RDF.format(body=(
        '<MP:RegionInfo xmlns:MP="http://ns.microsoft.com/photo/1.2/" '
        'xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" '
        'xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#" '
        'rdf:parseType="Resource"><MPRI:Regions><rdf:Bag><rdf:li MPReg:PersonDisplayName='
        '"Bob" MPReg:Rectangle="0.1, 0.2, nan"/></rdf:Bag></MPRI:Regions></MP:RegionInfo>'))
        + '\n<?xpacket end="w"?>')
    Path(str(good) + ".xmp").write_text(_XPACKET + _RDF.format(
        body=_REGION.format(name="Cy", **box)) + '\n<?xpacket end="w"?>')
    result = run_cli(cli, "-d", str(settings.database_url), "import-xmp", "--json")
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    reasons = {Path(p["path"]).name: p["reason"] for p in report["problems"]}
    assert set(reasons) == {f"{p.name}.xmp" for p in photos[:5]}, reasons
    for photo in photos[:3]:
        assert "cannot be parsed" in reasons[f"{photo.name}.xmp"]
    assert "'Ann'" in reasons["picasa.jpg.xmp"] and "wide" in reasons["picasa.jpg.xmp"]
    assert "'Bob'" in reasons["mp.jpg.xmp"]
    assert "root:" not in result.output  # the external entity was never read
    assert len(_errors(result.stderr)) == 5, result.stderr
    assert report["assigned"] == 1 and report["persons_created"] == ["Cy"]  # the run went on


# --- numbers from outside that are not finite or out of range (issue 21 #8) ------------------

def _face_areas(settings: Settings, photo: Path) -> list[tuple[str, ...]]:
    """Each face of the photo as a normalised MWG area (strings), left to right."""
    from PIL import Image

    w, h = Image.open(photo).size
    rows = _rows(settings, "SELECT x1, y1, x2, y2 FROM face_detections ORDER BY x1")
    return [(str((x1 + x2) / 2 / w), str((y1 + y2) / 2 / h), str((x2 - x1) / w),
             str((y2 - y1) / h)) for x1, y1, x2, y2 in rows]


def test_non_finite_numbers_in_a_sidecar_fail_only_their_region(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    from rbv.jobs.library.index import run_index
    from rbv.store import open_database

    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copy(PHOTO, photo)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    first, second = _face_areas(settings, photo)
    (lib / "two.jpg.xmp").write_bytes(mwg_sidecar(
        ("inf", "317"), [("Alice", first), ("Bob", (second[0], second[1], "1e400", "nan"))]))

    result = run_cli(cli, "-d", str(settings.database_url), "import-xmp", str(lib))

    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output and "bug in rbv" not in result.output
    errors = _errors(result.stderr)
    assert len(errors) == 2, result.stderr
    assert "AppliedToDimensions" in errors[0] and "'inf' is not a finite number" in errors[0]
    assert "'Bob'" in errors[1] and "1e400" in errors[1]
    assert all(e.startswith(f"Error: {lib / 'two.jpg.xmp'}: ") for e in errors)
    named = _rows(settings, "SELECT n.name FROM face_detections f JOIN person_names n "
                            "ON n.person_id = f.person_id")
    assert named == [("Alice",)]  # the good region of the same file still names its face


def test_non_finite_numbers_from_immich_fail_only_their_asset(
        cli, settings: Settings, immich_library, immich_spec, tmp_path: Path) -> None:
    from tests.support.immich_server import FakeImmich

    big = [a for a in immich_library if a.truth == "big_face"]
    bad_exif, bad_face, good = big[0], big[1], big[2]
    assert bad_exif.stored_size[0] not in (a.stored_size[0] for a in (bad_face, good))

    def hostile(data: bytes) -> bytes:  # valid JSON: Python reads 1e400 as inf
        data = data.replace(b'"exifImageWidth": %d' % bad_exif.stored_size[0],
                            b'"exifImageWidth": 1e400')
        return data.replace(b'"id": "%s", "imageWidth": %d' % (
            bad_face.face_ids[0].encode(), bad_face.preview_size[0]),
            b'"id": "%s", "imageWidth": 1e400' % bad_face.face_ids[0].encode())

    server = FakeImmich([bad_exif, bad_face, good], IMMICH_KEY, immich_spec).start()
    server.faults.rewrite = hostile
    try:
        result = run_cli(cli, "-d", str(settings.database_url), "immich-stage", "--out",
                         str(tmp_path / "out"), "--url", server.url, "--no-index", "--json",
                         "--retry-wait", "0.01", "--timeout", "5",
                         env={"IMMICH_API_KEY": IMMICH_KEY})
    finally:
        server.stop()
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output and "bug in rbv" not in result.output
    got = json.loads(result.stdout)
    assert got["staged"] == 1 and got["failed"] == 2, got
    reasons = " ".join(e["error"] for e in got["errors"])
    assert "exifImageWidth 'inf' is not a finite number" in reasons
    assert "imageWidth 'inf' is not a finite number" in reasons
    assert server.downloads.keys() == {good.id}


def test_an_immich_redirect_is_reported_as_one(
        cli, settings: Settings, immich_library, immich_spec, tmp_path: Path) -> None:
    from tests.support.immich_server import FakeImmich

    server = FakeImmich(immich_library[:1], IMMICH_KEY, immich_spec).start()
    server.faults.redirect_to = "https://sso.example.com/login?next=%2F"  # a proxy's login
    try:
        result = run_cli(cli, "-d", str(settings.database_url), "immich-stage", "--out",
                         str(tmp_path / "out"), "--url", server.url, "--no-index",
                         "--retry-wait", "0.01", "--timeout", "5",
                         env={"IMMICH_API_KEY": IMMICH_KEY})
    finally:
        server.stop()
    assert result.exit_code == 1, result.output
    (error,) = _errors(result.output)
    assert "malformed JSON" not in error
    assert "redirect (HTTP 302 to https://sso.example.com/login?next=%2F)" in error
    assert "the address must be the Immich server's own; check --url / IMMICH_URL" in error
