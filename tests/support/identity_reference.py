"""The rule of :mod:`rbv.cluster.identity` as it was first written, row by row in plain
Python: the reference the array version is tested against (tests/test_identity_rule.py).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

Person = uuid.UUID


def follow_faces(
    labels: NDArray[np.int64],
    former: Sequence[Person | None],
    manual: NDArray[np.bool_],
    image_ids: NDArray[np.int64],
    *,
    must: Sequence[tuple[int, int]] = (),
    cannot: Sequence[tuple[int, int]] = (),
    rejected: set[tuple[int, Person]] | None = None,
    named: set[Person] | None = None,
    new_id: Callable[[], Person] = uuid.uuid4,
) -> list[Person]:
    """The person of every face (row) after a run that clustered them into ``labels``.

    ``former``: each face's person before the run (None: it had none); ``manual``: placed
    by hand (kept where it is); ``must``/``cannot``: ``same``/``different`` links between
    rows; ``rejected``: (row, person) pairs the user said "not this person" to;
    ``named``: the persons with a name.
    """
    n = len(labels)
    rejected = rejected or set()
    # a face with no person has no place to be kept in
    manual = manual & np.array([p is not None for p in former], bool)
    # an automatic face the user rejected from its person no longer counts as that
    # person's (a hand placement is the later decision: the edits remove the rejection)
    former = [None if p is not None and not manual[i] and (i, p) in rejected else p
              for i, p in enumerate(former)]
    person_of = _clusters_to_persons(labels, former, manual)
    target: list[Person | None] = [
        former[i] if manual[i] else person_of.get(int(labels[i])) for i in range(n)]
    component = components(n, must)
    free = _uncontested(former, manual, component, rejected, named or set())
    _keep_names_on_most_of_their_faces(labels, former, manual, target, named or set(), free)
    pulled = _pulled_by_same_links(former, manual, component)
    for row, person in pulled.items():
        target[row] = person
    # faces linked `same` go together: where the first of them goes (one a link pulls,
    # then one staying in its named person, then one staying in its person, then one
    # joining a person, row order)
    automatic: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        if not manual[i]:
            automatic[component[i]].append(i)
    for rows in automatic.values():
        going = [i for i in rows if target[i] is not None]
        if going:
            first = min(going, key=lambda i: (
                i not in pulled, not (target[i] == former[i] and former[i] in (named or ())),
                target[i] != former[i], i))
            for i in rows:
                target[i] = target[first]
    key = {i: int(labels[rows[0]]) for rows in automatic.values() for i in rows}

    fresh_of: dict[int, Person] = {}
    for row in range(n):
        if target[row] is None:
            if key[row] not in fresh_of:
                fresh_of[key[row]] = new_id()
            target[row] = fresh_of[key[row]]
    # Decisions, face by face: what a person already holds (its hand-placed faces, then
    # the faces a `same` link brings, then the faces it had, then the faces that join it)
    # keeps out whatever conflicts with it; what is kept out forms a new person per
    # cluster, until nothing conflicts.
    partners: dict[int, list[int]] = defaultdict(list)
    for a, b in cannot:
        partners[a].append(b)
        partners[b].append(a)

    def rank(i: int) -> tuple[int, int]:
        if manual[i]:
            return 0, i
        return (1 if i in pulled else 2 if target[i] == former[i] else 3), i

    units = sorted([[i] for i in range(n) if manual[i]] + list(automatic.values()),
                   key=lambda unit: min(map(rank, unit)))
    while True:
        photos: dict[Person | None, set[int]] = defaultdict(set)
        members: dict[Person | None, set[int]] = defaultdict(set)
        displaced: dict[int, list[int]] = defaultdict(list)
        for unit in sorted(units, key=lambda unit: min(map(rank, unit))):
            held = target[unit[0]]
            if not manual[unit[0]] and any(
                    (row, held) in rejected or int(image_ids[row]) in photos[held]
                    or any(p in members[held] for p in partners[row]) for row in unit):
                displaced[key[unit[0]]].extend(unit)
                continue
            photos[held].update(int(image_ids[row]) for row in unit)
            members[held].update(unit)
        if not displaced:
            return [p for p in target if p is not None]
        for rows in displaced.values():
            fresh = new_id()
            for row in rows:
                target[row] = fresh


def components(n: int, must: Sequence[tuple[int, int]]) -> list[int]:
    """Each row's component of ``same`` links (its smallest row)."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in must:
        ra, rb = root(a), root(b)
        parent[max(ra, rb)] = min(ra, rb)
    return [root(i) for i in range(n)]


