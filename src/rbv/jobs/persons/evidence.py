"""The evidence reviews rest on: a pack's persons, their faces' embeddings and the
recognizer's impostor model, read once; merge suggestions and each person's least
typical faces computed from it (shared by ``persons suggest``, ``persons review`` and
``rbv site``). What would fix what they find is a :class:`~rbv.errors.Remedy` (a merge,
a split, faces taken out), which the front ends word as a command or a button."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import psycopg

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.defaults import DEFAULT_MIN_SCORE, DOUBT_Z, ImpostorModel, Method
from rbv.cluster.pair_odds import AGED_PRIOR, ODDS_VERSION, PRIOR, PairOdds
from rbv.cluster.person_split import SplitTest, linked_units, split_test
from rbv.cluster.suggestions import (
    FaceFit,
    face_care,
    least_typical_first,
    photo_mates,
    suggest_merges,
)
from rbv.errors import Remedy
from rbv.face_rows import PackFaces
from rbv.jobs.grouping.aged import aged_space
from rbv.jobs.grouping.estimate import estimate_impostor
from rbv.store.queries.assignments import faces_by_photo
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.links import same_links_inside_persons
from rbv.store.queries.pack_lookup import find_pack, pack_files, pack_row, pack_settings
from rbv.store.queries.packs import PackRow
from rbv.store.queries.persons import PersonRow, largest_persons, list_persons, pack_of
from rbv.store.queries.review import face_prominence, person_conflicts, review_answers


@dataclass(frozen=True)
class PersonEvidence:
    """One pack's persons (not hidden, with faces) and their faces."""

    pack: PackRow
    persons: list[PersonRow]  # most faces first
    faces: PackFaces  # the faces of ``persons``
    codes: np.ndarray  # per face row: index into ``persons``
    model: ImpostorModel
    model_source: str
    same: np.ndarray  # (k, 2) face rows linked ``same`` inside one person
    complete: bool = True  # every visible person and face of the pack (``first``)
    sampled: bool = False  # some persons' faces are a sample of them (``first``)
    together: np.ndarray = field(  # (k, 2) person indices sharing a photo (``sampled``)
        default_factory=lambda: np.zeros((0, 2), np.int64))
    aged: bool = False  # the faces are centred by age (:mod:`rbv.jobs.grouping.aged`)

    def rows_of(self, index: int) -> np.ndarray:
        """Face rows of person ``index`` (grouped once: a site asks for every person)."""
        order, starts = self._grouped
        return order[starts[index]:starts[index + 1]]

    @functools.cached_property
    def _grouped(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.codes, kind="stable")
        counts = np.bincount(self.codes[self.codes >= 0], minlength=len(self.persons))
        skipped = int((self.codes < 0).sum())  # sorted first
        starts = skipped + np.concatenate([[0], np.cumsum(counts)])
        return order, starts

    def units_of(self, index: int) -> np.ndarray | None:
        """Per face row of person ``index`` (as :meth:`rows_of`): its group of faces
        linked ``same``; None when no link joins two of them."""
        links, starts = self._links_by_person
        pairs = links[starts[index]:starts[index + 1]]
        if len(pairs) == 0:
            return None
        # rows_of lists a person's rows in ascending order (a stable sort of the codes)
        return linked_units(len(self.rows_of(index)), np.searchsorted(self.rows_of(index),
                                                                       pairs))

    @functools.cached_property
    def _links_by_person(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``same`` links sorted by person, and where each person's begin."""
        owner = self.codes[self.same[:, 0]]
        order = np.argsort(owner, kind="stable")
        starts = np.searchsorted(owner[order], np.arange(len(self.persons) + 1))
        return self.same[order], starts


def load_evidence(conn: psycopg.Connection, pack_name: str | None,
                  person: uuid.UUID | None = None, *,
                  largest: int | None = None, first: tuple[int, int] | None = None,
                  sole_fallback: bool = False) -> PersonEvidence:
    """The pack's visible persons and faces (of ``person`` alone, when given: its pack
    is then the one used; of the ``largest`` persons with the most faces, when given).

    ``first = (faces, persons)``: a first look at a large pack, reading about ``faces``
    faces: the persons with the most faces that hold that many, ``persons`` of them at
    least; where those hold more, each person's faces are a repeatable sample of as many
    as keeps the total near ``faces`` (the largest persons sampled, small ones whole;
    ``sampled`` says so). Which persons share a photo is then read from all their faces
    (``together``). ``sole_fallback``: ``pack_name`` is a default (the
    environment's), and a library with faces of one other pack only means that one."""
    pack = (pack_row(conn, pack_of(conn, person)) if person is not None
            else find_pack(conn, pack_name, sole_fallback=sole_fallback))
    together = np.zeros((0, 2), np.int64)
    sampled = False
    if first is not None and person is None:
        budget, at_least = first
        persons, every = largest_persons(conn, pack.id, budget, at_least)
        ids, images, owner = faces_by_photo(conn, pack, [p.id for p in persons])
        keep = repeatable_sample(ids, owner, budget)
        sampled = len(keep) < len(ids)
        if sampled:  # read whole, the faces tell which persons share a photo themselves
            together = photo_mates(owner, images)
        faces = load_faces(conn, pack, ids=ids[keep].tolist())
    else:
        persons = [p for p in list_persons(conn, pack.id, include_hidden=person is not None,
                                           persons=None if person is None else [person])
                   if p.faces > 0][:largest]
        every = len(persons)
        faces = load_faces(conn, pack, persons=[p.id for p in persons])
    index = {p.id: i for i, p in enumerate(persons)}
    codes = np.array([index.get(p, -1) if p is not None else -1 for p in faces.person_ids],
                     np.int64)
    setting = resolve_setting(pack_settings(conn, pack.id), pack_files(conn, pack.id),
                              Method.evidence)
    if setting.impostor is None:  # unknown recognizer: estimated as `rbv cluster` does
        setting = estimate_impostor(conn, pack, setting)
    assert setting.impostor is not None
    impostor, source = setting.impostor, setting.impostor_source
    space = aged_space(conn, pack)
    if space.impostor is not None:  # compared as `cluster --full` made them: by age
        faces = replace(faces, embeddings=space.embeddings(conn, faces))
        impostor, source = space.impostor, space.source
    links = np.array(same_links_inside_persons(conn, pack.id, [p.id for p in persons]),
                     np.int64).reshape(-1, 2)
    return PersonEvidence(pack, persons, faces, codes, impostor, source,
                          _rows_of_faces(faces.ids, links),
                          len(persons) == every and not sampled, sampled, together,
                          space.impostor is not None)


def repeatable_sample(ids: np.ndarray, owner: np.ndarray, budget: int) -> np.ndarray:
    """Positions of about ``budget`` of the faces ``ids`` (``owner``: each one's person):
    every face of a person with at most ``cap`` faces, ``cap`` of a larger one's, with
    ``cap`` the largest that keeps the total within ``budget`` (one face each at least).
    Which faces: those whose ids hash lowest, so the same library gives the same sample."""
    if len(ids) <= budget:
        return np.arange(len(ids))
    sizes = np.sort(np.bincount(owner))
    # the total with cap c is sum(min(size, c)): the largest c within the budget
    below = np.concatenate([[0], np.cumsum(sizes)])[:-1]  # faces of persons smaller
    fits = below + sizes * (len(sizes) - np.arange(len(sizes))) <= budget
    at = int(np.flatnonzero(~fits)[0])  # some person is larger than any cap that fits
    cap = max(1, (budget - int(below[at])) // (len(sizes) - at))
    mixed = (ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
    order = np.lexsort((mixed, owner))  # by person, then by hash
    starts = np.searchsorted(owner[order], np.arange(owner.max() + 1))
    nth = np.arange(len(ids)) - np.repeat(starts, np.diff(np.append(starts, len(ids))))
    return np.sort(order[nth < cap])


def _rows_of_faces(ids: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """``pairs`` of face ids as pairs of rows of ``ids`` (pairs with a face not there
    left out)."""
    if len(pairs) == 0 or len(ids) == 0:
        return pairs[:0]
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids[order], pairs), len(ids) - 1)
    rows = order[at]
    return rows[(ids[rows] == pairs).all(axis=1)]


class CommandLine(Protocol):
    """How a front end words a remedy as the command line that does it
    (:func:`rbv.cli.remedies.command_line`), for a report's ``command`` and the pages of
    ``rbv site``."""

    def __call__(self, remedy: Remedy, /) -> str: ...


def worded(remedy: Remedy | None, command: CommandLine | None) -> dict[str, str | None]:
    """A report's ``command``: ``remedy`` as ``command`` words it (None without a
    remedy); nothing without ``command`` (the remedies are on the report's objects)."""
    if command is None:
        return {}
    return {"command": None if remedy is None else command(remedy)}


@dataclass(frozen=True)
class Suggestion:
    """Two persons that are probably one; ``keep`` is the one the merge keeps."""

    rank: int
    keep: PersonRow
    other: PersonRow
    probability: float
    log10_chance: float
    why: str
    best_faces: tuple[int, int]  # face ids: keep's, other's
    features: tuple[float, ...] = ()  # what ``probability`` was computed from (pair_odds)
    worth: float = 0.0  # probability × faces a "yes" puts right: the ranking

    def answer(self, same: bool) -> list[float]:
        """This pair's answer as the calibration keeps it (see ``learned_odds``)."""
        return [*self.features, 1.0 if same else 0.0]

    @property
    def remedy(self) -> Remedy:
        """The merge that accepts it; of two named persons, keeping ``keep``'s name (a
        merge of two names is refused otherwise)."""
        keep = self.keep.name if self.keep.name and self.other.name else None
        return Remedy("merge", {"persons": [self.keep.id, self.other.id], "keep_name": keep},
                      "merge them")

    def as_dict(self, command: CommandLine | None = None) -> dict[str, object]:
        return {"rank": self.rank, "keep": self.keep.as_dict(), "merge": self.other.as_dict(),
                "probability": round(self.probability, 4),
                "log10_chance": round(self.log10_chance, 2), "why": self.why,
                "worth": round(self.worth, 4),
                "best_faces": list(self.best_faces), **worded(self.remedy, command)}


REVIEW_CANDIDATES = 24
"""Nearest persons per person that merge suggestions are looked for among, by
``persons suggest`` and ``rbv serve`` alike (the page's grid shows this many): more than
the ranking alone needs (``rbv.cluster.suggestions.CANDIDATE_K``), so that a grid is full."""


def answers_kept(suggestions: list[tuple[Suggestion, bool]]) -> dict[str, object]:
    """Answers to suggestions (the suggestion, and whether the user said it is one
    person) as an edit keeps them in its parameters, for :func:`learned_odds`."""
    return {"version": ODDS_VERSION, "rows": [s.answer(same) for s, same in suggestions]}


def learned_odds(conn: psycopg.Connection, pack_id: int, aged: bool = False) -> PairOdds:
    """The calibration of the pack's merge suggestions: the shipped prior (of faces
    centred by age where ``aged``), fitted again to the answers users gave in ``rbv
    serve`` (edits not undone)."""
    return (AGED_PRIOR if aged else PRIOR).learned(review_answers(conn, pack_id,
                                                                   ODDS_VERSION))


def merge_suggestions(conn: psycopg.Connection, evidence: PersonEvidence,
                      limit: int | None, min_score: float = DEFAULT_MIN_SCORE, *,
                      k: int = REVIEW_CANDIDATES) -> list[Suggestion]:
    """Ranked merge suggestions scoring at least ``min_score``, most worth first (see
    :mod:`rbv.cluster.suggestions`), among each person's ``k`` nearest persons, scored
    with what the pack's answers taught (:func:`learned_odds`). The merge keeps the
    named person (else the one with more faces), so a name is never lost."""
    index = {p.id: i for i, p in enumerate(evidence.persons)}
    forbidden = {(min(index[one], index[two]), max(index[one], index[two]))
                 for one, two in person_conflicts(conn, evidence.pack.id)
                 if one in index and two in index}
    forbidden.update(map(tuple, evidence.together.tolist()))  # a sample's photos: all of them
    care = face_care(_prominence(conn, evidence))
    if evidence.sampled:  # each face read stands for its share of its person's faces
        read = np.bincount(evidence.codes[evidence.codes >= 0], minlength=len(evidence.persons))
        whole = np.array([p.faces for p in evidence.persons], np.float64)
        care = care * np.where(evidence.codes >= 0,
                               (whole / np.maximum(read, 1))[evidence.codes], 1.0)
    ranked = suggest_merges(evidence.faces.embeddings, evidence.codes,
                            evidence.faces.image_ids, evidence.model,
                            odds=learned_odds(conn, evidence.pack.id, evidence.aged),
                            forbidden=forbidden,
                            k=k, limit=limit, min_probability=min_score, care=care)
    out: list[Suggestion] = []
    for m in ranked:
        rank = len(out) + 1
        a, b = evidence.persons[m.a], evidence.persons[m.b]
        fa, fb = (int(evidence.faces.ids[r]) for r in m.best_faces)
        if (b.name and not a.name) or (bool(b.name) == bool(a.name) and b.faces > a.faces):
            a, b, fa, fb = b, a, fb, fa
        why = m.why()
        if a.name and b.name:
            why += (f"; both are named: its merge keeps the name {a.name!r} (a merge not "
                    "told which name stays is refused)")
        out.append(Suggestion(rank, a, b, m.probability, m.log10_chance, why, (fa, fb),
                              m.features, m.worth))
    return out


def _prominence(conn: psycopg.Connection, evidence: PersonEvidence) -> np.ndarray:
    """Per face row of ``evidence``: its short edge over its photo's largest face's."""
    ids, prominence = face_prominence(  # a first ranking's photos alone: less to read
        conn, evidence.pack.id, None if evidence.complete else evidence.faces.ids.tolist())
    at = np.minimum(np.searchsorted(ids, evidence.faces.ids), max(len(ids) - 1, 0))
    found = ids[at] == evidence.faces.ids if len(ids) else np.zeros(len(at), bool)
    return np.where(found, prominence[at] if len(ids) else 1.0, 1.0)


def faces_least_typical_first(evidence: PersonEvidence, index: int
                              ) -> list[tuple[int, FaceFit]]:
    """(face id, fit) of person ``index``'s faces, least typical first."""
    rows = evidence.rows_of(index)
    fits = least_typical_first(evidence.faces.embeddings[rows], evidence.model)
    return [(int(evidence.faces.ids[rows[f.row]]), f) for f in fits]


def doubtful(fits: list[tuple[int, FaceFit]]) -> list[int]:
    """Face ids that fit their person no better than a stranger might (see DOUBT_Z), or
    whose fit is nearer a stranger's than the person's other faces are to each other."""
    return [face for face, fit in fits if fit.z < DOUBT_Z or fit.nearer_strangers]


@dataclass(frozen=True)
class Halves:
    """A person's best two-way partition and the verdict on it: the one decision
    ``persons review`` reports and ``persons split`` makes (two people: the smaller half
    becomes a new person)."""

    person: uuid.UUID
    kept: list[int]  # face ids of the larger half (they stay in the person)
    moved: list[int]  # face ids of the smaller half
    test: SplitTest

    @property
    def two_people(self) -> bool:
        return self.test.two_people

    @property
    def remedy(self) -> Remedy:
        """Splits the person so (the same decision, made again under the pack's lock)."""
        return Remedy("split", {"person": self.person}, "split it in two")

    def sizes(self) -> str:
        return f"{len(self.kept)} + {len(self.moved)} faces"

    def headline(self, label: str) -> str:
        return f"{label} looks like two people ({self.sizes()})"

    def why(self) -> str:
        """The verdict's reason, in words."""
        own = f"the {self.test.own.mean:.2f} of each half's own faces"
        nearer = f"strangers' than {own}" if self.two_people else f"{own} than strangers'"
        return f"faces of the two halves are {self.test.cross:.2f} alike, nearer {nearer}"

    def as_dict(self, command: CommandLine | None = None) -> dict[str, object]:
        return {**self.test.as_dict(), "kept": self.kept, "moved": self.moved,
                **worded(self.remedy, command)}


def halves(evidence: PersonEvidence, index: int) -> Halves | None:
    """Person ``index``'s best two-way partition (faces linked ``same`` in one half) and
    the verdict on it; None when there is none with two faces on each side."""
    rows = evidence.rows_of(index)
    test = split_test(evidence.faces.embeddings[rows], evidence.model,
                      evidence.units_of(index))
    if test is None:
        return None
    ids = evidence.faces.ids[rows]
    return Halves(evidence.persons[index].id, sorted(ids[test.half == 0].tolist()),
                  sorted(ids[test.half == 1].tolist()), test)


def two_people(evidence: PersonEvidence, index: int) -> Halves | None:
    """Person ``index`` as two people, when its best two-way partition says so."""
    found = halves(evidence, index)
    return found if found is not None and found.two_people else None


def reject(person: uuid.UUID, faces: list[int]) -> Remedy:
    """Taking ``faces`` out of ``person`` for good."""
    return Remedy("not_this_person", {"person": person, "faces": faces}, "take them out")
