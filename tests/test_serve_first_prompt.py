"""`rbv serve`'s first prompt (issue 30: shown within a second on a 100k-face library,
scripts/bench_serve.py): on a library never ranked, a first ranking of the persons with
the most faces shows a prompt while the whole pack is still being ranked, and the page
says the ranking is not finished until the whole one replaces it. The whole ranking is
held here behind an event the test opens: no timing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from rbv.config import Settings
from tests.conftest import run_cli
from tests.serve_client import serving

PROMPTS = (("/grid", 'class="candidates" data-keep='), ("/suggestions", 'class="pair" data-keep='))


def test_the_first_prompt_shows_before_the_whole_ranking_is_made(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rbv.serve import queue as queue_module

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    # a first ranking of the few largest persons (5,000 faces is the whole library)
    monkeypatch.setattr(queue_module, "FIRST_PASS_FACES", 25, raising=False)
    whole = threading.Event()
    real = queue_module.load_evidence

    def held(conn: Any, pack_name: str | None, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:  # the whole pack's ranking waits for the test
            whole.wait(600)
        return real(conn, pack_name, *args, **kwargs)

    monkeypatch.setattr(queue_module, "load_evidence", held)
    try:
        with serving(faces_settings, tmp_path / "cache") as (server, client):
            for path, prompt in PROMPTS:
                page = client.get(path)
                assert page.status == 200, page.text
                assert prompt in page.text, page.text[-600:]  # a prompt, not "Ranking…"
                assert "Ranking not finished: these are the likeliest among the" in page.text
            assert not (tmp_path / "cache" / "suggestions.json").exists()  # never kept
            whole.set()
            server.queue.warm().join()  # the whole ranking, let go
            for path, prompt in PROMPTS:
                page = client.get(path)
                assert prompt in page.text and "Ranking not finished" not in page.text
            assert (tmp_path / "cache" / "suggestions.json").is_file()
    finally:
        whole.set()
