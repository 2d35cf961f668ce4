"""The one rule for who a person is after a run (rbv.cluster.identity.follow_faces),
checked with hypothesis on random clusterings, former persons and decisions."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict

import numpy as np
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rbv.cluster.identity import follow_faces
from tests.support import identity_reference

PERSONS = [uuid.UUID(int=i + 1) for i in range(5)]


@st.composite
def runs(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 40))
    labels = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), np.int64)
    former = draw(st.lists(st.sampled_from([None, *PERSONS]), min_size=n, max_size=n))
    manual = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool)
    # one face per photo per cluster, as clustering's own constraint makes it
    image_ids = np.array([int(labels[i]) * 1000 + i for i in range(n)], np.int64)
    for i in draw(st.lists(st.integers(0, n - 1), max_size=4)):
        j = draw(st.integers(0, n - 1))
        same_cluster = {int(image_ids[k]) for k in range(n) if labels[k] == labels[j]}
        if labels[i] != labels[j] and int(image_ids[i]) not in same_cluster:
            image_ids[j] = image_ids[i]  # two faces of one photo in different clusters
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1])
    cannot = [p for p in draw(st.lists(pair, max_size=5)) if labels[p[0]] != labels[p[1]]]
    rejected = {(i, p) for i, p in draw(st.lists(st.tuples(st.integers(0, n - 1),
                                                           st.sampled_from(PERSONS)),
                                                 max_size=5))}
    named = set(draw(st.lists(st.sampled_from(PERSONS), max_size=5)))
    # `same` links join faces clustering put together (they start together); the edits
    # refuse links that join two faces of a photo, faces linked `different`, or faces
    # placed by hand in two persons
    must = [p for p in draw(st.lists(pair, max_size=5)) if labels[p[0]] == labels[p[1]]]
    component = identity_reference.components(n, must)
    assume(len({(component[i], int(image_ids[i])) for i in range(n)}) == n)
    assume(all(component[a] != component[b] for a, b in cannot))
    hand = {(component[i], former[i]) for i in range(n) if manual[i] and former[i]}
    assume(len(hand) == len({c for c, _p in hand}))
    # the state before the run keeps the rules (every run and edit leaves it so)
    held = [(former[i], int(image_ids[i])) for i in range(n) if former[i] is not None]
    assume(len(held) == len(set(held)))
    assume(all(former[a] is None or former[a] != former[b] for a, b in cannot))
    assume(all(former[i] != p for i, p in rejected))
    return labels, former, manual, image_ids, cannot, rejected, named, must


def _run(labels, former, manual, image_ids, cannot, rejected, named, must):  # type: ignore[no-untyped-def]
    return follow_faces(labels, former, manual, image_ids, cannot=cannot, rejected=rejected,
                        named=named, must=must)


_TWO_NAMES_LINKED = (  # two named persons' only faces linked `same`: one name must give way
    np.zeros(7, int), [uuid.UUID(int=5), None, uuid.UUID(int=3), None, None, None, None],
    np.zeros(7, bool), np.arange(7), [], set(), {uuid.UUID(int=3), uuid.UUID(int=5)},
    [(0, 2)])

_NAME_LEFT_IN_A_NEW_PERSON = (  # P2's faces 3, 4 linked `same` with named P1's face 1: the
    # three follow P1; P2's face 9, which no link touches, stays P2 (not a new person)
    np.array([0] * 9 + [1]), [None, PERSONS[0], None, PERSONS[1], PERSONS[1], None, None,
                              None, None, PERSONS[1]],
    np.zeros(10, bool), np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 1009]), [], set(),
    {PERSONS[0], PERSONS[1]}, [(0, 1), (0, 3), (0, 4)])
_NAME_LEFT_BESIDE_ITS_OWN_LINKED_FACES = (  # P2's faces 1, 3 and P1's face 4 linked
    # `same` stay P2 by row order; P2's face 9 beside them, not in a new person
    np.array([0] * 9 + [1]), [None, PERSONS[1], None, PERSONS[1], PERSONS[0], None, None,
                              None, None, PERSONS[1]],
    np.zeros(10, bool), np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 1009]), [], set(),
    {PERSONS[0], PERSONS[1]}, [(0, 1), (0, 3), (0, 4)])


@settings(max_examples=300, deadline=None)
@given(runs())
@example(_TWO_NAMES_LINKED)
@example(_NAME_LEFT_IN_A_NEW_PERSON)
@example(_NAME_LEFT_BESIDE_ITS_OWN_LINKED_FACES)
def test_decisions_hold_after_every_run(run) -> None:  # type: ignore[no-untyped-def]
    labels, former, manual, image_ids, cannot, rejected, named, must = run
    out = _run(*run)
    for i in range(len(labels)):
        if manual[i] and former[i] is not None:
            assert out[i] == former[i]  # a hand-placed face stays
        else:
            assert (i, out[i]) not in rejected  # never where it was rejected from
    photos = Counter((out[i], int(image_ids[i])) for i in range(len(labels)))
    hand_photos = {(former[i], int(image_ids[i])) for i in range(len(labels))
                   if manual[i] and former[i] is not None}
    for (person, photo), count in photos.items():
        # two faces of one photo in one person only where both were put there by hand
        assert count == 1 or (person, photo) in hand_photos
    for a, b in cannot:
        assert out[a] != out[b] or (manual[a] and manual[b])
    for a, b in must:  # faces linked `same` together, unless one was placed by hand
        assert out[a] == out[b] or manual[a] or manual[b]
    # a name stays on the person holding most of its faces, except those the user's links
    # place: a face linked `same` with a face rejected from a person is not that person
    # either, one linked with faces placed by hand in another person is that one's, and
    # faces of two named persons linked `same` can keep only one of the names
    component = identity_reference.components(len(labels), must)
    not_theirs = {(component[i], p) for i, p in rejected}
    placed = {component[i]: former[i] for i in range(len(labels)) if manual[i] and former[i]}
    names_in = defaultdict(set)
    for i in range(len(labels)):
        if former[i] in named:
            names_in[component[i]].add(former[i])
    for person in named:
        held = Counter(out[i] for i in range(len(labels))
                       if former[i] == person and (component[i], person) not in not_theirs
                       and placed.get(component[i], person) == person
                       and len(names_in[component[i]]) == 1)
        if held:
            assert held[person] == max(held.values()), (person, held)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=1, max_size=60))
def test_with_no_former_persons_the_partition_is_the_clustering(values: list[int]) -> None:
    labels = np.array(values, np.int64)
    n = len(labels)
    out = follow_faces(labels, [None] * n, np.zeros(n, bool), np.arange(n, dtype=np.int64))
    assert len(set(zip(values, out, strict=True))) == len(set(values)) == len(set(out))


def test_one_hand_placed_face_carries_nothing() -> None:
    """Reproduction 1 in miniature: Ben's 17 faces, one of them moved to Mindy by hand,
    cluster together again; Mindy's 27 cluster apart."""
    ben, mindy = PERSONS[:2]
    labels = np.array([0] * 17 + [1] * 27, np.int64)
    former = [ben] * 16 + [mindy] + [mindy] * 27
    manual = np.array([False] * 16 + [True] + [False] * 27)
    out = follow_faces(labels, former, manual, np.arange(44, dtype=np.int64))
    assert out == former


