"""The two-people test and the face-pair statistics it rests on, on small synthetic
arrays (pure logic; the same test on real faces is in test_persons_review.py)."""

from __future__ import annotations

import numpy as np

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.person_split import (
    linked_units,
    others_pair_stats,
    split_test,
    stranger_spread,
)
from rbv.cluster.suggestions import least_typical_first

SFACE = ImpostorModel(0.10, 0.087, 0.02)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _cloud(rng: np.random.Generator, centre: np.ndarray, n: int, noise: float) -> np.ndarray:
    return _unit(centre[None, :] + noise * rng.standard_normal((n, len(centre))))


def test_two_people_in_one_person_are_found_with_their_halves() -> None:
    rng = np.random.default_rng(3)
    one, two = _unit(rng.standard_normal((2, 64)))
    person = np.concatenate([_cloud(rng, one, 9, 0.12), _cloud(rng, two, 5, 0.12)])
    test = split_test(person, SFACE)
    assert test is not None and test.two_people
    assert test.sizes == (9, 5)
    assert test.half.tolist() == [0] * 9 + [1] * 5


def test_one_spread_out_person_is_not_two() -> None:
    # one identity photographed in very varied conditions: its own pairs average ~0.45
    for seed in range(20):
        rng = np.random.default_rng(seed)
        centre = _unit(rng.standard_normal(64))
        test = split_test(_cloud(rng, centre, 30, 0.14), SFACE)
        assert test is not None and not test.two_people, (seed, test.as_dict())


def test_a_half_of_one_face_is_left_to_the_doubtful_face_test() -> None:
    rng = np.random.default_rng(5)
    one, two = _unit(rng.standard_normal((2, 64)))
    person = np.concatenate([_cloud(rng, one, 8, 0.1), two[None, :]])
    assert split_test(person, SFACE) is None
    assert least_typical_first(person, SFACE)[0].row == 8


def test_pair_statistics_of_the_other_faces_match_counting_every_pair() -> None:
    rng = np.random.default_rng(6)
    x = _unit(rng.standard_normal((7, 16))).astype(np.float64)
    stats = others_pair_stats(x, 0.0)
    for i in range(len(x)):
        rest = np.delete(x, i, axis=0)
        sims = (rest @ rest.T)[np.triu_indices(len(rest), 1)]
        assert stats[i].count == len(sims)
        assert np.isclose(stats[i].mean, sims.mean())
        assert np.isclose(stats[i].spread, sims.std(ddof=1))
    assert others_pair_stats(x, 0.5)[0].spread == 0.5  # never below the floor


def test_a_stranger_above_the_impostor_bar_is_still_nearer_strangers() -> None:
    """A tight person (own pairs ~0.6): a face averaging ~0.32 with it clears the old bar
    (z ≥ 3 against chance) but is far nearer a stranger's similarity than the person's."""
    rng = np.random.default_rng(7)
    centre = _unit(rng.standard_normal(64))
    person = _cloud(rng, centre, 12, 0.11)
    # a face averaging ~0.32 with the person (z ~3.1 against chance)
    other = _unit(rng.standard_normal(64))
    other = _unit(other - (other @ centre) * centre)
    stranger = _unit(0.44 * centre + np.sqrt(1 - 0.44 ** 2) * other)
    fits = least_typical_first(np.concatenate([person, stranger[None, :]]), SFACE)
    first = fits[0]
    assert first.row == 12 and first.z >= 3.0 and first.nearer_strangers, first
    assert not any(f.nearer_strangers or f.z < 3 for f in fits[1:])
    assert stranger_spread(SFACE) > SFACE.sigma


def test_pair_statistics_agree_for_more_faces_than_dimensions() -> None:
    rng = np.random.default_rng(8)
    x = _unit(rng.standard_normal((40, 8))).astype(np.float64)
    stats = others_pair_stats(x, 0.0)
    rest = x[1:]
    sims = (rest @ rest.T)[np.triu_indices(len(rest), 1)]
    assert np.isclose(stats[0].mean, sims.mean()) and np.isclose(stats[0].spread,
                                                                  sims.std(ddof=1))


def test_faces_linked_same_go_to_one_half_together() -> None:
    """A face of the second person linked `same` with one of the first: the two go to
    one half, whichever; unlinked, the halves are the two people."""
    rng = np.random.default_rng(3)
    one, two = _unit(rng.standard_normal((2, 64)))
    person = np.concatenate([_cloud(rng, one, 9, 0.12), _cloud(rng, two, 5, 0.12)])
    free = split_test(person, SFACE)
    assert free is not None and free.half[0] != free.half[9]
    units = linked_units(len(person), np.array([[0, 9]]))
    assert units is not None and units[0] == units[9]
    assert len(set(units.tolist())) == len(person) - 1
    linked = split_test(person, SFACE, units)
    assert linked is not None and linked.half[0] == linked.half[9]
    assert linked.two_people and linked.sizes == (10, 4)
    assert linked_units(5, np.empty((0, 2), np.int64)) is None
    # every row its own unit: the very partition of no units
    alone = split_test(person, SFACE, np.arange(len(person)))
    assert alone is not None and np.array_equal(alone.half, free.half)
