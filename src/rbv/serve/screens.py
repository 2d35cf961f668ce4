"""What a review screen holds: the pairs worth a person's time, chosen by the faces
they are expected to put right per second of looking and clicking.

A person's time on a screen is modelled as ``SECONDS_A_FACE`` for each face image on it
and ``SECONDS_A_CLICK`` for each click (a tick, Done); ``scripts/bench/review_effort.py``
reports effort with the same model. A pair's worth (its probability × the faces a "yes"
puts right, as the ranking has it) is what answering it gains. So a screen is chosen by
its *rate*, the worth of what it asks over the seconds it takes:

- a page of pairs shows each pair's two faces; it holds the strongest pairs, as many as
  give the best rate (``PAIRS_PAGE`` at most);
- a grid ("which of these are X?") shows X's faces once and one face per candidate, so
  the person with the fewest faces to show and the likeliest candidates makes the
  cheapest screen: the grid is of the person, among those of the strongest pairs, whose
  best prefix of candidates gives the best rate (often a lone face and the two or three
  persons it may belong to).

Pairs worth less than ``rbv.serve.ranking.MIN_WORTH`` are unlikely: shown only when the
person asks to go on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rbv.jobs.persons.evidence import REVIEW_CANDIDATES, Suggestion
from rbv.serve.ranking import Waiting, worth_a_look
from rbv.store.queries.persons import PersonRow

SECONDS_A_FACE = 0.4
"""Seconds a person takes to look at one face image on a screen."""
SECONDS_A_CLICK = 1.0
"""Seconds a click takes (a tick, Done)."""
SIDE_FACES = 6
"""Faces of a person a grid or a one-pair prompt shows at most."""
GRID = REVIEW_CANDIDATES
"""Candidates a grid shows at most (24: the nearest persons a ranking weighs)."""
PAIRS_PAGE = 24
"""Pairs a page shows at most."""
FILL = 0.5
"""Of a screen's rate, what an item must add per second of its own to be on it."""
ANCHORS = 16
"""Open pairs, strongest first, whose persons are weighed as a grid's person: the
cheapest screen holds a strong pair, and weighing every person at 100,000 faces would
cost a pass over every pair per request (at 100,000 faces, under a profiler, weighing
took 8 ms a grid with 48 pairs, 3 ms with 16; data/family's effort was the same:
scripts/README.md)."""


def best_prefix(items: Sequence[Suggestion], overhead: float, faces_each: int
                ) -> tuple[int, float]:
    """How many of ``items`` (strongest first) a screen should hold, and its rate
    (worth per second): ``overhead`` seconds for the screen itself, ``faces_each`` faces
    per item and a tick where it is one person. The screen's rate is that of its best
    prefix; it holds, of the items after, those that each add ``FILL`` of that rate or
    more (the next screen will hardly do better: a screen cut at its best average alone
    would cost a Done for every one or two pairs)."""
    seconds = [faces_each * SECONDS_A_FACE + s.probability * SECONDS_A_CLICK for s in items]
    gain, cost, rate = 0.0, overhead, 0.0
    for s, t in zip(items, seconds, strict=True):
        gain += s.worth
        cost += t
        if gain > rate * cost:
            rate = gain / cost
    n = min(1, len(items))
    while n < len(items) and items[n].worth >= FILL * rate * seconds[n]:
        n += 1
    return n, rate


def pairs_page(waiting: Waiting, unlikely: bool) -> tuple[list[Suggestion], float]:
    """The pairs a page holds: the strongest (worth a look unless ``unlikely``), as
    :func:`best_prefix` chooses; and the page's rate."""
    pool = _likely(waiting, unlikely, PAIRS_PAGE)
    n, rate = best_prefix(pool, SECONDS_A_CLICK, 2)
    return pool[:n], rate


@dataclass(frozen=True)
class GridChoice:
    """A grid's person and its candidates' pairs (strongest first)."""

    person: PersonRow
    pairs: list[Suggestion]
    rate: float


def grid_choice(waiting: Waiting, unlikely: bool) -> GridChoice | None:
    """The grid with the best rate among the persons of the ``ANCHORS`` strongest open
    pairs (worth a look unless ``unlikely``), or None when there is none."""
    best: GridChoice | None = None
    weighed: set[int] = set()
    for s in _likely(waiting, unlikely, ANCHORS):
        for person in (s.keep, s.other):
            key = person.id.int
            if key in weighed:
                continue
            weighed.add(key)
            mine = _likely(waiting.iter_of(key), unlikely, GRID)
            if not mine or (best is not None and mine[0].worth <= best.rate * SECONDS_A_FACE):
                continue  # no rate can pass the best: none beats worth per face shown
            overhead = SECONDS_A_CLICK + SECONDS_A_FACE * min(person.faces, SIDE_FACES)
            n, rate = best_prefix(mine, overhead, 1)
            if n and (best is None or rate > best.rate):
                best = GridChoice(person, mine[:n], rate)
    return best


def _likely(pairs: Iterable[Suggestion], unlikely: bool, most: int) -> list[Suggestion]:
    """The first ``most`` of ``pairs`` (strongest first), those worth a look alone
    unless ``unlikely``."""
    return list(itertools.islice(
        pairs if unlikely else itertools.takewhile(worth_a_look, pairs), most))