def test_a_person_made_by_hand_keeps_its_faces_and_the_new_ones_beside_them() -> None:
    """A merge placed 15 faces in Ada by hand; they cluster apart from Ada's own 20,
    with 3 new faces: all 38 are Ada's."""
    ada = PERSONS[0]
    labels = np.array([0] * 20 + [1] * 18, np.int64)
    former = [ada] * 35 + [None] * 3
    manual = np.array([False] * 20 + [True] * 15 + [False] * 3)
    out = follow_faces(labels, former, manual, np.arange(38, dtype=np.int64))
    assert out == [ada] * 38


def test_a_same_link_to_a_hand_placed_face_pulls_the_face_along() -> None:
    ada, bob = PERSONS[:2]
    labels = np.array([0, 0, 0, 1, 1], np.int64)
    former = [ada, ada, ada, bob, bob]
    manual = np.array([False, False, False, True, False])
    out = follow_faces(labels, former, manual, np.arange(5, dtype=np.int64), must=[(0, 3)])
    assert out[0] == bob and out[1:3] == [ada, ada]


def test_faces_linked_same_stay_together_when_a_name_keeps_its_faces() -> None:
    """Ben's 3 faces cluster into Ada's 7 (Ben would lose them all): they stay Ben's, and
    Ada's face 3, linked ``same`` with Ben's face 2, goes with it (the fuzz found the two
    apart after ``cluster --full``)."""
    ada, ben = PERSONS[:2]
    labels = np.zeros(10, np.int64)
    former = [ben] * 3 + [ada] * 7
    out = follow_faces(labels, former, np.zeros(10, bool), np.arange(10, dtype=np.int64),
                       must=[(2, 3)], named={ben})
    assert out == [ben] * 4 + [ada] * 6


