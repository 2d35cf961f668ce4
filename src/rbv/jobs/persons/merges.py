"""Merging persons (``rbv persons merge``) and the review answers that merge and keep
apart in one edit (``rbv serve``'s grid and pairs): which person, name and birthday a
merge keeps, and the earlier decisions it overrides."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import psycopg

from rbv.errors import ConfigError, PersonNotFound, Refused, Remedy
from rbv.formats.names import name_key
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.overrides import settle
from rbv.jobs.persons.person_edit import Edited, editing, overriding, refuse_clashes
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import contradictions, links
from rbv.store.queries import persons as store
from rbv.store.queries.birthdays import births
from rbv.store.queries.person_lookup import existing_person, names_of, short_id
from rbv.store.server.connection import Database
from rbv.words import counted


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
        sources = [existing_person(conn, p) for p in source_ids]
        kept, moved, overrides = _merge_into(conn, target, sources, override=override,
                                             keep_name=keep_name, keep_born=keep_born)
        others = [p for p in [target, *sources] if p != kept]
        edit.summary = (f"merged {', '.join(map(str, others))} into {kept}: "
                        f"{moved:,} faces moved" + overriding(overrides))
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
    refuse_clashes(store.merge_clashes(conn, kept, others), kept)
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
    names = names_of(conn, persons)
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
        said = " and ".join(f"{short_id(p)} is {names[p]!r}" for p in first.values())
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
            f"{short_id(next(p for p in persons if borns.get(p) == d))} was born "
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
        sources = [existing_person(conn, p) for p in same]
        kept, moved, overrides = _merge_into(conn, target, sources, override=False) \
            if sources else (target, 0, "")
        added = _keep_apart(conn, different)
        edit.summary = (f"{counted(len(sources), 'person')} merged into {kept} "
                        f"({counted(moved, 'face')}), "
                        f"{added} marked as other people" + overriding(overrides))
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
        persons = {p: existing_person(conn, p)
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
                        + overriding("; ".join(overrides)))
    return Edited(first, moved, "; ".join(overrides), edit.logged_id)


def _keep_apart(conn: psycopg.Connection, different: Sequence[tuple[int, int]]) -> int:
    """"Different" links between each two faces (pairs already linked as one person are
    left as they are); how many were added."""
    groups = links.same_person_groups(conn, [a for a, _ in different])
    apart = [(a, b) for a, b in different if b not in groups[a]]
    return links.add_links(conn, False, apart)
