"""``rbv faces same|different``: links between faces that every clustering honours.

A "same" link (must-link) keeps faces in one person, a "different" link (cannot-link)
keeps them apart, in every method, in full runs and in incremental ones (a new face
linked to a face of a known person goes to that person, or never to it). A link does
not move faces by itself: unassigned faces follow it at the next ``rbv cluster``,
assigned ones at the next ``rbv cluster --full``, which is why the result says which
persons it will change. Links are logged edits: ``rbv persons undo`` removes them.

A "same" link that contradicts an earlier decision (a "different" link among the faces,
or a face rejected from a person another of them was put in by hand) is refused unless
the user passes ``override``; then those decisions are removed in the same edit, and
said (README "How rbv treats your fixes").
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from rbv.errors import ConfigError, PersonNotFound
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.overrides import settle
from rbv.store.queries import contradictions, links
from rbv.store.queries.links import LinkedFace
from rbv.store.server.connection import Database


@dataclass(frozen=True)
class LinkResult:
    same: bool
    faces: list[LinkedFace]
    added: int  # links that were new (would be, with dry_run)
    effect: str  # what the link will change, in words
    edit_id: int | None  # its entry in the edit log (None: dry run or nothing new)
    overrides: str = ""  # the earlier decisions it removed, in words

    def as_dict(self) -> dict[str, object]:
        return {"link": "same" if self.same else "different", "added": self.added,
                "effect": self.effect, "edit": self.edit_id, "overrides": self.overrides,
                "faces": [{"id": f.id, "person": None if f.person_id is None
                           else str(f.person_id), "name": f.person_name} for f in self.faces]}


def link(db: Database, face_ids: Sequence[int], *, same: bool, override: bool = False,
         dry_run: bool = False) -> LinkResult:
    """Link the faces as one person (``same``) or as different persons; refused,
    changing nothing, when that contradicts a photo, an earlier link or a face placed
    by hand. With ``override`` a "same" link removes the earlier "different" links and
    rejections it contradicts (and says so)."""
    ids = [int(f) for f in face_ids]
    twice = sorted({f for f in ids if ids.count(f) > 1})
    if twice:
        raise ConfigError(f"face {twice[0]} is named twice; a face is always the same person "
                          "as itself: name two or more different faces")
    if len(ids) < 2:
        raise ConfigError("name at least two faces to link")
    with db.connect() as conn:
        found = links.linked_faces(conn, ids)
    missing = sorted(set(ids) - {f.id for f in found})
    if missing:
        raise PersonNotFound(f"no face with id {', '.join(map(str, missing[:5]))} in this "
                             "database; see `rbv persons show PERSON` for face ids")
    packs = {f.pack_id for f in found}
    if len(packs) > 1:
        raise ConfigError("these faces are of different model packs, which are never "
                          "compared; link faces of one pack")
    command = "faces same" if same else "faces different"
    overrides = ""
    with logged_edit(db, packs.pop(), command, {"faces": ids, "override": override},
                     dry_run=dry_run) as (conn, edit):
        faces = links.linked_faces(conn, ids)  # again, under the pack's lock
        if same:
            group = _refuse_same(conn, faces)
            through = " (with the faces already linked to them)" if len(group) > len(ids) \
                else ""
            overrides = settle(conn, contradictions.linking(conn, group), override=override,
                               refusal=f"faces {', '.join(map(str, ids))} would be one "
                               f"person{through} against earlier decisions")
            pairs = list(zip(ids, ids[1:], strict=False))  # a chain joins them all
        else:
            _refuse_different(conn, faces)
            pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
        added = links.add_links(conn, same, pairs)
        effect = _effect(faces, same)
        kind = "one person" if same else "different persons"
        edit.summary = f"faces {', '.join(map(str, ids))} are {kind}" + (
            f"; overrides {overrides}" if overrides else "")
    return LinkResult(same, faces, added, effect, edit.logged_id, overrides)


def _refuse_same(conn: psycopg.Connection, faces: list[LinkedFace]) -> list[int]:
    """Refuse what no flag overrides (faces of one photo, faces put in two persons by
    hand); returns the faces the link joins (through earlier "same" links too)."""
    ids = [f.id for f in faces]
    photo = links.same_photo_pairs(conn, ids)
    if photo:
        a, b = photo[0]
        raise ConfigError(f"faces {a} and {b} are of one photo, so never one person; "
                          "link faces of different photos")
    group = links.same_person_group(conn, ids)
    linked = [f for f in group if f not in ids]
    through = " (through faces already linked to them)" if linked else ""
    photo = links.same_photo_pairs(conn, group)
    if photo:
        a, b = photo[0]
        raise ConfigError(f"faces {a} and {b} would be one person{through} but are of one "
                          "photo; undo the wrong link first (`rbv persons history`)")
    by_hand: dict[uuid.UUID, int] = {}
    for f in links.linked_faces(conn, group):
        if f.manual and f.person_id is not None:
            by_hand.setdefault(f.person_id, f.id)
    if len(by_hand) > 1:
        (p, a), (q, b) = list(by_hand.items())[:2]
        raise ConfigError(f"face {a} was put in person {p} by hand and face {b} in person {q}; "
                          f"if they are one person run `rbv persons merge {p} {q}`")
    return group


def _refuse_different(conn: psycopg.Connection, faces: list[LinkedFace]) -> None:
    for f in faces:
        group = set(links.same_person_group(conn, [f.id]))
        for g in faces:
            if g.id > f.id and g.id in group:
                raise ConfigError(
                    f"faces {f.id} and {g.id} are linked as one person (`rbv faces same`, "
                    "directly or through other faces); undo that link first "
                    "(`rbv persons history`, `rbv persons undo`)")
    for i, f in enumerate(faces):
        for g in faces[i + 1:]:
            if f.manual and g.manual and f.person_id is not None and f.person_id == g.person_id:
                raise ConfigError(
                    f"faces {f.id} and {g.id} were put in person {f.person_id} by hand; take "
                    f"the wrong one out first (`rbv persons not-this-person {f.person_id} "
                    "FACE`)")


def _where(faces: list[LinkedFace]) -> str:
    """The persons the faces are in, in words."""
    by: dict[uuid.UUID | None, list[int]] = {}
    for f in faces:
        by.setdefault(f.person_id, []).append(f.id)
    names = {f.person_id: f.person_name for f in faces}
    parts = []
    for person, ids in by.items():
        who = ("no person" if person is None else
               f"person {person}" + (f" ({names[person]!r})" if names[person] else ""))
        parts.append(f"face{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} in {who}")
    return "; ".join(parts)


def _effect(faces: list[LinkedFace], same: bool) -> str:
    """What the link will change, for the user to check before and after."""
    persons = [f.person_id for f in faces]
    assigned = {p for p in persons if p is not None}
    where = _where(faces)
    if same:
        if len(assigned) <= 1 and None not in persons:
            return f"{where}: already together; the link keeps them so in every re-cluster"
        note = []
        if None in persons and assigned:
            note.append("the next `rbv cluster` puts the faces without a person in "
                        + ("that person" if len(assigned) == 1 else "one of them"))
        if len(assigned) > 1:
            note.append("`rbv cluster --full` makes persons "
                        + ", ".join(map(str, sorted(assigned, key=str))) + " one person")
        if not assigned:
            note.append("the next `rbv cluster` gives them one person")
        return f"{where}: " + "; ".join(note)
    shared = [p for p in assigned if persons.count(p) > 1]
    if not shared:
        return f"{where}: already apart; the link keeps them apart in every re-cluster"
    return (f"{where}: `rbv cluster --full` splits person "
            + ", ".join(map(str, sorted(shared, key=str))) + " so that they are apart")
