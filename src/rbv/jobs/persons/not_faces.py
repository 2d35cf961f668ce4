"""``rbv faces not-a-face|is-a-face|not-faces``: a detection that is no face (a poster,
a statue, a pattern), marked so, and the mark taken back.

Marking is one logged edit: the face leaves its person, and the decisions about it go
with it, each said (its rejections from persons, its "same" and "different" links: a
detection that is nobody is neither the same as nor other than anyone; a "same" link
kept would still pull other faces together through it). From then on every
clustering, suggestion, review, export and push leaves it out, and a pixel edit's carry
gives the mark to the same detection in the new content. ``rbv persons undo`` puts
everything back; ``is-a-face`` takes the mark back as an edit of its own (the face then
waits, unassigned, for the next ``rbv cluster``; the dropped decisions stay dropped)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from rbv.errors import ConfigError, PersonNotFound, Refused, Remedy
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.overrides import in_words
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import contradictions
from rbv.store.queries import not_faces as store
from rbv.store.queries.contradictions import lift
from rbv.store.queries.not_faces import MarkedFace as MarkedFace
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.person_lookup import short_id
from rbv.store.server.connection import Database


@dataclass(frozen=True)
class MarkResult:
    """What marking (or unmarking) did, or would do with ``dry_run``: the faces changed,
    those already so, the persons faces left (face, person, its name), the decisions
    dropped (in words, "" when none) and the edit (None: a dry run, or nothing
    changed)."""

    changed: list[int]
    already: list[int]
    left: list[tuple[int, str, str | None]] = field(default_factory=list)
    dropped: str = ""
    edit_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"changed": self.changed, "already": self.already,
                "left": [{"face": f, "person": p, "name": n} for f, p, n in self.left],
                "dropped": self.dropped, "edit": self.edit_id}


def _faces(db: Database, face_ids: Sequence[int], model_pack: str | None
           ) -> tuple[list[int], list[store.FaceBefore]]:
    """The faces named, each once, refused whole (nothing changed) when one is unknown
    or, with ``model_pack``, of another pack."""
    ids = list(dict.fromkeys(int(f) for f in face_ids))
    if not ids:
        raise ConfigError("name one or more faces")
    with db.connect() as conn:
        found = store.faces_before(conn, ids)
        pack = find_pack(conn, model_pack) if model_pack is not None else None
    missing = sorted(set(ids) - {f.id for f in found})
    if missing:
        raise PersonNotFound(f"no face with id {', '.join(map(str, missing[:5]))} in this "
                             "database; nothing was changed")
    if pack is not None:
        other = [f.id for f in found if f.pack_id != pack.id]
        if other:
            raise ConfigError(f"face {other[0]} is not of model pack {pack.name!r}; nothing "
                              "was changed")
    return ids, found


def not_a_face(db: Database, face_ids: Sequence[int], *, model_pack: str | None = None,
               dry_run: bool = False, shown: Shown | None = None) -> MarkResult:
    """Mark the faces not a face, as one logged edit: each leaves its person, its
    rejections and links are removed (and said). Faces marked already are said, not
    refused."""
    ids, found = _faces(db, face_ids, model_pack)
    with logged_edit(db, sorted({f.pack_id for f in found}), "faces not-a-face", {"faces": ids},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        faces = store.faces_before(conn, ids)  # again, under the packs' locks
        new = [f.id for f in faces if not f.marked]
        left = [(f.id, str(f.person_id), f.person_name) for f in faces
                if not f.marked and f.person_id is not None]
        void = contradictions.marking(conn, new)
        dropped = in_words(void) if void else ""
        if new:
            lift(conn, void)
            store.mark(conn, new)
        edit.summary = (f"face{'s' if len(new) > 1 else ''} {_shown(new)} marked not a face"
                        + (f"; dropped {dropped}" if dropped else ""))
    return MarkResult(new, [f.id for f in faces if f.marked], left, dropped, edit.logged_id)


def is_a_face(db: Database, face_ids: Sequence[int], *, model_pack: str | None = None,
              dry_run: bool = False, shown: Shown | None = None) -> MarkResult:
    """Take the mark back, as one logged edit: the faces are faces again, with no person
    (the next ``rbv cluster`` places them). Faces not marked are said, not refused."""
    ids, found = _faces(db, face_ids, model_pack)
    with logged_edit(db, sorted({f.pack_id for f in found}), "faces is-a-face", {"faces": ids},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        marked = store.marked_among(conn, ids)
        store.unmark(conn, marked)
        edit.summary = f"face{'s' if len(marked) > 1 else ''} {_shown(marked)} a face again"
    return MarkResult(marked, [f for f in ids if f not in marked], edit_id=edit.logged_id)


def listing(db: Database, model_pack: str | None = None) -> list[store.MarkedFace]:
    """The faces marked not a face (of one pack, when named), newest mark first."""
    with db.connect() as conn:
        pack = find_pack(conn, model_pack) if model_pack is not None else None
        return store.list_marked(conn, pack.id if pack is not None else None)


def refuse_marked(conn: psycopg.Connection, face_ids: Sequence[int], what: str) -> None:
    """Refuse an edit that would give a marked face a person or a decision (``what``:
    the edit, in words), naming the command that takes the mark back."""
    marked = store.marked_among(conn, face_ids)
    if marked:
        raise Refused(f"face {', '.join(map(str, marked[:5]))} is marked not a face, so "
                      f"it cannot {what}; if it is a face, take the mark back first",
                      kind="not_a_face", faces=marked,
                      remedies=[Remedy("is_a_face", {"faces": marked[:5]},
                                       "it is a face")])


def _shown(face_ids: Sequence[int]) -> str:
    return ", ".join(map(str, face_ids[:8])) + (", …" if len(face_ids) > 8 else "")


def person_words(person: str, name: str | None) -> str:
    """A person as the output names it: its name, else its short id."""
    import uuid

    return repr(name) if name else f"person {short_id(uuid.UUID(person))}"
