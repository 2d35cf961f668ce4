"""What a review screen holds (issue 50): the pairs worth a person's time, by the faces
they put right per second of looking and clicking; a grid of the person whose screen is
cheapest for what it asks (a lone face and the few persons it may be); the likely pairs
first, then "nothing likely left" and the unlikely ones when asked for."""

from __future__ import annotations

import math
import re
import uuid

import pytest

from rbv.jobs.persons.evidence import Suggestion
from rbv.serve import ranking as ranking_module
from rbv.serve import screens
from rbv.serve.app import ReviewServer
from rbv.serve.ranking import OpenPairs, Waiting, worth_a_look
from rbv.store.queries.persons import PersonRow
from tests.serve_client import Client

ENDED = re.compile(r"The pairs worth a look are done; ([0-9,]+) unlikely pairs? (?:is|are) "
                   r"left if you want to go on")
LEFT = re.compile(r"([0-9,]+) pairs? worth a look left(?:, ([0-9,]+) unlikely after them)?")


def _person(faces: int) -> PersonRow:
    return PersonRow(uuid.uuid4(), "pack", None, faces, faces, False, "auto")


def _pair(a: PersonRow, b: PersonRow, p: float, worth: float, rank: int = 0) -> Suggestion:
    return Suggestion(rank, a, b, p, 0.0, "", (1, 2), (), worth)


# --- the choice, as pure logic over made-up pairs ---------------------------------------
def test_a_screen_holds_its_best_prefix_and_what_adds_half_its_rate() -> None:
    """Worth 1.0 and 0.9 (likely), then 0.3, then two pairs worth almost nothing: the
    screen holds the first three (0.3 adds more than half the rate of the first two
    per second of its own), never the last two."""
    a = _person(10)
    items = [_pair(a, _person(1), p, w) for p, w in
             ((0.8, 1.0), (0.7, 0.9), (0.3, 0.3), (0.01, 0.01), (0.01, 0.005))]
    n, rate = screens.best_prefix(items, screens.SECONDS_A_CLICK, 2)
    seconds = screens.SECONDS_A_CLICK + sum(
        2 * screens.SECONDS_A_FACE + s.probability * screens.SECONDS_A_CLICK for s in items[:3])
    assert n == 3
    assert rate == pytest.approx(max(
        sum(s.worth for s in items[:k]) / (screens.SECONDS_A_CLICK + sum(
            2 * screens.SECONDS_A_FACE + s.probability * screens.SECONDS_A_CLICK
            for s in items[:k])) for k in range(1, 6)))
    assert rate > 2.2 / seconds  # the three together are not the best average


def test_a_grid_is_of_the_lone_face_when_its_screen_is_cheapest() -> None:
    """A person of 20 faces (a grid shows 6 of them) whose likely pairs are two lone
    faces, each also likely with another person: the grid of a lone face and its two
    persons asks as much for far fewer faces, so it is chosen."""
    big, lone, other, third = _person(20), _person(1), _person(3), _person(1)
    pairs = [_pair(big, lone, 0.6, 1.2, 1), _pair(other, lone, 0.5, 0.75, 2),
             _pair(big, third, 0.3, 0.6, 3)]
    chosen = screens.grid_choice(Waiting(OpenPairs(pairs), set()), unlikely=False)
    assert chosen is not None
    assert chosen.person == lone
    assert [s.rank for s in chosen.pairs] == [1, 2]


def test_the_unlikely_are_left_out_unless_asked_for() -> None:
    a = _person(2)
    likely = _pair(a, _person(1), 0.5, ranking_module.MIN_WORTH * 2, 1)
    unlikely = _pair(a, _person(1), 0.05, ranking_module.MIN_WORTH / 2, 2)
    waiting = Waiting(OpenPairs([likely, unlikely]), set())
    assert [worth_a_look(s) for s in (likely, unlikely)] == [True, False]
    assert list(waiting.likely()) == [likely]
    assert screens.pairs_page(waiting, unlikely=False)[0] == [likely]
    only_unlikely = Waiting(OpenPairs([unlikely]), set())
    assert screens.pairs_page(only_unlikely, unlikely=False)[0] == []
    assert screens.grid_choice(only_unlikely, unlikely=False) is None
    assert screens.pairs_page(only_unlikely, unlikely=True)[0] == [unlikely]


