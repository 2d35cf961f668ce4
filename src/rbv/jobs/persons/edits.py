"""Manual person edits (``rbv persons …``): each one transaction under the pack's
lock, logged in the edit log so that ``rbv persons undo`` can revert it
(:mod:`rbv.jobs.persons.edit_log`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg

from rbv.cluster.defaults import Method
from rbv.errors import ConfigError, PersonNotFound, Refused, Remedy
from rbv.formats.names import name_key
from rbv.jobs.persons.edit_log import Edit, logged_edit
from rbv.jobs.persons.not_faces import refuse_marked
from rbv.jobs.persons.overrides import overridden, settle
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import contradictions, links
from rbv.store.queries import persons as store
from rbv.store.queries.birthdays import births
from rbv.store.server.connection import Database
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.cluster.eras import Era, EraParams
    from rbv.jobs.persons.evidence import Halves


@contextmanager
def editing(db: Database, person: uuid.UUID, command: str,
            parameters: dict[str, Any] | None = None, *, dry_run: bool = False,
            shown: Shown | None = None
            ) -> Iterator[tuple[psycopg.Connection, uuid.UUID, Edit]]:
    """:func:`logged_edit` on ``person`` (or the person it was merged into) and its
    pack; ``shown``: what the page asking for it showed, refused when changed since."""
    with db.connect() as conn:
        person = store.existing_person(conn, person)
        pack_id = store.pack_of(conn, person)
    with logged_edit(db, pack_id, command, {"person": str(person), **(parameters or {})},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        yield conn, person, edit


def refuse_photo_clashes(conn: psycopg.Connection, target: uuid.UUID | None,
                          incoming: Sequence[int]) -> None:
    """A person has at most one face per photo: an edit that would give it two is
    refused, naming the faces, before anything changes."""
    clashes = store.photo_clashes(conn, target, incoming)
    if clashes:
        shown = "; ".join(", ".join(map(str, c)) for c in clashes[:5])
        raise Refused(
            f"faces {shown} would be in one person but are of one photo (a person has one "
            "face per photo); first move the wrong face of each photo elsewhere",
            kind="photo_clash", persons=[target] if target else [],
            faces=[f for c in clashes for f in c],
            remedies=[Remedy("move", {"faces": [f]}, f"move face {f} to a new person")
                      for f in clashes[0]])


def name(db: Database, person: uuid.UUID, new_name: str, *, force: bool = False,
         shown: Shown | None = None) -> Edited:
    """Name a person (no face moves). A name another person of the pack has already is
    refused (the two are probably one person: the message gives the merge) unless
    ``force``. The name it has already changes nothing, and logs no edit (``edit_id``
    None). A name :func:`~rbv.store.queries.persons.checked_name` refuses changes
    nothing."""
    new_name = store.checked_name(new_name)  # stripped of its surrounding spaces
    with editing(db, person, "persons name", {"name": new_name},
                 shown=shown) as (conn, person, edit):
        other = store.person_named(conn, store.pack_of(conn, person), new_name,
                                   other_than=person)
        if other is not None and not force:
            raise Refused(
                f"person {other} is already named {store.name_of(conn, other)!r}; merge "
                "them if they are one person, or give both the name",
                kind="duplicate_name", persons=[other, person],
                remedies=[Remedy("merge", {"persons": [other, person]}, "merge them"),
                          Remedy("name", {"person": person, "name": new_name},
                                 "give both the name")])
        was = store.name_of(conn, person)
        if was != new_name:
            store.set_name(conn, person, new_name)
        edit.summary = (f"named {person} {new_name!r}"
                        + (f" (was {was!r})" if was else ""))
    return Edited(person, 0, edit_id=edit.logged_id)


@dataclass(frozen=True)
class Edited:
    """What a person edit did: the person, the faces it moved (would move, with
    ``dry_run``), the earlier decisions it overrode, in words ("" when none), and its
    entry in the edit log (None: a dry run, or it changed nothing)."""

    person: uuid.UUID | None
    faces: int
    overrides: str = ""
    edit_id: int | None = None


def merge(db: Database, target: uuid.UUID, source_ids: Sequence[uuid.UUID], *,
          override: bool = False, dry_run: bool = False,
          answers: dict[str, Any] | None = None, keep_name: str | None = None,
          keep_born: str | None = None, shown: Shown | None = None) -> Edited:
    """Merge persons into one: the named one survives, in either order (its id and
    name: links to it stay), else the target (:func:`_kept`). Two persons of different
    names are refused unless ``keep_name`` says which name stays, two different
    birthdays unless ``keep_born`` says which; the kept person's birthday and cover
    face stay, else the other's pass to it. Refused when two of the faces would share a
    photo, and, unless ``override``, when a face of one was rejected from another or two
    of their faces are linked as different persons (with ``override`` those decisions
    are removed, and said). ``answers``: a review's answers, kept with the edit (see
    ``rbv.jobs.persons.evidence.answers_kept``). The person returned is the one kept."""
    with editing(db, target, "persons merge",
                 {"sources": [str(p) for p in source_ids], "override": override,
                  **({"keep_name": keep_name} if keep_name else {}),
                  **({"keep_born": keep_born} if keep_born else {}),
                  **({"answers": answers} if answers else {})},
                 dry_run=dry_run, shown=shown) as (conn, target, edit):
        sources = [store.existing_person(conn, p) for p in source_ids]
        kept, moved, overrides = _merge_into(conn, target, sources, override=override,
                                             keep_name=keep_name, keep_born=keep_born)
        others = [p for p in [target, *sources] if p != kept]
        edit.summary = (f"merged {', '.join(map(str, others))} into {kept}: "
                        f"{moved:,} faces moved" + _overriding(overrides))
    return Edited(kept, moved, overrides, edit.logged_id)


def _merge_into(conn: psycopg.Connection, target: uuid.UUID, sources: list[uuid.UUID], *,
                override: bool, keep_name: str | None = None,
                keep_born: str | None = None) -> tuple[uuid.UUID, int, str]:
    """The person kept, faces moved, and the earlier decisions the merge overrode (in
    words)."""
    if target in sources:
        raise Refused(f"cannot merge person {target} into itself; name other persons "
                      "to merge into it", kind="same_person", persons=[target])
    kept = _kept(conn, [target, *sources], keep_name)
    others = [p for p in [target, *sources] if p != kept]
    born = _born(conn, [kept, *others], keep_born)
    refuse_photo_clashes(conn, kept, store.faces_of_persons(conn, others))
    overrides = settle(conn, contradictions.merging(conn, [kept, *others]),
                       override=override, refusal="merging would put together what "
                       "earlier decisions keep apart")
    moved = store.merge_persons(conn, kept, others)
    contradictions.carry_rejections(conn, kept, others)
    store.carry_details(conn, kept, others, born)
    return kept, moved, overrides


def _kept(conn: psycopg.Connection, persons: list[uuid.UUID],
          keep_name: str | None) -> uuid.UUID:
    """The person a merge of ``persons`` (the target first) keeps: the one named
    ``keep_name``; else the named one (the target when it is named); else the target.
    Persons of two different names are refused unless ``keep_name`` says which stays,
    naming the commands."""
    names = store.names_of(conn, persons)
    named = [p for p in persons if p in names]
    distinct = list(dict.fromkeys(name_key(names[p]) for p in named))
    first = {key: next(p for p in named if name_key(names[p]) == key) for key in distinct}
    keeping = [Remedy("merge", {"persons": persons, "keep_name": names[p]},
                      f"keep the name {names[p]!r}") for p in first.values()]
    if keep_name is not None:
        chosen = [p for p in named if name_key(names[p]) == name_key(keep_name)]
        if not chosen:
            raise Refused(
                f"none of the persons merged is named {keep_name!r}"
                + (f" (their names: {', '.join(repr(names[p]) for p in named)})"
                   if named else " (none has a name)") + "; keep one of their names",
                kind="name_to_keep_unknown", persons=persons, remedies=keeping)
        return chosen[0]
    if len(distinct) > 1:
        said = " and ".join(f"{store.short_id(p)} is {names[p]!r}" for p in first.values())
        raise Refused(f"these persons have different names ({said}); say which name stays",
                      kind="names_differ", persons=persons, remedies=keeping)
    return named[0] if named else persons[0]


def _born(conn: psycopg.Connection, persons: list[uuid.UUID],
          keep_born: str | None) -> date | None:
    """The birthday the merged person has: ``keep_born``; else the kept person's
    (``persons[0]``), else the one the others have. Two different birthdays are
    refused unless ``keep_born`` says which."""
    borns = births(conn, persons)
    known = list(dict.fromkeys(borns[p] for p in persons if borns.get(p) is not None))
    keeping = [Remedy("merge", {"persons": persons, "keep_born": d.isoformat()},
                      f"keep the birthday {d.isoformat()}") for d in known]
    if keep_born is not None:
        try:
            chosen = date.fromisoformat(keep_born.strip())
        except ValueError:
            raise ConfigError(f"the birthday to keep is a date as YYYY-MM-DD, not "
                              f"{keep_born!r}") from None
        if chosen not in known:
            raise Refused(
                f"none of the persons merged was born on {chosen.isoformat()}"
                + (f" (their birthdays: {', '.join(d.isoformat() for d in known)})"
                   if known else " (none has a birthday)") + "; keep one of their birthdays",
                kind="birthday_to_keep_unknown", persons=persons, remedies=keeping)
        return chosen
    if len(known) > 1:
        said = " and ".join(
            f"{store.short_id(next(p for p in persons if borns.get(p) == d))} was born "
            f"on {d.isoformat()}" for d in known)
        raise Refused(f"these persons have different birthdays ({said}); say which stays",
                      kind="births_differ", persons=persons, remedies=keeping)
    return known[0] if known else None


def answer_grid(db: Database, target: uuid.UUID, same: Sequence[uuid.UUID],
                different: Sequence[tuple[int, int]],
                answers: dict[str, Any] | None = None) -> Edited:
    """One answer to "which of these are TARGET?", as one edit: the persons ticked
    (``same``) are merged into it; each one left unticked is another person, kept apart
    by a "different" link between the two faces shown (``different``: target's face,
    its face), as ``rbv faces different`` makes (pairs linked as one person are left as
    they are). Refused, changing nothing, where the merge would be. ``answers``: kept
    with the edit, as :func:`merge`'s."""
    with editing(db, target, "persons grid",
                 {"same": [str(p) for p in same], "different": [list(p) for p in different],
                  **({"answers": answers} if answers else {})},
                 ) as (conn, target, edit):
        sources = [store.existing_person(conn, p) for p in same]
        kept, moved, overrides = _merge_into(conn, target, sources, override=False) \
            if sources else (target, 0, "")
        added = _keep_apart(conn, different)
        edit.summary = (f"{counted(len(sources), 'person')} merged into {kept} "
                        f"({counted(moved, 'face')}), "
                        f"{added} marked as other people" + _overriding(overrides))
    return Edited(kept, moved, overrides, edit.logged_id)


