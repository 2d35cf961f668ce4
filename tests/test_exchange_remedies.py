"""Issue 63 in the exchange jobs and the review reports: what they refuse or report says
why in words that name no command or option, and carries what would put it right as
data (remedies, or the setting an error is about); the CLI words that as the command
lines and options it printed before (:mod:`rbv.cli.remedies`)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rbv.cli.remedies import command_line, in_words, steps, with_remedies
from rbv.config import Settings
from rbv.errors import ConfigError, RbvError, Remedy
from rbv.formats.regions import from_box
from rbv.jobs.exchange.export_swap import read_manifest
from rbv.jobs.exchange.immich_push import PushOptions, push_names
from rbv.jobs.exchange.immich_stage import StageOptions, check_user_label, stage_library
from rbv.jobs.exchange.immich_state import StageState
from rbv.jobs.exchange.import_folders import Skipped
from rbv.jobs.exchange.import_xmp_claims import match_claims
from rbv.jobs.exchange.import_xmp_report import ImportXmpOptions, ImportXmpReport
from rbv.jobs.exchange.photo_write_checks import check_photo
from rbv.jobs.persons.evidence import Suggestion, reject
from rbv.store.queries.images import KnownPath
from rbv.store.queries.persons import PersonRow
from rbv.store.queries.regions import FaceRow, PhotoRow
from tests.conftest import run_cli

COMMAND_TEXT = re.compile(r"`rbv\b|\brbv [a-z]|(?<![\w-])--[a-z]")
"""What a job's words may not hold: a command, an option."""

ADA = uuid.UUID("aaaaaaaa-1111-4111-8111-111111111111")
BOB = uuid.UUID("bbbbbbbb-2222-4222-8222-222222222222")


def _plain(text: str) -> str:
    assert not COMMAND_TEXT.search(text), text
    return text


def test_the_cli_words_the_new_remedies_as_the_commands_it_printed() -> None:
    assert command_line(Remedy("split", {"person": ADA})) == "rbv persons split aaaaaaaa"
    assert command_line(Remedy("unhide", {"person": ADA})) == "rbv persons unhide aaaaaaaa"
    assert command_line(Remedy("faces_add", {"photo": "/p/a b.jpg", "person": "Ann Lee",
                                             "box": (10.4, 20.6, 30.2, 40.5)})) == \
        "rbv faces add '/p/a b.jpg' --box 10,21,30,40 --person 'Ann Lee'"
    assert command_line(Remedy("import_xmp", {"folder": "/lib", "min_iou": 0.25})) == \
        "rbv import-xmp /lib --min-iou 0.25"
    name = {"person": ADA, "name": "Lindsay Ellingson"}
    assert command_line(Remedy("name", name)) == \
        "rbv persons name aaaaaaaa 'Lindsay Ellingson'"
    assert command_line(Remedy("name", {**name, "force": True})).endswith(" --force")
    assert steps([Remedy("is_a_face", {"faces": [7]}, "takes the mark back"),
                  Remedy("move", {"faces": [7], "to": "Ada"}, "puts it there")]) == \
        "`rbv faces is-a-face 7` takes the mark back, then `rbv persons move 7 --to Ada` " \
        "puts it there"
    assert steps([Remedy("move", {"faces": [3], "to": None}, "takes it out"),
                  Remedy("move", {"faces": [4], "to": BOB})]) == \
        "`rbv persons move 3` takes it out, then `rbv persons move 4 --to bbbbbbbb`"
    assert with_remedies("changed while exporting; not written",
                         [Remedy("export_xmp")]) == \
        "changed while exporting; not written; re-run `rbv export-xmp`"


