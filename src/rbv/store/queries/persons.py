"""Queries on ``persons`` and ``person_names``, and the manual edits users make.

Every edit that places faces by hand marks them ``assigned_by = 'manual'``, which an
automatic re-cluster never undoes (they become anchors of ``rbv cluster --full``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg

from rbv.errors import ConfigError, PersonNotFound, Remedy
from rbv.formats.names import name_key, person_name, shown_name, unfit_text

_SHORTEST_PREFIX = 4
"""Characters of an id's start taken as that id: fewer would often name several persons."""
_UUID_PREFIX = re.compile(rf"^[0-9a-f-]{{{_SHORTEST_PREFIX},36}}$")


def checked_name(name: str, what: str = "a name") -> str:
    """``name`` as a person's name is kept (:func:`rbv.formats.names.person_name`: stripped, its
    invisible characters removed); else :class:`ConfigError` saying why, on one line."""
    return person_name(name, what).text


def _named_like(rows: list[tuple[uuid.UUID, str]], ref: str, *, part: bool = False
                ) -> list[uuid.UUID]:
    """The persons of ``rows`` (person, name) whose name is ``ref`` by
    :func:`~rbv.formats.names.name_key` (``part``: holds it), in their order. Names are
    compared here, not in SQL: PostgreSQL's ``lower`` is not Unicode case folding, and
    under the C locale folds no letter beyond ASCII."""
    key = name_key(ref)
    return [p for p, name in rows if (key in name_key(name) if part else name_key(name) == key)]


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


def resolve_person(conn: psycopg.Connection, ref: str) -> uuid.UUID:
    """A person by uuid, unique uuid prefix (≥ 4 characters: ``_SHORTEST_PREFIX``),
    name (any case, ``_`` as a space) or unique part of a name ("Obama" for "Barack Obama").

    A merged person resolves to the person it was merged into. Several matches are
    refused, naming each candidate (name and short id)."""
    problem = unfit_text(ref)
    if problem is not None:  # no person is called so: said before PostgreSQL sees it
        raise PersonNotFound(f"no person's name {problem}: {shown_name(ref)}")
    ref = ref.strip()
    found: list[uuid.UUID] = []
    if _UUID_PREFIX.match(ref.lower()):
        found = [r[0] for r in conn.execute(
            "SELECT id FROM persons WHERE id::text LIKE %s LIMIT 10", (ref.lower() + "%",))]
    if not found:
        names = conn.execute("SELECT person_id, name FROM person_names ORDER BY name").fetchall()
        found = _named_like(names, ref)[:10] or (_named_like(names, ref, part=True)[:10]
                                                 if ref else [])
    if not found:
        raise PersonNotFound(f"no person matches {ref!r}{_too_short(conn, ref)}",
                             [Remedy("list", {}, "the persons")])
    # A name kept by a person merged into another names that other person.
    survivors = list(dict.fromkeys(_surviving(conn, p) for p in found))
    if len(survivors) > 1:
        named = labels(conn, survivors)
        shown = ", ".join(named[p] if named[p].startswith("person ") else
                          f"{named[p]} ({short_id(p)})" for p in survivors[:5])
        more = ", …" if len(survivors) > 5 or len(found) == 10 else ""
        raise PersonNotFound(f"{ref!r} matches several persons: {shown}{more}; give more of "
                             "the name or of the id")
    return survivors[0]


def existing_person(conn: psycopg.Connection, person: uuid.UUID) -> uuid.UUID:
    """The person with the id ``person``, or the one it was merged into
    (:class:`~rbv.errors.PersonNotFound` when no person has that id)."""
    if conn.execute("SELECT 1 FROM persons WHERE id = %s", (person,)).fetchone() is None:
        raise PersonNotFound(f"no person with id {person} (merged into another, or deleted "
                             "by a clustering run)", [Remedy("list", {}, "the persons")])
    return _surviving(conn, person)


def _too_short(conn: psycopg.Connection, ref: str) -> str:
    """Why ``ref`` found no id when it is an id's start too short to be taken as one
    (under 4 characters, which would often name several persons), with the persons
    whose ids start so; "" otherwise."""
    ref = ref.lower()
    if not ref or _UUID_PREFIX.match(ref) or not _UUID_PREFIX.match(ref + "0" * 4):
        return ""
    starting = [r[0] for r in conn.execute(
        "SELECT id FROM persons WHERE merged_into IS NULL AND id::text LIKE %s "
        "ORDER BY id LIMIT 4", (ref + "%",))]
    least = f": give at least {_SHORTEST_PREFIX} characters of an id"
    if not starting:
        return least
    shown = ", ".join(short_id(p) for p in starting[:3]) + (", …" if len(starting) > 3 else "")
    return f"{least} ({shown} start{'s' if len(starting) == 1 else ''} so)"


SHORT_ID = 8
"""Characters of a uuid shown for an unnamed person; any unique prefix is accepted back."""


def short_id(person: uuid.UUID) -> str:
    """The person's id as shown to users: its first :data:`SHORT_ID` characters."""
    return str(person)[:SHORT_ID]


