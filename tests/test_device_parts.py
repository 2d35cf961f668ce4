"""`scripts/tools/device_parts.py` cuts what a GPU check needs into parts that each fit
one device call; the machine joins them back with the shell lines of the script it
writes. Cut here and joined by those same lines, every file comes back byte for byte."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "device_parts", ROOT / "scripts" / "tools" / "device_parts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parts_fit_a_call_and_the_machines_script_joins_them_back(tmp_path: Path,
                                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tool = _tool()
    monkeypatch.setattr(tool, "PART_BYTES", 1000)  # small parts, the same cutting
    files = tmp_path / "files"
    files.mkdir()
    sizes = {"ort.tar.xz": 2_345, "a.whl": 999, "b.whl": 1, "c.whl": 1_500, "empty.whl": 0}
    for name, size in sizes.items():
        (files / name).write_bytes(bytes((i * 7 + len(name)) % 256 for i in range(size)))
    out = tmp_path / "out"
    out.mkdir()
    folders = tool._split([files / name for name in sizes], out)
    assert all(sum(p.stat().st_size for p in f.iterdir()) <= 1000 for f in folders)
    assert len(folders) == 5  # 4,845 bytes in parts of 1,000
    parts = tmp_path / "parts"  # what the device calls copy to /tmp/parts, in turn
    parts.mkdir()
    for folder in folders:
        for p in folder.iterdir():
            (parts / p.name).write_bytes(p.read_bytes())
    join = re.search(r"\(cd /tmp/parts && .*?done\)", tool.RUN, re.S)
    assert join is not None
    subprocess.run(["bash", "-c", join.group(0).replace("/tmp/parts", str(parts))],
                   check=True)
    assert sorted(p.name for p in parts.iterdir()) == sorted(sizes)
    for name in sizes:
        assert (parts / name).read_bytes() == (files / name).read_bytes(), name