def test_a_bad_refine_manifest_names_no_command_and_the_cli_says_how_to_make_one(
        tmp_path: Path) -> None:
    cases = {"not.json": ({"pack": "x"}, "is not a refine manifest (no 'facesets'); run "
                          "`rbv refine OUT` and pass OUT/refine_manifest.json"),
             "list.json": ({"facesets": {}}, ": 'facesets' must be a list; run `rbv refine "
                           "OUT` again"),
             "object.json": ({"facesets": [1]}, ": faceset #1 is not an object; run `rbv "
                             "refine OUT` again"),
             "person.json": ({"facesets": [{"folder": "faceset_001", "faces": [{"id": 1}],
                                            "person_id": "ada"}]},
                             "is not a person id; run `rbv refine OUT` again")}
    for name, (manifest, said) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(manifest))
        with pytest.raises(ConfigError) as raised:
            read_manifest(path)
        _plain(str(raised.value))
        assert [r.action for r in raised.value.remedies] in (["refine_manifest"],
                                                             ["refine_again"])
        assert in_words(raised.value).endswith(said), in_words(raised.value)


def test_a_photo_rbv_may_not_write_carries_the_index_that_lets_it(tmp_path: Path) -> None:
    photo = tmp_path / "ben.jpg"
    photo.write_bytes(b"not the photo rbv indexed")
    known = KnownPath(1, 3, datetime(2020, 1, 1, tzinfo=UTC), "ok")
    for path, seen, indexed in ((photo, None, photo), (photo, known, photo),
                                (tmp_path / "gone.jpg", known, tmp_path)):
        refused = check_photo(path, seen, path.with_suffix(".xmp"), into=False,
                              catalogued=lambda _: None)
        assert refused is not None and refused.failure
        _plain(refused.reason)
        assert [(r.action, r.args) for r in refused.remedies] == [
            ("index", {"paths": [str(indexed)]})]
        assert with_remedies(refused.reason, refused.remedies).endswith(
            f"changed since it was indexed: `rbv index {indexed}`")
    missing = KnownPath(1, 3, None, "ok", missing=True)
    refused = check_photo(photo, missing, photo, into=True, catalogued=lambda _: None)
    assert refused is not None and not refused.failure and not refused.remedies
    _plain(refused.reason)


def _option_error(error: RbvError, option: str) -> None:
    assert isinstance(error, ConfigError)
    _plain(str(error))
    assert in_words(error) == f"{error} ({option})"


