"""The user's decisions as a clustering run needs them, built one way for every run.

What a user decided about faces: faces placed in a person by hand (``manual``), "same"
and "different" links between two faces (must / cannot), faces taken out of a person
(rejections), and a fact no one has to say: a photo never shows one person twice.
Full runs (``rbv cluster --full``), incremental runs (new faces grown into the known
persons near them) and ``rbv persons split`` turn them here into the constraints over
the rows they cluster (arrays and plain pairs in, arrays out: no database).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import NO_ANCHOR, Constraints, same_group_pairs
from rbv.face_rows import PackFaces

FacePairs = Sequence[tuple[int, int]]
"""Face-id pairs: "same" (must) or "different" (cannot) links."""


def hand_anchors(faces: PackFaces) -> NDArray[np.int64]:
    """Per row: one anchor id for the faces placed by hand in the same person (they stay
    together, apart from other anchors), :data:`NO_ANCHOR` for the rest."""
    anchor_of: dict[uuid.UUID, int] = {}
    anchors = np.full(len(faces), NO_ANCHOR, np.int64)
    for i in np.flatnonzero(faces.manual).tolist():
        person = faces.person_ids[i]
        if person is not None:
            anchors[i] = anchor_of.setdefault(person, len(anchor_of))
    return anchors


def row_pairs(position: Mapping[int, int], pairs: FacePairs) -> list[tuple[int, int]]:
    """Face-id pairs as row pairs (``position``: face id → row), those with both faces
    among the rows."""
    return [(position[a], position[b]) for a, b in pairs if a in position and b in position]


def constraints_among(ids: NDArray[np.int64], image_ids: NDArray[np.int64],
                      must: FacePairs, cannot: FacePairs,
                      anchors: NDArray[np.int64] | None = None) -> Constraints:
    """The constraints over the faces ``ids`` (rows ``0..``; ``image_ids``: each one's
    photo): the links among them, one person per photo, and ``anchors`` (per row)."""
    pos = {f: i for i, f in enumerate(np.asarray(ids).tolist())}
    return Constraints.build(len(pos), image_ids=image_ids, cannot=row_pairs(pos, cannot),
                             must=row_pairs(pos, must), anchors=anchors)


@dataclass(frozen=True)
class GrowLinks:
    """Node pairs for growing new faces into known persons
    (:func:`rbv.cluster.evidence.grow_known`): nodes ``0..p-1`` are the known persons,
    ``p + i`` the new face at row ``i``."""

    cannot: NDArray[np.int64]
    must: NDArray[np.int64]


def grow_links(known: Sequence[uuid.UUID], new: PackFaces, *, must: FacePairs,
               cannot: FacePairs, rejections: Iterable[tuple[int, uuid.UUID]],
               linked: Mapping[int, Iterable[uuid.UUID]],
               person_of: Mapping[int, uuid.UUID | None],
               in_photo: Iterable[tuple[uuid.UUID, int]]) -> GrowLinks:
    """The decisions over new faces and the ``known`` persons they may join.

    ``person_of``: the person of each older face a "different" link names; ``linked``:
    new face → the known persons it is linked "same" to; ``in_photo``: (known person,
    photo) for the known persons already in a new face's photo.
    """
    p = len(known)
    node = {person: i for i, person in enumerate(known)}
    row = {f: p + i for i, f in enumerate(new.ids.tolist())}

    def at(face: int) -> int | None:
        if face in row:
            return row[face]
        person = person_of.get(face)
        return node.get(person) if person is not None else None

    apart = [(at(a), at(b)) for a, b in cannot]
    apart += [(node[person], row[f]) for f, person in rejections
              if f in row and person in node]
    # One person per photo: a known person already in a new face's photo, and the new
    # faces of one photo (as :func:`constraints_among` has it).
    rows_in: dict[int, list[int]] = {}
    for r, image in enumerate(new.image_ids.tolist()):
        rows_in.setdefault(image, []).append(p + r)
    for person, image in in_photo:
        apart += [(node[person], r) for r in rows_in[image]]
    together = [(row[a], row[b]) for a, b in must if a in row and b in row]
    together += [(node[person], row[f]) for f, persons in linked.items()
                 for person in persons if person in node]
    photo = p + same_group_pairs(new.image_ids)
    return GrowLinks(
        np.concatenate([np.array([c for c in apart if None not in c], np.int64)
                        .reshape(-1, 2), photo]),
        np.array(together, np.int64).reshape(-1, 2))
