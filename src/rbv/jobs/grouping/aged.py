"""The space a full clustering and the reviews compare faces in, once the library has
estimated ages (an attribute model at ``index`` or ``enrich``): each face centred on the
library's average face of its age (:mod:`rbv.cluster.ages`), with the impostor model of
that space measured on the library's own random pairs.

Both are measured on one repeatable sample of the pack's faces, so ``cluster --full``
and ``persons suggest`` see the same space. A library's first run is a full one when its
faces have ages. Incremental runs give new faces a person in the recognizer's own space
(matching persons' stored sums): the space a full run made the persons in only changes
which faces it put together; once the library has grown 1.25 times, a run re-clusters
every face, by age again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.ages import AgeCentres
from rbv.cluster.calibrations import known_recognizer
from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.evidence import library_impostor
from rbv.cluster.methods import Method
from rbv.face_rows import PackFaces
from rbv.store.queries.assignments import load_faces
from rbv.store.queries.attributes import ages_digest, face_ages
from rbv.store.queries.pack_lookup import pack_files, pack_settings
from rbv.store.queries.packs import PackRow

BY_AGE = "by_age"
"""The pack setting a full run asked ``--by-age`` or ``--as-made`` keeps."""
SAMPLE = 20_000
"""Faces the centres and the impostor model are measured on (all of a smaller pack)."""


@dataclass(frozen=True)
class AgedSpace:
    """Centres and the impostor model of faces centred by age; without ``centres``, the
    recognizer's own space (``source`` empty)."""

    centres: AgeCentres | None = None
    impostor: ImpostorModel | None = None
    source: str = ""

    def embeddings(self, conn: psycopg.Connection, faces: PackFaces) -> NDArray[np.float32]:
        """``faces``' embeddings in this space (a new array where centred)."""
        if self.centres is None:
            return faces.embeddings
        return self.centres.centred(faces.embeddings, ages_of(conn, faces.ids))

    def compared(self, conn: psycopg.Connection, faces: PackFaces,
                 impostor: ImpostorModel | None
                 ) -> tuple[NDArray[np.float32], ImpostorModel | None]:
        """``faces``' embeddings and the impostor model to compare them with, in this
        space (``impostor``: the recognizer's own, for its own space)."""
        return self.embeddings(conn, faces), self.impostor or impostor


def by_age(conn: psycopg.Connection, pack: PackRow, asked: bool | None = None) -> bool:
    """Whether the pack's faces are compared centred by age: as ``asked`` (``cluster
    --by-age`` / ``--as-made``), else as its last full run was asked, else the
    recognizer's default (on where rbv measured it to help: SFace; off for a recognizer
    rbv knows nothing of, where it was measured to cost precision on another one)."""
    if asked is not None:
        return asked
    stored = pack_settings(conn, pack.id).get(BY_AGE)
    if stored is not None:
        return bool(stored)
    known = known_recognizer(pack_files(conn, pack.id))
    return known is not None and known.by_age


def first_by_age(conn: psycopg.Connection, pack: PackRow, stored: Mapping[str, Any],
                 asked: bool | None, method: Method) -> bool:
    """Whether a run is a library's first (no persons made yet) and its faces, with
    estimated ages, are grouped by age: it then runs as a full run does (an incremental
    run groups its new faces as the recognizer made them)."""
    return (method is Method.evidence and not stored.get("last_clustering")
            and by_age(conn, pack, asked) and bool(ages_digest(conn, pack.id)))


def aged_space(conn: psycopg.Connection, pack: PackRow, asked: bool | None = None,
               method: Method = Method.evidence,
               progress: Callable[[str], None] = lambda _: None) -> AgedSpace:
    """The pack's age-centred space; the recognizer's own where it is not wanted
    (:func:`by_age`), too few of its faces have an age, or ``method`` compares
    similarities with a threshold (in the recognizer's units)."""
    if method is not Method.evidence or not by_age(conn, pack, asked):
        return AgedSpace()
    sample = load_faces(conn, pack, sample=SAMPLE)
    ages = ages_of(conn, sample.ids)
    own, _ = library_impostor(sample.embeddings, sample.image_ids)
    centres = AgeCentres.measure(sample.embeddings, ages, own)
    if centres is None:
        return AgedSpace()
    progress("centring faces on the library's faces of their age")
    moved = centres.centred(sample.embeddings, ages)
    impostor, words = library_impostor(moved, sample.image_ids)
    return AgedSpace(centres, impostor,
                     "each face centred by estimated age on this library's faces of that "
                     "age, so a child can meet the adult they became; the likeness of "
                     f"strangers {words}")


def ages_of(conn: psycopg.Connection, ids: NDArray[np.int64]) -> NDArray[np.float64]:
    """Per face id: its estimated age, NaN where it has none."""
    known = face_ages(conn, ids.tolist())
    return np.array([known.get(int(i), np.nan) for i in ids.tolist()], np.float64)