def test_immich_option_errors_name_their_setting_and_the_cli_its_option(
        tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        check_user_label("a/b")
    _option_error(raised.value, "--user")
    # the options are checked before the server or the database is used
    with pytest.raises(ConfigError) as raised:
        stage_library(None, None, StageOptions(tmp_path, workers=0))  # type: ignore[arg-type]
    _option_error(raised.value, "--workers")
    for options, option in ((PushOptions(workers=0), "--workers"),
                            (PushOptions(min_iou=1.5), "--min-iou")):
        with pytest.raises(ConfigError) as raised:
            push_names(None, None, None, options)  # type: ignore[arg-type]
        _option_error(raised.value, option)
    path = tmp_path / "state.json"
    StageState.load(path, "http://a", "u").save()
    with pytest.raises(ConfigError) as raised:
        StageState.load(path, "http://b", "u")
    _option_error(raised.value, "--out")
    assert "user label" in str(raised.value)


def _person(person: uuid.UUID, name: str | None) -> PersonRow:
    return PersonRow(person, "pack", name, 5, 5, False, "cluster")


def test_review_fixes_are_remedies_the_cli_words_as_commands() -> None:
    both = Suggestion(1, _person(ADA, "Ada"), _person(BOB, "Bob"), 0.9, -3.0, "alike", (1, 2))
    assert both.remedy == Remedy("merge", {"persons": [ADA, BOB], "keep_name": "Ada"},
                                 "merge them")
    assert "command" not in both.as_dict()  # a job's report: the remedy is data
    assert both.as_dict(command_line)["command"] == \
        "rbv persons merge aaaaaaaa bbbbbbbb --keep-name Ada"
    one = Suggestion(1, _person(ADA, "Ada"), _person(BOB, None), 0.9, -3.0, "alike", (1, 2))
    assert command_line(one.remedy) == "rbv persons merge aaaaaaaa bbbbbbbb"
    assert command_line(reject("ada lovelace", [3, 4])) == \
        "rbv persons not-this-person 'ada lovelace' 3 4"
    assert command_line(reject(ADA, [3])) == "rbv persons not-this-person aaaaaaaa 3"


def test_a_face_import_folders_leaves_out_carries_the_moves_that_give_it() -> None:
    clash = Skipped(5, "two.jpg", "Barack Obama", [7])
    assert steps(clash.remedies) == ("`rbv persons move 7` takes face 7 out, then "
                                     "`rbv persons move 5 --to 'Barack Obama'`")
    decided = Skipped(5, "two.jpg", "Barack_Obama", [], "it was rejected from that person")
    assert steps(decided.remedies) == ("`rbv persons move 5 --to Barack_Obama` puts it "
                                       "there anyway (overriding it, said)")


def test_regions_import_xmp_cannot_match_carry_what_would_match_them() -> None:
    """A region a face overlaps too little, one no face is under, a name on two faces:
    reasons in words, and the remedies the CLI words as before."""
    photo = PhotoRow(1, 1000, 1000, "JPEG")
    faces = [FaceRow(11, 1, (100, 100, 200, 200), None, None, None),
             FaceRow(12, 1, (400, 400, 500, 500), None, None, None),
             FaceRow(13, 1, (600, 100, 700, 200), None, None, None)]
    regions = [("/lib/a.jpg", from_box(name, box, 1000, 1000)) for name, box in (
        ("Ann", (150, 100, 250, 200)), ("Nobody", (800, 800, 850, 850)),
        ("Bo", (400, 400, 500, 500)), ("Bo", (600, 100, 700, 200)))]
    report = ImportXmpReport("pack", dry_run=True)
    claims = match_claims(photo, regions, faces, ImportXmpOptions(), report)
    assert [c.name for c in claims] == ["Bo"]
    ann, nobody = report.unmatched
    (two,) = report.conflicts
    for entry in (ann, nobody, two):
        _plain(entry.reason)
    assert ann.reason == ("the nearest detected face overlaps its region by 0.33, less "
                          "than the 0.4 asked for")
    assert steps(ann.remedies) == "`rbv import-xmp /lib --min-iou 0.3` matches it"
    assert steps(nobody.remedies) == ("`rbv faces add /lib/a.jpg --box 800,800,50,50 "
                                      "--person Nobody` adds it by hand")
    kept = claims[0].face.id
    assert two.face == ({12, 13} - {kept}).pop()
    assert steps(two.remedies) == (f"`rbv persons move {kept}` takes face {kept} out, then "
                                   f"`rbv persons move {two.face} --to Bo` gives it to face "
                                   f"{two.face} instead")
    assert report.as_dict(steps)["unmatched"] == [  # --json: the same words, as before
        {"path": "/lib/a.jpg", "name": "Ann", "reason": ann.reason,
         "command": "`rbv import-xmp /lib --min-iou 0.3` matches it"},
        {"path": "/lib/a.jpg", "name": "Nobody", "reason": "no face was detected there",
         "command": steps(nobody.remedies)}]


def test_immich_stage_says_the_option_a_bad_value_came_from(cli, settings: Settings,
                                                             tmp_path: Path) -> None:
    """Checked before the server is asked anything: no Immich server is needed."""
    for args, said in (
            (["--user", "a/b"], "Error: the user label must be a simple folder name "
             "(letters, digits, . _ -), got 'a/b' (--user)"),
            (["--workers", "0"], "Error: the number of workers must be at least 1 "
             "(--workers)")):
        result = run_cli(cli, "--database", str(settings.database_url), "immich-stage",
                         "--out", str(tmp_path / "out"), "--url", "http://127.0.0.1:9",
                         "--no-index", "--dry-run", *args, env={"IMMICH_API_KEY": "key"})
        assert result.exit_code == 1, result.output
        assert said in result.stderr.splitlines(), result.stderr
