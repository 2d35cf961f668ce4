"""XMP face regions at 10k photos: rbv's writer (exiv2 through the pyexiv2 wheel) against
exiftool (one ``-stay_open`` process, as pyexiftool drives it) — the choice made for
``export-xmp``. Both write a sidecar with two named MWG face regions per photo, then
read every sidecar back (what a re-run and ``import-xmp`` do); exiftool then checks
rbv's sidecars (every region and name read back).

    uv run python scripts/bench/bench_xmp.py                  # 10k sidecars each
    uv run python scripts/bench/bench_xmp.py --photos 2000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from rbv.formats.atomic import write_atomically
from rbv.formats.regions import Region, plan_regions
from rbv.formats.replace_if_unchanged import read_seen, replace_unchanged
from rbv.formats.xmp import apply_plan, read_packet, read_regions


def regions(i: int) -> list[Region]:
    return [Region(f"Person {i % 97}", 0.3, 0.4, 0.1, 0.15),
            Region(f"Person {i % 89 + 100}", 0.7, 0.4, 0.1, 0.15)]


def rbv_write(folder: Path, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        target = folder / f"{i}.jpg.xmp"
        packet = read_packet(target, sidecar=True)
        plan = plan_regions(packet.regions.mwg, regions(i))
        if plan.changes:
            data = apply_plan(packet, plan, (4000, 3000), target)
            if target.exists():  # rewritten as export-xmp does: only while unchanged
                replace_unchanged(target, data, read_seen(target)[1])
            else:
                write_atomically(target, data, durable=True, replace=False)
    return time.perf_counter() - t


def rbv_read(folder: Path, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        assert len(read_regions(folder / f"{i}.jpg.xmp").mwg) == 2
    return time.perf_counter() - t


class ExifTool:
    """One exiftool process fed commands on stdin (``-stay_open``)."""

    def __init__(self, exe: str) -> None:
        self.proc = subprocess.Popen([exe, "-stay_open", "True", "-@", "-"], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)

    def run(self, *args: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("\n".join(args) + "\n-execute\n")
        self.proc.stdin.flush()
        lines = []
        while (line := self.proc.stdout.readline()) and not line.startswith("{ready"):
            lines.append(line)
        return "".join(lines)

    def close(self) -> None:
        self.run("-stay_open", "False")
        self.proc.wait()


def exiftool_write(et: ExifTool, folder: Path, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        items = ",".join(f"{{Name={r.name},Type=Face,Area={{X={r.x},Y={r.y},W={r.w},H={r.h},"
                         "Unit=normalized}}" for r in regions(i))
        et.run("-struct", "-RegionInfo={AppliedToDimensions={W=4000,H=3000,Unit=pixel},"
               f"RegionList=[{items}]}}", "-o", str(folder / f"{i}.jpg.xmp"))
    return time.perf_counter() - t


def exiftool_read(et: ExifTool, folder: Path, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        info = json.loads(et.run("-j", "-struct", "-RegionInfo", str(folder / f"{i}.jpg.xmp")))
        assert len(info[0]["RegionInfo"]["RegionList"]) == 2
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=10_000)
    args = parser.parse_args()
    n = args.photos
    scratch = Path(tempfile.mkdtemp(prefix="rbv-bench-xmp-"))
    (scratch / "rbv").mkdir()
    (scratch / "et").mkdir()
    write = rbv_write(scratch / "rbv", n)
    rerun = rbv_write(scratch / "rbv", n)  # a second export: read, compare, write nothing
    read = rbv_read(scratch / "rbv", n)
    print(f"rbv (pyexiv2): write {n:,} sidecars {write:.2f} s ({write / n * 1e3:.2f} ms "
          f"each); re-run {rerun:.2f} s; read {read:.2f} s")
    exe = shutil.which("exiftool")
    if exe is None:
        print("exiftool is not on PATH (apt-get install libimage-exiftool-perl): no baseline")
        return
    et = ExifTool(exe)
    try:
        et_write = exiftool_write(et, scratch / "et", n)
        et_read = exiftool_read(et, scratch / "et", n)
        sample = json.loads(et.run("-j", "-struct", "-RegionInfo",
                                   *(str(scratch / "rbv" / f"{i}.jpg.xmp")
                                     for i in range(0, n, max(1, n // 100)))))
    finally:
        et.close()
    good = sum({r["Name"] for r in s["RegionInfo"]["RegionList"]}
               == {r.name for r in regions(i * max(1, n // 100))} for i, s in enumerate(sample))
    print(f"exiftool (stay_open): write {et_write:.2f} s ({et_write / n * 1e3:.2f} ms each); "
          f"read {et_read:.2f} s")
    print(f"ratio exiftool / rbv: write {et_write / write:.1f}×, read {et_read / read:.1f}×; "
          f"exiftool read back {good}/{len(sample)} sampled rbv sidecars exactly")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