def answer_pairs(db: Database, merges: Sequence[tuple[uuid.UUID, Sequence[uuid.UUID]]],
                 different: Sequence[tuple[int, int]],
                 answers: dict[str, Any] | None = None) -> Edited:
    """One answer to "which of these pairs are one person?", as one edit: each of
    ``merges`` (a person, and the persons the pairs ticked join to it) is merged; each
    pair left unticked is two people, kept apart by a "different" link between its two
    faces shown (``different``), as :func:`answer_grid`'s. Refused, changing nothing,
    where a merge would be. ``answers``: kept with the edit, as :func:`merge`'s. The
    person returned is the first merge's (None when nothing was ticked)."""
    with db.connect() as conn:
        persons = {p: store.existing_person(conn, p)
                   for target, sources in merges for p in (target, *sources)}
        faces = [f for pair in different for f in pair]
        missing = store.missing_faces(conn, faces)
        if missing:
            raise PersonNotFound(f"no face with id {missing[0]}")
        packs = {store.pack_of(conn, p) for p in persons.values()}
        packs |= store.packs_of_faces(conn, faces)
    if len(packs) != 1:
        raise ConfigError("name pairs of persons of one model pack")
    with logged_edit(db, packs.pop(), "persons pairs",
                     {"merges": [[str(t), *map(str, s)] for t, s in merges],
                      "different": [list(p) for p in different],
                      **({"answers": answers} if answers else {})}) as (conn, edit):
        moved, overrides, first = 0, [], None
        for target, sources in merges:
            kept, count, words = _merge_into(conn, persons[target],
                                             [persons[r] for r in sources], override=False)
            first = first or kept
            moved += count
            overrides += [words] if words else []
        added = _keep_apart(conn, different)
        joined = sum(len(sources) for _, sources in merges)
        edit.summary = (f"{counted(joined, 'person')} merged in {len(merges)} "
                        f"({counted(moved, 'face')}), "
                        f"{counted(added, 'pair')} marked as other people"
                        + _overriding("; ".join(overrides)))
    return Edited(first, moved, "; ".join(overrides), edit.logged_id)


