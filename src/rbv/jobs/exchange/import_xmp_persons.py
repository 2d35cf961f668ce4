"""The person each name of ``import-xmp`` goes to (the pack's person of that name, the
unnamed person holding most of its faces, or a new one), and each claimed face placed
in it unless an earlier decision keeps it out (a conflict, with the remedies that do it
anyway)."""

from __future__ import annotations

import uuid
from collections import Counter

import psycopg

from rbv.errors import Remedy
from rbv.formats.names import name_key
from rbv.formats.regions import same_name
from rbv.jobs.exchange.import_xmp_report import (
    Claim,
    ImportXmpReport,
    Unapplied,
    conflict_entry,
    move,
)
from rbv.store.queries.contradictions import refused_placements
from rbv.store.queries.not_faces import marked_among
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_lookup import name_of, person_named, short_id
from rbv.store.queries.persons import (
    delete_person,
    faces_of_persons,
    is_hidden,
    new_person,
    persons_of_faces,
    photo_clashes,
    place_faces,
    set_name,
)
from rbv.store.queries.regions import FaceRow, faces_by_id
from rbv.words import counted


def persons_of_names(conn: psycopg.Connection, pack: PackRow, claims: list[Claim],
                     report: ImportXmpReport) -> dict[str, uuid.UUID]:
    """The person of each name (by name_key): the pack's person of that name; else the
    unnamed person that holds most of the name's faces, named, when no decision
    contradicts it (:func:`_holder`); else a new person."""
    by_name: dict[str, list[Claim]] = {}
    for claim in claims:
        by_name.setdefault(name_key(claim.name), []).append(claim)
    out: dict[str, uuid.UUID] = {}
    holders: dict[str, tuple[uuid.UUID, int]] = {}
    for key, named in by_name.items():
        person = person_named(conn, pack.id, named[0].name)
        if person is not None:
            out[key] = person
            continue
        held = _holder(conn, named, report)
        if held is not None:
            holders[key] = held
    # two names held most by one person: the name with more faces there names it
    by_holder: dict[uuid.UUID, list[tuple[int, str]]] = {}
    for key, (person, count) in holders.items():
        by_holder.setdefault(person, []).append((count, key))
    for person, keys in by_holder.items():
        keys.sort(reverse=True)
        tied = len(keys) > 1 and keys[0][0] == keys[1][0]
        for rank, (count, key) in enumerate(keys):
            name = by_name[key][0].name
            if rank or tied:
                report.notes.append(_holder_note(
                    name, person, count, len(by_name[key]),
                    f"{counted(len(keys) - 1, 'other name')} of the sidecars "
                    f"{'is' if len(keys) == 2 else 'are'} on its faces too"))
                continue
            set_name(conn, person, name)
            out[key] = person
            report.persons_named.append({"name": name, "person": str(person), "faces": "",
                                         "named_faces": str(count),
                                         "of": str(len(by_name[key]))})
    for key, named in by_name.items():
        if key not in out:
            person = new_person(conn, pack.id, source="import")
            set_name(conn, person, named[0].name)
            out[key] = person
            report.persons_created.append(named[0].name)
    return out


def _holder(conn: psycopg.Connection, named: list[Claim], report: ImportXmpReport
            ) -> tuple[uuid.UUID, int] | None:
    """The unnamed person that holds most (more than half) of the name's faces, and
    how many, when no decision contradicts naming it: none of the name's faces is
    rejected from it, placed by hand in another person, or linked 'different' with one
    of its faces (what :func:`refused_placements` says of them), and it is not hidden.
    None otherwise (said in ``report.notes`` when a decision is what stops it)."""
    ids = [c.face.id for c in named]
    now = persons_of_faces(conn, ids)
    counts = Counter(now.values())
    if not counts:
        return None
    person, count = counts.most_common(1)[0]
    if 2 * count <= len(ids) or name_of(conn, person) is not None:
        return None
    if is_hidden(conn, person):  # hidden as a stranger: a decision the name contradicts
        report.notes.append(_holder_note(
            named[0].name, person, count, len(ids), "it is hidden",
            Remedy("unhide", {"person": person}, "shows it again")))
        return None
    refused = refused_placements(conn, ids, person)
    if refused:
        face, why = sorted(refused.items())[0]
        report.notes.append(_holder_note(named[0].name, person, count, len(ids),
                                         f"face {face}: " + why.replace("it ", "", 1)))
        return None
    return person, count


