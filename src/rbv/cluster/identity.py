"""Who a person is after a clustering run: the one rule, in one place.

A person's id and name follow its faces. After a run, each cluster takes the former
person whose faces it holds the most of (largest overlaps first, each person once), so a
named person keeps the cluster that holds most of the faces it had before the run. A
face placed by hand stays in the person it was placed in, and only that face: it never
carries the other faces of its cluster, or its person's name, anywhere. The one way a
person gets a second cluster is by hand: a cluster whose former faces are mostly placed
by hand in one person (a merge, a group moved together) stays with that person, new
faces that joined them included.

A name stays on the person holding most of the faces it named: where a named person's
former faces would scatter so that another person (an existing one, or a new one) holds
more of them than it does, for instance when its cluster joined a larger person's, they
all stay with it; and so where that holds of its faces no ``same`` link ties to another
person (a face rejected from it, one placed by hand in another person, another named
person's face), for such linked faces go elsewhere together and must not take the name
from the rest.

Then the user's decisions are honoured: a face linked ``same`` with faces placed by
hand in one person joins that person, and automatic faces linked ``same`` (directly or
through other links) go or stay together; a face never lands in a person it was rejected
from, beside a face of the same photo, or beside a face it is linked ``different`` with
(nor do the faces linked ``same`` with it: by the user's word they are that one face's
person). Faces a decision keeps out of the person they would join form a new person (one
per cluster), looked at again until nothing conflicts.

Pure: rows in, person ids out (``uuid.UUID`` values, new ones drawn from ``new_id``).
Arrays throughout (persons as integer codes), with a row-by-row pass only over the faces a
decision touches: 1M faces take about as long as reading them. The rule written row by row
is ``tests/support/identity_reference.py``, and the two are tested to agree.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.union_find import roots

Person = uuid.UUID
NONE = -1


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
    new_id: Callable[[], Person] | None = None,
) -> list[Person]:
    """The person of every face (row) after a run that clustered them into ``labels``.

    ``former``: each face's person before the run (None: it had none); ``manual``: placed
    by hand (kept where it is); ``must``/``cannot``: ``same``/``different`` links between
    rows; ``rejected``: (row, person) pairs the user said "not this person" to;
    ``named``: the persons with a name; ``new_id``: draws new persons' ids (uuid4).
    """
    new_id = new_id or uuid.uuid4
    labels = np.asarray(labels, np.int64)
    n = len(labels)
    rejected = rejected or set()
    persons, code, index = _codes(former)
    # a face with no person has no place to be kept in
    manual = np.asarray(manual, bool) & (code != NONE)
    # an automatic face the user rejected from its person no longer counts as that
    # person's (a hand placement is the later decision: the edits remove the rejection)
    rejected_codes = {(row, index[p]) for row, p in rejected if p in index}
    for row, c in rejected_codes:
        if code[row] == c and not manual[row]:
            code[row] = NONE
    target = _clusters_to_persons(labels, code, manual)
    target[manual] = code[manual]
    named_codes = {index[p] for p in (named or set()) if p in index}
    links = _LinkedFaces(n, manual, must)
    free = links.uncontested(code, rejected_codes, named_codes)
    _keep_names_on_most_of_their_faces(labels, code, manual, target, named_codes, free)
    pulled = links.pulled(code)
    for row, c in pulled.items():
        target[row] = c
    links.keep_together(code, target, pulled, named_codes)
    key = links.keys(labels)

    # new persons: one per cluster nobody held before; then, until nothing conflicts, one
    # per cluster for the faces a decision keeps out of the person they would join
    out_codes = target.copy()
    fresh: list[Person] = []
    rows = np.flatnonzero(target == NONE)
    image_ids = np.asarray(image_ids, np.int64)
    while True:
        groups, which = np.unique(key[rows], return_inverse=True)
        out_codes[rows] = len(persons) + len(fresh) + which
        fresh.extend(new_id() for _ in range(len(groups)))
        rows = _displaced(code, manual, out_codes, image_ids, pulled, cannot,
                          rejected_codes, links)
        if len(rows) == 0:
            break
    every = persons + fresh
    return [every[c] for c in out_codes.tolist()]


def _codes(former: Sequence[Person | None],
           ) -> tuple[list[Person], NDArray[np.int64], dict[Person | None, int]]:
    """The distinct persons in id order (ties between persons go by id), each row's
    person as an index into them (NONE), and that index by person."""
    persons = sorted(set(former) - {None}, key=str)  # type: ignore[arg-type]
    index: dict[Person | None, int] = {p: i for i, p in enumerate(persons)}
    index[None] = NONE
    code = np.array(list(map(index.__getitem__, former)), np.int64)
    return persons, code, index  # type: ignore[return-value]


def _pair_counts(a: NDArray[np.int64], b: NDArray[np.int64],
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The distinct (a, b) pairs and how many rows hold each (one sort of one int64 key
    per row: the values here are far below 2**31)."""
    if len(a) == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    low, span = int(b.min()), int(b.max()) - int(b.min()) + 1
    keys, counts = np.unique(a * span + (b - low), return_counts=True)
    first = np.floor_divide(keys, span)
    return first, keys - first * span + low, counts


