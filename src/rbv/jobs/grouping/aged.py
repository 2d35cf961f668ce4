"""The space a full clustering and the reviews compare faces in, once the library has
estimated ages (an attribute model at ``index`` or ``enrich``): each face centred on the
library's average face of its age (:mod:`rbv.cluster.ages`), with the impostor model of
that space measured on the library's own random pairs.

Both are measured on one repeatable sample of the pack's faces, so ``cluster --full``
and ``persons suggest`` see the same space. Incremental runs give new faces a person in
the recognizer's own space (matching persons' stored sums): the space a full run made
the persons in only changes which faces it put together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.ages import AgeCentres
from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.evidence import library_impostor
from rbv.face_rows import PackFaces
from rbv.store.queries.assignments import load_faces
from rbv.store.queries.attributes import face_ages
from rbv.store.queries.packs import PackRow

SAMPLE = 20_000
"""Faces the centres and the impostor model are measured on (all of a smaller pack)."""


@dataclass(frozen=True)
class AgedSpace:
    centres: AgeCentres
    impostor: ImpostorModel
    source: str

    def embeddings(self, conn: psycopg.Connection, faces: PackFaces) -> NDArray[np.float32]:
        """``faces``' embeddings in this space (a new array)."""
        return self.centres.centred(faces.embeddings, ages_of(conn, faces.ids))


def aged_space(conn: psycopg.Connection, pack: PackRow) -> AgedSpace | None:
    """The pack's age-centred space, or None where too few of its faces have an age."""
    sample = load_faces(conn, pack, sample=SAMPLE)
    ages = ages_of(conn, sample.ids)
    own, _ = library_impostor(sample.embeddings, sample.image_ids)
    centres = AgeCentres.measure(sample.embeddings, ages, own)
    if centres is None:
        return None
    moved = centres.centred(sample.embeddings, ages)
    impostor, words = library_impostor(moved, sample.image_ids)
    return AgedSpace(centres, impostor,
                     f"faces centred by estimated age; impostor model {words}")


def ages_of(conn: psycopg.Connection, ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """Per face id: its estimated age, NaN where it has none."""
    known = face_ages(conn, ids.tolist())
    return np.array([known.get(int(i), np.nan) for i in ids.tolist()], np.float64)