def _clusters_to_persons(labels: NDArray[np.int64], former: Sequence[Person | None],
                         manual: NDArray[np.bool_]) -> dict[int, Person]:
    """Cluster label → the former person it holds most faces of (largest overlap first,
    each person and each cluster once; ties by label, then id, so runs repeat); then a
    cluster left over whose former faces are mostly placed by hand in one person → that
    person."""
    overlap = Counter((int(labels[i]), p) for i, p in enumerate(former) if p is not None)
    person_of: dict[int, Person] = {}
    used: set[Person] = set()
    for (label, person), _count in sorted(overlap.items(),
                                          key=lambda kv: (-kv[1], kv[0][0], str(kv[0][1]))):
        if label not in person_of and person not in used:
            person_of[label] = person
            used.add(person)
    formerly = Counter(label for label, _person in overlap.elements())
    by_hand = Counter((int(labels[i]), p) for i, p in enumerate(former)
                      if p is not None and manual[i])
    for (label, person), count in sorted(by_hand.items(),
                                         key=lambda kv: (-kv[1], kv[0][0], str(kv[0][1]))):
        if label not in person_of and 2 * count > formerly[label]:
            person_of[label] = person
    return person_of


def _keep_names_on_most_of_their_faces(labels: NDArray[np.int64],
                                       former: Sequence[Person | None],
                                       manual: NDArray[np.bool_], target: list[Person | None],
                                       named: set[Person], free: list[bool]) -> None:
    """Where a named person's former faces scatter so that another person (or a new
    one) would hold more of them than it does, they all stay with it (in place); and so
    where that holds of its faces no link ties to another person (``free``)."""
    rows: dict[Person, list[int]] = defaultdict(list)
    for i, p in enumerate(former):
        if p in named:
            rows[p].append(i)
    for person, mine in rows.items():
        goes = [target[i] if target[i] is not None else int(labels[i]) for i in mine]
        held = Counter(goes)
        held_free = Counter(g for i, g in zip(mine, goes, strict=True) if free[i])
        if held[person] < max(held.values()) or (
                held_free and held_free[person] < max(held_free.values())):
            for i in mine:
                if not manual[i]:
                    target[i] = person


def _uncontested(former: Sequence[Person | None], manual: NDArray[np.bool_],
                 component: list[int], rejected: set[tuple[int, Person]],
                 named: set[Person]) -> list[bool]:
    """Faces no ``same`` link ties to another person: none in their component was
    rejected from their person, placed by hand in another person, or is another named
    person's."""
    not_theirs = {(component[i], p) for i, p in rejected}
    hand: dict[int, set[Person]] = defaultdict(set)
    names: dict[int, set[Person]] = defaultdict(set)
    for i, p in enumerate(former):
        if p is not None and manual[i]:
            hand[component[i]].add(p)
        if p in named:
            names[component[i]].add(p)  # type: ignore[arg-type]
    return [p is not None and (component[i], p) not in not_theirs
            and hand[component[i]] <= {p} and names[component[i]] <= {p}
            for i, p in enumerate(former)]


def _pulled_by_same_links(former: Sequence[Person | None], manual: NDArray[np.bool_],
                          component: list[int]) -> dict[int, Person]:
    """Automatic faces linked ``same`` (directly or through other links) with faces
    placed by hand in exactly one person: row → that person."""
    hand: dict[int, set[Person]] = defaultdict(set)
    for i, person in enumerate(former):
        if manual[i] and person is not None:
            hand[component[i]].add(person)
    out: dict[int, Person] = {}
    for i in range(len(former)):
        persons = hand.get(component[i])
        if not manual[i] and persons is not None and len(persons) == 1:
            out[i] = next(iter(persons))
    return out
