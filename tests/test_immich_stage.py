"""`rbv immich-stage` end to end against the fake Immich server (real photos)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import IMMICH_FAST as FAST
from tests.conftest import IMMICH_KEY, run_cli

pytestmark = pytest.mark.slow  # ~13 s: stages a library into the Immich stand-in


def stage(cli, settings: Settings, url: str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(cli, "--database", str(settings.database_url), "immich-stage",
                   "--out", str(out), "--url", url, "--no-index", "--json", "--page-size", "50",
                   *FAST, *extra, env={"IMMICH_API_KEY": IMMICH_KEY})


def expected(library) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What a correct stage of the server's library yields, from the assets' truth."""
    big = [a for a in library if a.truth == "big_face"]
    return {
        "no_face": sum(a.truth == "no_face" for a in library),
        "small_face": sum(a.truth == "small_face" for a in library),
        "big": big,
        "unique_big": {a.sha256 for a in big},
    }


def staged_files(root: Path) -> dict[str, Path]:
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p
            for p in root.rglob("*") if p.is_file()}


def insert_images(settings: Settings, digests: list[str]) -> None:
    with psycopg.connect(str(settings.database_url)) as conn:
        for d in digests:
            conn.execute("INSERT INTO images (sha256, size_bytes) VALUES (%s, 1)", (d,))


def test_full_stage_matches_the_server(cli, settings, fake_immich, immich_library,
                                       tmp_path: Path) -> None:
    want = expected(immich_library)
    in_db = sorted(want["unique_big"])[:5]  # type: ignore[call-overload]
    insert_images(settings, in_db)
    out = tmp_path / "staging"

    result = stage(cli, settings, fake_immich.url, out, "--user", "alice")

    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    big = want["big"]
    unique = want["unique_big"]
    assert len(immich_library) >= 200
    assert got["listing_complete"] and got["server_images"] == len(immich_library)
    assert got["seen"] == len(immich_library)
    assert got["no_face"] == want["no_face"] and got["no_face"] > 0
    assert got["small_face"] == want["small_face"] and got["small_face"] > 0
    assert got["dup_db"] == 5
    assert got["dup_run"] == len(big) - len(unique) > 0  # type: ignore[arg-type]
    assert got["staged"] == len(unique) - 5  # type: ignore[arg-type]
    assert got["failed"] == 0
    # Every staged file is byte-identical to an original the server holds; none other.
    files = staged_files(out / "alice")
    assert set(files) == set(unique) - set(in_db)  # type: ignore[operator]
    originals = {a.sha256: a for a in immich_library}
    for digest, path in files.items():
        assert path.read_bytes() == originals[digest].data
        assert path.is_relative_to(out / "alice")
    # Only assets with a big face were downloaded, each once.
    assert set(fake_immich.downloads) == {a.id for a in big}  # type: ignore[attr-defined]
    assert max(fake_immich.downloads.values()) == 1
    # A second run asks for nothing again.
    fake_immich.downloads.clear()
    fake_immich.face_reads.clear()
    again = json.loads(stage(cli, settings, fake_immich.url, out, "--user", "alice").stdout)
    # Only assets without faces are asked about again (one faces request each).
    assert again["rechecked"] == again["no_face"] == want["no_face"]
    assert again["resumed"] == len(immich_library) - want["no_face"]  # type: ignore[operator]
    assert again["staged"] == 0 and not fake_immich.downloads
    no_face = {a.id for a in immich_library if a.truth == "no_face"}
    assert set(fake_immich.face_reads) == no_face
    assert max(fake_immich.face_reads.values()) == 1


def test_kill_9_mid_stage_then_rerun_finishes_without_redownloads(
        cli, settings, fake_immich, immich_library, tmp_path: Path) -> None:
    out = tmp_path / "staging"
    fake_immich.faults.download_delay_s = 0.1  # slow enough to be killed mid-stage
    env = {**os.environ, "IMMICH_API_KEY": IMMICH_KEY, "DATABASE_URL": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rbv", "--database", str(settings.database_url), "immich-stage",
         "--out", str(out), "--url", fake_immich.url, "--no-index", "--json",
         "--page-size", "50", *FAST],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(fake_immich.downloads.values()) < 40 and time.monotonic() < deadline:
            assert proc.poll() is None, "finished before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    from rbv.jobs.exchange.immich_state import FINAL, StageState

    state = StageState.load(out / ".rbv-immich-immich.json", fake_immich.url, "immich")
    finished = {i for i, r in state.assets.items() if r["status"] in FINAL}
    downloaded_then = {i for i, r in state.assets.items() if r.get("sha256")}
    assert len(downloaded_then) >= 20  # the kill came mid-stage, with work recorded
    before = dict(fake_immich.downloads)
    fake_immich.faults.download_delay_s = 0.0

    result = stage(cli, settings, fake_immich.url, out)

    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["resumed"] == len(finished)
    for asset_id in downloaded_then:  # completed assets were not downloaded again
        assert fake_immich.downloads[asset_id] == before[asset_id] == 1
    want = expected(immich_library)
    assert set(staged_files(out / "immich")) == want["unique_big"]
    assert not list((out / ".rbv-partial").iterdir())