# --- the pages, served over the indexed library ------------------------------------------
def test_the_pages_show_the_likely_then_say_nothing_likely_is_left(
        served: tuple[ReviewServer, Client], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pair a page shows is worth a look, and the page counts the likely and the
    unlikely left; with none worth a look, each review page says so, with the number of
    unlikely pairs and a link that shows them."""
    server, client = served
    server.queue.warm().join()
    ranking = server.queue.ranker.ranking
    assert ranking is not None
    total = len(ranking.suggestions)
    likely = sum(1 for _ in Waiting(ranking.pairs, set()).likely())
    assert 0 < likely < total, "the library has likely and unlikely pairs"
    page = client.get("/pairs").text
    shown = re.findall(r'title="score ([0-9.]+)', page)
    assert 0 < len(shown) <= min(likely, screens.PAIRS_PAGE)
    counted = LEFT.search(page)
    assert counted is not None
    assert (int(counted[1]), int((counted[2] or "0").replace(",", ""))) == (
        likely, total - likely)

    monkeypatch.setattr(ranking_module, "MIN_WORTH", math.inf)  # nothing is worth a look
    for path, screen in (("/pairs", 'class="candidates pairs"'),
                         ("/grid", 'class="candidates" data-keep'),
                         ("/suggestions", 'class="pair" data-keep')):
        reply = client.get(path)
        assert reply.status == 200
        ended = ENDED.search(reply.text)
        assert ended is not None, reply.text[-600:]
        assert int(ended[1].replace(",", "")) == total
        assert f'{path}?unlikely=1"' in reply.text and screen not in reply.text
        going_on = client.get(f"{path}?unlikely=1")
        assert going_on.status == 200 and screen in going_on.text
        assert ENDED.search(going_on.text) is None
        # the unlikely pairs shown: it says plainly that those worth a look are done
        assert "The pairs worth a look are done; these are the" in going_on.text
        assert LEFT.search(going_on.text) is None
    assert client.get("/pairs?unlikely=yes").status == 400  # a clear refusal, no 500


def test_the_review_page_shows_the_screen_worth_more_then_grids(
        served: tuple[ReviewServer, Client], monkeypatch: pytest.MonkeyPatch) -> None:
    """/review shows, of the grid and the page of pairs, the one with the higher rate
    while likely pairs are left, answered as on its own page; past them, grids; with
    nothing likely left it says so, linking to its own unlikely screens."""
    server, client = served
    server.queue.warm().join()
    grid, _ = server.queue.next_grid()
    page, _ = server.queue.next_pairs()
    assert grid is not None and page is not None
    reply = client.get("/review").text
    if page.rate > grid.rate:
        assert 'class="candidates pairs"' in reply
    else:
        assert f'class="candidates" data-keep="{grid.keep.id}"' in reply
    keep = re.search(r'class="candidates" data-keep="([0-9a-f-]+)"', reply)
    if keep is not None:  # a grid: answered as on /grid
        shown = re.findall(r'class="candidate" data-person="([0-9a-f-]+)"', reply)
        assert client.post("grid", {"keep": keep[1], "same": [], "shown": shown}).status == 200

    monkeypatch.setattr(ranking_module, "MIN_WORTH", math.inf)
    ended = client.get("/review").text
    assert ENDED.search(ended) is not None and '/review?unlikely=1"' in ended
    going_on = client.get("/review?unlikely=1").text
    assert 'class="candidates" data-keep=' in going_on  # past the likely: a grid


def test_the_likely_left_are_counted_as_a_pass_over_the_pairs_would() -> None:
    """``likely_left`` (a count at C speed: the ranking is by worth) is the number of
    open, unskipped pairs worth a look, after drops and skips."""
    a = _person(3)
    pairs = [_pair(a, _person(1), 0.5, w, i) for i, w in
             enumerate((2.0, 1.0, 0.5, 0.3, 0.2, 0.2, 0.1, 0.05, 0.0))]
    opened = OpenPairs(pairs)
    opened.drop({a.id.int}, lambda s: s.rank in (1, 5, 7))
    skipped = {frozenset((pairs[3].keep.id, pairs[3].other.id))}
    waiting = Waiting(opened, skipped)
    # worth 0.2 or more: ranks 0-5; 1 and 5 dropped, 3 skipped
    assert waiting.likely_left() == sum(1 for _ in waiting.likely()) == 3
    assert len(waiting) == len(pairs) - 3 - 1
