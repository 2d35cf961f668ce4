"""The review queue's open pairs (``rbv.serve.ranking.OpenPairs``): an answer drops the pairs it
settled by looking at its persons' pairs alone, and the page's next prompt, a person's
pairs and the count left are what a pass over the whole ranking would give (pure logic:
the queue's HTTP behaviour is tested in test_serve.py and test_serve_grid.py)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbv.errors import ConfigError
from rbv.jobs.persons.evidence import Suggestion
from rbv.serve.ranking import OpenPairs, Waiting
from rbv.store.queries.persons import PersonRow

PERSONS = [PersonRow(uuid.UUID(int=i + 1), "p", None, 1, 1, False, "cluster")
           for i in range(6)]
PAIRS = [(a, b) for a in range(6) for b in range(6) if a != b]

# an answer: accept (other's pairs), dismiss (the pair), grid (keep with shown, merged)
answers = st.tuples(st.sampled_from(["accept", "dismiss", "grid", "skip"]),
                    st.sampled_from(PAIRS), st.sets(st.integers(0, 5), max_size=3))


@given(st.lists(st.sampled_from(PAIRS), max_size=20, unique_by=lambda p: frozenset(p)),
       st.lists(answers, max_size=8))
def test_open_pairs_are_the_ranking_less_what_answers_settled(
        ranked: list[tuple[int, int]], script: list[tuple[str, tuple[int, int], set[int]]]
        ) -> None:
    made = [Suggestion(r, PERSONS[a], PERSONS[b], 0.5, 0.0, "", (a, b))
            for r, (a, b) in enumerate(ranked)]
    pairs, reference = OpenPairs(made), list(made)
    skipped: set[frozenset[uuid.UUID]] = set()
    for kind, (a, b), shown in script:
        one, two = PERSONS[a].id.int, PERSONS[b].id.int
        if kind == "skip":
            skipped.add(frozenset((PERSONS[a].id, PERSONS[b].id)))
            continue
        if kind == "accept":
            persons, settled = {two}, (lambda t, o=two: o in (t.keep.id.int, t.other.id.int))
        elif kind == "dismiss":
            persons, settled = {one}, (lambda t, p=(one, two): (t.keep.id.int,
                                                                t.other.id.int) == p)
        else:
            shown_ints = {PERSONS[s].id.int for s in shown}
            same = set(list(shown_ints)[:1])

            def settled(t: Suggestion, k: int = one, shown_ints: set[int] = shown_ints,
                        same: set[int] = same) -> bool:
                x, y = t.keep.id.int, t.other.id.int
                return ((x == k and y in shown_ints) or (y == k and x in shown_ints)
                        or x in same or y in same)
            persons = {one} | same
        pairs.drop(persons, settled)
        reference = [s for s in reference if not settled(s)]

        waiting = Waiting(pairs, skipped)
        asked = [s for s in reference if frozenset((s.keep.id, s.other.id)) not in skipped]
        assert list(pairs) == reference and pairs.left == len(reference)
        assert next(iter(waiting), None) == (asked[0] if asked else None)
        assert len(waiting) == len(asked)
        for p in PERSONS:
            assert list(waiting.iter_of(p.id.int)) == [s for s in asked
                                                       if p.id in (s.keep.id, s.other.id)]


def test_the_kept_ranking_is_written_a_piece_at_a_time_as_one_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from rbv.serve.kept_ranking import _write_json

    for kept in ({"version": 4, "persons": [], "suggestions": [[n, "x", None, [0.5]]
                                                              for n in range(2_345)]}, {}):
        _write_json(tmp_path / "kept.json", kept, piece=1_000)
        assert json.loads((tmp_path / "kept.json").read_text()) == kept


def test_a_ranking_that_cannot_be_kept_is_said_in_one_line_not_raised(tmp_path, capsys  # type: ignore[no-untyped-def]
                                                                      ) -> None:
    """The cache folder removed while the server runs (or the disk full): keeping the
    ranking for the next start fails in one line on stderr, nothing half-written, and
    the thread that ranked goes on (it raised, and died with a traceback, before)."""
    from rbv.serve.kept_ranking import keep, load
    from rbv.serve.ranking import Ranking

    ranking = Ranking(1, (3, 4), OpenPairs([Suggestion(r, PERSONS[a], PERSONS[b], 0.5, 0.0,
                                                       "", (a, b))
                                            for r, (a, b) in enumerate(PAIRS[:5])]))
    assert keep(tmp_path / "suggestions.json", "lib", ranking)
    assert load(tmp_path / "suggestions.json", "lib") is not None
    capsys.readouterr()
    gone = tmp_path / "removed" / "suggestions.json"
    assert not keep(gone, "lib", ranking)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not kept" in err and str(gone) in err
    assert not gone.parent.exists()


def test_a_ranking_read_before_an_answer_never_shows_or_keeps_what_it_settled(  # type: ignore[no-untyped-def]
        cli, faces_settings, tmp_path, monkeypatch) -> None:
    """A fresh ranking that read the library before the user's latest answer drops the
    pair that answer settled, in the page and in the ranking kept for the next start.
    The ranking, made, is held behind an event the test opens: no timing."""
    import threading

    from rbv.serve import ranking as ranking_module
    from rbv.serve.queue import SuggestionQueue
    from rbv.store import open_database
    from tests.conftest import run_cli

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    db = open_database(faces_settings)
    kept = tmp_path / "suggestions.json"
    queue = SuggestionQueue(db, None, kept)
    queue.warm().join()
    first = queue.next()
    assert first is not None
    queue.dismiss(first.suggestion.keep.id, first.suggestion.other.id)  # learn: re-rank

    ranked, go = threading.Event(), threading.Event()

    class Held(OpenPairs):  # the ranking made, before it is put in place
        def __init__(self, suggestions: list[Suggestion]) -> None:
            if threading.current_thread() is not threading.main_thread():
                ranked.set()
                go.wait(600)
            super().__init__(suggestions)

    monkeypatch.setattr(ranking_module, "OpenPairs", Held)
    second = queue.next()  # starts the ranking that learns from the first answer
    assert second is not None and ranked.wait(600)
    settled = (second.suggestion.keep.id, second.suggestion.other.id)
    queue.dismiss(*settled)  # after that ranking read the library
    go.set()
    queue.warm().join()
    monkeypatch.setattr(ranking_module, "OpenPairs", OpenPairs)

    def shown(q: SuggestionQueue) -> set[tuple[object, object]]:
        ranking, fresh = q._current(wait=False)
        assert ranking is not None and fresh
        return {(s.keep.id, s.other.id) for s in ranking.suggestions}

    assert settled not in shown(queue)
    assert settled not in shown(SuggestionQueue(db, None, kept))  # the kept one, restarted


def test_a_pair_shown_just_before_a_fresh_ranking_replaced_it_is_answered_as_shown(  # type: ignore[no-untyped-def]
        cli, faces_settings, tmp_path, monkeypatch) -> None:
    """The page showed a pair, then the ranking that learns from the last answer came
    in without it (a merge moves persons' nearest neighbours): the user's answer to what
    they saw is made, not refused as "no longer current" (bench_serve met that 409 in 2
    of 9 runs), for a pair and for a grid; and a pair answered so is not asked again.
    The fresh ranking is held behind an event the test opens: no timing."""
    import threading

    from rbv.serve import ranking as ranking_module
    from rbv.serve.queue import SuggestionQueue
    from rbv.store import open_database
    from rbv.store.queries.review_pages import live_persons
    from tests.conftest import run_cli

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    db = open_database(faces_settings)
    queue = SuggestionQueue(db, None, tmp_path / "suggestions.json")
    queue.warm().join()
    ranked = ranking_module.merge_suggestions
    left_out: set[frozenset[uuid.UUID]] = set()
    go = threading.Event()

    def without_the_pair_shown(*args, **kwargs):  # type: ignore[no-untyped-def]
        made = ranked(*args, **kwargs)
        go.wait(600)  # until the page has shown its pair
        return [s for s in made if frozenset((s.keep.id, s.other.id)) not in left_out]

    monkeypatch.setattr(ranking_module, "merge_suggestions", without_the_pair_shown)
    for kind in ("pair", "grid"):
        go.set()
        queue.warm().join()  # a ranking of the library as it is: none runs now
        first = queue.next()
        assert first is not None
        go.clear()
        queue.dismiss(first.suggestion.keep.id, first.suggestion.other.id)  # learn: re-rank
        if kind == "pair":
            shown = queue.next()  # from the kept ranking; starts the fresh one
            assert shown is not None
            keep, other = shown.suggestion.keep.id, shown.suggestion.other.id
            left_out.add(frozenset((keep, other)))
        else:
            grid, _ = queue.next_grid()
            assert grid is not None
            keep, other = grid.keep.id, grid.candidates[0].person.id
            shown_ids = [c.person.id for c in grid.candidates]
            left_out.update(frozenset((keep, p)) for p in shown_ids)
        go.set()
        queue.warm().join()  # the fresh ranking, without what the page shows, in place
        ranking, fresh = queue._current(wait=False)
        assert ranking is not None and fresh
        assert all(frozenset((s.keep.id, s.other.id)) not in left_out
                   for s in ranking.suggestions)
        if kind == "pair":
            queue.accept(keep, other)
        else:
            queue.answer_grid(keep, [other], shown_ids)
        with db.connect() as conn:  # one of them merged into the other
            assert len(live_persons(conn, [keep, other])) == 1
        with pytest.raises(ConfigError, match="no longer current"):
            queue.accept(keep, other)  # answered: not found again, in either ranking
    queue.warm().join()  # the ranking that answer started ends before the database goes


def test_a_ranking_put_in_place_while_an_answer_is_being_made_never_brings_back_earlier_answers(  # type: ignore[no-untyped-def]
        cli, faces_settings, tmp_path, monkeypatch) -> None:
    """A ranking read before answer A came in after answer B was made but before B was
    noted: B's note called it current, and the pair A had settled was shown again (a
    grid named a person merged away; `rbv serve` refused the answer). The interleaving
    is made with events: no timing."""
    import threading

    from rbv.jobs.persons import merges
    from rbv.serve import ranking as ranking_module
    from rbv.serve.queue import SuggestionQueue
    from rbv.store import open_database
    from tests.conftest import run_cli

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    db = open_database(faces_settings)
    queue = SuggestionQueue(db, None, tmp_path / "suggestions.json")
    queue.warm().join()
    ranked, go = threading.Event(), threading.Event()
    rank = ranking_module.merge_suggestions

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        made = rank(*args, **kwargs)
        ranked.set()
        go.wait(600)
        return made

    monkeypatch.setattr(ranking_module, "merge_suggestions", held)
    ranker = queue.warm()  # reads the library as it is before answer A
    assert ranked.wait(600)
    a = queue.next()
    assert a is not None
    settled_by_a = frozenset((a.suggestion.keep.id, a.suggestion.other.id))
    queue.dismiss(a.suggestion.keep.id, a.suggestion.other.id)  # answer A
    merge = merges.merge

    def then_the_ranking_lands(*args, **kwargs):  # type: ignore[no-untyped-def]
        done = merge(*args, **kwargs)  # answer B made, not yet noted by the queue
        go.set()
        ranker.join()
        return done

    monkeypatch.setattr(merges, "merge", then_the_ranking_lands)
    b = queue.next()
    assert b is not None
    queue.accept(b.suggestion.keep.id, b.suggestion.other.id)  # answer B
    monkeypatch.setattr(merges, "merge", merge)
    ranking, fresh = queue._current(wait=False)
    assert ranking is not None
    shown = {frozenset((s.keep.id, s.other.id)) for s in
             (ranking.suggestions if fresh else queue._waiting()[0].pairs)}
    assert settled_by_a not in shown
    go.set()
    queue.warm().join()  # the ranking that answer started ends before the database goes
