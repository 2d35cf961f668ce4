"""`rbv eval` on a small labelled folder of real photos."""

from __future__ import annotations

import json
from pathlib import Path

from rbv.config import Settings
from rbv.store import open_database
from tests.conftest import FACES, PACK, run_cli

IDENTITIES = ("Barack_Obama", "Matt_Damon", "Jack_Dorsey", "Mark_Zuckerberg")


def _labelled_folder(root: Path) -> Path:
    """<identity>/<image> links to real photos (read in place, not copied)."""
    for name in IDENTITIES:
        (root / name).mkdir(parents=True)
        for photo in sorted((FACES / name).iterdir()):
            (root / name / photo.name).symlink_to(photo)
    return root


def test_eval_scores_every_method_and_calibration_stores_thresholds(
    cli, settings: Settings, tmp_path: Path
) -> None:
    folder = _labelled_folder(tmp_path / "labelled")
    url = str(settings.database_url)
    result = run_cli(cli, "-d", url, "eval", str(folder), "--model-pack", str(PACK),
                     "--calibrate", "--store", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["identities"] == len(IDENTITIES)
    assert report["labelled_faces"] >= 18
    methods = {s["method"] for s in report["scores"]}
    assert methods == {"evidence", "connected", "agglomerative", "hdbscan", "immich-baseline"}
    for method, sweep in report["calibration"].items():
        best = max(s["bcubed"]["f1"] for s in sweep)
        assert best > 0.9, method  # four well-separated people
        lo, hi = report["plateaus"][method]
        assert lo <= report["recommended_thresholds"][method] <= hi
        if method != "evidence":
            assert 0.2 <= report["recommended_thresholds"][method] <= 0.8
    with open_database(settings).connect() as conn:
        stored = conn.execute("SELECT settings FROM model_packs").fetchone()[0]  # type: ignore[index]
    assert stored["thresholds"]["connected"] == report["recommended_thresholds"]["connected"]
    assert stored["impostor"]["mu"] == report["impostor"]["mu"]
    again = run_cli(cli, "-d", url, "cluster", "--dry-run")
    assert "labelled different-person pairs of" in again.output  # the stored model is used
    connected = run_cli(cli, "-d", url, "cluster", "--dry-run", "--method", "connected")
    assert "the pack's calibrated value" in connected.output


def test_eval_of_a_folder_without_labels_says_what_it_expects(cli, settings: Settings,
                                                               tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli(cli, "-d", str(settings.database_url), "eval", str(tmp_path / "empty"),
                     "--model-pack", str(PACK))
    assert result.exit_code == 1
    assert result.output.startswith("Error: no labelled images in")
