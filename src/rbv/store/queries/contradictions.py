"""Earlier manual decisions that a new one contradicts, and lifting them.

A manual decision is recorded in several places: "not this person" is a row of
``person_rejections`` plus "different" links (``cannot_links``) from the face to the
person's faces; ``rbv faces same|different`` are ``must_links``/``cannot_links`` rows;
a face placed by hand is ``assigned_by = 'manual'``. When a later decision contradicts
an earlier one, every row of the earlier one that says the opposite must go, or the
next ``rbv cluster --full`` still obeys it (README "How rbv treats your fixes").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql


@dataclass
class Contradictions:
    """Rows of earlier decisions that a new decision contradicts."""

    rejections: list[tuple[int, uuid.UUID]] = field(default_factory=list)  # (face, person)
    cannot: list[tuple[int, int]] = field(default_factory=list)  # "different" pairs, a < b
    must: list[tuple[int, int]] = field(default_factory=list)  # "same" pairs, a < b

    def __bool__(self) -> bool:
        return bool(self.rejections or self.cannot or self.must)


def _pairs(rows: list[tuple[object, ...]]) -> list[tuple[int, int]]:
    return [(int(str(a)), int(str(b))) for a, b in rows]


def placing(conn: psycopg.Connection, face_ids: Sequence[int],
            target: uuid.UUID | None) -> Contradictions:
    """What putting ``face_ids`` in ``target`` by hand (None: a new person) contradicts:
    their rejections from it, "different" links between them or with its other faces,
    and "same" links with faces placed by hand in another person."""
    ids = [int(f) for f in face_ids]
    params = {"ids": ids, "p": target}
    rejections = [(int(f), p) for f, p in conn.execute(
        "SELECT face_id, person_id FROM person_rejections "
        "WHERE face_id = ANY(%(ids)s::bigint[]) AND person_id = %(p)s ORDER BY face_id",
        params)]
    # The person's faces: those in it now, and the faces coming in.
    cannot = _pairs(conn.execute(
        """
        WITH joined AS (
            SELECT unnest(%(ids)s::bigint[]) AS id
            UNION SELECT id FROM face_detections WHERE person_id = %(p)s
        )
        SELECT c.face_a, c.face_b FROM cannot_links c
        WHERE (c.face_a = ANY(%(ids)s::bigint[]) OR c.face_b = ANY(%(ids)s::bigint[]))
          AND c.face_a IN (SELECT id FROM joined) AND c.face_b IN (SELECT id FROM joined)
        ORDER BY c.face_a, c.face_b
        """, params).fetchall())
    must = _pairs(conn.execute(
        """
        SELECT m.face_a, m.face_b FROM must_links m
        JOIN face_detections o ON o.id = CASE WHEN m.face_a = ANY(%(ids)s::bigint[])
                                              THEN m.face_b ELSE m.face_a END
        WHERE (m.face_a = ANY(%(ids)s::bigint[]) OR m.face_b = ANY(%(ids)s::bigint[]))
          AND NOT o.id = ANY(%(ids)s::bigint[])
          AND o.assigned_by = 'manual' AND o.person_id IS NOT NULL
          AND o.person_id IS DISTINCT FROM %(p)s
        ORDER BY m.face_a, m.face_b
        """, params).fetchall())
    return Contradictions(rejections, cannot, must)


def merging(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> Contradictions:
    """What making ``persons`` one person contradicts: a face of one of them rejected
    from another, and "different" links between faces of two of them."""
    ps = list(persons)
    rejections = [(int(f), p) for f, p in conn.execute(
        "SELECT r.face_id, r.person_id FROM person_rejections r "
        "JOIN face_detections f ON f.id = r.face_id "
        "WHERE r.person_id = ANY(%(ps)s) AND f.person_id = ANY(%(ps)s) "
        "AND f.person_id <> r.person_id ORDER BY r.face_id", {"ps": ps})]
    cannot = _pairs(conn.execute(
        """
        SELECT c.face_a, c.face_b FROM cannot_links c
        JOIN face_detections a ON a.id = c.face_a JOIN face_detections b ON b.id = c.face_b
        WHERE a.person_id = ANY(%(ps)s) AND b.person_id = ANY(%(ps)s)
          AND a.person_id <> b.person_id
        ORDER BY c.face_a, c.face_b
        """, {"ps": ps}).fetchall())
    return Contradictions(rejections, cannot)


def rejecting(conn: psycopg.Connection, person: uuid.UUID,
              face_ids: Sequence[int]) -> Contradictions:
    """What "``face_ids`` are not ``person``" contradicts: "same" links between them and
    the faces that stay in the person."""
    ids = [int(f) for f in face_ids]
    return Contradictions(must=_pairs(conn.execute(
        """
        SELECT m.face_a, m.face_b FROM must_links m
        JOIN face_detections o ON o.id = CASE WHEN m.face_a = ANY(%(ids)s::bigint[])
                                              THEN m.face_b ELSE m.face_a END
        WHERE (m.face_a = ANY(%(ids)s::bigint[]) OR m.face_b = ANY(%(ids)s::bigint[]))
          AND NOT o.id = ANY(%(ids)s::bigint[]) AND o.person_id = %(p)s
        ORDER BY m.face_a, m.face_b
        """, {"ids": ids, "p": person}).fetchall()))


def linking(conn: psycopg.Connection, group: Sequence[int]) -> Contradictions:
    """What "the faces of ``group`` are one person" contradicts: "different" links among
    them, and a face of it rejected from a person another face of it was put in by hand
    (with that rejection's "different" links to the person's faces)."""
    ids = [int(f) for f in group]
    rejections = [(int(f), p) for f, p in conn.execute(
        """
        SELECT DISTINCT r.face_id, r.person_id FROM person_rejections r
        JOIN face_detections o ON o.person_id = r.person_id AND o.assigned_by = 'manual'
        WHERE r.face_id = ANY(%(ids)s::bigint[]) AND o.id = ANY(%(ids)s::bigint[])
          AND o.id <> r.face_id
        ORDER BY r.face_id
        """, {"ids": ids})]
    cannot = _pairs(conn.execute(
        """
        SELECT c.face_a, c.face_b FROM cannot_links c
        WHERE (c.face_a = ANY(%(ids)s::bigint[]) AND c.face_b = ANY(%(ids)s::bigint[]))
           OR EXISTS (SELECT 1 FROM unnest(%(f)s::bigint[], %(p)s::uuid[]) AS r (face, person)
                      JOIN face_detections o ON o.person_id = r.person
                      WHERE (c.face_a = r.face AND c.face_b = o.id)
                         OR (c.face_b = r.face AND c.face_a = o.id))
        ORDER BY c.face_a, c.face_b
        """, {"ids": ids, "f": [f for f, _ in rejections],
              "p": [p for _, p in rejections]}).fetchall())
    return Contradictions(rejections, cannot)


def marking(conn: psycopg.Connection, face_ids: Sequence[int]) -> Contradictions:
    """What "``face_ids`` are not faces" makes void: every rejection of them from a
    person and every "same" or "different" link they are in (a detection that is no
    face is nobody, and the same as or other than nobody)."""
    ids = [int(f) for f in face_ids]
    rejections = [(int(f), p) for f, p in conn.execute(
        "SELECT face_id, person_id FROM person_rejections WHERE face_id = ANY(%s::bigint[]) "
        "ORDER BY face_id, person_id", (ids,))]
    pairs = {table: _pairs(conn.execute(sql.SQL(
        "SELECT face_a, face_b FROM {} WHERE face_a = ANY(%(ids)s::bigint[]) "
        "OR face_b = ANY(%(ids)s::bigint[]) ORDER BY face_a, face_b").format(
            sql.Identifier(table)), {"ids": ids}).fetchall())
        for table in ("cannot_links", "must_links")}
    return Contradictions(rejections, pairs["cannot_links"], pairs["must_links"])


def lift(conn: psycopg.Connection, found: Contradictions) -> None:
    """Delete the rows of the earlier decisions (in the caller's logged edit, so that
    ``rbv persons undo`` puts them back)."""
    if found.rejections:
        conn.execute(
            "DELETE FROM person_rejections r USING unnest(%s::bigint[], %s::uuid[]) "
            "AS x (face_id, person_id) WHERE r.face_id = x.face_id AND r.person_id = x.person_id",
            ([f for f, _ in found.rejections], [p for _, p in found.rejections]))
    for table, pairs in (("cannot_links", found.cannot), ("must_links", found.must)):
        if pairs:
            conn.execute(sql.SQL(
                "DELETE FROM {} l USING unnest(%s::bigint[], %s::bigint[]) AS x (a, b) "
                "WHERE l.face_a = x.a AND l.face_b = x.b").format(sql.Identifier(table)),
                ([a for a, _ in pairs], [b for _, b in pairs]))


def carry_rejections(conn: psycopg.Connection, target: uuid.UUID,
                     sources: Sequence[uuid.UUID]) -> int:
    """A face rejected from a person merged into ``target`` is rejected from ``target``
    too (the merge says they are one person). Returns the rejections added."""
    return conn.execute(
        """
        INSERT INTO person_rejections (face_id, person_id)
        SELECT r.face_id, %(t)s FROM person_rejections r
        JOIN face_detections f ON f.id = r.face_id
        WHERE r.person_id = ANY(%(s)s) AND f.person_id IS DISTINCT FROM %(t)s
        ON CONFLICT DO NOTHING
        """, {"t": target, "s": list(sources)}).rowcount


def refused_placements(conn: psycopg.Connection, face_ids: Sequence[int],
                       person: uuid.UUID) -> dict[int, str]:
    """Why an import may not place each of ``face_ids`` in ``person``: an import names
    no face itself, so it overrides no decision. Refused: a face placed by hand in
    another person, rejected from ``person``, linked "different" with one of its faces
    (or with another face coming in), or linked "same" with a face placed by hand in
    another person. Faces already in ``person`` by hand are not looked at (nothing
    changes for them); faces not listed may be placed."""
    rows = conn.execute(
        """
        SELECT f.id, f.person_id, f.assigned_by, n.name FROM face_detections f
        LEFT JOIN person_names n ON n.person_id = f.person_id
        WHERE f.id = ANY(%s::bigint[])
        """, ([int(f) for f in face_ids],)).fetchall()
    why: dict[int, str] = {}
    incoming: list[int] = []
    for face, owner, by, name in rows:
        if by != "manual":
            incoming.append(int(face))
        elif owner != person:
            why[int(face)] = ("it was placed by hand in " + (repr(name) if name else
                                                             f"person {owner}"))
    if not incoming:
        return why
    found = placing(conn, incoming, person)
    for face, _ in found.rejections:
        why.setdefault(face, "it was rejected from that person")
    coming = set(incoming)
    pairs = [(f, o) for a, b in found.cannot for f, o in ((a, b), (b, a)) if f in coming]
    # a face of the person first; then another face coming in, unless that one stays out
    for face, other in sorted(pairs, key=lambda p: (p[1] in coming, p)):
        if other not in why:
            why.setdefault(face, f"it is linked 'different' with face {other}")
    for a, b in found.must:
        face, other = (a, b) if a in coming else (b, a)
        why.setdefault(face, f"it is linked 'same' with face {other}, placed by hand in "
                             "another person")
    return why
