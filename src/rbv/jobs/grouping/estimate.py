"""The impostor model of a recognizer rbv has no calibration for, estimated from a sample
of the library's own faces (:func:`rbv.cluster.evidence.library_impostor`).

The sample is ``ESTIMATE_SAMPLE`` faces in the order of ``md5(id::text)`` (the order
decides which random pairs are drawn). Read from the database
(:func:`estimate_impostor`), they are the first of a repeatable Bernoulli sample of the
narrow face rows; a full run has read every face already, so it takes them from there
(:func:`estimate_from_faces`) instead of reading 20,000 vectors again (0.4-0.5 s at 100k
faces): the same faces in the same order up to ``1.5 × ESTIMATE_SAMPLE + 100`` faces
(where the database's sample is every face), a sample of the same size chosen by a
hash of the face ids above."""

from __future__ import annotations

import hashlib
from typing import TypeVar

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.cluster.calibrations import ClusterSetting
from rbv.cluster.evidence import library_impostor
from rbv.face_rows import PackFaces
from rbv.store.queries.face_reads import load_faces, sampled_percent
from rbv.store.queries.packs import PackRow

G = TypeVar("G", bound=np.generic)
ESTIMATE_SAMPLE = 20_000
"""Faces drawn to estimate an unknown recognizer's impostor model from the library."""


def estimate_impostor(conn: psycopg.Connection, pack: PackRow,
                      setting: ClusterSetting) -> ClusterSetting:
    """``setting`` with the impostor model of an unknown recognizer, estimated from a
    sample of the pack's faces read from the database."""
    sample = load_faces(conn, pack, sample=ESTIMATE_SAMPLE)
    return setting.with_impostor(*library_impostor(sample.embeddings, sample.image_ids))


def estimate_from_faces(conn: psycopg.Connection, pack: PackRow, setting: ClusterSetting,
                        faces: PackFaces) -> ClusterSetting:
    """:func:`estimate_impostor` from ``faces``, every face of the pack but a hidden
    person's (what a full run reads), and the hidden persons' faces, read here (a
    hidden person is the user's decision about grouping, not about the recognizer: it
    leaves the estimate as it was)."""
    hidden = load_faces(conn, pack, hidden=True)
    n = len(faces)
    rows = sample_rows(np.concatenate([faces.ids, hidden.ids]), ESTIMATE_SAMPLE)
    ours = rows < n

    def take(visible: NDArray[G], hidden_: NDArray[G]) -> NDArray[G]:
        out = np.empty((len(rows), *visible.shape[1:]), visible.dtype)
        out[ours], out[~ours] = visible[rows[ours]], hidden_[rows[~ours] - n]
        return out

    return setting.with_impostor(*library_impostor(
        take(faces.embeddings, hidden.embeddings), take(faces.image_ids, hidden.image_ids)))


def sample_rows(ids: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Positions in ``ids`` of ``size`` faces in ``md5(id::text)`` order: the first of
    every face where ``load_faces(sample=size)`` samples every face, else of the share
    of them it samples, chosen by a hash of their ids."""
    candidates = np.arange(len(ids))
    percent = sampled_percent(len(ids), size)
    if percent < 100:
        keep = int(percent * len(ids) / 100)
        candidates = np.sort(np.argpartition(_mixed(ids), keep)[:keep])
    digests = [hashlib.md5(str(i).encode()).hexdigest()  # noqa: S324 (an order, not a secret)
               for i in ids[candidates].tolist()]
    order = sorted(range(len(candidates)), key=digests.__getitem__)[:size]
    return candidates[np.asarray(order, np.int64)]


def _mixed(ids: NDArray[np.int64]) -> NDArray[np.uint64]:
    """splitmix64 of each id: unrelated to the order faces were stored in."""
    z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