def _clusters_to_persons(labels: NDArray[np.int64], code: NDArray[np.int64],
                         manual: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Each row's cluster's person: the former person the cluster holds most faces of
    (largest overlap first, each person and each cluster once; ties by label, then id,
    so runs repeat); then a cluster left over whose former faces are mostly placed by
    hand in one person → that person. NONE where no person takes the cluster."""
    held = code != NONE
    cluster, person, count = _pair_counts(labels[held], code[held])
    person_of: dict[int, int] = {}
    used: set[int] = set()
    for k in np.lexsort((person, cluster, -count)).tolist():
        label, c = int(cluster[k]), int(person[k])
        if label not in person_of and c not in used:
            person_of[label] = c
            used.add(c)
    formerly = dict(zip(*np.unique(labels[held], return_counts=True), strict=True))
    hand = held & manual
    cluster, person, count = _pair_counts(labels[hand], code[hand])
    for k in np.lexsort((person, cluster, -count)).tolist():
        label = int(cluster[k])
        if label not in person_of and 2 * int(count[k]) > formerly[label]:
            person_of[label] = int(person[k])
    if not person_of:
        return np.full(len(labels), NONE, np.int64)
    keys = np.array(sorted(person_of), np.int64)
    values = np.array([person_of[k] for k in keys.tolist()], np.int64)
    at = np.clip(np.searchsorted(keys, labels), 0, len(keys) - 1)
    return np.where(keys[at] == labels, values[at], NONE)


def _keep_names_on_most_of_their_faces(labels: NDArray[np.int64], code: NDArray[np.int64],
                                       manual: NDArray[np.bool_], target: NDArray[np.int64],
                                       named: set[int], free: NDArray[np.bool_]) -> None:
    """Where a named person's former faces scatter so that another person (or a new
    one) would hold more of them than it does, they all stay with it (in place); and so
    where that holds of its faces no link ties to another person (``free``)."""
    if not named:
        return
    rows = np.flatnonzero(np.isin(code, np.array(sorted(named), np.int64)))
    if len(rows) == 0:
        return
    # where each face goes: a person's code, or (for a cluster nobody holds) its label
    # shifted below every code
    goes = np.where(target[rows] != NONE, target[rows], -2 - labels[rows])
    size = int(code.max()) + 1

    def losing_among(among: NDArray[np.bool_]) -> NDArray[np.int64]:
        person, where, count = _pair_counts(code[rows][among], goes[among])
        own = np.zeros(size, np.int64)
        best = np.zeros_like(own)
        np.maximum.at(best, person, count)
        mine = person == where
        own[person[mine]] = count[mine]
        return np.flatnonzero(own < best)

    losing = np.union1d(losing_among(np.ones(len(rows), bool)), losing_among(free[rows]))
    if len(losing):
        back = rows[np.isin(code[rows], losing) & ~manual[rows]]
        target[back] = code[back]


class _LinkedFaces:
    """The faces linked ``same`` (directly or through other links): each component's
    automatic faces move as one."""

    def __init__(self, n: int, manual: NDArray[np.bool_],
                 must: Sequence[tuple[int, int]]) -> None:
        self.manual = manual
        self.root = dict(sorted(roots(must).items()))
        self.members: dict[int, list[int]] = defaultdict(list)  # automatic, row order
        for i, r in self.root.items():
            if not manual[i]:
                self.members[r].append(i)

    def unit(self, row: int) -> list[int]:
        """The automatic faces that move with ``row`` (itself included)."""
        r = self.root.get(row)
        return [row] if r is None else self.members[r]

    def pulled(self, code: NDArray[np.int64]) -> dict[int, int]:
        """Automatic faces linked with faces placed by hand in exactly one person:
        row → that person."""
        hand: dict[int, set[int]] = defaultdict(set)
        for i, r in self.root.items():
            if self.manual[i]:
                hand[r].add(int(code[i]))
        return {i: next(iter(hand[r])) for r, rows in self.members.items()
                if len(hand.get(r, ())) == 1 for i in rows}

    def uncontested(self, code: NDArray[np.int64], rejected: set[tuple[int, int]],
                    named: set[int]) -> NDArray[np.bool_]:
        """Faces no link ties to another person: none in their component was rejected
        from their person, placed by hand in another person, or is another named
        person's."""
        free = np.ones(len(code), bool)
        not_theirs = {(self.root.get(row, row), c) for row, c in rejected}
        for row, c in rejected:
            if row not in self.root and code[row] == c:
                free[row] = False
        hand: dict[int, set[int]] = defaultdict(set)
        names: dict[int, set[int]] = defaultdict(set)
        for i, r in self.root.items():
            c = int(code[i])
            if c != NONE and self.manual[i]:
                hand[r].add(c)
            if c in named:
                names[r].add(c)
        for i, r in self.root.items():
            c = int(code[i])
            free[i] = ((r, c) not in not_theirs and hand[r] <= {c} and names[r] <= {c})
        return free

    def keep_together(self, code: NDArray[np.int64], target: NDArray[np.int64],
                      pulled: dict[int, int], named: set[int]) -> None:
        """Each component's automatic faces all go where its first face goes: one a link
        pulls, then one staying in its named person, then one staying in its person,
        then one joining a person (row order)."""
        def rank(i: int) -> tuple[bool, bool, bool, int]:
            stays = target[i] == code[i]
            return i not in pulled, not (stays and int(code[i]) in named), not stays, i

        for rows in self.members.values():
            going = [i for i in rows if target[i] != NONE]
            if len(rows) > 1 and going:
                target[rows] = target[min(going, key=rank)]

    def keys(self, labels: NDArray[np.int64]) -> NDArray[np.int64]:
        """The cluster each face takes a new person by: its own, or its component's
        first face's."""
        key = labels.copy()
        for rows in self.members.values():
            key[rows] = labels[rows[0]]
        return key


