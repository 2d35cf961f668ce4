"""The space faces are compared in once they have estimated ages (issue 64, part 2),
measured at a cost a review can pay: no sample read for a library without ages, the
look-alike counts of a sample computed only between faces of near ages, one space kept
while nothing it rests on changes, and a whole library's ages read in one go."""

from __future__ import annotations

import numpy as np
import pytest

from rbv.cluster.ages import AGE_WINDOW, OLDEST, faces_alike
from rbv.config import Settings
from rbv.faces.estimates import FaceEstimate
from rbv.jobs.grouping import aged
from rbv.store import open_database
from rbv.store.queries.attributes import save_attributes
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack


def test_look_alikes_are_counted_among_faces_within_two_windows_of_age() -> None:
    rng = np.random.default_rng(5)
    n = 1_500
    who = rng.integers(0, 150, n)
    x = rng.standard_normal((150, 32))[who] + 0.8 * rng.standard_normal((n, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    # the ends of the scale, one crowded year and ages a window and a bit apart
    years = rng.choice([0, 1, 9, 10, 11, 30, 30, 30, 41, 119, OLDEST], n).astype(np.int64)
    close = np.abs(years[:, None] - years[None, :]) <= 2 * AGE_WINDOW
    expected = np.maximum(((x @ x.T > 0.4) & close).sum(axis=1), 1)
    counted = faces_alike(x, years, 0.4, block=64)
    assert np.array_equal(counted, expected)
    assert (counted > 1).any() and (counted < expected.max()).any()


def _estimate(age: float) -> FaceEstimate:
    return FaceEstimate(age, 3.0, "female", 0.9, "test.onnx", "0" * 64)


def test_the_space_is_measured_once_while_faces_and_ages_stay_as_they_were(
    faces_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_database(faces_settings)
    with db.connect() as conn:
        pack = find_pack(conn, "scrfd_sface")
        ids = load_faces(conn, pack).ids

        def no_sample(*_: object, **__: object) -> None:
            raise AssertionError("a sample was read for a library without ages")

        with monkeypatch.context() as patched:
            patched.setattr(aged, "load_faces", no_sample)
            assert aged.aged_space(conn, pack, True).centres is None

    ages = np.linspace(2, 70, len(ids))
    with db.transaction() as conn:
        save_attributes(conn, [(int(i), _estimate(float(a)))
                               for i, a in zip(ids, ages, strict=True)])
    with db.connect() as conn:
        space = aged.aged_space(conn, pack, True)
        assert space.centres is not None
        assert aged.aged_space(conn, pack, True) is space  # kept
        assert aged.aged_space(conn, pack, False).centres is None  # as made, asked
    with db.transaction() as conn:  # an estimate replaced: measured again
        save_attributes(conn, [(int(ids[0]), _estimate(40.0))])
    with db.connect() as conn:
        again = aged.aged_space(conn, pack, True)
        assert again is not space and again.centres is not None
        assert aged.aged_space(conn, pack, True) is again
    with db.transaction() as conn:  # an estimate dropped (a box moved): measured again
        conn.execute("DELETE FROM face_attributes WHERE face_id = %s", (int(ids[1]),))
    with db.connect() as conn:
        assert aged.aged_space(conn, pack, True) is not again

        # a whole library's ages read in one COPY are the ages read by id
        few = aged.ages_of(conn, ids, pack.id)
        monkeypatch.setattr(aged, "FEW_IDS", 0)
        many = aged.ages_of(conn, ids, pack.id)
        asked = np.concatenate([ids[::-1], [int(ids.max()) + 10]])  # one not a face
        shuffled = aged.ages_of(conn, asked, pack.id)
    assert np.isnan(few[1]) and few[0] == 40.0
    np.testing.assert_array_equal(many, few)
    np.testing.assert_array_equal(shuffled[:-1], few[::-1])
    assert np.isnan(shuffled[-1])
