"""What comparing faces by age costs (issue 64): the age-centred space of a library of N
synthetic faces (default 100k) that all have an estimated age, as ``cluster --full`` and
every review (``persons suggest``, ``rbv serve``'s ranking) ask for it: measured, then
asked again with nothing changed (kept), and the whole library's ages read for a full
run. Baseline in the same run: the look-alike counts of the 20,000-face sample the space
is measured on, counted over every pair with a mask of ages (as before) against the
count between faces of near ages alone (the same counts, checked).

    uv run python scripts/bench/bench_aged_space.py
    uv run python scripts/bench/bench_aged_space.py --faces 20k --dim 128
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_cluster import _size, synthetic
from rbv.cluster.ages import AGE_WINDOW, SAME_SPREADS, faces_alike
from rbv.cluster.evidence import library_impostor
from rbv.config import Settings
from rbv.jobs.grouping import aged
from rbv.store import open_database
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import register_pack
from rbv.store.server.migrations import apply_pending


def every_pair(x: np.ndarray, years: np.ndarray, same: float) -> np.ndarray:
    """The look-alike counts as they were made before: every pair, a mask of ages."""
    alike = np.zeros(len(x))
    for lo in range(0, len(x), 2_048):
        close = np.abs(years[lo:lo + 2_048, None] - years[None, :]) <= 2 * AGE_WINDOW
        alike[lo:lo + 2_048] = ((x[lo:lo + 2_048] @ x.T > same) & close).sum(axis=1)
    return np.maximum(alike, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="rbv-bench-aged-")
    try:
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from rbv.config import Settings; from rbv.store import open_database; "
                        "open_database(Settings(data_dir=Path(sys.argv[1]), server_linger_s=0),"
                        " require_schema=False)", scratch], check=True)
        run(Settings(data_dir=Path(scratch), server_linger_s=0), args.faces, args.dim)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(settings: Settings, n: int, dim: int) -> None:
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    x, who, images = synthetic(n, dim)
    rng = np.random.default_rng(0)
    ages = np.clip(rng.uniform(1, 80, who.max() + 1)[who] + rng.normal(0, 3, n), 0, 100)
    with db.transaction() as conn:
        photo = [int(r[0]) for r in conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) SELECT md5(g::text) || "
            "md5(g::text || 'a'), 1, 'ok' FROM generate_series(0, %s) g RETURNING id",
            (int(images.max()),))]
        pack = register_pack(conn, "aged", {"r.onnx": "aged"}, dim)
    for lo in range(0, n, 50_000):
        with db.transaction() as conn:
            insert_faces(conn, (NewFace(photo[int(images[i])], pack.id, (0, 0, 100, 100),
                                        None, 0.9, None, x[i])
                                for i in range(lo, min(n, lo + 50_000))))
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO face_attributes (face_id, model, model_sha256, age, age_spread, "
            "gender, gender_confidence) SELECT f.id, 'm', 'h', a.age, 3, 'female', 0.9 "
            "FROM (SELECT id, row_number() OVER (ORDER BY id) AS r FROM face_detections) f "
            "JOIN unnest(%s::float8[]) WITH ORDINALITY AS a(age, r) ON a.r = f.r",
            (ages.tolist(),))
        conn.execute("ANALYZE")
    with db.connect() as conn:
        pack = find_pack(conn, "aged")
        t = time.perf_counter()
        space = aged.aged_space(conn, pack, True)
        measured = time.perf_counter() - t
        t = time.perf_counter()
        assert aged.aged_space(conn, pack, True) is space
        kept = time.perf_counter() - t
        faces = load_faces(conn, pack)
        t = time.perf_counter()
        centred = space.embeddings(conn, faces)
        read = time.perf_counter() - t
        sample = load_faces(conn, pack, sample=aged.SAMPLE)
        years = np.clip(np.rint(aged.ages_of(conn, sample.ids, pack.id)), 0, 120).astype(int)
    load = os.getloadavg()[0]
    print(f"{n:,} faces × {dim}-d, each with an age (load {load:.1f})")
    print(f"  the space measured: {measured:.2f} s; asked again, kept: {kept * 1e3:.1f} ms")
    print(f"  every face centred by its age, the ages read: {read:.2f} s "
          f"({len(centred):,} faces)")
    own, _ = library_impostor(sample.embeddings, sample.image_ids, plain=True)
    same = own.mu + SAME_SPREADS * own.sigma
    t = time.perf_counter()
    before = every_pair(sample.embeddings, years, same)
    old = time.perf_counter() - t
    t = time.perf_counter()
    now = faces_alike(sample.embeddings, years, same)
    new = time.perf_counter() - t
    assert np.array_equal(before, now), "the counts differ"
    print(f"  look-alikes of the {len(years):,}-face sample: every pair {old:.2f} s, near "
          f"ages alone {new:.2f} s (the same counts): every pair / near ages = "
          f"{old / new:.2f}")


if __name__ == "__main__":
    main()
