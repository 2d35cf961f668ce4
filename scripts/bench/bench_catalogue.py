"""Cataloguing new photos (`rbv index --no-embed`: reading, hashing and probing every
file, then writing its rows), this checkout against a baseline source tree: each run
into a new data folder, alternated, with its seconds, files/s and CPU seconds (rbv's
process and its children: not the database server), and whether both made the same
catalogue (every path's image, hashes, size, metadata and status).

    git worktree add ../rbv-main main
    uv run python scripts/bench/bench_catalogue.py --baseline ../rbv-main/src
    uv run python scripts/bench/bench_catalogue.py --library /tmp/lib --baseline ../rbv-main/src

Without ``--library`` the photos are ``--variants`` variants of each photo of
``data/faces`` (``bench_device.py``'s: mirrored, scaled, cut; every one new pixels),
made in a scratch folder. Last line: ``baseline / this checkout = X`` (median seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_device import make_library  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

_DIGEST = r"""
import hashlib, sys
from pathlib import Path
from rbv.config import Settings
from rbv.store import open_database
with open_database(Settings(data_dir=Path(sys.argv[1]))).connect() as conn:
    rows = conn.execute(
        "SELECT p.path_bytes, p.size_bytes, p.sha256, p.mtime, i.sha256, i.image_hash, "
        "i.status, i.error, i.attempts, i.format, i.width, i.height, i.taken_at, "
        "i.orientation, i.exif::text, i.camera_make, i.camera_model, i.gps_lat, i.gps_lon "
        "FROM image_paths p JOIN images i ON i.id = p.image_id ORDER BY p.path_bytes"
    ).fetchall()
print(len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
"""


@dataclass
class Run:
    seconds: float
    cpu: float  # rbv's process and its children
    files: int
    digest: str  # of the catalogue's rows


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def catalogue(library: Path, data: Path, source: str, jobs: int) -> Run:
    """One `rbv index --no-embed` of ``library`` into the new data folder ``data``, run
    with the rbv of ``source`` (a src folder)."""
    env = {**os.environ, "PYTHONPATH": source, "RBV_DATA_DIR": str(data),
           "RBV_SERVER_LINGER": "30"}
    subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, check=True,
                   capture_output=True)
    used, start = _children_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rbv", "index", str(library), "--no-embed",
                           "--json", "-j", str(jobs)], env=env, capture_output=True, text=True,
                          check=False)
    seconds, used = time.perf_counter() - start, _children_cpu() - used
    if done.returncode not in (0, 3):  # 3: some files failed, said in the JSON
        raise SystemExit(f"rbv index failed ({done.returncode}):\n{done.stderr[-3000:]}")
    files = json.loads(done.stdout)["catalogue"]["files"]
    digest = subprocess.run([sys.executable, "-c", _DIGEST, str(data)], env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    return Run(seconds, used, files, digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True,
                        help="a source tree of rbv (its src folder) to run against")
    parser.add_argument("--library", type=Path, default=None,
                        help="the photos to catalogue (default: variants of data/faces)")
    parser.add_argument("--variants", type=int, default=40,
                        help="without --library: variants of each photo (default 40)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("-j", "--jobs", type=int, default=4,
                        help="rbv index -j: reading threads (default 4, rbv's default)")
    args = parser.parse_args()
    mine = str(ROOT / "src")
    runs: dict[str, list[Run]] = {"baseline": [], "this checkout": []}
    with tempfile.TemporaryDirectory(prefix="rbv-bench-catalogue-") as scratch:
        library = args.library
        if library is None:
            library = Path(scratch) / "library"
            start = time.perf_counter()
            count = make_library(SHARED / "data" / "faces", library, args.variants)
            print(f"{count:,} photos in {library} ({time.perf_counter() - start:.1f} s to make)",
                  flush=True)
        for round_ in range(args.rounds):
            order = [("baseline", args.baseline), ("this checkout", mine)]
            for name, source in order if round_ % 2 == 0 else order[::-1]:
                r = catalogue(library, Path(scratch) / f"data-{round_}-{len(runs[name])}"
                              f"-{name.replace(' ', '-')}", source, args.jobs)
                runs[name].append(r)
                print(f"round {round_ + 1} {name}: {r.files:,} files in {r.seconds:.1f} s "
                      f"= {r.files / r.seconds:.0f} files/s (CPU {r.cpu:.1f} s)", flush=True)
    same = len({r.digest for rs in runs.values() for r in rs}) == 1
    print(f"the same catalogue: {'yes' if same else 'NO'}")
    base, this = (statistics.median(r.seconds for r in runs[k])
                  for k in ("baseline", "this checkout"))
    print(f"median baseline {base:.1f} s, this checkout {this:.1f} s")
    print(f"baseline / this checkout = {base / this:.2f}")


if __name__ == "__main__":
    main()
