"""`rbv serve`'s "which of these are X?" grid (issue 30): the persons ticked are merged
into X and the others are marked as other people, in one logged edit that undo reverts
whole; the grid after an answer never shows a pair it settled; the page goes on below
even odds, saying so."""

from __future__ import annotations

import re
import uuid

import psycopg

from rbv.config import Settings
from rbv.jobs.persons import faces as face_links
from rbv.serve.app import ReviewServer
from rbv.store.queries.persons import faces_of
from rbv.store.queries.review import person_conflicts
from rbv.store.queries.review_pages import live_persons
from tests.serve_client import Client, database_state, faces_of_person, identity_of_persons


def _grid(server: ReviewServer, client: Client) -> tuple[str, list[str]]:
    server.queue.warm().join()  # the ranking is made in the background: wait for it
    page = client.get("/grid?unlikely=1")  # the unlikely too: answers are what is tested
    assert page.status == 200, page.text
    keep = re.search(r'class="candidates" data-keep="([0-9a-f-]+)"', page.text)
    assert keep is not None, "no grid shown"
    return keep[1], re.findall(r'class="candidate" data-person="([0-9a-f-]+)"', page.text)


def _merged_into(url: str, person: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT merged_into::text FROM persons WHERE id = %s",
                           (person,)).fetchone()
    return row[0] if row else None


def test_a_grid_answer_merges_the_ticked_and_parts_the_rest_in_one_undoable_edit(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    server, client = served
    url = str(faces_settings.database_url)
    keep, shown = _grid(server, client)
    assert 1 < len(shown) <= 24 and keep not in shown
    who = identity_of_persons(url)
    same = [p for p in shown if who.get(p) == identity_of_persons(url, alone=False)[keep]]
    others = [p for p in shown if p not in same]
    assert same and others, "a strict clustering leaves persons of one person to tick"
    before = database_state(url)

    done = client.post("grid", {"keep": keep, "same": same, "shown": shown})
    assert done.status == 200, done.text
    with psycopg.connect(url) as conn:
        merged = dict(conn.execute("SELECT id::text, merged_into::text FROM persons "
                                   "WHERE id = ANY(%s::uuid[])", (shown,)).fetchall())
        apart = conn.execute("SELECT count(*) FROM cannot_links").fetchone()
        edits = conn.execute("SELECT command FROM person_edits").fetchall()
    # the grid's person and the ticked are one, kept in the one with most faces
    keeper = max([keep, *same], key=lambda p: faces_of_person(url, p))
    merged[keep] = _merged_into(url, keep)
    assert {p: merged[p] for p in [keep, *same] if p != keeper} == \
        {p: keeper for p in [keep, *same] if p != keeper}
    assert merged.get(keeper) is None and _merged_into(url, keeper) is None
    assert all(merged[p] is None for p in others)
    assert apart == (len(others),)  # one "different" link per person left unticked
    assert edits == [("persons grid",)]

    # the next grid never asks again about a pair this answer settled
    again, shown_again = _grid(server, client)
    settled = {frozenset((keep, p)) for p in shown}
    assert not settled & {frozenset((again, p)) for p in shown_again}
    assert not ({keep, *same} - {keeper}) & {again, *shown_again}  # merged: gone

    undone = client.post("undo", {"count": 1, "edit": done.json()["edit"]})
    assert undone.status == 200, undone.text
    assert database_state(url)[:3] == before[:3]


def test_a_grid_answer_about_persons_not_shown_is_refused(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    server, client = served
    url = str(faces_settings.database_url)
    keep, shown = _grid(server, client)
    before = database_state(url)
    stranger = next(p for p in identity_of_persons(url, alone=False)
                    if p not in shown and p != keep)
    refused = client.post("grid", {"keep": keep, "same": [stranger], "shown": shown})
    assert refused.status == 409 and "not among those shown" in refused.text
    assert client.post("grid", {"keep": keep, "same": "x", "shown": shown}).status == 409
    assert database_state(url) == before


def test_the_pairs_go_on_below_even_odds_and_say_so(
        served: tuple[ReviewServer, Client]) -> None:
    server, client = served
    server.queue.warm().join()
    ranking = server.queue.ranker.ranking
    assert ranking is not None and any(s.probability < 0.5 for s in ranking.suggestions)
    while True:  # skip to the first pair under even odds
        page = client.get("/suggestions").text
        m = re.search(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"', page)
        assert m is not None, "the pairs ran out before those under even odds"
        score = float(re.search(r"score ([0-9.]+)", page)[1])  # type: ignore[index]
        if score < 0.5:
            assert "Less likely than not" in page
            break
        assert "Less likely than not" not in page
        assert client.post("skip", {"keep": m[1], "other": m[2]}).status == 200


def test_a_grid_merge_drops_the_pairs_it_puts_against_an_earlier_decision(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """S, shown in K's grid, was told apart from V elsewhere; K and V are a pair of the
    ranking, not in this grid. Ticking S gives K a face told apart from V's: the ranking
    kept until a fresh one must drop the pair K and V (its merge would be refused), as
    every pair that decisions keep apart."""
    server, client = served
    keep, shown = _grid(server, client)
    queue = server.queue
    ranking = queue.ranker.ranking
    assert ranking is not None
    k = uuid.UUID(keep)
    pairs_of_k = [t.other.id if t.keep.id == k else t.keep.id for t in ranking.pairs.of(k.int)]
    v = next(p for p in pairs_of_k if str(p) not in shown)
    s = uuid.UUID(shown[0])
    with queue.db.connect() as conn:
        face_of = {p: faces_of(conn, p, 1)[0].id for p in (s, v)}
    face_links.link(queue.db, [face_of[s], face_of[v]], same=False)  # as `rbv faces different`
    queue.warm().join()  # a fresh ranking, made after that decision
    ranking = queue.ranker.ranking
    assert ranking is not None
    open_pairs = {frozenset((t.keep.id, t.other.id)) for t in ranking.pairs}
    assert {frozenset((k, uuid.UUID(p))) for p in shown} <= open_pairs
    assert frozenset((k, v)) in open_pairs

    queue.answer_grid(k, [s], [uuid.UUID(p) for p in shown])
    ranking = queue.ranker.ranking  # the one kept (no fresh one asked for yet)
    assert ranking is not None
    with queue.db.connect() as conn:
        apart = {frozenset(p) for p in person_conflicts(conn, ranking.pack)}
        keeper, = live_persons(conn, [k, s])  # K and S are one now, kept in one of them
    assert frozenset((keeper, v)) in apart
    assert [t for t in ranking.pairs if frozenset((t.keep.id, t.other.id)) in apart] == []
