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
    _keep_names_on_most_of_their_faces(labels, former, manual, target, named or set())
    pulled = _pulled_by_same_links(n, former, manual, must)
    for row, person in pulled.items():
        target[row] = person

    # Decisions, face by face: what a person already holds (its hand-placed faces, then
    # the faces a `same` link brings, then the faces it had, then the faces that join it)
    # keeps out whatever conflicts with it.
    photos: dict[Person, set[int]] = defaultdict(set)
    members: dict[Person, set[int]] = defaultdict(set)
    partners: dict[int, list[int]] = defaultdict(list)
    for a, b in cannot:
        partners[a].append(b)
        partners[b].append(a)
    rest = [i for i in range(n) if not manual[i] and i not in pulled]
    order = ([i for i in range(n) if manual[i]] + sorted(pulled)
             + [i for i in rest if target[i] == former[i]]  # already that person's
             + [i for i in rest if target[i] != former[i]])
    displaced: dict[int, list[int]] = defaultdict(list)
    for row in order:
        held = target[row]
        if held is None:
            continue
        if not manual[row] and ((row, held) in rejected
                                or int(image_ids[row]) in photos[held]
                                or any(p in members[held] for p in partners[row])):
            displaced[int(labels[row])].append(row)
            continue
        photos[held].add(int(image_ids[row]))
        members[held].add(row)
    for rows in displaced.values():
        fresh = new_id()
        for row in rows:
            target[row] = fresh
    fresh_of: dict[int, Person] = {}
    out: list[Person] = []
    for row in range(n):
        given = target[row]
        if given is None:
            label = int(labels[row])
            if label not in fresh_of:
                fresh_of[label] = new_id()
            given = fresh_of[label]
        out.append(given)
    return out


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
                                       named: set[Person]) -> None:
    """Where a named person's former faces scatter so that another person (or a new
    one) would hold more of them than it does, they all stay with it (in place)."""
    rows: dict[Person, list[int]] = defaultdict(list)
    for i, p in enumerate(former):
        if p in named:
            rows[p].append(i)
    for person, mine in rows.items():
        held = Counter(target[i] if target[i] is not None else int(labels[i]) for i in mine)
        if held[person] < max(held.values()):
            for i in mine:
                if not manual[i]:
                    target[i] = person


def _pulled_by_same_links(n: int, former: Sequence[Person | None], manual: NDArray[np.bool_],
                          must: Sequence[tuple[int, int]]) -> dict[int, Person]:
    """Automatic faces linked ``same`` (directly or through other links) with faces
    placed by hand in exactly one person: row → that person."""
    if not must:
        return {}
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in must:
        parent[root(a)] = root(b)
    hand: dict[int, set[Person]] = defaultdict(set)
    for i in range(n):
        person = former[i]
        if manual[i] and person is not None:
            hand[root(i)].add(person)
    out: dict[int, Person] = {}
    for i in range(n):
        persons = hand.get(root(i))
        if not manual[i] and persons is not None and len(persons) == 1:
            out[i] = next(iter(persons))
    return out