def _displaced(code: NDArray[np.int64], manual: NDArray[np.bool_], target: NDArray[np.int64],
               image_ids: NDArray[np.int64], pulled: dict[int, int],
               cannot: Sequence[tuple[int, int]], rejected: set[tuple[int, int]],
               links: _LinkedFaces) -> NDArray[np.int64]:
    """The automatic faces a decision keeps out of their target person: rejected from
    it, beside a face of their photo, or beside a face linked ``different`` (faces
    linked ``same`` go or stay together). What a person holds first wins: its
    hand-placed faces, then the faces a ``same`` link brings, then the faces it had,
    then the faces that join it (row order within each). Only faces a decision touches
    are looked at one by one."""
    keys = target * (int(image_ids.max()) + 1) + image_ids
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    twice = np.flatnonzero(ordered[1:] == ordered[:-1])
    involved = set(order[twice].tolist()) | set(order[twice + 1].tolist())
    partners: dict[int, list[int]] = defaultdict(list)
    for a, b in cannot:
        partners[a].append(b)
        partners[b].append(a)
    involved.update(partners)
    involved.update(row for row, _c in rejected)

    def priority(row: int) -> tuple[int, int]:
        if manual[row]:
            return 0, row
        if row in pulled:
            return 1, row
        return (2 if target[row] == code[row] else 3), row

    units = {tuple(sorted([row] if manual[row] else links.unit(row))) for row in involved}
    photos: dict[int, set[int]] = defaultdict(set)
    members: dict[int, set[int]] = defaultdict(set)
    out: list[int] = []
    for unit in sorted(units, key=lambda u: min(map(priority, u))):
        held = int(target[unit[0]])
        if not manual[unit[0]] and any(
                (row, held) in rejected or int(image_ids[row]) in photos[held]
                or any(p in members[held] for p in partners[row]) for row in unit):
            out.extend(unit)
            continue
        photos[held].update(int(image_ids[row]) for row in unit)
        members[held].update(unit)
    return np.array(sorted(out), np.int64)
