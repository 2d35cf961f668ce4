"""`rbv serve`'s "which of these pairs are one person?" page (issue 30): the pairs
ticked join their persons (into the named one, else the one with most faces) and the
pairs left unticked are marked as other people, in one logged edit that undo reverts
whole; the next page never shows a pair the answer settled; ticks that join the two
persons of a pair left unticked are refused, changing nothing."""

from __future__ import annotations

import re
import uuid

import psycopg

from rbv.config import Settings
from rbv.jobs.persons import person_details
from rbv.serve.app import ReviewServer
from rbv.store.queries.persons import faces_of_persons
from rbv.store.queries.review import conflicts_of, person_conflicts
from tests.serve_client import Client, database_state, faces_of_person, identity_of_persons

PAIR = re.compile(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"')


def _page(server: ReviewServer, client: Client) -> list[list[str]]:
    server.queue.warm().join()  # the ranking is made in the background: wait for it
    page = client.get("/pairs?unlikely=1")  # the unlikely too: answers are what is tested
    assert page.status == 200, page.text
    return [list(p) for p in PAIR.findall(page.text)]


def _now(url: str, persons: set[str]) -> dict[str, str]:
    """Each person → the live person it was merged into (itself when not merged)."""
    with psycopg.connect(url) as conn:
        into = dict(conn.execute("SELECT id::text, merged_into::text FROM persons"
                                 ).fetchall())

    def live(p: str) -> str:
        while into.get(p) is not None:
            p = into[p]
        return p
    return {p: live(p) for p in persons}


def test_a_pairs_answer_joins_the_ticked_and_parts_the_rest_in_one_undoable_edit(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    server, client = served
    url = str(faces_settings.database_url)
    shown = _page(server, client)
    assert 1 < len(shown) <= 24
    who = identity_of_persons(url, alone=False)
    same = [p for p in shown if who.get(p[0]) is not None and who.get(p[0]) == who.get(p[1])]
    others = [p for p in shown if p not in same]
    assert same and others, "a strict clustering leaves pairs of one person to tick"
    # The person of a ticked pair the join would not keep named (the smaller; of two
    # as large, the second: the join keeps the first), so the join keeps it and its name.
    sizes = {p: faces_of_person(url, p) for pair in same for p in pair}
    pair = max(same, key=lambda p: abs(sizes[p[0]] - sizes[p[1]]))
    small = min(pair, key=lambda p: (sizes[p], p == pair[0]))
    person_details.name(server.queue.db, uuid.UUID(small), "Ada")
    # named elsewhere: the page shows the name at once (from the kept ranking, its
    # persons read again, while a fresh one is made)
    again = client.get("/pairs")
    assert again.status == 200 and "Ada" in again.text
    before = database_state(url)
    done = client.post("pairs", {"same": same, "shown": shown})
    assert done.status == 200, done.text

    persons = {p for pair in shown for p in pair}
    now = _now(url, persons)
    assert all(now[a] == now[b] for a, b in same)
    assert all(now[a] != now[b] for a, b in others)
    assert now[small] == small  # the named person kept
    with psycopg.connect(url) as conn:
        apart = conn.execute("SELECT count(*) FROM cannot_links").fetchone()
        edits = conn.execute("SELECT command FROM person_edits ORDER BY id").fetchall()
    assert apart == (len(others),)  # one "different" link per pair left unticked
    assert edits == [("persons name",), ("persons pairs",)]

    # the next page never asks again about a pair this answer settled
    again = _page(server, client)
    merged = {p for p in persons if now[p] != p}
    assert not {frozenset(p) for p in shown} & {frozenset(p) for p in again}
    assert not merged & {p for pair in again for p in pair}

    undone = client.post("undo", {"count": 1, "edit": done.json()["edit"]})
    assert undone.status == 200, undone.text
    assert database_state(url)[:3] == before[:3]


def test_ticks_that_contradict_a_pair_left_unticked_are_refused(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """A and B ticked, B and C ticked, A and C not: refused, nothing changed; so is a
    tick of a pair not shown, and a body that is not pairs."""
    server, client = served
    url = str(faces_settings.database_url)
    shown = _page(server, client)
    ranking = server.queue.ranker.ranking
    assert ranking is not None
    pairs = {frozenset((s.keep.id, s.other.id)) for s in ranking.suggestions}
    triangle = next(([str(a), str(b)], [str(b), str(c)], [str(a), str(c)])
                    for s in ranking.suggestions for a, b in [(s.keep.id, s.other.id)]
                    for t in ranking.pairs.of(b.int)
                    for c in [t.other.id if t.keep.id == b else t.keep.id]
                    if c != a and frozenset((a, c)) in pairs)
    before = database_state(url)
    refused = client.post("pairs", {"same": list(triangle[:2]), "shown": list(triangle)})
    assert refused.status == 409 and "one person, but that pair is not ticked" in refused.text
    stranger = [triangle[0][0], next(p for p in identity_of_persons(url, alone=False)
                                     if p not in {x for pair in shown for x in pair})]
    refused = client.post("pairs", {"same": [stranger], "shown": shown})
    assert refused.status == 409 and "not among those shown" in refused.text
    assert client.post("pairs", {"same": ["x"], "shown": shown}).status == 409
    assert database_state(url) == before


def test_after_an_answer_no_pair_left_open_joins_persons_told_apart(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """A merge gives the persons kept faces that a "different" link, or a rejection,
    keeps apart from other persons: the ranking kept until a fresh one must not offer
    those pairs (their merge would be refused). Two pages answered truthfully; after
    each, every pair still open is checked against the decisions."""
    server, client = served
    url = str(faces_settings.database_url)
    for _ in range(2):
        shown = _page(server, client)
        who = identity_of_persons(url)  # faces alone in their photo: who each one is
        same = [p for p in shown if who.get(p[0]) is not None and who.get(p[0]) == who.get(p[1])]
        done = client.post("pairs", {"same": same, "shown": shown})
        assert done.status == 200, done.text
        ranking = server.queue.ranker.ranking  # the one kept (no fresh one asked for yet)
        assert ranking is not None
        with server.queue.db.connect() as conn:
            apart = {frozenset(p) for p in person_conflicts(conn, ranking.pack)}
        left = [s for s in ranking.pairs if frozenset((s.keep.id, s.other.id)) in apart]
        assert left == []


def test_the_conflicts_of_some_persons_are_those_of_the_whole_pack_with_them(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """`conflicts_of` (what an answer asks about the faces its merge moved and the
    persons kept) finds the pairs `person_conflicts` finds for the whole pack: by a
    "different" link either way round, and by a face of one rejected from the other,
    either way round."""
    url = str(faces_settings.database_url)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT DISTINCT ON (person_id) person_id, id, pack_id "
                            "FROM face_detections WHERE person_id IS NOT NULL "
                            "ORDER BY person_id, id LIMIT 5").fetchall()
        (a, fa, pack), (b, fb, _), (c, fc, _), (d, fd, _), (e, _, _) = rows
        conn.execute("INSERT INTO cannot_links (face_a, face_b) VALUES (%s, %s)",
                     (min(fa, fc), max(fa, fc)))
        conn.execute("INSERT INTO person_rejections (face_id, person_id) VALUES (%s, %s), "
                     "(%s, %s)", (fb, a, fa, d))
        every = set(person_conflicts(conn, pack))
        for persons in ([a], [b], [c], [d], [e], [b, c], [a, b, c, d, e]):
            want = {pair for pair in every if set(pair) & set(persons)}
            assert conflicts_of(conn, faces_of_persons(conn, persons), persons) == want
        assert {frozenset(p) for p in every} >= {frozenset((a, b)), frozenset((a, c)),
                                                 frozenset((a, d))}
        # from one face (what a merge moved): its link and its rejection; a rejection
        # from its person is found from that person
        both = {frozenset(p) for p in conflicts_of(conn, [fa], [])}
        assert both == {frozenset((a, c)), frozenset((a, d))}
        assert {frozenset(p) for p in conflicts_of(conn, [], [a])} == {frozenset((a, b))}


def test_a_merge_drops_the_pairs_of_persons_it_puts_in_one_photo(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """S and V have faces in one photo (never one person), and both are pairs of K in the
    ranking. "K and S are one person" gives K a face of that photo: the ranking kept
    until a fresh one must drop K and V (their merge would be refused)."""
    server, client = served
    _page(server, client)
    queue = server.queue
    ranking = queue.ranker.ranking
    assert ranking is not None
    url = str(faces_settings.database_url)
    with psycopg.connect(url) as conn:
        together = conn.execute(
            "SELECT DISTINCT a.person_id, b.person_id FROM face_detections a "
            "JOIN face_detections b ON b.image_id = a.image_id AND b.id <> a.id "
            "WHERE a.person_id IS NOT NULL AND b.person_id IS NOT NULL "
            "AND a.person_id <> b.person_id").fetchall()
    open_pairs = {frozenset((t.keep.id, t.other.id)) for t in ranking.pairs}
    size = {p.id: p.faces for t in ranking.pairs for p in (t.keep, t.other)}
    k, s, v = next((k, s, v) for s, v in together for k in size
                   if frozenset((k, s)) in open_pairs and frozenset((k, v)) in open_pairs
                   and size[k] > size[s])  # the merge keeps K

    queue.answer_pairs([(k, s)], [(k, s)])
    ranking = queue.ranker.ranking  # the one kept (no fresh one asked for yet)
    assert ranking is not None
    assert _now(url, {str(k), str(s)}) == {str(k): str(k), str(s): str(k)}
    assert frozenset((k, v)) not in {frozenset((t.keep.id, t.other.id))
                                         for t in ranking.pairs}