def _holder_note(name: str, person: uuid.UUID, count: int, total: int, why: str,
                 *first: Remedy) -> Unapplied:
    return Unapplied(name, (f"a new person, not person {short_id(person)}, which holds "
                            f"{count} of its {counted(total, 'face')}: {why}"),
                     (*first, Remedy("merge", {"persons": [person, name]},
                                     "joins them if they are one person")), person=person)


def place_claims(conn: psycopg.Connection, claims: list[Claim],
                 persons: dict[str, uuid.UUID], report: ImportXmpReport) -> None:
    """Place each claimed face by hand in its name's person, unless an earlier decision
    keeps it out (a conflict, with the remedies that do it anyway). A person made for a
    name that got no face is not kept (the conflicts say what would name one)."""
    now = faces_by_id(conn, [c.face.id for c in claims])
    marked = set(marked_among(conn, [c.face.id for c in claims]))
    in_unnamed: list[tuple[Claim, FaceRow]] = []  # placed by hand in an unnamed person
    for claim in claims:
        face = now[claim.face.id]
        name, person = claim.name, persons[name_key(claim.name)]
        if face.id in marked:  # the user said the detection is no face: that stands
            report.conflicts.append(conflict_entry(
                claim.path, name, face.id, "the face was marked not a face",
                Remedy("is_a_face", {"faces": [face.id]}, "takes the mark back"),
                move(face.id, name, "puts it there")))
            continue
        if face.person_id == person or same_name(face.name, name):
            continue
        if face.assigned_by == "manual":  # in another person: the user's decision stands
            if face.person_id is not None and face.name is None:
                in_unnamed.append((claim, face))
                continue
            where = repr(face.name) if face.name else "no person"
            report.conflicts.append(conflict_entry(
                claim.path, name, face.id, f"the face is in {where} (placed by hand)",
                move(face.id, name, "moves the face")))
            continue
        clash = [g for group in photo_clashes(conn, person, [face.id]) for g in group
                 if g != face.id]
        if clash:
            report.conflicts.append(conflict_entry(
                claim.path, name, face.id,
                f"face {clash[0]} of the photo is that person already",
                move(clash[0], None, "takes it out (to a person of its own)"),
                move(face.id, name, "")))
            continue
        refused = refused_placements(conn, [face.id], person).get(face.id)
        if refused is not None:  # an earlier decision keeps it out: it stands
            report.conflicts.append(conflict_entry(
                claim.path, name, face.id, refused.replace("it ", "the face ", 1),
                move(face.id, name, "puts it there anyway (overriding that decision, "
                     "said)")))
            continue
        report.assigned += place_faces(conn, [face.id], person)
    # made for a name no face got, and no conflict's remedy moves a face to
    needed = {name_key(c.name) for c in report.conflicts
              if any(r.action == "move" and r.args["to"] is not None for r in c.remedies)}
    for name in list(report.persons_created):
        person = persons[name_key(name)]
        if name_key(name) not in needed and not faces_of_persons(conn, [person]):
            delete_person(conn, person)
            report.persons_created.remove(name)
            del persons[name_key(name)]
    for claim, face in in_unnamed:
        assert face.person_id is not None
        remedy = (Remedy("merge", {"persons": [claim.name, face.person_id]},
                         f"joins that person to {claim.name!r}")
                  if name_key(claim.name) in persons else
                  Remedy("name", {"person": face.person_id, "name": claim.name},
                         "names that person"))
        report.conflicts.append(conflict_entry(
            claim.path, claim.name, face.id,
            f"the face is in person {short_id(face.person_id)} (placed by hand)", remedy))
