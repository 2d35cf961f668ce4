"""Pure logic of immich-stage: box scaling, safe paths, the crash-safe state file."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from rbv.config import Settings
from rbv.errors import ConfigError, ImmichUnavailable, Remedy
from rbv.immich.assets import FaceBox, ImmichAsset, face_short_edge
from rbv.immich.client import ImmichClient
from rbv.jobs.exchange import immich_state as state_module
from rbv.jobs.exchange.immich_paths import resolve_inside, safe_relative_path
from rbv.jobs.exchange.immich_state import DUP_RUN, FAILED, NO_FACE, SMALL_FACE, STAGED, StageState
from tests.conftest import run_cli


def _asset(width: int, height: int, orientation: str | None) -> ImmichAsset:
    return ImmichAsset.from_json({"id": "a", "originalPath": "x.jpg", "exifInfo": {
        "exifImageWidth": width, "exifImageHeight": height, "orientation": orientation}})


def test_preview_boxes_scale_to_the_upright_original() -> None:
    # A 4000×3000 sensor image stored sideways (orientation 6): upright it is 3000×4000,
    # and Immich's preview is 1080×1440 (upright too).
    asset = _asset(4000, 3000, "6")
    assert asset.upright_size == (3000, 4000)
    face = FaceBox(100, 200, 136, 236, image_width=1080, image_height=1440)
    assert face_short_edge(face, asset.upright_size) == pytest.approx(36 * 3000 / 1080)
    # Without the swap the box would be scaled by 4000/1080 and 3000/1440: wrong.
    assert _asset(4000, 3000, "1").upright_size == (4000, 3000)
    assert _asset(4000, 3000, None).upright_size == (4000, 3000)
    assert face_short_edge(face, None) == 36  # unknown size: preview pixels


@pytest.mark.parametrize("server_path", [
    "../../etc/passwd", "/usr/src/app/upload/library/admin/../../../../root/.ssh/id_rsa",
    "..\\..\\Windows\\system32\\x.jpg", "C:\\photos\\a.jpg", "a/./b/../../../c.jpg",
    "/", "", "dir/\x00evil\x1b.jpg", "....//....//x.jpg",
])
def test_server_paths_never_leave_the_staging_folder(server_path: str, tmp_path: Path) -> None:
    relative = safe_relative_path(server_path, "fallback.jpg", "id1")
    assert not relative.is_absolute() and ".." not in relative.parts
    target = resolve_inside(tmp_path, relative)
    assert target.is_relative_to(tmp_path.resolve())
    assert "\x00" not in str(target)


def test_immich_library_layout_is_shortened() -> None:
    path = "/usr/src/app/upload/library/admin/2023/2023-06-01/IMG_0001.jpg"
    assert safe_relative_path(path, "IMG_0001.jpg", "x") == PurePosixPath(
        "2023/2023-06-01/IMG_0001.jpg")
    assert safe_relative_path("/mnt/photos/trip/a.jpg", "a.jpg", "x") == PurePosixPath(
        "mnt/photos/trip/a.jpg")


def test_state_survives_a_torn_journal_and_refuses_another_server(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StageState.load(path, "http://a", "u")
    state.record("1", STAGED, path="x.jpg", sha256="f" * 64)
    state.save()
    state.record("2", FAILED, error="boom")
    state.record("3", STAGED, path="y.jpg", sha256="e" * 64)
    with open(state.journal_path, "a") as journal:  # a crash mid-write
        journal.write('{"id": "4", "rec')
    again = StageState.load(path, "http://a", "u")
    assert again.is_final("1") and again.is_final("3") and not again.is_final("2")
    assert again.assets["2"]["attempts"] == 1 and "4" not in again.assets
    again.save()
    assert json.loads(path.read_text())["assets"].keys() == {"1", "2", "3"}
    assert state.journal_path.read_text() == ""
    with pytest.raises(ConfigError, match="another import"):
        StageState.load(path, "http://b", "u")


def test_state_is_the_snapshot_plus_the_replayed_journal(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StageState.load(path, "http://a", "u")
    state.record("1", STAGED, path="x.jpg", sha256="f" * 64)
    state.save()
    state.record("2", FAILED, error="boom")
    state.record("2", FAILED, error="boom again")
    state.record("1", DUP_RUN, sha256="f" * 64)  # a later outcome replaces the earlier
    snapshot = path.read_bytes()
    again = StageState.load(path, "http://a", "u")  # no save: all of it from the journal
    assert path.read_bytes() == snapshot and again.journal_entries == 3
    assert again.assets == state.assets
    assert again.assets["2"] == {"status": FAILED, "attempts": 2, "error": "boom again"}
    assert again.assets["1"]["status"] == DUP_RUN


def test_appends_after_a_torn_line_are_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StageState.load(path, "http://a", "u")
    state.record("1", STAGED, path="x.jpg", sha256="f" * 64)
    with open(state.journal_path, "a") as journal:  # kill -9 mid-write
        journal.write('{"id": "2", "record": {"sta')
    resumed = StageState.load(path, "http://a", "u")
    assert resumed.journal_path.read_text().endswith("}\n")  # the torn tail is cut off
    resumed.record("3", SMALL_FACE)
    final = StageState.load(path, "http://a", "u")
    assert final.assets.keys() == {"1", "3"} and final.is_final("3")


def test_a_crash_at_any_step_of_compaction_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StageState.load(path, "http://a", "u")
    state.record("1", STAGED, path="x.jpg", sha256="f" * 64)
    state.save()
    state.record("2", FAILED, error="boom")
    state.record("3", STAGED, path="y.jpg", sha256="e" * 64)
    expected = dict(state.assets)
    # 1. Crash while writing the new snapshot: a torn temporary file, never renamed.
    stale = tmp_path / ".state.json.99999.tmp"
    stale.write_text('{"version": 1, "assets": {"1": ')
    loaded = StageState.load(path, "http://a", "u")
    assert loaded.assets == expected and not stale.exists()
    # 2. Crash after the rename, before the journal was emptied: replay is idempotent.
    journal = state.journal_path.read_bytes()
    state.save()
    state.journal_path.write_bytes(journal)
    loaded = StageState.load(path, "http://a", "u")
    assert loaded.assets == expected and loaded.assets["2"]["attempts"] == 1
    loaded.record("2", FAILED, error="again")  # and counting goes on from there
    assert StageState.load(path, "http://a", "u").assets["2"]["attempts"] == 2


def test_the_journal_is_compacted_once_it_outgrows_its_share(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "COMPACT_MIN_ENTRIES", 5)
    path = tmp_path / "state.json"
    state = StageState.load(path, "http://a", "u")
    for i in range(4):
        state.record(str(i), NO_FACE)
    assert not path.exists() and state.journal_entries == 4
    state.record("4", NO_FACE)  # the 5th line: compacted
    assert json.loads(path.read_text())["assets"].keys() == {"0", "1", "2", "3", "4"}
    assert state.journal_entries == 0 and state.journal_path.read_text() == ""
    for i in range(5, 40):
        state.record(str(i), NO_FACE)
    # 40 assets: compaction waits for max(5, 40 // COMPACT_RATIO) journal lines.
    assert state.journal_entries < max(5, len(state.assets) // state_module.COMPACT_RATIO)
    assert StageState.load(path, "http://a", "u").assets == state.assets


def test_a_single_file_state_of_an_older_rbv_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "server": "http://a", "user": "u", "assets": {
        "1": {"status": STAGED, "attempts": 0, "path": "x.jpg", "sha256": "f" * 64},
        "2": {"status": FAILED, "attempts": 3, "error": "boom"}}}))
    state = StageState.load(path, "http://a", "u")  # no journal next to it
    assert state.is_final("1") and not state.is_final("2") and state.journal_entries == 0
    assert state.staged_by_sha() == {"f" * 64: "x.jpg"}
    state.record("2", FAILED, error="boom")
    assert StageState.load(path, "http://a", "u").assets["2"]["attempts"] == 4


def test_the_api_key_is_not_in_the_settings_repr_and_is_required(cli) -> None:
    from rbv.config import Settings
    from tests.conftest import run_cli

    settings = Settings.from_env({"IMMICH_API_KEY": "very-secret-key", "IMMICH_URL": "http://x"})
    assert settings.immich_api_key == "very-secret-key"
    assert "very-secret-key" not in repr(settings)
    result = run_cli(cli, "--database", "postgresql://u@127.0.0.1:1/x", "immich-stage",
                     "--out", "/tmp/unused", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "IMMICH_API_KEY" in result.stderr


def _listed(original_path: str, name: str, local: str = "2023-06-01T10:00:00.000Z"):  # type: ignore[no-untyped-def]
    from rbv.immich.assets import ImmichAsset

    return ImmichAsset.from_json({"id": "b11b3fde-0000-4000-8000-000000000001",
                                  "originalPath": original_path, "originalFileName": name,
                                  "localDateTime": local})


def test_staged_paths_are_browsable_and_stay_inside(tmp_path: Path) -> None:
    from rbv.jobs.exchange.immich_paths import staged_relative_path

    off = "/usr/src/app/upload/upload/4b5c1d3e-0000-4000-8000-000000000001/b1/1b/b11b.jpg"
    assert staged_relative_path(_listed(off, "IMG_0001.JPG")) == PurePosixPath(
        "2023/2023-06-01/IMG_0001.JPG")
    assert staged_relative_path(_listed(off, "IMG_0001.JPG", "")) == PurePosixPath(
        "undated/IMG_0001.JPG")
    template = "/usr/src/app/upload/library/admin/2023/June/IMG_0001.jpg"
    assert staged_relative_path(_listed(template, "x.jpg")) == PurePosixPath(
        "2023/June/IMG_0001.jpg")
    for hostile in ("../../../etc/passwd", "/abs/x.jpg", "..", "a\x00b.jpg", "C:\\w\\x.jpg"):
        relative = staged_relative_path(_listed(off, hostile))
        assert resolve_inside(tmp_path, relative).is_relative_to(tmp_path.resolve())
        assert ".." not in relative.parts and "\x00" not in str(relative)
    nameless = staged_relative_path(_listed(off, ""))
    assert nameless.name == "b11b3fde-0000-4000-8000-000000000001.jpg"


def test_listing_windows_cover_their_range_without_gaps() -> None:
    from rbv.immich.listing import _Window, to_iso, to_ms

    assert to_ms("2024-01-15T14:30:00.123Z") == 1_705_329_000_123
    assert to_iso(1_705_329_000_123) == "2024-01-15T14:30:00.123Z"
    assert to_ms(to_iso(-1)) == -1 and to_ms("not a time") is None
    window = _Window((1000, 1011))
    leaves, stack = [], [window]
    while stack:  # split all the way down: every millisecond is in some leaf
        w = stack.pop()
        halves = w.halves()
        if halves is None or w.created is not None:
            leaves.append(w)
        else:
            for h in halves:
                assert h.taken is not None and h.taken[1] - h.taken[0] < 11
            stack.extend(halves)
    covered = {t for w in leaves if w.taken for t in range(w.taken[0], w.taken[1] + 1)}
    assert covered == set(range(1000, 1012))
    instant = _Window((5, 5)).halves()  # one fileCreatedAt: split by upload time next
    assert instant is not None and all(h.created is not None for h in instant)
    assert _Window((5, 5), (7, 7)).halves() is None  # both times shared: paged


def test_a_server_that_does_not_answer_names_the_setting_to_check(
        cli, settings: Settings, tmp_path: Path) -> None:
    """The client says what is wrong and carries what to check as data; the CLI words it
    as the option and the environment variable that set the address."""
    gone = "http://127.0.0.1:1"  # nothing listens on port 1
    with ImmichClient(gone, "key", retries=0) as client, \
            pytest.raises(ImmichUnavailable) as err:
        client.server_version(retry=False)
    assert "--" not in str(err.value) and "IMMICH_URL" not in str(err.value)
    assert err.value.remedies == (Remedy("check_server", {"setting": "url"}),)
    result = run_cli(cli, "-d", str(settings.database_url), "immich-stage", "--out",
                     str(tmp_path / "out"), "--url", gone, "--no-index", "--retry-wait",
                     "0.01", "--timeout", "2", env={"IMMICH_API_KEY": "key"})
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(f"Error: the Immich server at {gone} does not answer")
    assert result.stderr.endswith("; check --url / IMMICH_URL and that the server is up\n")
