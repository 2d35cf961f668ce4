"""`rbv serve`'s first prompt (issue 30: shown within a second on a 100k-face library,
scripts/bench/bench_serve.py): on a library never ranked, a first ranking of the persons with
the most faces shows a prompt while the whole pack is still being ranked, and the page
says the ranking is not finished until the whole one replaces it. The whole ranking is
held here behind an event the test opens: no timing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbv.config import Settings
from rbv.jobs.persons.evidence import load_evidence, merge_suggestions, repeatable_sample
from rbv.store import open_database
from tests.conftest import run_cli
from tests.serve_client import serving

PROMPTS = (("/grid", 'class="candidates" data-keep='), ("/suggestions", 'class="pair" data-keep='))


def test_the_first_prompt_shows_before_the_whole_ranking_is_made(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rbv.serve import ranking as ranking_module

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    # a first ranking of the three largest persons, a sample of their faces
    monkeypatch.setattr(ranking_module, "FIRST_PASS_FACES", 12)
    monkeypatch.setattr(ranking_module, "FIRST_PASS_PERSONS", 3)
    whole = threading.Event()
    real = ranking_module.load_evidence

    def held(conn: Any, pack_name: str | None, *args: Any, **kwargs: Any) -> Any:
        if not args and kwargs.get("first") is None:  # the whole pack's ranking waits
            whole.wait(600)
        return real(conn, pack_name, *args, **kwargs)

    monkeypatch.setattr(ranking_module, "load_evidence", held)
    try:
        with serving(faces_settings, tmp_path / "cache") as (server, client):
            for path, prompt in PROMPTS:
                page = client.get(path)
                assert page.status == 200, page.text
                assert prompt in page.text, page.text[-600:]  # a prompt, not "Ranking…"
                assert "Ranking not finished: these are the likeliest among the" in page.text
                note = page.text[page.text.find("Ranking not") :][:400]
                assert "(from a sample of the largest ones’ faces)" in note, note
            assert not (tmp_path / "cache" / "suggestions.json").exists()  # never kept
            whole.set()
            server.queue.warm().join()  # the whole ranking, let go
            for path, prompt in PROMPTS:
                page = client.get(path)
                assert prompt in page.text and "Ranking not finished" not in page.text
            assert (tmp_path / "cache" / "suggestions.json").is_file()
    finally:
        whole.set()


@given(st.lists(st.integers(0, 7), min_size=1, max_size=120), st.integers(1, 150))
def test_a_sample_keeps_small_persons_whole_and_cuts_large_ones_alike(
        owners: list[int], budget: int) -> None:
    owner = np.array(owners, np.int64)
    ids = np.arange(len(owner), dtype=np.int64) * 7919 + 13
    kept = repeatable_sample(ids, owner, budget)
    assert np.array_equal(kept, np.unique(kept))  # positions, ascending, once each
    assert np.array_equal(kept, repeatable_sample(ids, owner, budget))  # repeatable
    whole, read = np.bincount(owner), np.bincount(owner[kept], minlength=owner.max() + 1)
    present = whole > 0
    assert (read[present] >= 1).all()  # every person is read
    if len(owner) <= budget:
        assert len(kept) == len(owner)
        return
    cap = read.max()
    assert np.array_equal(read, np.minimum(whole, cap))  # one cap: small persons whole
    # the largest cap within the budget (or one face each where even that is over it)
    assert len(kept) <= budget or cap == 1
    assert np.minimum(whole, cap + 1).sum() > budget


def test_a_first_ranking_reads_a_sample_and_never_pairs_persons_of_one_photo(
        cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The largest persons read as a sample of their faces: which of them share a photo
    still comes from all their faces (a face not read moved into another's photo makes
    the pair one a user can no longer be asked about), and the persons are the largest."""
    assert run_cli(cli, "-d", str(faces_settings.database_url), "cluster",
                   "--threshold", "0.7").exit_code == 0
    db = open_database(faces_settings)
    with db.connect() as conn:
        whole = load_evidence(conn, None)
        first = load_evidence(conn, None, first=(12, 4))
        assert first.sampled and not first.complete and len(first.faces) <= 12
        assert [p.id for p in first.persons] == [p.id for p in whole.persons[:4]]
        read = np.bincount(first.codes, minlength=4)
        sizes = np.array([p.faces for p in first.persons])
        assert (read <= sizes).all() and (read < sizes).any()
        shown = {(s.keep.id, s.other.id) for s in merge_suggestions(conn, first, None, 0.0)}
        a, b = first.persons[0], first.persons[1]
        assert (a.id, b.id) in shown or (b.id, a.id) in shown  # every pair is a candidate
        unread = conn.execute("SELECT id FROM face_detections WHERE person_id = %s "
                              "AND NOT id = ANY(%s) LIMIT 1",
                              (a.id, first.faces.ids.tolist())).fetchone()[0]
        conn.execute("UPDATE face_detections SET image_id = (SELECT image_id FROM "
                     "face_detections WHERE person_id = %s LIMIT 1) WHERE id = %s",
                     (b.id, unread))
        conn.commit()
        again = load_evidence(conn, None, first=(12, 4))
        assert not {int(f) for f in again.faces.ids} & {int(unread)}  # not read, still
        assert [0, 1] in again.together.tolist()
        shown = {frozenset((s.keep.id, s.other.id))
                 for s in merge_suggestions(conn, again, None, 0.0)}
        assert frozenset((a.id, b.id)) not in shown and shown
