"""What an edit costs with the shipped schema of ``face_detections`` and ``persons``
against an earlier one on the same library: one face moved, a person's faces marked
manual (as a merge marks the kept person's), a merge of two large persons (the tail of
`rbv serve`'s answers), a person of about 2,000 faces deleted in psql (its faces set
NULL by the foreign key), 3,000 faces deleted, the README's reset (`UPDATE
face_detections SET person_id = NULL`) of ``--reset`` faces, and every face given
another person as a full `rbv cluster` writes them (``write_assignments``).

The library is `bench_serve.py`'s (synthetic 128-d faces in persons of Zipf-like sizes,
each person's sum cached as `rbv cluster` leaves it). Every statement runs in a
transaction that is rolled back, alternately as shipped and as the earlier schema
(``--against``) put in place inside the same transaction, ``--rounds`` times; it prints
the median of each and the ratio:

- ``--against 29``: the trigger functions read from ``migrations/0015_…`` and
  ``0028_…``, schema 30's indexes dropped. Schema 29's reset grows with the square of
  the faces: keep ``--reset`` near 10,000.
- ``--against 30`` (the default): ``face_short`` a stored generated column again
  (schema 31 made it virtual on PostgreSQL 18). Putting it back rewrites the table and
  its indexes in that transaction, so the shipped runs rewrite theirs too (a column
  with a volatile default added and dropped), and both read them into the server's
  cache after: each side writes into a freshly packed table.

    uv run python scripts/bench/bench_face_triggers.py
    uv run python scripts/bench/bench_face_triggers.py --against 29 --edits merge reset
    uv run python scripts/bench/bench_face_triggers.py --faces 100k --reset 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import numpy as np

from bench_cluster import _size
from bench_serve import _load, scratch
from rbv.store.queries.assignments import write_assignments
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


_PREWARM = """
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm(c) FROM (SELECT 'face_detections'::regclass AS c UNION ALL
    SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'face_detections'::regclass) t;
"""
SCHEMA_30 = """
ALTER TABLE face_detections DROP COLUMN face_short, ADD COLUMN face_short real
    GENERATED ALWAYS AS (least(x2 - x1, y2 - y1)) STORED;
""" + _PREWARM
"""Schema 30's ``face_short``, stored (schema 31 made it virtual on PostgreSQL 18): the
table and its indexes rewritten, then read into the server's cache (a rewrite writes
past it)."""
REWRITTEN = """
ALTER TABLE face_detections ADD COLUMN bench_rewrite integer DEFAULT random()::integer;
ALTER TABLE face_detections DROP COLUMN bench_rewrite;
""" + _PREWARM
"""The shipped table rewritten the same way (a volatile default rewrites it), so that
both sides of ``--against 30`` write into a freshly packed table."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=100_000)
    parser.add_argument("--persons", type=_size, default=5_000)
    parser.add_argument("--reset", type=_size, default=10_000,
                        help="faces the README's reset unassigns (schema 29: the square)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", choices=("29", "30"), default="30",
                        help="the schema the shipped one is timed against (default: 30)")
    parser.add_argument("--edits", nargs="*", default=None,
                        help="only these (move one face, mark manual, merge, "
                             "delete a person, delete faces, reset, write persons)")
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    _, db = scratch(args.database)
    pack = _load(db, args.faces, args.persons)
    with db.connect() as conn:
        faces, persons = zip(*conn.execute(
            "SELECT id, person_id FROM face_detections WHERE pack_id = %s "
            "AND person_id IS NOT NULL ORDER BY id", (pack,)).fetchall(), strict=True)
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
    # each face the person of another face, as a full run that changes them all writes
    others = list(np.random.default_rng(0).permutation(np.array(persons, object)))
    edits["write persons"] = (write_assignments, (faces, others, "cluster"))
    edits = {k: v for k, v in edits.items() if not args.edits or k in args.edits}
    old = f"schema {args.against}"
    before = ({old: schema_29()} if args.against == "29"
              else {old: SCHEMA_30, "shipped": REWRITTEN})
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for edit, (sql, params) in edits.items():
            for version in (old, "shipped"):
                with db.connect() as conn, conn.transaction(force_rollback=True):
                    if version in before:
                        conn.execute(before[version])
                    t = time.perf_counter()
                    if callable(sql):
                        sql(conn, *params)
                    else:
                        conn.execute(sql, params)
                    times.setdefault((edit, version), []).append(time.perf_counter() - t)
    print(f"{'edit':<18} {old + ' s':>12} {'shipped s':>10} {'ratio':>7}")
    for edit in edits:
        then = statistics.median(times[(edit, old)])
        now = statistics.median(times[(edit, "shipped")])
        print(f"{edit:<18} {then:>12.4f} {now:>10.4f} {then / now:>7.2f}")


if __name__ == "__main__":
    main()
