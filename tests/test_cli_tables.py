"""Tables a user can read at 80 and 150 columns (issue 24 #3): one line per row where the
numbers are, long sentences in a legend, no reason column dropped, no empty table."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from rbv.config import Settings
from tests.conftest import FACES, PACK, run_cli


def _labelled(root: Path) -> Path:
    for name in ("Barack_Obama", "Matt_Damon"):
        (root / name).mkdir(parents=True)
        for photo in sorted((FACES / name).iterdir())[:3]:
            (root / name / photo.name).symlink_to(photo)
    return root


def test_eval_keeps_each_methods_scores_on_one_line_and_its_setting_in_a_legend(
        cli, settings: Settings, tmp_path: Path) -> None:
    folder = _labelled(tmp_path / "labelled")
    args = ["-d", str(settings.database_url), "eval", str(folder), "--model-pack", str(PACK)]
    report = json.loads(run_cli(cli, *args, "--json").stdout)
    for columns in (80, 150):
        result = run_cli(cli, *args, env={"COLUMNS": str(columns)})
        assert result.exit_code == 0, result.output
        lines = [line.rstrip() for line in result.stdout.splitlines()]
        assert max(len(line) for line in lines) <= columns
        header = lines.index("  method            clusters   pairwise P / R / F      "
                             "BCubed P / R / F")
        rows = [line.split() for line in lines[header + 2:header + 2 + len(report["scores"])]]
        assert rows == [
            [s["method"], str(s["clusters"]),
             *" / ".join(f"{s['pairwise'][k]:.3f}" for k in ("precision", "recall", "f1")).split(),
             *" / ".join(f"{s['bcubed'][k]:.3f}" for k in ("precision", "recall", "f1")).split()]
            for s in report["scores"]]
        legend = lines[lines.index("Settings:") + 1:]
        expected = [line for s in report["scores"] for line in textwrap.wrap(
            f"{s['method']}: {report['settings'][s['method']]}", width=columns - 1,
            initial_indent="  ", subsequent_indent="      ")]
        assert legend[:len(expected)] == expected
