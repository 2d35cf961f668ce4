"""A merge writes each face once: the faces it moves, and those of the person kept that
were not manual yet (each write is a logged row of the edit and a row version; the first
merge into a person of 2,600 faces took 50-110 ms of an answer in ``rbv serve`` at
100,000 faces, scripts/README.md bench_serve.py). Counted, not timed: PostgreSQL's
count of the rows the transaction updated."""

from __future__ import annotations

import psycopg

from rbv.config import Settings
from rbv.store.queries.persons import (
    faces_of_persons,
    merge_clashes,
    merge_persons,
    photo_clashes,
)
from tests.conftest import run_cli


def _updated(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT n_tup_upd FROM pg_stat_xact_user_tables "
                       "WHERE relname = 'face_detections'").fetchone()
    return int(row[0]) if row else 0


def test_a_merge_writes_each_face_once(cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    with psycopg.connect(url, autocommit=True) as conn:  # a transaction per block
        sizes = conn.execute(
            "SELECT person_id, count(*), count(*) FILTER (WHERE assigned_by = 'manual') "
            "FROM face_detections WHERE person_id IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3").fetchall()
        (keep, kept, manual), (first, first_n, _), (second, second_n, _) = sizes
        assert kept > manual  # faces of the kept person to mark manual
        with conn.transaction():  # (the counts of earlier transactions not flushed yet
            before = _updated(conn)  # are counted too: what this one adds)
            assert merge_persons(conn, keep, [first]) == first_n
            assert _updated(conn) - before == first_n + kept - manual
        with conn.transaction():  # merged into again: its faces are manual already
            before = _updated(conn)
            assert merge_persons(conn, keep, [second]) == second_n
            assert _updated(conn) - before == second_n
        assert conn.execute("SELECT count(*) FROM face_detections WHERE person_id = %s "
                            "AND assigned_by IS DISTINCT FROM 'manual'", (keep,)
                            ).fetchone() == (0,)


def test_a_merge_finds_by_person_the_photo_clashes_its_faces_would_make(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings) -> None:
    """A merge finds the clashes from the persons (the faces' ids never sent): the same
    groups as from the faces coming in, for every pair of persons of a photo of two."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    with psycopg.connect(url, autocommit=True) as conn:
        pairs = conn.execute(
            "SELECT DISTINCT a.person_id, b.person_id FROM face_detections a "
            "JOIN face_detections b ON b.image_id = a.image_id AND b.id <> a.id "
            "WHERE a.person_id IS NOT NULL AND b.person_id IS NOT NULL "
            "AND a.person_id <> b.person_id").fetchall()
        assert pairs  # persons that share a photo: merging them clashes
        apart = conn.execute(
            "SELECT a.person_id, b.person_id FROM face_detections a, face_detections b "
            "WHERE a.person_id < b.person_id AND NOT EXISTS (SELECT 1 FROM face_detections x "
            "JOIN face_detections y ON y.image_id = x.image_id "
            "WHERE x.person_id = a.person_id AND y.person_id = b.person_id) LIMIT 3").fetchall()
        for kept, other in [*pairs, *apart]:
            by_faces = photo_clashes(conn, kept, faces_of_persons(conn, [other]))
            assert merge_clashes(conn, kept, [other]) == by_faces
        assert all(merge_clashes(conn, k, [o]) for k, o in pairs)
        assert not any(merge_clashes(conn, k, [o]) for k, o in apart)
