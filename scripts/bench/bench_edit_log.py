"""What the persons edit log (migration 0011) costs: clustering writes with its trigger
in place against the same writes with the trigger disabled, and a logged merge of a big
person against its undo.

The trigger on ``face_detections`` fires only inside a persons edit; outside one (every
``rbv cluster`` write) it costs a ``WHEN`` test per row. Baseline in the same run, on the
same faces: the same ``write_assignments`` with the trigger disabled. Rounds alternate
(with, without) and the medians are compared: the line ``trigger/none = X``. Then a
``persons merge`` of two persons of half the faces each is made and undone: the line
``undo/merge = X``.

    uv run python scripts/bench/bench_edit_log.py --faces 100k
    uv run python scripts/bench/bench_edit_log.py --database postgresql://… --faces 1M
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_cluster import _size, synthetic
from rbv.config import Settings
from rbv.jobs.persons import merges
from rbv.jobs.persons.edit_log import undo
from rbv.store import open_database
from rbv.store.queries.assignments import create_persons, write_assignments
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.packs import register_pack
from rbv.store.server.migrations import apply_pending

LOAD_BATCH = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=None, help="a server URL (default: a "
                        "scratch embedded server)")
    args = parser.parse_args()
    db = open_database(Settings(database_url=args.database,
                                data_dir=Path(tempfile.mkdtemp(prefix="rbv-bench-"))),
                       require_schema=False)
    apply_pending(db)
    x, _, images = synthetic(args.faces, args.dim)
    name = f"bench_edits{args.dim}_{time.time_ns()}"
    with db.transaction() as conn:
        image_id = [int(r[0]) for r in conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) "
            "SELECT md5(%s || g::text) || md5(g::text || %s), 1, 'ok' "
            "FROM generate_series(0, %s) g RETURNING id", (name, name, len(x) - 1))]
        pack = register_pack(conn, name, {"r.onnx": name}, args.dim)
    for lo in range(0, len(x), LOAD_BATCH):
        with db.transaction() as conn:
            insert_faces(conn, (NewFace(image_id[img], pack.id, (0, 0, 100, 100), None, 0.9,
                                        None, emb)
                                for img, emb in zip(images[lo:lo + LOAD_BATCH],
                                                    x[lo:lo + LOAD_BATCH], strict=True)))
    with db.connect() as conn:
        faces = [int(r[0]) for r in conn.execute(
            "SELECT id FROM face_detections WHERE pack_id = %s ORDER BY id", (pack.id,))]
    print(f"{len(faces):,} faces × {args.dim}-d on {db.display}", flush=True)

    with db.transaction() as conn:
        persons = create_persons(conn, pack, 4)
    timings: dict[bool, list[float]] = {True: [], False: []}
    writes = 0
    for round_ in range(args.rounds):
        for trigger in (True, False):
            with db.transaction() as conn:
                conn.execute("ALTER TABLE face_detections "
                             + ("ENABLE" if trigger else "DISABLE")
                             + " TRIGGER face_detections_edit_log")
            # Every face changes person: two pairs of persons, used in turn.
            pair = persons[2 * (writes % 2):][:2]
            writes += 1
            targets = [pair[i % 2] for i in range(len(faces))]
            t = time.perf_counter()
            with db.transaction() as conn:
                changed = write_assignments(conn, faces, targets, "cluster")
            timings[trigger].append(time.perf_counter() - t)
            print(f"round {round_ + 1}, trigger {'on ' if trigger else 'off'}: "
                  f"{changed:,} faces written in {timings[trigger][-1]:.2f} s", flush=True)
    with db.transaction() as conn:
        conn.execute("ALTER TABLE face_detections ENABLE TRIGGER face_detections_edit_log")
    on, off = statistics.median(timings[True]), statistics.median(timings[False])
    print(f"trigger/none = {on / off:.3f} (medians {on:.2f} s, {off:.2f} s)", flush=True)

    with db.transaction() as conn:  # two persons, one face per photo between them
        conn.execute("UPDATE face_detections SET person_id = NULL, assigned_by = NULL "
                     "WHERE pack_id = %s", (pack.id,))
        one = [int(r[0]) for r in conn.execute(
            "SELECT DISTINCT ON (image_id) id FROM face_detections WHERE pack_id = %s "
            "ORDER BY image_id, id", (pack.id,))]
        a, b = create_persons(conn, pack, 2)
        write_assignments(conn, one, [a if i % 2 else b for i in range(len(one))], "cluster")
    t = time.perf_counter()
    moved = merges.merge(db, a, [b]).faces
    merge_s = time.perf_counter() - t
    t = time.perf_counter()
    result = undo(db, 1)
    undo_s = time.perf_counter() - t
    print(f"persons merge of {moved:,} faces into a person of {len(one) - moved:,}: "
          f"{merge_s:.2f} s (logged); persons undo: {result.rows:,} rows in {undo_s:.2f} s")
    print(f"undo/merge = {undo_s / merge_s:.2f}")


if __name__ == "__main__":
    main()
