"""``rbv serve`` makes its whole rankings in a process of its own
(``rbv.serve.ranking_process``): made in a thread of the server, a ranking held the
interpreter the page's answers waited for (answer -> next prompt p95 136-295 ms at 100,000
faces, scripts/bench/bench_serve.py). No timing here: what is checked is where the whole
pack is read, and that the prompts are those a ranking made in the server gives."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from rbv.config import Settings
from rbv.serve import kept_ranking
from rbv.serve.interpreter import RequestsUnderWay
from rbv.serve.queue import SuggestionQueue
from rbv.serve.ranking import Ranking
from rbv.store import open_database
from tests.conftest import run_cli
from tests.serve_client import serving

PAIR = re.compile(r'class="pair" data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"')


def _pairs(ranking: Ranking | None) -> list[tuple[object, ...]]:
    assert ranking is not None
    return [(s.keep.id, s.other.id, round(s.probability, 9), s.best_faces)
            for s in ranking.suggestions]


def test_answers_are_ranked_behind_in_a_process_of_their_own(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rbv.serve import ranking as ranking_module

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    read_here: list[str] = []  # whole packs read in this process
    real = ranking_module.load_evidence

    def recorded(conn: Any, pack_name: str | None, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs.get("first") is None:
            read_here.append(threading.current_thread().name)
        return real(conn, pack_name, *args, **kwargs)

    monkeypatch.setattr(ranking_module, "load_evidence", recorded)
    cache = tmp_path / "cache"
    with serving(faces_settings, cache, rank_apart=True) as (server, client):
        ranker = server.queue.ranker
        ranker.warm().join()  # a first ranking here, the whole one in the process
        # kept before it is delivered: a server closed now finds it when it starts again
        assert kept_ranking.load(cache / "suggestions.json", ranker._library) is not None
        for _ in range(3):  # answer, then the ranking that learns from it
            found = PAIR.search(client.get("/suggestions?unlikely=1").text)
            assert found is not None
            done = client.post("dismiss", {"keep": found[1], "other": found[2]})
            assert done.status == 200, done.text
            ranker.warm().join()  # the ranking that learns from it, made and landed
            ranking, fresh = ranker.current(wait=False)
            assert fresh and ranking is not None and ranking.covered is None
            assert PAIR.search(client.get("/suggestions?unlikely=1").text) is not None
        shown = _pairs(ranking)
        assert read_here == []  # every whole ranking was made in the ranking process
        here = SuggestionQueue(open_database(faces_settings), None)  # ranked in this one
        here.warm().join()
        assert _pairs(here.ranker.ranking) == shown  # the same prompts, in the same order
        read_here.clear()

        process = ranker.process._process  # type: ignore[union-attr]
        assert process is not None
        process.kill()  # a process that ended: the server ranks itself, as without one
        process.join()
        (cache / "suggestions.json").unlink()
        found = PAIR.search(client.get("/suggestions?unlikely=1").text)
        assert found is not None
        client.post("dismiss", {"keep": found[1], "other": found[2]})
        ranker.warm().join()
        assert ranker.current(wait=False)[1] and len(read_here) == 1  # made here
        assert kept_ranking.load(cache / "suggestions.json", ranker._library) is not None



def test_work_behind_the_answers_waits_for_the_requests_under_way() -> None:
    under_way = RequestsUnderWay()
    assert under_way.wait()  # none: no wait
    waited, done = threading.Event(), threading.Event()

    def behind() -> None:
        waited.set()
        if under_way.wait():
            done.set()

    with under_way.answering():
        thread = threading.Thread(target=behind)
        thread.start()
        assert waited.wait(60)
        assert not done.is_set()  # (bounded: it goes on after ANSWERS_FIRST_MAX_S)
    thread.join()
