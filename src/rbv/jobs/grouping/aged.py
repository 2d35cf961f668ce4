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

A process keeps the space it measured (``rbv serve`` ranks again after answers) until
the pack's faces or anyone's estimates change: a face added or removed, an estimate
stored, replaced or dropped. An edit that changes neither (a merge, a name, a face
marked not a face: one face of a sample of thousands) reuses it.
"""

from __future__ import annotations

import threading
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
from rbv.store.queries.assignments import count_faces
from rbv.store.queries.attributes import (
    ages_stamp,
    face_ages,
    has_ages,
    pack_ages,
)
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import pack_files, pack_settings
from rbv.store.queries.packs import PackRow, database_key

BY_AGE = "by_age"
"""The pack setting a full run asked ``--by-age`` or ``--as-made`` keeps."""
SAMPLE = 20_000
"""Faces the centres and the impostor model are measured on (all of a smaller pack)."""
FEW_IDS = 20_000
"""Up to this many faces' ages are read by their ids; more by reading the pack's."""


@dataclass(frozen=True)
class AgedSpace:
    """Centres and the impostor model of faces centred by age; without ``centres``, the
    recognizer's own space (``source`` empty)."""

    centres: AgeCentres | None = None
    impostor: ImpostorModel | None = None
    source: str = ""
    pack: int = 0

    def embeddings(self, conn: psycopg.Connection, faces: PackFaces) -> NDArray[np.float32]:
        """``faces``' embeddings in this space (a new array where centred)."""
        if self.centres is None:
            return faces.embeddings
        return self.centres.centred(faces.embeddings, ages_of(conn, faces.ids, self.pack))

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
            and by_age(conn, pack, asked) and has_ages(conn, pack.id))


def aged_space(conn: psycopg.Connection, pack: PackRow, asked: bool | None = None,
               method: Method = Method.evidence,
               progress: Callable[[str], None] = lambda _: None) -> AgedSpace:
    """The pack's age-centred space; the recognizer's own where it is not wanted
    (:func:`by_age`), none of its faces has an age, too few have, or ``method``
    compares similarities with a threshold (in the recognizer's units)."""
    if (method is not Method.evidence or not by_age(conn, pack, asked)
            or not has_ages(conn, pack.id)):
        return AgedSpace()
    where = database_key(conn), pack.id
    stamp = count_faces(conn, pack), ages_stamp(conn)
    with _KEPT_LOCK:
        kept = _KEPT.get(where)
    if kept is not None and kept[0] == stamp:
        return kept[1]
    space = _measured(conn, pack, progress)
    with _KEPT_LOCK:
        _KEPT[where] = stamp, space
    return space


_KEPT: dict[tuple[tuple[str, int], int], tuple[tuple[int, tuple[int, str]], AgedSpace]] = {}
"""Per database and pack: the space measured last and the faces and estimates then."""
_KEPT_LOCK = threading.Lock()


def _measured(conn: psycopg.Connection, pack: PackRow,
              progress: Callable[[str], None]) -> AgedSpace:
    """The space of :func:`aged_space`, measured on a repeatable sample of the faces."""
    sample = load_faces(conn, pack, sample=SAMPLE)
    ages = ages_of(conn, sample.ids, pack.id)
    own, _ = library_impostor(sample.embeddings, sample.image_ids, plain=True)
    centres = AgeCentres.measure(sample.embeddings, ages, own)
    if centres is None:
        return AgedSpace()
    progress("centring faces on the library's faces of their age")
    moved = centres.centred(sample.embeddings, ages)
    impostor, words = library_impostor(moved, sample.image_ids, plain=True)
    return AgedSpace(centres, impostor,
                     "each face centred by estimated age on this library's faces of that "
                     f"age, so a child can meet the adult they became; the likeness of "
                     f"strangers {words}", pack.id)


def ages_of(conn: psycopg.Connection, ids: NDArray[np.int64],
            pack: int) -> NDArray[np.float64]:
    """Per face id (faces of ``pack``): its estimated age, NaN where it has none."""
    if len(ids) <= FEW_IDS:
        known = face_ages(conn, ids.tolist())
        return np.array([known.get(int(i), np.nan) for i in ids.tolist()], np.float64)
    aged, years = pack_ages(conn, pack)
    if len(aged) == 0:
        return np.full(len(ids), np.nan)
    at = np.minimum(np.searchsorted(aged, ids), len(aged) - 1)
    return np.where(aged[at] == ids, years[at], np.nan)