def _keep_apart(conn: psycopg.Connection, different: Sequence[tuple[int, int]]) -> int:
    """"Different" links between each two faces (pairs already linked as one person are
    left as they are); how many were added."""
    groups = links.same_person_groups(conn, [a for a, _ in different])
    apart = [(a, b) for a, b in different if b not in groups[a]]
    return links.add_links(conn, False, apart)


def _overriding(words: str) -> str:
    return f"; overrides {words}" if words else ""


def move(db: Database, face_ids: Sequence[int], target: uuid.UUID | None,
         pack_name: str | None = None, *, dry_run: bool = False,
         shown: Shown | None = None) -> Edited:
    """Move faces to a person, or to a new person when ``target`` is None (with
    ``dry_run``, none is created: the person returned is None). Refused when two faces
    would share a photo. Naming the faces is explicit: the move overrides, and says,
    their rejections from the person, "different" links with its faces and "same"
    links with faces placed by hand elsewhere."""
    with db.connect() as conn:
        _require_faces(conn, face_ids)
    parameters = {"faces": [int(f) for f in face_ids],
                  "to": None if target is None else str(target)}
    if target is None:
        with db.connect() as conn:
            pack_id = store.pack_of_face(conn, face_ids[0])
        if pack_id is None:
            raise PersonNotFound(f"no face with id {face_ids[0]}")
        with logged_edit(db, pack_id, "persons move", parameters,
                         dry_run=dry_run, shown=shown) as (conn, edit):
            refuse_marked(conn, face_ids, "be put in a person")
            refuse_photo_clashes(conn, None, face_ids)
            overrides = overridden(conn, contradictions.placing(conn, face_ids, None))
            person = store.new_person(conn, pack_id)
            moved = store.move_faces(conn, face_ids, person)
            edit.summary = (f"moved {_faces(face_ids)} to a new person {person}"
                            + _overriding(overrides))
        return Edited(None if dry_run else person, moved, overrides, edit.logged_id)
    with editing(db, target, "persons move", parameters,
                 dry_run=dry_run, shown=shown) as (conn, person, edit):
        refuse_marked(conn, face_ids, "be put in a person")
        refuse_photo_clashes(conn, person, face_ids)
        overrides = overridden(conn, contradictions.placing(conn, face_ids, person))
        moved = store.move_faces(conn, face_ids, person)
        edit.summary = f"moved {_faces(face_ids)} to {person}" + _overriding(overrides)
    return Edited(person, moved, overrides, edit.logged_id)


