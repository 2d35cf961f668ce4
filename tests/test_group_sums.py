"""group_sums (the persons' sums a full `rbv cluster` caches): each group's unit rows
added up in float64, whatever blocks the rows are read in."""

from __future__ import annotations

import numpy as np
import pytest

from rbv.cluster import centroids
from rbv.cluster.centroids import group_sums


@pytest.mark.parametrize("block", [7, 64, 65_536])
def test_group_sums_are_each_groups_rows_added_in_order(monkeypatch: pytest.MonkeyPatch,
                                                        block: int) -> None:
    monkeypatch.setattr(centroids, "_BLOCK", block)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 24)).astype(np.float32) * 3  # not unit: group_sums makes them
    groups = rng.integers(-1, 40, 500)
    groups[groups == 17] = -1  # a group with no row
    sums, counts = group_sums(x, groups, 41)

    unit = centroids.normalize(x)
    for g in range(41):
        rows = np.flatnonzero(groups == g)
        assert counts[g] == len(rows)
        want = unit[rows].astype(np.float64).sum(axis=0)
        np.testing.assert_allclose(sums[g], want, rtol=1e-12, atol=1e-12)
    assert not sums[17].any() and counts[17] == 0


def test_group_sums_of_no_row() -> None:
    sums, counts = group_sums(np.empty((0, 8), np.float32), np.empty(0, np.int64), 3)
    assert sums.shape == (3, 8) and not sums.any() and not counts.any()


def test_rows_said_to_be_unit_are_added_as_they_are() -> None:
    # evidence linkage's nodes: the rows are unit already (unit_rows), so normalising
    # them again only cost time; the sums are those of the rows given
    rng = np.random.default_rng(5)
    x = centroids.normalize(rng.normal(size=(300, 16)).astype(np.float32))
    x[::3] *= 1 + 1e-6  # within the tolerance unit_rows accepts, or not: taken as given
    groups = rng.integers(-1, 20, 300)
    sums, counts = group_sums(x, groups, 20, unit=True)
    for g in range(20):
        rows = np.flatnonzero(groups == g)
        assert counts[g] == len(rows)
        np.testing.assert_allclose(sums[g], x[rows].astype(np.float64).sum(axis=0),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("unit", [False, True])
def test_rows_each_in_a_group_of_their_own(unit: bool) -> None:
    # an incremental run's nodes before merging: every row its own group, in any order,
    # with groups left empty; the same sums as adding them up, bit for bit
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    if unit:
        x = centroids.normalize(x)
    groups = rng.permutation(230)[:200]
    sums, counts = group_sums(x, groups, 230, unit=unit)
    rows = x if unit else centroids.normalize(x)
    want = np.zeros((230, 16))
    np.add.at(want, groups, rows.astype(np.float64))
    assert np.array_equal(sums, want)
    assert np.array_equal(counts, np.bincount(groups, minlength=230))
