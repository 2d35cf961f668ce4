"""What a user reads in daily use at the terminal (issue 24): a first run offline, hints
instead of silent zeros, odds and ends."""

from __future__ import annotations

import re
from pathlib import Path

from rbv.config import Settings
from tests.conftest import FACES, run_cli

COLUMNS_80 = {"COLUMNS": "80"}


def test_a_missing_model_pack_offline_is_one_line_that_says_where_to_put_it(
        cli, settings: Settings, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(next((FACES / "Barack_Obama").iterdir()).read_bytes())
    home = tmp_path / "home"
    result = run_cli(cli, "-d", str(settings.database_url), "index", str(photos),
                     env={"HOME": str(home), "RBV_MODEL_PACK": "rbv_no_such_pack"})
    assert result.exit_code == 1
    assert result.stdout == ""
    models = home / ".insightface" / "models"
    # no internet here; where there is, the model zoo answers that it has no such pack
    assert re.fullmatch(
        re.escape(f"Error: model pack 'rbv_no_such_pack' is not in {models} and could not "
                  "be downloaded (") + r"(github\.com cannot be (found|reached): offline\?|"
        r"the model zoo has no such pack)" + re.escape(
            "); unzip https://github.com/deepinsight/insightface/releases/download/"
            f"model-zoo/rbv_no_such_pack.zip into {models / 'rbv_no_such_pack'}/, or pass "
            "--model-pack PATH (or set RBV_MODEL_PACK) to a folder holding the .onnx "
            "files\n"), result.stderr), result.stderr