def _faces(face_ids: Sequence[int]) -> str:
    """Face ids in words, a long list shortened."""
    shown = ", ".join(map(str, face_ids[:8])) + (", …" if len(face_ids) > 8 else "")
    return f"face{'s' if len(face_ids) > 1 else ''} {shown}"


def reject(db: Database, person: uuid.UUID, face_ids: Sequence[int], *,
           dry_run: bool = False, shown: Shown | None = None) -> Edited:
    """"Not this person": the faces leave the person and never return to it (and, said,
    their "same" links with its faces go). Returns the person and the faces taken out
    (would be, with ``dry_run``)."""
    with editing(db, person, "persons not-this-person", {"faces": [int(f) for f in face_ids]},
                 dry_run=dry_run, shown=shown) as (conn, person, edit):
        _require_faces(conn, face_ids)
        refuse_marked(conn, face_ids, "be rejected from a person (it is in none)")
        overrides = overridden(conn, contradictions.rejecting(conn, person, face_ids))
        count = store.reject_faces(conn, person, face_ids)
        edit.summary = (f"{_faces(face_ids)} {'is' if len(face_ids) == 1 else 'are'} not "
                        f"{person} ({count} taken out)"
                        + _overriding(overrides))
    return Edited(person, count, overrides, edit.logged_id)


def _require_faces(conn: psycopg.Connection, face_ids: Sequence[int]) -> None:
    """Nothing is changed when a face id is unknown (a typo must not half-apply)."""
    missing = store.missing_faces(conn, face_ids)
    if missing:
        raise PersonNotFound(f"no face with id {', '.join(map(str, missing[:5]))} in this "
                             "database")


