"""`rbv serve`'s "which of these pairs are one person?" page (issue 30): the pairs
ticked join their persons (into the named one, else the one with most faces) and the
pairs left unticked are marked as other people, in one logged edit that undo reverts
whole; the next page never shows a pair the answer settled; ticks that join the two
persons of a pair left unticked are refused, changing nothing."""

from __future__ import annotations

import re

import psycopg

from rbv.config import Settings
from rbv.jobs.persons import edits as editing
from rbv.serve.app import ReviewServer
from rbv.store.queries.review import person_conflicts
from tests.serve_client import Client, database_state, identity_of_persons


def _page(server: ReviewServer, client: Client) -> list[list[str]]:
    server.queue.warm().join()  # the ranking is made in the background: wait for it
    page = client.get("/pairs")
    assert page.status == 200, page.text
    return [list(p) for p in
            re.findall(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"', page.text)]


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


def _faces(url: str, person: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM face_detections WHERE person_id = %s",
                           (person,)).fetchone()
    return int(row[0]) if row else 0


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
    # The smaller person of a ticked pair named: the join keeps it (and its name).
    sizes = {p: _faces(url, p) for pair in same for p in pair}
    pair = max(same, key=lambda p: abs(sizes[p[0]] - sizes[p[1]]))
    small = min(pair, key=sizes.__getitem__)
    assert sizes[pair[0]] != sizes[pair[1]]
    editing.name(server.queue.db, small, "Ada")
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
    ranking = server.queue._ranking
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
        ranking = server.queue._ranking  # the one kept (no fresh one asked for yet)
        assert ranking is not None
        with server.queue.db.connect() as conn:
            apart = {frozenset(p) for p in person_conflicts(conn, ranking.pack)}
        left = [s for s in ranking.pairs if frozenset((s.keep.id, s.other.id)) in apart]
        assert left == []
