"""How the CLI shows things: flags in --help, speeds."""

from __future__ import annotations

import pytest

from rbv.cli.progress import rate
from tests.conftest import run_cli


@pytest.mark.parametrize(("per_second", "shown"), [
    (126155.3, "126,000 img/s"), (1234.5, "1,230 img/s"), (999.7, "1,000 img/s"),
    (12.345, "12.3 img/s"), (0.5123, "0.512 img/s"), (0.0, "0 img/s"),
])
def test_rates_show_three_significant_digits(per_second: float, shown: str) -> None:
    assert rate(per_second) == shown


@pytest.mark.parametrize("command", [[], ["persons", "list"], ["persons", "split"],
                                     ["import-folders"]])
def test_boolean_flags_show_no_type_in_help(cli, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(cli, *command, "--help")
    assert result.exit_code == 0, result.output
    assert "--" in result.stdout and "<bool>" not in result.stdout
