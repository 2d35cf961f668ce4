"""What ``pip install`` of rbv gets: the package and its schema, and no test code."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs the wheel

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_the_package_and_its_migrations_and_no_test_code(
    tmp_path: Path,
) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is the README's installer; the suite runs under `uv run`"
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("rbv-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    package = [n for n in names if not n.startswith("rbv-")]  # less the .dist-info
    assert package and all(n.startswith("rbv/") for n in package)
    assert not [n for n in package if "test" in n.split("/")[1]], "test code in the wheel"
    migrations = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert sorted(n.removeprefix("rbv/_migrations/") for n in package
                  if n.startswith("rbv/_migrations/")) == migrations
    assert "rbv/web/templates/serve/person.html" in package
    assert "rbv/cli/app.py" in package