def test_a_named_persons_only_face_linked_same_with_a_larger_persons_keeps_the_name() -> None:
    """Di's only face joined Bob's cluster; it is linked ``same`` with Bob's face 1: the
    two stay with the name (the fuzz found both in Bob's person, Di left empty)."""
    bob, di = PERSONS[:2]
    labels = np.zeros(5, np.int64)
    former = [bob, bob, bob, bob, di]
    out = follow_faces(labels, former, np.zeros(5, bool), np.arange(5, dtype=np.int64),
                       must=[(1, 4)], named={di})
    assert out == [bob, di, bob, bob, di]


def test_faces_linked_same_leave_a_person_together() -> None:
    """Face 1 is of the same photo as Ada's face 0, so it cannot join Ada: face 2, linked
    ``same`` with it, leaves with it, into one new person."""
    ada = PERSONS[0]
    labels = np.zeros(4, np.int64)
    former = [ada, None, None, ada]
    out = follow_faces(labels, former, np.zeros(4, bool), np.array([7, 7, 8, 9]),
                       must=[(1, 2)])
    assert out[0] == out[3] == ada and out[1] == out[2] != ada


def test_two_named_persons_clustered_together_stay_apart() -> None:
    ben, mindy = PERSONS[:2]
    labels = np.zeros(44, np.int64)
    former = [ben] * 17 + [mindy] * 27
    out = follow_faces(labels, former, np.zeros(44, bool), np.arange(44, dtype=np.int64),
                       named={ben, mindy})
    assert out == former


@settings(max_examples=500, deadline=None)
@given(runs(), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=4))
def test_the_array_rule_is_the_row_by_row_rule(run, more) -> None:  # type: ignore[no-untyped-def]
    labels, former, manual, image_ids, cannot, rejected, named, must = run
    # and links across clusters, contradictions included: the two must still agree
    must = must + [(a, b) for a, b in more if a < len(labels) and b < len(labels) and a != b]
    kwargs = {"must": must, "cannot": cannot, "rejected": rejected, "named": named}
    fast = follow_faces(labels, former, manual, image_ids, **kwargs)
    slow = identity_reference.follow_faces(labels, former, manual, image_ids, **kwargs)
    known = {p for p in former if p is not None}
    for a, b in zip(fast, slow, strict=True):
        assert (a in known or b in known) <= (a == b)  # existing persons: the same
    pairs = set(zip(fast, slow, strict=True))  # new persons: the same partition
    assert len(pairs) == len(set(fast)) == len(set(slow))
