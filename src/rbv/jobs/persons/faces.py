"""``rbv faces same|different``: links between faces that every clustering honours.

A "same" link (must-link) keeps faces in one person, a "different" link (cannot-link)
keeps them apart, in every method, in full runs and in incremental ones (a new face
linked to a face of a known person goes to that person, or never to it). A link does
not move faces by itself: unassigned faces follow it at the next ``rbv cluster``,
assigned ones at the next ``rbv cluster --full``. What that full run will change is
said only as a forecast made by running it (:mod:`rbv.jobs.grouping.forecast`), on the
edit's own transaction, so a dry run's forecast and the real run's are the same run.
Links are logged edits: ``rbv persons undo`` removes them.

A "same" link that contradicts an earlier decision (a "different" link among the faces,
or a face rejected from a person another of them was put in by hand) is refused unless
the user passes ``override``; then those decisions are removed in the same edit, and
said (README "How rbv treats your fixes").
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from rbv.errors import ConfigError, PersonNotFound, Refused, Remedy
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.not_faces import refuse_marked
from rbv.jobs.persons.overrides import settle
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import contradictions, links
from rbv.store.queries.links import LinkedFace
from rbv.store.queries.pack_lookup import pack_row
from rbv.store.queries.person_lookup import short_id
from rbv.store.server.connection import Database

if TYPE_CHECKING:  # the forecast needs the clustering stack; a plain link does not
    from rbv.jobs.grouping.forecast import ClusterForecast


@dataclass(frozen=True)
class LinkResult:
    same: bool
    faces: list[LinkedFace]
    added: int  # links that were new (would be, with dry_run)
    effect: str  # where the faces are and what the link does, in words
    edit_id: int | None  # its entry in the edit log (None: dry run or nothing new)
    overrides: str = ""  # the earlier decisions it removed, in words
    forecast: ClusterForecast | None = None  # the next `rbv cluster --full`, when asked
    caution: str = ""  # a face far smaller than another (a bystander's?), in words

    def as_dict(self) -> dict[str, object]:
        return {"link": "same" if self.same else "different", "added": self.added,
                "effect": self.effect, "edit": self.edit_id, "overrides": self.overrides,
                "caution": self.caution,
                "faces": [{"id": f.id, "person": None if f.person_id is None
                           else str(f.person_id), "name": f.person_name,
                           "short_edge": round(f.short_edge, 1)} for f in self.faces],
                "forecast": None if self.forecast is None else self.forecast.as_dict()}


def link(db: Database, face_ids: Sequence[int], *, same: bool, override: bool = False,
         dry_run: bool = False, forecast: bool = False,
         answers: dict[str, Any] | None = None, shown: Shown | None = None) -> LinkResult:
    """Link the faces as one person (``same``) or as different persons; refused,
    changing nothing, when that contradicts a photo, an earlier link or a face placed
    by hand. With ``override`` a "same" link removes the earlier "different" links and
    rejections it contradicts (and says so). With ``forecast`` the next
    ``rbv cluster --full`` is run after the link, in the edit's transaction, and rolled
    back, to say what it will change, and again without the link, to tell what the
    link changes from what the run changes anyway (as long as those two runs take,
    under the pack's lock); a dry run makes the same forecast as the real run.
    ``answers``: a review's answers, kept with the edit (as ``edits.merge``'s)."""
    ids = [int(f) for f in face_ids]
    twice = sorted(f for f, n in Counter(ids).items() if n > 1)
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
                             "database")
    packs = {f.pack_id for f in found}
    if len(packs) > 1:
        raise ConfigError("these faces are of different model packs, which are never "
                          "compared; link faces of one pack")
    command = "faces same" if same else "faces different"
    overrides = ""
    pack_id = packs.pop()
    predicted = None
    with logged_edit(db, pack_id, command, {"faces": ids, "override": override,
                                            **({"answers": answers} if answers else {})},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        faces = links.linked_faces(conn, ids)  # again, under the pack's lock
        refuse_marked(conn, ids, f"be linked {'same' if same else 'different'}")
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
        if forecast:
            from rbv.jobs.grouping.forecast import forecast_full_cluster

            pack = pack_row(conn, pack_id)
            first = list(dict.fromkeys(f.person_id for f in faces if f.person_id))
            without = forecast_full_cluster(db, conn, pack, first)
        added = links.add_links(conn, same, pairs)
        effect = _effect(faces, same)
        kind = "one person" if same else "different persons"
        edit.summary = f"faces {', '.join(map(str, ids))} are {kind}" + (
            f"; overrides {overrides}" if overrides else "")
        if forecast:
            predicted = forecast_full_cluster(db, conn, pack, first).beside(without)
    return LinkResult(same, faces, added, effect, edit.logged_id, overrides, predicted,
                      _caution(faces) if same else "")


SMALL_FACE = 32
"""Short edge (pixels) under which a face is too small to tell who it is with any
confidence: twice the smallest face rbv keeps (``DEFAULT_MIN_FACE``)."""


def _caution(faces: list[LinkedFace]) -> str:
    """A word on the faces a "same" link joins when one is small (under
    :data:`SMALL_FACE`) or under half the size of the largest: often a bystander's
    face, picked by mistake."""
    largest = max(faces, key=lambda f: f.short_edge)
    small = [f for f in faces
             if f.short_edge < SMALL_FACE or f.short_edge < largest.short_edge / 2]
    if not small:
        return ""
    ids = ", ".join(str(f.id) for f in small)
    sizes = ", ".join(f"{f.short_edge:.0f}" for f in small)
    which = f"face {ids} is" if len(small) == 1 else f"faces {ids} are"
    return (f"{which} small ({sizes} px short edge; face {largest.id}: "
            f"{largest.short_edge:.0f} px): a bystander's face, perhaps? Check it is the "
            "person you mean")


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
        raise Refused(f"faces {a} and {b} would be one person{through} but are of one "
                      "photo; undo the wrong link first", kind="photo_clash", faces=[a, b],
                      remedies=[Remedy("history", {}, "the edits to undo")])
    by_hand: dict[uuid.UUID, int] = {}
    for f in links.linked_faces(conn, group):
        if f.manual and f.person_id is not None:
            by_hand.setdefault(f.person_id, f.id)
    if len(by_hand) > 1:
        (p, a), (q, b) = list(by_hand.items())[:2]
        raise Refused(f"face {a} was put in person {p} by hand and face {b} in person {q}; "
                      "merge them if they are one person", kind="placed_apart",
                      persons=[p, q], faces=[a, b],
                      remedies=[Remedy("merge", {"persons": [p, q]}, "merge them")])
    return group


def _refuse_different(conn: psycopg.Connection, faces: list[LinkedFace]) -> None:
    groups = links.same_person_groups(conn, [f.id for f in faces])
    for f in faces:
        for g in faces:
            if g.id > f.id and g.id in groups[f.id]:
                raise Refused(
                    f"faces {f.id} and {g.id} are linked as one person (directly or "
                    "through other faces); undo that link first", kind="linked_same",
                    faces=[f.id, g.id], remedies=[Remedy("history", {}, "the edits to undo")])
    for i, f in enumerate(faces):
        for g in faces[i + 1:]:
            if f.manual and g.manual and f.person_id is not None and f.person_id == g.person_id:
                raise Refused(
                    f"faces {f.id} and {g.id} were put in person {f.person_id} by hand; take "
                    "the wrong one out first", kind="placed_together",
                    persons=[f.person_id], faces=[f.id, g.id],
                    remedies=[Remedy("not_this_person", {"person": f.person_id,
                                                         "faces": [face]},
                                     f"take face {face} out") for face in (f.id, g.id)])


def _where(faces: list[LinkedFace]) -> str:
    """The persons the faces are in, with the faces' sizes, in words."""
    by: dict[uuid.UUID | None, list[LinkedFace]] = {}
    for f in faces:
        by.setdefault(f.person_id, []).append(f)
    names = {f.person_id: f.person_name for f in faces}
    parts = []
    for person, these in by.items():
        who = ("no person" if person is None else
               f"{names[person]} ({short_id(person)})" if names[person] else
               f"person {short_id(person)}")
        sized = ", ".join(f"{f.id} ({f.short_edge:.0f} px)" for f in these)
        parts.append(f"face{'s' if len(these) > 1 else ''} {sized} in {who}")
    return "; ".join(parts)