@dataclass(frozen=True)
class HideResult:
    """What hiding (showing again) did: the persons changed (would change, with
    ``dry_run``) and its entry in the edit log (empty: a dry run, or nothing changed)."""

    persons: int
    edit_ids: list[int]


def hide(db: Database, person_ids: Sequence[uuid.UUID], hidden: bool, *,
         dry_run: bool = False, shown: Shown | None = None) -> HideResult:
    """Hide (or show again) persons, as one logged edit (one undo shows them all again,
    whatever their packs)."""
    with db.connect() as conn:
        persons = list(dict.fromkeys(store.existing_person(conn, p) for p in person_ids))
        packs = {store.pack_of(conn, p) for p in persons}
    if not persons:
        return HideResult(0, [])
    command = "persons hide" if hidden else "persons unhide"
    with logged_edit(db, sorted(packs), command, {"persons": [str(p) for p in persons]},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        count = store.set_hidden(conn, persons, hidden)
        edit.summary = f"{'hid' if hidden else 'unhid'} {', '.join(map(str, persons))}"
    return HideResult(count, [] if edit.logged_id is None else [edit.logged_id])


@dataclass(frozen=True)
class BulkHidden:
    """What ``rbv persons hide --unnamed --max-faces N`` did (would do, with
    ``dry_run``): each person hidden with its face count, fewest faces first, and its
    entry in the edit log (None: a dry run, or none to hide)."""

    persons: list[tuple[uuid.UUID, int]]
    max_faces: int
    edit_id: int | None = None

    @property
    def faces(self) -> int:
        return sum(n for _, n in self.persons)


def hide_unnamed(db: Database, max_faces: int, pack_name: str | None = None, *,
                 dry_run: bool = False) -> BulkHidden:
    """Hide every visible unnamed person with at most ``max_faces`` faces (of the pack
    ``pack_name`` names, else of every pack), as one logged edit: one undo shows them
    all again. The persons are chosen under the packs' locks, so the edit hides what
    it says."""
    from rbv.store.queries.pack_lookup import find_pack, pack_ids

    if max_faces < 1:
        raise ConfigError("the size to hide up to must be 1 face or more (a person shown has "
                          "a face)")
    with db.connect() as conn:
        packs = ([find_pack(conn, pack_name).id] if pack_name else
                 pack_ids(conn))
    if not packs:
        return BulkHidden([], max_faces)
    with logged_edit(db, packs, "persons hide",
                     {"unnamed": True, "max_faces": max_faces, "model_pack": pack_name},
                     dry_run=dry_run) as (conn, edit):
        found = store.unnamed_up_to(conn, packs, max_faces)
        store.set_hidden(conn, [p for p, _ in found], True)
        edit.summary = (f"hid {counted(len(found), 'unnamed person')} with at most "
                        f"{counted(max_faces, 'face')} "
                        f"({counted(sum(n for _, n in found), 'face')})")
    return BulkHidden(found, max_faces, edit.logged_id)


@dataclass(frozen=True)
class Covered:
    """What ``rbv persons cover`` did: the person, the face chosen (None: back to the
    automatic face), the one chosen before (None: none) and its entry in the edit log
    (None: a dry run, or it was so already)."""

    person: uuid.UUID
    face: int | None
    was: int | None
    edit_id: int | None = None


def cover(db: Database, person: uuid.UUID, face_id: int | None, *, dry_run: bool = False,
          shown: Shown | None = None) -> Covered:
    """Show the person by ``face_id`` wherever it is shown by one face (None: by its
    automatic face again). The face must be one of the person's; a refusal names where
    it is. Logged, so ``rbv persons undo`` puts the earlier choice back."""
    with editing(db, person, "persons cover", {"face": face_id},
                 dry_run=dry_run, shown=shown) as (conn, person, edit):
        if face_id is not None:
            _refuse_foreign_cover(conn, person, face_id)
        was = store.chosen_cover(conn, person)
        store.set_cover(conn, person, face_id)
        edit.summary = (f"cover of {person}: face {face_id}" if face_id is not None
                        else f"cover of {person}: automatic again")
    return Covered(person, face_id, was, edit.logged_id)


def _refuse_foreign_cover(conn: psycopg.Connection, person: uuid.UUID, face_id: int) -> None:
    """A cover is one of the person's faces: any other is refused, saying where it is."""
    place = store.face_place(conn, face_id)
    if place is None:
        raise PersonNotFound(f"no face with id {face_id} in this database")
    whose = store.labels(conn, [person])[person]
    if place.not_a_face:
        where = "it is marked not a face"
    elif place.person is None:
        where = "it is in no person"
    elif place.person == person:
        return
    else:
        other = store.labels(conn, [place.person])[place.person]
        raise Refused(
            f"face {face_id} is not a face of {whose}: it is {other}'s; make it that "
            "person's cover, or move it here first", kind="not_its_face",
            persons=[person, place.person], faces=[face_id],
            remedies=[Remedy("cover", {"person": place.person, "face": face_id},
                             f"make it {other}'s cover"),
                      Remedy("move", {"faces": [face_id], "to": person}, "move it here")])
    raise Refused(f"face {face_id} is not a face of {whose}: {where}", kind="not_its_face",
                  persons=[person], faces=[face_id])


TWO_PEOPLE_TEST = "review's two-people test"
"""The default split, in words: the decision ``rbv persons review`` reports."""


@dataclass(frozen=True)
class SplitResult:
    person: uuid.UUID
    kept: int
    new_persons: list[uuid.UUID]
    sizes: list[int]
    threshold: float | None  # the threshold methods' similarity; None otherwise
    setting: str  # how it split, in words
    halves: Halves | None = None  # the two-people test's partition and verdict
    edit_id: int | None = None  # its entry in the edit log (None: dry run, or whole)


def split(db: Database, person: uuid.UUID, threshold: float | None = None,
          method: Method | None = None, *, dry_run: bool = False,
          shown: tuple[Sequence[int], Sequence[int]] | None = None,
          page: Shown | None = None) -> SplitResult:
    """Split one person. By default by review's two-people test (:func:`rbv.jobs.persons
    .evidence.halves`: the person's best two-way partition, faces linked ``same`` in one
    half): when it says two people, the smaller half becomes a new person, else the
    person stays whole, so what ``rbv persons review`` says is what happens. ``shown``
    (the halves a page showed: kept, moved face ids): refused unless the test finds
    exactly those, so a person changed since is never split blind. ``threshold``/
    ``method``: re-cluster the person's faces with that method instead (``threshold``
    alone: agglomerative); the largest group keeps the person. Either way the person
    keeps its id and name, every face of the split is placed by hand (every re-cluster
    keeps it) and the edit is logged. With ``dry_run`` nothing changes: ``sizes`` tells
    the groups, ``new_persons`` is empty."""
    if threshold is None and method is None:
        return _split_in_two(db, person, dry_run=dry_run, shown=shown, page=page)
    return _recluster(db, person, threshold, method or Method.agglomerative, dry_run=dry_run)


def _split_in_two(db: Database, person: uuid.UUID, *, dry_run: bool,
                  shown: tuple[Sequence[int], Sequence[int]] | None,
                  page: Shown | None) -> SplitResult:
    from rbv.jobs.persons.evidence import halves, load_evidence

    with editing(db, person, "persons split", {"threshold": None, "method": None},
                 dry_run=dry_run, shown=page) as (conn, person, edit):
        evidence = load_evidence(conn, None, person)
        found = halves(evidence, 0) if evidence.persons else None
        two = found if found is not None and found.two_people else None
        if shown is not None and (two is None or (two.kept, two.moved) != (
                sorted(shown[0]), sorted(shown[1]))):
            raise ConfigError(
                f"person {person} changed since it was shown (its faces, or the links "
                "among them): it no longer splits into the halves shown; look again")
        sizes = ([len(two.kept), len(two.moved)] if two is not None
                 else [evidence.persons[0].faces if evidence.persons else 0])
        created = (store.assign_split(conn, [two.kept, two.moved], person,
                                      store.pack_of(conn, person))
                   if two is not None and not dry_run else [])
        edit.summary = (f"split {person} in two ({TWO_PEOPLE_TEST}) into "
                        + ", ".join(map(str, [person, *created])))
    return SplitResult(person, sizes[0], created, sizes, None, TWO_PEOPLE_TEST, found,
                       edit.logged_id)


def _recluster(db: Database, person: uuid.UUID, threshold: float | None, method: Method, *,
               dry_run: bool) -> SplitResult:
    import numpy as np

    from rbv.cluster.calibrations import resolve_setting
    from rbv.cluster.decisions import constraints_among
    from rbv.cluster.methods import cluster_embeddings
    from rbv.jobs.grouping.cluster import estimate_impostor
    from rbv.store.queries.assignments import count_faces, load_faces, load_manual_facts
    from rbv.store.queries.pack_lookup import pack_files, pack_row, pack_settings

    asked = {"threshold": threshold, "method": method.value}
    with editing(db, person, "persons split", asked, dry_run=dry_run) as (conn, person, edit):
        pack_id = store.pack_of(conn, person)
        pack = pack_row(conn, pack_id)
        # A threshold given is used as it is (0 keeps every face together but for its
        # links); the library's own one for the method otherwise.
        setting = resolve_setting(pack_settings(conn, pack_id), pack_files(conn, pack_id),
                                  method)
        if threshold is not None and method is not Method.evidence:
            setting = replace(setting, threshold=threshold)
        if setting.needs_estimate:
            setting = estimate_impostor(conn, pack, setting)
        words = (f"{setting.method.value} at similarity {setting.threshold:g}"
                 if setting.threshold is not None
                 else f"the library's setting (evidence, budget {setting.budget:g})")
        faces = load_faces(conn, pack, person=person)
        groups: list[list[int]] = [faces.ids.tolist()]
        if len(faces) >= 2:
            # `rbv faces same/different` links hold here as in every clustering.
            facts = load_manual_facts(conn, pack)
            constraints = constraints_among(faces.ids, faces.image_ids, facts.must,
                                            facts.cannot)
            labels = cluster_embeddings(faces.embeddings, setting.method,
                                        setting.threshold or 0.0, constraints,
                                        impostor=setting.impostor,
                                        budget=setting.budget or 0.0,
                                        n_library=count_faces(conn, pack))
            order = np.argsort(-np.bincount(labels), kind="stable")
            groups = [faces.ids[labels == g].tolist() for g in order.tolist()]
        created = (store.assign_split(conn, groups, person, pack_id)
                   if len(groups) > 1 and not dry_run else [])
        edit.summary = (f"split {person} with {words} into "
                        + ", ".join(map(str, [person, *created])))
    return SplitResult(person, len(groups[0]), created, [len(g) for g in groups],
                       setting.threshold, words, edit_id=edit.logged_id)


@dataclass(frozen=True)
class EraSplit:
    person: uuid.UUID
    face_ids: list[int]
    years: list[float | None]  # row-aligned with face_ids
    eras: list[Era]
    new_persons: list[uuid.UUID]


def split_person_eras(db: Database, person: uuid.UUID, params: EraParams, *,
                      apply: bool = False) -> EraSplit:
    """Find a person's age eras by EXIF year; with ``apply``, every anchored era after
    the first becomes a new person named "NAME (YEAR–YEAR)" (thin fragments stay)."""
    import numpy as np

    from rbv.cluster.eras import split_eras
    from rbv.store.queries.assignments import load_faces
    from rbv.store.queries.pack_lookup import pack_row

    with editing(db, person, "eras split", {"apply": apply}, dry_run=not apply) as (
            conn, person, edit):
        pack_id = store.pack_of(conn, person)
        faces = load_faces(conn, pack_row(conn, pack_id), person=person)
        taken = store.face_years(conn, person)
        years = np.array([np.nan if taken.get(f) is None else taken[f]
                          for f in faces.ids.tolist()], np.float64)
        found = split_eras(faces.embeddings, years, faces.image_ids, params)
        anchored = [e for e in found if not e.thin]
        created: list[uuid.UUID] = []
        if apply and len(anchored) > 1:
            thin_rows = [r for e in found if e.thin for r in e.rows]
            groups = [[int(faces.ids[r]) for r in anchored[0].rows + thin_rows]]
            groups += [[int(faces.ids[r]) for r in e.rows] for e in anchored[1:]]
            created = store.assign_split(conn, groups, person, pack_id)
            base = store.name_of(conn, person) or "person"
            for era, new in zip(anchored[1:], created, strict=True):
                label = f"{era.first_year}–{era.last_year}" if era.first_year else "era"
                store.set_name(conn, new, f"{base} ({label})")
            edit.summary = f"split {person} by era into " + ", ".join(
                map(str, [person, *created]))
    return EraSplit(person, faces.ids.tolist(),
                    [None if np.isnan(y) else float(y) for y in years], found, created)
