"""Reading a whole pack's faces as a full `rbv cluster` does (``load_faces``, no hidden
person's), this checkout against a baseline source tree, on a library
``bench_cluster_db.py --keep DIR`` left: each read in a child process of its own,
alternated, with its seconds, the child's CPU seconds and peak memory, and whether both
read the same faces (ids, photos, persons, flags and vectors, bit for bit).

    git worktree add ../rbv-main main
    uv run python scripts/bench/bench_cluster_db.py --faces 1M --dim 512 --no-baseline \
        --keep /tmp/b1m
    uv run python scripts/bench/bench_face_reads.py /tmp/b1m --baseline ../rbv-main/src

Last line: ``baseline / this checkout = X`` (median seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
import numpy as np
from rbv.config import Settings
from rbv.store import open_database
from rbv.store.queries.pack_lookup import pack_row
try:
    from rbv.store.queries.face_reads import load_faces
except ImportError:  # before face_reads
    from rbv.store.queries.assignments import load_faces

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

db = open_database(Settings(data_dir=Path(sys.argv[1])))
with db.connect() as conn:
    row = conn.execute("SELECT id FROM model_packs WHERE name LIKE 'bench%%' "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        raise SystemExit(f"no bench_cluster_db.py library in {sys.argv[1]}")
    pack = pack_row(conn, row[0])
    start, used = time.perf_counter(), cpu()
    faces = load_faces(conn, pack, hidden=False)
    seconds, used = time.perf_counter() - start, cpu() - used
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # before the digest
digest = hashlib.sha256()
for part in (faces.ids, faces.image_ids, faces.manual, faces.embeddings):
    digest.update(np.ascontiguousarray(part).data)  # no copy of the vectors
digest.update(" ".join(str(p) for p in faces.person_ids).encode())
print(json.dumps({"seconds": seconds, "cpu": used, "faces": len(faces), "peak_mb": peak,
                  "digest": digest.hexdigest()}))
"""


def read(data: Path, source: str | None) -> dict:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = source
    out = subprocess.run([sys.executable, "-c", _CHILD, str(data)], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(out.stderr.strip().splitlines()[-1] if out.stderr else "child failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the folder bench_cluster_db.py --keep kept")
    parser.add_argument("--baseline", required=True,
                        help="a source tree of rbv (its src folder) to run against")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"baseline": [], "this checkout": []}
    for round_ in range(args.rounds):
        order = [("baseline", args.baseline), ("this checkout", None)]
        for name, source in order if round_ % 2 == 0 else order[::-1]:
            r = read(args.data, source)
            runs[name].append(r)
            print(f"round {round_ + 1} {name}: {r['faces']:,} faces in {r['seconds']:.2f} s "
                  f"(CPU {r['cpu']:.2f} s, peak {r['peak_mb']:,} MB)", flush=True)
    same = len({r["digest"] for rs in runs.values() for r in rs}) == 1
    print(f"the same faces: {'yes' if same else 'NO'}")
    base, mine = (statistics.median(r["seconds"] for r in runs[k])
                  for k in ("baseline", "this checkout"))
    print(f"median baseline {base:.2f} s, this checkout {mine:.2f} s")
    print(f"baseline / this checkout = {base / mine:.2f}")


if __name__ == "__main__":
    main()