def test_outage_mid_run_exits_2_with_state_saved_then_resumes(
        cli, settings, fake_immich, immich_library, tmp_path: Path) -> None:
    out = tmp_path / "staging"
    fake_immich.faults.down_after_downloads = 30

    result = stage(cli, settings, fake_immich.url, out, "--workers", "4")

    assert result.exit_code == 2, result.output
    # Whichever noticed first: the workers (12 failed assets) or the listing, which goes
    # on beside them (window by window).
    assert "12 consecutive errors" in result.stderr or "listing assets failed" in result.stderr
    assert "re-run" in result.stderr and "does not answer" in result.stderr
    state = json.loads((out / ".rbv-immich-immich.json").read_text())
    staged = {i for i, r in state["assets"].items() if r["status"] == "staged"}
    assert staged and all((out / "immich" / state["assets"][i]["path"]).exists()
                          for i in staged)
    first_downloads = dict(fake_immich.downloads)

    fake_immich.restart()
    result = stage(cli, settings, fake_immich.url, out, "--workers", "4")

    assert result.exit_code == 0, result.output
    assert set(staged_files(out / "immich")) == expected(immich_library)["unique_big"]
    for asset_id in staged:
        assert fake_immich.downloads[asset_id] == first_downloads[asset_id] == 1


def test_transient_faults_are_retried_and_failures_retried_next_run(
        cli, settings, fake_immich, immich_library, tmp_path: Path) -> None:
    out = tmp_path / "staging"
    big = [a for a in immich_library if a.truth == "big_face"]
    fake_immich.faults.fail_5xx = 3  # a burst: absorbed by the retries
    fake_immich.faults.malformed_faces = {big[0].id}
    fake_immich.faults.truncated = {big[1].id}
    fake_immich.faults.padded = {big[2].id: 8 << 20}  # streams past --max-download-mb

    result = stage(cli, settings, fake_immich.url, out, "--max-download-mb", "4")

    assert result.exit_code == 3, result.output
    got = json.loads(result.stdout)
    failed = {e["asset"]: e["error"] for e in got["errors"]}
    assert set(failed) == {big[0].id, big[1].id, big[2].id}
    assert "malformed JSON" in failed[big[0].id]
    assert "truncated" in failed[big[1].id]
    assert "larger than the download limit" in failed[big[2].id]
    assert not list((out / ".rbv-partial").iterdir())  # no half files left behind

    fake_immich.faults = type(fake_immich.faults)()
    fake_immich.downloads.clear()
    again = json.loads(stage(cli, settings, fake_immich.url, out).stdout)
    assert again["failed"] == 0
    assert again["resumed"] + again["rechecked"] == len(immich_library) - 3
    assert set(fake_immich.downloads) <= set(failed)


def test_errors_with_a_live_server_do_not_stop_the_run(
        cli, settings, fake_immich, immich_library, tmp_path: Path) -> None:
    out = tmp_path / "staging"
    fake_immich.faults.fail_5xx = 10_000
    fake_immich.faults.fail_path = "/api/faces"  # faces always fail, the server answers

    result = stage(cli, settings, fake_immich.url, out, "--retry-wait", "0.001")

    # Every 12 consecutive errors the probe succeeds, so the run goes on to the end and
    # reports the failures (exit 3) for the next run to retry.
    assert result.exit_code == 3, result.output
    got = json.loads(result.stdout)
    assert got["failed"] == len(immich_library) and got["staged"] == 0


def test_a_server_that_times_out_is_unavailable(cli, settings, fake_immich,
                                                tmp_path: Path) -> None:
    fake_immich.faults.delay_s = 1.0

    result = stage(cli, settings, fake_immich.url, tmp_path / "s", "--timeout", "0.2")

    assert result.exit_code == 2, result.output
    assert "does not answer" in result.stderr and "timed out" in result.stderr


