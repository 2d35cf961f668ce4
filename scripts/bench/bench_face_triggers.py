"""What an edit costs with schema 30's triggers and indexes on ``face_detections`` and
``persons``, against schema 29's on the same library: one face moved, a person's faces
marked manual (as a merge marks the kept person's), a merge of two large persons (the
tail of `rbv serve`'s answers), a person of about 2,000 faces deleted in psql (its faces
set NULL by the foreign key), 3,000 faces deleted, and the README's reset (`UPDATE
face_detections SET person_id = NULL`) of ``--reset`` faces.

The library is `bench_serve.py`'s (synthetic 128-d faces in persons of Zipf-like sizes,
each person's sum cached as `rbv cluster` leaves it). Every statement runs in a
transaction that is rolled back, alternately as shipped and as schema 29 (the trigger
functions read from ``migrations/0015_…`` and ``0028_…`` put in place inside the same
transaction, and schema 30's indexes dropped there), ``--rounds`` times; it prints the
median of each and the ratio. Schema 29's reset grows with the square of the faces:
keep ``--reset`` near 10,000.

    uv run python scripts/bench/bench_face_triggers.py
    uv run python scripts/bench/bench_face_triggers.py --faces 100k --reset 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from bench_cluster import _size
from bench_serve import _load, scratch
from rbv.store.server.migrations import migrations_dir

OLD_FUNCTIONS = (("0015_manual_needs_person.sql", "rbv_unassigned_is_undecided"),
                 ("0028_sums_moves_without_sums.sql", "rbv_sums_faces_moved"))
"""Where the schema-29 version of each trigger function was last defined."""
NEW_INDEXES = ("persons_cover_face", "persons_merged_into", "must_links_face_b",
               "cannot_links_face_b", "person_rejections_person")
"""The indexes schema 30 added (the schema-29 runs drop them in their transaction)."""


def schema_29() -> str:
    """The schema-29 trigger functions as ``CREATE OR REPLACE`` statements, and the
    indexes schema 30 added dropped."""
    out = []
    for name, function in OLD_FUNCTIONS:
        text = (migrations_dir() / name).read_text()
        found = re.search(r"CREATE (?:OR REPLACE )?FUNCTION " + function + r"\(\).*?\$\$;",
                          text, re.S)
        if found is None:
            raise SystemExit(f"{function} is not in {name}")
        out.append(found.group(0).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    return "\n".join([*out, f"DROP INDEX {', '.join(NEW_INDEXES)};"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=100_000)
    parser.add_argument("--persons", type=_size, default=5_000)
    parser.add_argument("--reset", type=_size, default=10_000,
                        help="faces the README's reset unassigns (schema 29: the square)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--edits", nargs="*", default=None,
                        help="only these (move one face, mark manual, merge, "
                             "delete a person, delete faces, reset)")
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    _, db = scratch(args.database)
    pack = _load(db, args.faces, args.persons)
    with db.connect() as conn:
        sizes = conn.execute(
            "SELECT f.person_id, count(*) FROM face_detections f JOIN person_sums s "
            "ON s.person_id = f.person_id WHERE f.pack_id = %s GROUP BY 1 ORDER BY 2 DESC",
            (pack,)).fetchall()
    taker, donor = sizes[0][0], sizes[1][0]
    deleted = min(sizes, key=lambda r: abs(r[1] - 2_000))
    print(f"{args.faces:,} faces on {db.display}; merge {sizes[1][1]:,} faces into "
          f"{sizes[0][1]:,}, delete a person of {deleted[1]:,}, reset {args.reset:,} faces")
    edits = {
        "move one face": ("UPDATE face_detections SET person_id = %s WHERE id = (SELECT "
                          "min(id) FROM face_detections WHERE person_id = %s)",
                          (taker, donor)),
        "mark manual": ("UPDATE face_detections SET assigned_by = 'manual' "
                        "WHERE person_id = %s", (taker,)),
        "merge": ("UPDATE face_detections SET person_id = %s WHERE person_id = %s",
                  (taker, donor)),
        "delete a person": ("DELETE FROM persons WHERE id = %s", (deleted[0],)),
        "delete faces": ("DELETE FROM face_detections WHERE id IN (SELECT id FROM "
                         "face_detections WHERE pack_id = %s ORDER BY id DESC LIMIT 3000)",
                         (pack,)),
        "reset": ("UPDATE face_detections SET person_id = NULL WHERE id IN (SELECT id FROM "
                  "face_detections WHERE pack_id = %s ORDER BY id LIMIT %s)",
                  (pack, args.reset)),
    }
    edits = {k: v for k, v in edits.items() if not args.edits or k in args.edits}
    before = schema_29()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for edit, (sql, params) in edits.items():
            for version in ("schema 29", "shipped"):
                with db.connect() as conn, conn.transaction(force_rollback=True):
                    if version == "schema 29":
                        conn.execute(before)
                    t = time.perf_counter()
                    conn.execute(sql, params)
                    times.setdefault((edit, version), []).append(time.perf_counter() - t)
    print(f"{'edit':<18} {'schema 29 s':>12} {'shipped s':>10} {'ratio':>7}")
    for edit in edits:
        old = statistics.median(times[(edit, "schema 29")])
        new = statistics.median(times[(edit, "shipped")])
        print(f"{edit:<18} {old:>12.4f} {new:>10.4f} {old / new:>7.2f}")


if __name__ == "__main__":
    main()