def labels(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """What users read for each person: its name, or "person " and its short id when
    unnamed."""
    names = {r[0]: str(r[1]) for r in conn.execute(
        "SELECT person_id, name FROM person_names WHERE person_id = ANY(%s)",
        (list(persons),))}
    return {p: names.get(p, f"person {short_id(p)}") for p in persons}


def names_of(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of those of ``persons`` that have one."""
    return {r[0]: str(r[1]) for r in conn.execute(
        "SELECT person_id, name FROM person_names WHERE person_id = ANY(%s)",
        (list(persons),))}


def _surviving(conn: psycopg.Connection, person: uuid.UUID) -> uuid.UUID:
    """The person ``person`` was merged into, following merges; itself when unmerged."""
    for _ in range(100):
        row = conn.execute("SELECT merged_into FROM persons WHERE id = %s", (person,)).fetchone()
        if not row or row[0] is None:
            break
        person = row[0]
    return person


def pack_of(conn: psycopg.Connection, person: uuid.UUID) -> int:
    row = conn.execute("SELECT pack_id FROM persons WHERE id = %s", (person,)).fetchone()
    if row is None:
        raise PersonNotFound(f"person {person} no longer exists")
    return int(row[0])


def name_of(conn: psycopg.Connection, person: uuid.UUID) -> str | None:
    """The person's name, or None when unnamed."""
    row = conn.execute("SELECT name FROM person_names WHERE person_id = %s",
                       (person,)).fetchone()
    return str(row[0]) if row else None


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
    conn.execute("UPDATE face_detections SET assigned_by = 'manual', assigned_at = now() "
                 "WHERE person_id = %s", (target,))
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

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "path": self.path, "bbox": list(self.bbox),
                "det_score": self.det_score, "assigned_by": self.assigned_by,
                "taken_at": self.taken_at.isoformat() if self.taken_at else None,
                "drawn": self.drawn}


def faces_of(conn: psycopg.Connection, person: uuid.UUID, limit: int | None = 1000
             ) -> list[PersonFace]:
    """A person's faces with one path of each photo and its date: its cover face first
    (the one :func:`cover_of` gives), then best detections first; up to ``limit`` (None:
    all)."""
    cover = cover_of(conn, person)
    rows = conn.execute(
        """
        SELECT f.id, (SELECT min(p.path) FROM image_paths p WHERE p.image_id = f.image_id),
               f.x1, f.y1, f.x2, f.y2, f.det_score, f.assigned_by, i.taken_at, f.drawn
        FROM face_detections f JOIN images i ON i.id = f.image_id WHERE f.person_id = %s
        ORDER BY f.id = %s DESC, f.det_score DESC, f.id LIMIT %s
        """,
        (person, cover, limit),
    ).fetchall()
    return [PersonFace(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7], r[8], r[9]) for r in rows]


def person_named(conn: psycopg.Connection, pack_id: int, name: str, *,
                 other_than: uuid.UUID | None = None) -> uuid.UUID | None:
    """The pack's oldest unmerged person with that name (any case, ``_`` as space),
    leaving out ``other_than``; or None."""
    rows = conn.execute(
        "SELECT p.id, n.name FROM persons p JOIN person_names n ON n.person_id = p.id "
        "WHERE p.pack_id = %s AND p.merged_into IS NULL AND p.id IS DISTINCT FROM %s "
        "ORDER BY p.created_at, p.id", (pack_id, other_than)).fetchall()
    found = _named_like(rows, name)
    return found[0] if found else None


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


CHOSEN_COVER = """(SELECT c.id FROM face_detections c
    WHERE c.id = {p}.cover_face_id AND c.person_id = {p}.id
      AND NOT EXISTS (SELECT 1 FROM not_faces x WHERE x.face_id = c.id))"""
"""SQL: the cover face chosen for the person ``{p}`` (a ``persons`` row's alias), while
it is still one of its faces (NULL otherwise: the face left it by a move, a "not this
person", a clustering run, or is marked not a face; the person is shown by its
automatic face then, and the choice holds again if the face comes back)."""

BEST_FACE = """(SELECT b.id FROM face_detections b WHERE b.person_id = {p}.id
    ORDER BY b.det_score DESC, b.id LIMIT 1)"""
"""SQL: the person ``{p}``'s automatic face: its best detection."""


def cover_sql(alias: str) -> str:
    """SQL for the face that shows the person ``alias`` (a ``persons`` row): its chosen
    cover while that is one of its faces, else its best detection."""
    return (f"coalesce({CHOSEN_COVER.format(p=alias)}, {BEST_FACE.format(p=alias)})")


def cover_of(conn: psycopg.Connection, person: uuid.UUID) -> int | None:
    """The face chosen as the person's cover (``rbv persons cover``), while it is one of
    its faces; None: shown by its automatic face."""
    return chosen_covers(conn, [person]).get(person)


def chosen_covers(conn: psycopg.Connection, persons: Sequence[uuid.UUID]
                  ) -> dict[uuid.UUID, int]:
    """The chosen cover of each of ``persons`` that has one still among its faces."""
    return {r[0]: int(r[1]) for r in conn.execute(
        "SELECT p.id, " + CHOSEN_COVER.format(p="p") + " FROM persons p "
        "WHERE p.id = ANY(%s) AND p.cover_face_id IS NOT NULL", (list(persons),))
        if r[1] is not None}


def chosen_cover(conn: psycopg.Connection, person: uuid.UUID) -> int | None:
    """The face stored as the person's cover, in effect or not (None: none chosen)."""
    row = conn.execute("SELECT cover_face_id FROM persons WHERE id = %s",
                       (person,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_cover(conn: psycopg.Connection, person: uuid.UUID, face_id: int | None) -> int:
    """Make ``face_id`` the person's cover (None: back to the automatic face); rows
    changed (0: it was so already)."""
    return conn.execute(
        "UPDATE persons SET cover_face_id = %s, updated_at = now() "
        "WHERE id = %s AND cover_face_id IS DISTINCT FROM %s",
        (face_id, person, face_id)).rowcount


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