def test_api_key_appears_in_no_output_log_or_state(cli, settings, fake_immich,
                                                   tmp_path: Path, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    out = tmp_path / "staging"
    outputs = []
    fake_immich.faults.down_after_downloads = 5
    r1 = stage(cli, settings, fake_immich.url, out)  # outage: exit 2
    outputs.append(r1.output)
    fake_immich.restart()
    r2 = run_cli(cli, "--database", str(settings.database_url), "immich-stage", "--out",
                 str(out), "--url", fake_immich.url, "--no-index",
                 env={"IMMICH_API_KEY": "wrong-" + IMMICH_KEY})  # auth refused
    outputs.append(r2.output)
    r3 = stage(cli, settings, fake_immich.url, out, "--dry-run")
    outputs.append(r3.output)
    assert (r1.exit_code, r2.exit_code, r3.exit_code) == (2, 1, 0)
    assert "IMMICH_API_KEY" in r2.stderr
    state_files = [p.read_text() for p in out.glob(".rbv-*") if p.is_file()]
    for text in [*outputs, caplog.text, *state_files]:
        assert IMMICH_KEY not in text
    for exc in (r1.exception, r2.exception):
        assert exc is None or IMMICH_KEY not in repr(exc)


def test_stage_then_index_catalogues_and_embeds_the_staged_files(
        cli, settings, immich_library, immich_spec, tmp_path: Path) -> None:
    from tests.conftest import PACK
    from tests.support.immich_server import FakeImmich

    big = [a for a in immich_library if a.truth == "big_face"][:6]
    small = [a for a in immich_library if a.truth == "small_face"][:2]
    server = FakeImmich(big + small, IMMICH_KEY, immich_spec).start()
    try:
        out = tmp_path / "staging"
        env = {"IMMICH_API_KEY": IMMICH_KEY, "RBV_MODEL_PACK": str(PACK),
               "RBV_DATA_DIR": str(settings.data_dir)}
        result = run_cli(cli, "--database", str(settings.database_url), "immich-stage",
                         "--out", str(out), "--url", server.url, "--json", *FAST, env=env)
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["staged"] == len({a.sha256 for a in big})
    assert got["index"]["catalogue"]["new_images"] == got["staged"]
    assert got["index"]["embed"]["images"] == got["staged"]
    with psycopg.connect(str(settings.database_url)) as conn:
        digests = {r[0] for r in conn.execute("SELECT sha256 FROM images")}
        faces = conn.execute("SELECT count(*) FROM face_detections").fetchone()[0]
    assert digests == {a.sha256 for a in big}
    assert faces >= len(digests)  # each kept asset has a big face, found again locally


# -- issue 23: what the real server (v1.135.3) does that the first stand-in did not ------

def test_tied_assets_are_each_listed_once_at_any_page_size(cli, settings, fake_immich,
                                                          immich_library, tmp_path: Path) -> None:
    """Immich pages by OFFSET over ``fileCreatedAt`` alone: with many assets sharing a
    time, plain paging lists some twice and some never (and two workers then shared one
    ``.part`` file). Every asset must be listed once and accounted for."""
    from tests.support.immich_server import TIE_GROUP

    want = expected(immich_library)
    out = tmp_path / "staging"
    assert TIE_GROUP > 7

    result = stage(cli, settings, fake_immich.url, out, "--page-size", "7")

    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["seen"] == got["server_images"] == len(immich_library)
    assert got["listing_complete"] and got["listing_exact"]
    assert got["no_face"] == want["no_face"] and got["small_face"] == want["small_face"]
    assert got["staged"] + got["dup_run"] == len(want["big"])  # type: ignore[arg-type]
    assert set(staged_files(out / "immich")) == want["unique_big"]
    assert max(fake_immich.face_reads.values()) == 1  # no asset examined twice
    assert all(b["size"] <= 7 for b in fake_immich.search_bodies)


def test_a_listing_short_of_the_server_count_warns_and_exits_3(cli, settings, fake_immich,
                                                               tmp_path: Path) -> None:
    fake_immich.extra_images = 2  # the server counts assets its search never returns

    result = stage(cli, settings, fake_immich.url, tmp_path / "out")

    assert result.exit_code == 3, result.output
    got = json.loads(result.stdout)
    assert got["server_images"] == got["seen"] + 2 and not got["listing_complete"]
    assert f"the server counts {got['server_images']:,} image assets but listed" \
        in result.stderr


def test_no_face_is_asked_again_once_immich_has_looked(cli, settings, fake_immich,
                                                       immich_library, tmp_path: Path) -> None:
    """``GET /faces`` answers ``[]`` before Immich's detection has run as well."""
    big = [a for a in immich_library if a.truth == "big_face"][:4]
    fake_immich.undetected = {a.id for a in big}
    fake_immich.queued_jobs = 4
    out = tmp_path / "staging"

    first = stage(cli, settings, fake_immich.url, out)
    got = json.loads(first.stdout)
    assert got["no_face"] == expected(immich_library)["no_face"] + 4  # type: ignore[operator]
    assert got["detection_pending"] == 4
    text = run_cli(cli, "--database", str(settings.database_url), "immich-stage", "--out",
                   str(out), "--url", fake_immich.url, "--no-index", *FAST,
                   env={"IMMICH_API_KEY": IMMICH_KEY})
    assert "4 thumbnail/metadata/face detection jobs to run" in text.stdout

    fake_immich.undetected = set()  # Immich's queue caught up
    fake_immich.queued_jobs = 0
    fake_immich.downloads.clear()
    again = json.loads(stage(cli, settings, fake_immich.url, out).stdout)
    assert again["staged"] + again["dup_run"] == 4 and again["detection_pending"] == 0
    assert set(fake_immich.downloads) == {a.id for a in big}
    assert again["rechecked"] == expected(immich_library)["no_face"] + 4  # type: ignore[operator]


def test_staged_files_are_browsable_and_never_overwrite(cli, settings, fake_immich,
                                                        immich_library, tmp_path: Path) -> None:
    """With the storage template off (Immich's default) ``originalPath`` is
    ``…/upload/<user>/<xx>/<yy>/<uuid>.jpg``: files are staged by date under the name
    the user gave, three different photos named alike each kept, a file already in the
    folder left alone."""
    big = [a for a in immich_library if a.truth == "big_face"
           and fake_immich.taken[a.id] == fake_immich.taken[immich_library[0].id]]
    alike = list({a.sha256: a for a in big}.values())[:3]
    assert len(alike) == 3
    for asset in alike:
        fake_immich.file_names[asset.id] = "IMG_0001.JPG"
    out = tmp_path / "staging"
    day = out / "immich" / "2024" / "2024-01-15"
    day.mkdir(parents=True)
    (day / "IMG_0001.JPG").write_bytes(b"the user's own file")

    result = stage(cli, settings, fake_immich.url, out)

    assert result.exit_code == 0, result.output
    assert (day / "IMG_0001.JPG").read_bytes() == b"the user's own file"
    files = staged_files(out / "immich")
    del files[hashlib.sha256(b"the user's own file").hexdigest()]
    for asset in alike:
        path = files[asset.sha256]
        assert path.parent == day and path.name.startswith("IMG_0001~")
    names = {a.sha256: fake_immich.file_names.get(a.id, a.file_name) for a in immich_library}
    for digest, path in files.items():
        relative = path.relative_to(out / "immich")
        assert relative.parts[:2] == ("2024", "2024-01-15"), relative
        stem, dot, suffix = names[digest].rpartition(".")
        assert path.name == names[digest] or (path.name.startswith(stem + "~")
                                              and path.name.endswith(dot + suffix))
        assert "upload" not in relative.parts


def test_a_wrong_key_stops_before_listing(cli, settings, fake_immich, tmp_path: Path) -> None:
    """``/server/version`` answers any key: the key is checked with ``/users/me``."""
    result = run_cli(cli, "--database", str(settings.database_url), "immich-stage", "--out",
                     str(tmp_path / "o"), "--url", fake_immich.url, "--no-index", *FAST,
                     env={"IMMICH_API_KEY": "wrong-key"})
    assert result.exit_code == 1 and "refused the API key" in result.output
    assert not fake_immich.search_bodies


def test_a_fresh_database_is_handled_as_index_handles_it(cli, empty_db_url, fake_immich,
                                                        tmp_path: Path) -> None:
    index = run_cli(cli, "--database", empty_db_url, "index", str(tmp_path))
    staged = run_cli(cli, "--database", empty_db_url, "immich-stage", "--out",
                     str(tmp_path / "o"), "--url", fake_immich.url, "--no-index",
                     env={"IMMICH_API_KEY": IMMICH_KEY})
    assert (index.exit_code, index.output) == (staged.exit_code, staged.output)
