"""`rbv serve`'s "which of these are X?" grid (issue 30): the persons ticked are merged
into X and the others are marked as other people, in one logged edit that undo reverts
whole; the grid after an answer never shows a pair it settled; the page goes on below
even odds, saying so."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import psycopg

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from rbv.store.queries.paths import path_from_bytes
from tests.serve_client import Client, database_state


def _identity(url: str, *, alone: bool = True) -> dict[str, str]:
    """Person → the folder (data/faces is one folder per person) most of its faces are
    in, counting (with ``alone``) only faces alone in their photo (another face may be
    anyone): who a truthful user sees."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT f.person_id::text, min(ip.path_bytes), (SELECT count(*) = 1 FROM "
            "face_detections o WHERE o.image_id = f.image_id) FROM face_detections f "
            "JOIN image_paths ip ON ip.image_id = f.image_id "
            "WHERE f.person_id IS NOT NULL GROUP BY f.id").fetchall()
    seen: dict[str, Counter[str]] = {}
    for person, path, by_itself in rows:
        if by_itself or not alone:
            seen.setdefault(person, Counter())[Path(path_from_bytes(path)).parent.name] += 1
    return {p: c.most_common(1)[0][0] for p, c in seen.items()}


def _grid(server: ReviewServer, client: Client) -> tuple[str, list[str]]:
    server.queue.warm().join()  # the ranking is made in the background: wait for it
    page = client.get("/grid")
    assert page.status == 200, page.text
    keep = re.search(r'class="candidates" data-keep="([0-9a-f-]+)"', page.text)
    assert keep is not None, "no grid shown"
    return keep[1], re.findall(r'class="candidate" data-person="([0-9a-f-]+)"', page.text)


def test_a_grid_answer_merges_the_ticked_and_parts_the_rest_in_one_undoable_edit(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    server, client = served
    url = str(faces_settings.database_url)
    keep, shown = _grid(server, client)
    assert 1 < len(shown) <= 24 and keep not in shown
    who = _identity(url)
    same = [p for p in shown if who.get(p) == _identity(url, alone=False)[keep]]
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
    assert {p: merged[p] for p in same} == dict.fromkeys(same, keep)
    assert all(merged[p] is None for p in others)
    assert apart == (len(others),)  # one "different" link per person left unticked
    assert edits == [("persons grid",)]

    # the next grid never asks again about a pair this answer settled
    again, shown_again = _grid(server, client)
    settled = {frozenset((keep, p)) for p in shown}
    assert not settled & {frozenset((again, p)) for p in shown_again}
    assert not set(same) & {again, *shown_again}  # merged: gone

    undone = client.post("undo", {"count": 1, "edit": done.json()["edit"]})
    assert undone.status == 200, undone.text
    assert database_state(url)[:3] == before[:3]


def test_a_grid_answer_about_persons_not_shown_is_refused(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    server, client = served
    url = str(faces_settings.database_url)
    keep, shown = _grid(server, client)
    before = database_state(url)
    stranger = next(p for p in _identity(url, alone=False) if p not in shown and p != keep)
    refused = client.post("grid", {"keep": keep, "same": [stranger], "shown": shown})
    assert refused.status == 409 and "not among those shown" in refused.text
    assert client.post("grid", {"keep": keep, "same": "x", "shown": shown}).status == 409
    assert database_state(url) == before


def test_the_pairs_go_on_below_even_odds_and_say_so(
        served: tuple[ReviewServer, Client]) -> None:
    server, client = served
    server.queue.warm().join()
    ranking = server.queue._ranking
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