def _effect(faces: list[LinkedFace], same: bool) -> str:
    """Where the faces are and what the link does to them, for the user to check. It
    says no more of later runs than every clustering is bound to (the forecast, when
    asked, says what the next full run does)."""
    persons = [f.person_id for f in faces]
    where = _where(faces)
    if same:
        if len(set(persons)) == 1 and persons[0] is not None:
            return f"{where}: already together; the link keeps them so in every re-cluster"
        return (f"{where}: the link moves no face now; the next clustering keeps it for "
                "faces without a person, the next full one for every face")
    if all(p is None or persons.count(p) == 1 for p in persons):
        return f"{where}: no two share a person; the link keeps them apart in every re-cluster"
    return (f"{where}: the link moves no face now; the next full clustering puts them apart "
            "(an incremental one leaves faces that have a person where they are)")


def one_person(db: Database, person: uuid.UUID, *,
               shown: tuple[Sequence[int], Sequence[int]] | None = None,
               page: Shown | None = None) -> LinkResult:
    """The user's answer to "looks like two people": it is one person. Every face of the
    two halves is linked ``same`` with the face most typical of the larger half (a star,
    so that taking one face out later, which removes its links, leaves the others linked),
    as ``rbv faces same`` links: review's two-people test keeps linked faces in one half,
    so it finds no two halves among them and ``rbv persons split`` leaves the person
    whole, in every re-cluster too; faces the person gains later are not linked, so two
    people among those are flagged again. Refused, changing nothing, unless review's test
    calls the person two people now (in the halves ``shown``, when given: what a page
    showed), or where a "same" link would contradict an earlier decision. One logged
    edit, undone by ``rbv persons undo``."""
    import numpy as np

    from rbv.jobs.persons.evidence import halves, load_evidence
    from rbv.store.queries.person_lookup import existing_person
    from rbv.store.queries.persons import pack_of

    with db.connect() as conn:
        person = existing_person(conn, person)
        pack_id = pack_of(conn, person)
    with logged_edit(db, pack_id, "persons one", {"person": str(person)},
                     shown=page) as (conn, edit):
        evidence = load_evidence(conn, None, person)
        found = halves(evidence, 0) if evidence.persons else None
        if found is None or not found.two_people:
            raise ConfigError(f"person {person} does not look like two people now (review's "
                              "two-people test): there is nothing to answer")
        if shown is not None and (found.kept, found.moved) != (sorted(shown[0]),
                                                                sorted(shown[1])):
            raise ConfigError(
                f"person {person} changed since it was shown (its faces, or the links "
                "among them): it no longer splits into the halves shown; look again")
        rows = evidence.rows_of(0)
        x = evidence.faces.embeddings[rows]
        larger = np.isin(evidence.faces.ids[rows], found.kept)
        hub = int(evidence.faces.ids[rows][larger][np.argmax(x[larger] @ x[larger].sum(0))])
        faces = links.linked_faces(conn, [*found.kept, *found.moved])
        _refuse_same(conn, faces)
        settle(conn, contradictions.linking(conn, [f.id for f in faces]), override=False,
               refusal=f"person {person}'s faces would be linked as one person against "
               "earlier decisions", overridable=False)
        added = links.add_links(conn, True, [(hub, f.id) for f in faces if f.id != hub])
        edit.summary = (f"{person} is one person ({found.sizes()}, not two): its faces "
                        f"linked as one with face {hub}")
    return LinkResult(True, faces, added, f"{found.sizes()} linked as one person",
                      edit.logged_id)
