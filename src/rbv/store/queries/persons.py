"""Queries on ``persons`` and ``person_names``, and the manual edits users make.

Every edit that places faces by hand marks them ``assigned_by = 'manual'``, which an
automatic re-cluster never undoes (they become anchors of ``rbv cluster --full``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from rbv.errors import ConfigError, PersonNotFound
from rbv.formats.names import person_name
from rbv.store.queries.drawn_faces import moved_by_hand
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_covers import cover_of


def checked_name(name: str, what: str = "a name") -> str:
    """``name`` as a person's name is kept (:func:`rbv.formats.names.person_name`: stripped, its
    invisible characters removed); else :class:`ConfigError` saying why, on one line."""
    return person_name(name, what).text


@dataclass(frozen=True)
class PersonRow:
    """A person as listed to users."""

    id: uuid.UUID
    pack: str
    name: str | None
    faces: int
    images: int
    hidden: bool
    source: str

    def as_dict(self) -> dict[str, object]:
        return {"id": str(self.id), "pack": self.pack, "name": self.name, "faces": self.faces,
                "images": self.images, "hidden": self.hidden, "source": self.source}


def list_persons(conn: psycopg.Connection, pack_id: int | None = None, *,
                 include_hidden: bool = False, min_faces: int = 1,
                 persons: Sequence[uuid.UUID] | None = None) -> list[PersonRow]:
    """Persons with their face counts and names, most faces first (merged ones never;
    named ones, and those with a birthday, whatever their faces); only ``persons``, when
    given (reading their faces alone)."""
    rows = conn.execute(
        """
        SELECT p.id, m.name, n.name, count(f.id), count(DISTINCT f.image_id), p.hidden, p.source
        FROM persons p
        JOIN model_packs m ON m.id = p.pack_id
        LEFT JOIN person_names n ON n.person_id = p.id
        LEFT JOIN face_detections f ON f.person_id = p.id
        WHERE p.merged_into IS NULL AND (%(pack)s::int IS NULL OR p.pack_id = %(pack)s)
          AND (%(hidden)s OR NOT p.hidden)
          AND (%(persons)s::uuid[] IS NULL OR p.id = ANY(%(persons)s))
        GROUP BY p.id, m.name, n.name
        HAVING count(f.id) >= %(min)s OR n.name IS NOT NULL OR p.born IS NOT NULL
        ORDER BY count(f.id) DESC, n.name NULLS LAST, p.id
        """,
        {"pack": pack_id, "hidden": include_hidden, "min": min_faces,
         "persons": None if persons is None else list(persons)},
    ).fetchall()
    return [PersonRow(*r) for r in rows]


def largest_persons(conn: psycopg.Connection, pack_id: int, faces: int, at_least: int
                    ) -> tuple[list[PersonRow], int]:
    """The visible persons of the pack with the most faces that hold ``faces`` faces,
    ``at_least`` of them at least, as :func:`list_persons` lists them, and how many
    visible persons with faces the pack has: faces counted alone first (a tenth of the
    time of counting every person's photos and names at 100,000 faces)."""
    rows = conn.execute(
        """
        WITH c AS (SELECT person_id, count(*) AS n FROM face_detections
                   WHERE pack_id = %(pack)s AND person_id IS NOT NULL GROUP BY person_id),
        v AS (SELECT c.person_id, count(*) OVER () AS every,
                     row_number() OVER w AS nth, sum(c.n) OVER w AS held
              FROM c JOIN persons p ON p.id = c.person_id
              WHERE p.merged_into IS NULL AND NOT p.hidden
              WINDOW w AS (ORDER BY c.n DESC, c.person_id))
        SELECT person_id, every FROM v WHERE nth <= %(least)s OR held <= %(faces)s
        ORDER BY nth
        """, {"pack": pack_id, "faces": faces, "least": at_least}).fetchall()
    if not rows:
        return [], 0
    return list_persons(conn, pack_id, persons=[r[0] for r in rows]), int(rows[0][1])


def pack_of(conn: psycopg.Connection, person: uuid.UUID) -> int:
    row = conn.execute("SELECT pack_id FROM persons WHERE id = %s", (person,)).fetchone()
    if row is None:
        raise PersonNotFound(f"person {person} no longer exists")
    return int(row[0])


def face_years(conn: psycopg.Connection, person: uuid.UUID) -> dict[int, float | None]:
    """Face id → EXIF year of its photo (None where the photo has no date)."""
    return {int(f): None if y is None else float(y) for f, y in conn.execute(
        "SELECT f.id, extract(year FROM i.taken_at) FROM face_detections f "
        "JOIN images i ON i.id = f.image_id WHERE f.person_id = %s", (person,))}


def set_name(conn: psycopg.Connection, person: uuid.UUID, name: str) -> None:
    """Name (or rename) a person (a name :func:`checked_name` refuses is refused)."""
    name = checked_name(name)
    conn.execute(
        """
        INSERT INTO person_names (person_id, name) VALUES (%s, %s)
        ON CONFLICT (person_id) DO UPDATE SET name = excluded.name, named_at = now()
        """,
        (person, name.strip()),
    )
    conn.execute("UPDATE persons SET updated_at = now() WHERE id = %s", (person,))


def merge_persons(conn: psycopg.Connection, target: uuid.UUID,
                  sources: Sequence[uuid.UUID]) -> int:
    """Move every face of ``sources`` into ``target`` (all marked manual, so the merge
    survives re-clustering); sources remember ``merged_into``. Returns faces moved."""
    sources = [s for s in sources if s != target]
    packs = {pack_of(conn, p) for p in [target, *sources]}
    if len(packs) > 1:
        raise ConfigError("persons of different model packs cannot be merged")
    moved = conn.execute(
        "UPDATE face_detections SET person_id = %s, assigned_by = 'manual', assigned_at = now() "
        "WHERE person_id = ANY(%s)", (target, sources)).rowcount
    # (not the faces just moved, nor those manual already: each is a logged row, and a
    # person of 2,600 faces merged into again took 50-110 ms at 100,000 faces)
    conn.execute("UPDATE face_detections SET assigned_by = 'manual', assigned_at = now() "
                 "WHERE person_id = %s AND assigned_by IS DISTINCT FROM 'manual'", (target,))
    if not conn.execute("SELECT 1 FROM person_names WHERE person_id = %s", (target,)).fetchone():
        conn.execute(
            "INSERT INTO person_names (person_id, name) SELECT %s, name FROM person_names "
            "WHERE person_id = ANY(%s) ORDER BY named_at LIMIT 1", (target, sources))
    conn.execute("UPDATE persons SET merged_into = %s, updated_at = now() WHERE id = ANY(%s)",
                 (target, sources))
    conn.execute("UPDATE persons SET merged_into = %s WHERE merged_into = ANY(%s)",
                 (target, sources))
    return moved


def carry_details(conn: psycopg.Connection, kept: uuid.UUID, others: Sequence[uuid.UUID],
                  born: date | None) -> None:
    """After a merge into ``kept``: its birthday is ``born``; its cover face its own, else
    the first of ``others``' (that face is its now)."""
    conn.execute(
        """
        UPDATE persons p SET born = %(born)s,
               cover_face_id = coalesce(p.cover_face_id, (
                   SELECT o.cover_face_id FROM unnest(%(others)s::uuid[]) WITH ORDINALITY
                       AS u (id, n) JOIN persons o ON o.id = u.id
                   WHERE o.cover_face_id IS NOT NULL ORDER BY u.n LIMIT 1))
        WHERE p.id = %(kept)s
          AND (p.born IS DISTINCT FROM %(born)s OR (p.cover_face_id IS NULL AND EXISTS (
               SELECT 1 FROM persons o WHERE o.id = ANY(%(others)s::uuid[])
                 AND o.cover_face_id IS NOT NULL)))
        """, {"kept": kept, "others": list(others), "born": born})


def missing_faces(conn: psycopg.Connection, face_ids: Sequence[int]) -> list[int]:
    """Those of ``face_ids`` that name no face (in the order given)."""
    ids = [int(f) for f in face_ids]
    found = {r[0] for r in conn.execute(
        "SELECT id FROM face_detections WHERE id = ANY(%s::bigint[])", (ids,))}
    return [f for f in ids if f not in found]


def persons_of_faces(conn: psycopg.Connection,
                     face_ids: Sequence[int]) -> dict[int, uuid.UUID]:
    """Face → its person, for those of ``face_ids`` that have one."""
    return {int(f): p for f, p in conn.execute(
        "SELECT id, person_id FROM face_detections WHERE id = ANY(%s::bigint[]) "
        "AND person_id IS NOT NULL", ([int(f) for f in face_ids],))}


def faces_of_persons(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> list[int]:
    """Ids of the faces now in ``persons``."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM face_detections WHERE person_id = ANY(%s) ORDER BY id",
        (list(persons),))]


def merge_clashes(conn: psycopg.Connection, kept: uuid.UUID,
                  others: Sequence[uuid.UUID]) -> list[list[int]]:
    """:func:`photo_clashes` of the faces of ``others`` coming into ``kept``, found by
    person (the faces' ids never leave the server: a merge of persons of 700 faces
    each sent and joined 700 ids)."""
    return [sorted(int(f) for f in r[0]) for r in conn.execute(
        """
        SELECT array_agg(id) FROM face_detections WHERE person_id = ANY(%(all)s)
        GROUP BY image_id HAVING count(*) > 1 AND bool_or(person_id <> %(kept)s)
        ORDER BY min(id)
        """, {"all": [kept, *others], "kept": kept})]


def photo_clashes(conn: psycopg.Connection, target: uuid.UUID | None,
                  incoming: Sequence[int]) -> list[list[int]]:
    """Groups of face ids that would share one photo in ``target`` (None: a new person)
    if the ``incoming`` faces joined it: one per such photo."""
    return [sorted(int(f) for f in r[0]) for r in conn.execute(
        """
        SELECT array_agg(id) FROM face_detections
        WHERE (id = ANY(%(ids)s::bigint[]) OR person_id = %(p)s)
          AND image_id IN (SELECT image_id FROM face_detections
                           WHERE id = ANY(%(ids)s::bigint[]))
        GROUP BY image_id HAVING count(*) > 1 ORDER BY min(id)
        """,
        {"ids": [int(f) for f in incoming], "p": target})]


def move_faces(conn: psycopg.Connection, face_ids: Sequence[int],
               target: uuid.UUID) -> int:
    """Put faces in ``target`` by hand (manual). The earlier decisions this contradicts
    are lifted by the caller first (:mod:`rbv.store.queries.contradictions`)."""
    pack = pack_of(conn, target)
    bad = conn.execute("SELECT id FROM face_detections WHERE id = ANY(%s) AND pack_id <> %s",
                       (list(face_ids), pack)).fetchall()
    if bad:
        raise ConfigError(f"face {bad[0][0]} belongs to another model pack than the person")
    return conn.execute(
        "UPDATE face_detections SET person_id = %s, assigned_by = 'manual', assigned_at = now() "
        "WHERE id = ANY(%s)", (target, list(face_ids))).rowcount


def new_person(conn: psycopg.Connection, pack_id: int, source: str = "manual") -> uuid.UUID:
    person = uuid.uuid4()
    conn.execute("INSERT INTO persons (id, pack_id, source) VALUES (%s, %s, %s)",
                 (person, pack_id, source))
    return person


def is_hidden(conn: psycopg.Connection, person: uuid.UUID) -> bool:
    row = conn.execute("SELECT hidden FROM persons WHERE id = %s", (person,)).fetchone()
    return bool(row and row[0])


def delete_person(conn: psycopg.Connection, person: uuid.UUID) -> None:
    """Delete a person (one an edit made and left without faces)."""
    conn.execute("DELETE FROM persons WHERE id = %s", (person,))


def reject_faces(conn: psycopg.Connection, person: uuid.UUID,
                 face_ids: Sequence[int]) -> int:
    """"Not this person": the faces leave ``person`` for good. Each becomes a
    cannot-link with the person's remaining faces and is unassigned (the next
    ``rbv cluster`` places it elsewhere). Returns faces rejected."""
    ids = [int(f) for f in face_ids]
    conn.execute(
        "INSERT INTO person_rejections (face_id, person_id) SELECT unnest(%s::bigint[]), %s "
        "ON CONFLICT DO NOTHING", (ids, person))
    conn.execute(
        """
        INSERT INTO cannot_links (face_a, face_b)
        SELECT least(r, f.id), greatest(r, f.id)
        FROM unnest(%s::bigint[]) AS r
        CROSS JOIN LATERAL (SELECT id FROM face_detections WHERE person_id = %s
                            AND NOT id = ANY(%s) ORDER BY assigned_by = 'manual' DESC, id
                            LIMIT 1000) f
        ON CONFLICT DO NOTHING
        """,
        (ids, person, ids),
    )
    return conn.execute(
        "UPDATE face_detections SET person_id = NULL, assigned_by = NULL, assigned_at = now() "
        "WHERE person_id = %s AND id = ANY(%s)", (person, ids)).rowcount


def set_hidden(conn: psycopg.Connection, persons: Sequence[uuid.UUID], hidden: bool) -> int:
    return conn.execute("UPDATE persons SET hidden = %s, updated_at = now() WHERE id = ANY(%s)",
                        (hidden, list(persons))).rowcount


def assign_split(conn: psycopg.Connection, groups: Sequence[Sequence[int]],
                 person: uuid.UUID, pack_id: int) -> list[uuid.UUID]:
    """The first group stays in ``person``; each other group becomes a new person. All
    faces are marked manual so a re-cluster keeps the split. Returns the new ids."""
    created: list[uuid.UUID] = []
    for i, group in enumerate(groups):
        target = person if i == 0 else new_person(conn, pack_id)
        if i:
            created.append(target)
        conn.execute(
            "UPDATE face_detections SET person_id = %s, assigned_by = 'manual', "
            "assigned_at = now() WHERE id = ANY(%s)", (target, list(group)))
    return created


@dataclass(frozen=True)
class PersonFace:
    id: int
    path: str | None
    bbox: tuple[float, float, float, float]
    det_score: float
    assigned_by: str | None
    taken_at: datetime | None = None  # its photo's EXIF date (camera local time)
    drawn: str | None = None  # a face drawn by hand: its landmarks from 'detector' | 'box'
    moved: bool = False  # drawn because the user moved the detector's box (faces box)
    estimated_age: float | None = None  # an attribute model's (face_attributes)
    estimated_gender: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "path": self.path, "bbox": list(self.bbox),
                "det_score": self.det_score, "assigned_by": self.assigned_by,
                "taken_at": self.taken_at.isoformat() if self.taken_at else None,
                "drawn": self.drawn, "box_moved": self.moved,
                "estimated_age": None if self.estimated_age is None
                else round(self.estimated_age, 1),
                "estimated_gender": self.estimated_gender}


def faces_of(conn: psycopg.Connection, person: uuid.UUID, limit: int | None = 1000
             ) -> list[PersonFace]:
    """A person's faces with one path of each photo and its date: its cover face first
    (the one :func:`cover_of` gives), then best detections first; up to ``limit`` (None:
    all)."""
    cover = cover_of(conn, person)
    rows = conn.execute(
        """
        SELECT f.id, (SELECT min(p.path) FROM image_paths p WHERE p.image_id = f.image_id),
               f.x1, f.y1, f.x2, f.y2, f.det_score, f.assigned_by, i.taken_at, f.drawn,
               """ + moved_by_hand("f") + """, a.age, a.gender
        FROM face_detections f JOIN images i ON i.id = f.image_id
        LEFT JOIN face_attributes a ON a.face_id = f.id
        WHERE f.person_id = %s
        ORDER BY f.id = %s DESC, f.det_score DESC, f.id LIMIT %s
        """,
        (person, cover, limit),
    ).fetchall()
    return [PersonFace(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8], r[9],
                       bool(r[10]), r[11], r[12]) for r in rows]


def place_faces(conn: psycopg.Connection, face_ids: Sequence[int], person: uuid.UUID) -> int:
    """Place faces in ``person`` by hand, except faces a user rejected from it or marked
    not a face; returns how many changed."""
    return conn.execute(
        """
        UPDATE face_detections f SET person_id = %(p)s, assigned_by = 'manual',
               assigned_at = now()
        WHERE f.id = ANY(%(ids)s)
          AND (f.person_id IS DISTINCT FROM %(p)s OR f.assigned_by IS DISTINCT FROM 'manual')
          AND NOT EXISTS (SELECT 1 FROM person_rejections r
                          WHERE r.face_id = f.id AND r.person_id = %(p)s)
          AND NOT EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = f.id)
        """,
        {"p": person, "ids": list(face_ids)},
    ).rowcount


def packs_of_faces(conn: psycopg.Connection, face_ids: Sequence[int]) -> set[int]:
    """The packs the faces belong to (those that exist), in one query."""
    return {int(r[0]) for r in conn.execute(
        "SELECT DISTINCT pack_id FROM face_detections WHERE id = ANY(%s)",
        ([int(f) for f in face_ids],))}


def pack_of_face(conn: psycopg.Connection, face_id: int) -> int | None:
    """The pack a face belongs to, or None when there is no such face."""
    row = conn.execute("SELECT pack_id FROM face_detections WHERE id = %s",
                       (face_id,)).fetchone()
    return int(row[0]) if row else None


@dataclass(frozen=True)
class FacePlace:
    """Where a face is, for a refusal that names it: its person (None: none), and
    whether it is marked not a face."""

    person: uuid.UUID | None
    not_a_face: bool


def face_place(conn: psycopg.Connection, face_id: int) -> FacePlace | None:
    """Where the face is (None: no such face)."""
    row = conn.execute(
        "SELECT f.person_id, EXISTS (SELECT 1 FROM not_faces x "
        "WHERE x.face_id = f.id) FROM face_detections f WHERE f.id = %s",
        (face_id,)).fetchone()
    return None if row is None else FacePlace(row[0], bool(row[1]))


def unnamed_up_to(conn: psycopg.Connection, pack_ids: Sequence[int], max_faces: int
                  ) -> list[tuple[uuid.UUID, int]]:
    """(person, faces) of every visible, unnamed, unmerged person of the packs with at
    least one face and at most ``max_faces``, fewest faces first. A person with a
    birthday is someone the user knows, named or not: never one of them."""
    return [(r[0], int(r[1])) for r in conn.execute(
        """
        SELECT p.id, count(f.id) FROM persons p
        JOIN face_detections f ON f.person_id = p.id
        WHERE p.pack_id = ANY(%s) AND p.merged_into IS NULL AND NOT p.hidden
          AND p.born IS NULL
          AND NOT EXISTS (SELECT 1 FROM person_names n WHERE n.person_id = p.id)
        GROUP BY p.id HAVING count(f.id) <= %s
        ORDER BY count(f.id), p.id
        """, (list(pack_ids), max_faces))]


def delete_persons_statement(persons: Sequence[str]) -> str:
    """The SQL a user runs (in ``rbv psql``) to delete these persons, names and all: rbv
    prints it and never runs it (a name is the user's to delete)."""
    ids = ", ".join(f"'{uuid.UUID(p)}'" for p in persons)  # uuids only: nothing to escape
    return f"DELETE FROM persons WHERE id IN ({ids})"


def person_sizes(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many faces each of ``persons`` has (those with none are left out)."""
    return {p: int(n) for p, n in conn.execute(
        "SELECT person_id, count(*) FROM face_detections WHERE person_id = ANY(%s) "
        "GROUP BY person_id", (list(persons),))}


def pack_persons(conn: psycopg.Connection, pack: PackRow) -> set[uuid.UUID]:
    """The pack's persons (merged ones never: they hold no face)."""
    return {r[0] for r in conn.execute(
        "SELECT id FROM persons WHERE pack_id = %s AND merged_into IS NULL", (pack.id,))}
