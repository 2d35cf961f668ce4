"""Matching new faces to known persons (the first step of an incremental run).

A new face joins the person whose faces among its nearest neighbours are most similar
to it: the score of a person is the mean similarity of its (at most ``TOP``) most
similar neighbouring faces, a small prototype that is robust to one look-alike face.
The best person must score at or above the match threshold, must not have been
rejected for this face ("not this person"), and must not already be in the same photo.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")
TOP = 3
MATCH_MARGIN = 0.05
"""Matching is stricter than clustering by this much (cosine similarity)."""


@dataclass(frozen=True)
class Candidate(Generic[P]):
    person: P
    similarity: float
    image_id: int


@dataclass(frozen=True)
class Match(Generic[P]):
    face: int
    person: P
    score: float


def best_person(
    neighbors: Iterable[Candidate[P]],
    threshold: float,
    *,
    rejected: set[P] | frozenset[P] = frozenset(),
    image_id: int | None = None,
) -> tuple[P, float] | None:
    """The person this face should join, with its score, or None."""
    sims: dict[P, list[float]] = {}
    in_photo: set[P] = set()
    for c in neighbors:
        if c.person in rejected:
            continue
        if image_id is not None and c.image_id == image_id:
            in_photo.add(c.person)
        sims.setdefault(c.person, []).append(c.similarity)
    best: tuple[P, float] | None = None
    for person, values in sims.items():
        if person in in_photo:
            continue
        top = sorted(values, reverse=True)[:TOP]
        score = sum(top) / len(top)
        if score >= threshold and (best is None or score > best[1]):
            best = (person, score)
    return best


def match_faces(
    neighbors: Mapping[int, Iterable[Candidate[P]]],
    threshold: float,
    *,
    image_of: Mapping[int, int],
    rejections: Mapping[int, set[P]],
    taken: set[tuple[P, int]],
) -> list[Match[P]]:
    """Matches for many new faces; at most one face per (person, photo), the best one.

    ``taken`` holds (person, image) pairs already present in the database.
    """
    proposals: list[Match[P]] = []
    for face, cands in neighbors.items():
        found = best_person(cands, threshold, rejected=rejections.get(face, set()),
                            image_id=image_of[face])
        if found is not None and (found[0], image_of[face]) not in taken:
            proposals.append(Match(face, found[0], found[1]))
    proposals.sort(key=lambda m: -m.score)
    used: set[tuple[P, int]] = set()
    out: list[Match[P]] = []
    for m in proposals:
        key = (m.person, image_of[m.face])
        if key not in used:
            used.add(key)
            out.append(m)
    return out
