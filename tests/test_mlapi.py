"""`--ml-uri`: index and embed through a local Immich-ML server that runs the real
model pack; results equal the local run's, retries follow 5/10/20 s, failures retry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from rbv.config import Settings
from rbv.errors import (
    ConfigError,
    InferenceError,
    InferenceServerDown,
    InferenceUnavailable,
    Remedy,
)
from rbv.faces.types import ImageFaces, PackInfo
from rbv.media.decode import decode_for_detection
from rbv.media.types import DecodedImage
from rbv.mlapi.client import STOP_AFTER_FAILED_IMAGES, RemoteFaceAnalyzer, TransientFailure
from rbv.mlapi.pool import RETRY_DOWN_AFTER, ServerPool
from tests.conftest import FACES, PACK, run_cli

pytestmark = pytest.mark.slow  # ~15 s: indexes through an ML server over HTTP

REMOTE = "files ? 'immich-ml:facial-recognition'"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {"RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir), **extra}


def _faces(url: str, remote: bool) -> dict[int, list[tuple]]:  # type: ignore[type-arg]
    where = REMOTE if remote else f"NOT ({REMOTE})"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT f.image_id, f.x1, f.y1, f.x2, f.y2, f.det_score, e.embedding::text "
            "FROM face_detections f JOIN face_embeddings e ON e.face_id = f.id "
            f"JOIN model_packs p ON p.id = f.pack_id WHERE {where} "
            "ORDER BY f.image_id, f.x1").fetchall()
    found: dict[int, list[tuple]] = {}  # type: ignore[type-arg]
    for image_id, *box, score, vector in rows:
        found.setdefault(image_id, []).append(
            (np.array(box), score, np.array(json.loads(vector), np.float32)))
    return found


def _scan_status(url: str, remote: bool) -> dict[str, int]:
    where = REMOTE if remote else f"NOT ({REMOTE})"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.status, count(*) FROM face_scans s JOIN model_packs p "
            f"ON p.id = s.pack_id WHERE {where} GROUP BY s.status").fetchall()
    return dict(rows)


def test_index_through_ml_uri_stores_what_the_local_run_stores(cli, settings, fake_ml) -> None:
    url = str(settings.database_url)
    # Five people (~40 photos) keep the test short; scripts/bench/ml_uri_parity.py does all 200.
    people = ("Barack_Obama", "Angelina_Jolie", "Joe_Biden", "Madonna", "Elon_Musk")
    include = [arg for who in people for arg in ("--include", f"*/{who}/*")]
    n = sum(len(list((FACES / who).iterdir())) for who in people)
    remote = run_cli(cli, "index", "-d", url, str(FACES), *include, "--ml-uri", fake_ml.url,
                     "--json", env=_env(settings))
    assert remote.exit_code == 0, remote.output
    local = run_cli(cli, "embed", "-d", url, "--json", env=_env(settings))
    assert local.exit_code == 0, local.output

    got, want = _faces(url, remote=True), _faces(url, remote=False)
    assert fake_ml.predictions >= n
    assert sum(map(len, want.values())) >= n
    assert set(got) == set(want)
    for image_id, faces in want.items():
        assert len(got[image_id]) == len(faces), image_id
        for (box_r, score_r, emb_r), (box_l, score_l, emb_l) in zip(got[image_id], faces,
                                                                    strict=True):
            np.testing.assert_allclose(box_r, box_l, atol=0.01)
            assert score_r == pytest.approx(score_l, abs=1e-5)
            np.testing.assert_allclose(emb_r, emb_l, atol=1e-5)
    assert _scan_status(url, remote=True) == {"done": n}
    # What was sent is Immich's protocol, with the pack's model name.
    fr = fake_ml.entries[0]["facial-recognition"]
    assert fr["detection"]["modelName"] == fr["recognition"]["modelName"] == "scrfd_sface"


def test_a_5xx_burst_is_survived_on_the_5_10_20_schedule(fake_ml) -> None:
    waits: list[float] = []
    analyzer = _alone(fake_ml.url, "scrfd_sface", sleep=waits.append)
    image = _decoded(FACES / "Barack_Obama" / "fr_obama.jpg")
    fake_ml.faults.fail_5xx = 3

    found = analyzer.analyze(image)

    assert waits == [5.0, 10.0, 20.0]
    assert len(found.faces) == 1 and found.faces[0].embedding.shape == (128,)

    waits.clear()
    fake_ml.faults.fail_5xx = 4  # one more than the retries
    with pytest.raises(InferenceUnavailable, match="retried on the next run"):
        analyzer.analyze(image)
    assert waits == [5.0, 10.0, 20.0]


def test_timeouts_and_refused_connections_are_retried_then_unavailable(fake_ml) -> None:
    waits: list[float] = []
    image = _decoded(FACES / "Barack_Obama" / "fr_obama.jpg")
    server = RemoteFaceAnalyzer(fake_ml.url, "scrfd_sface", timeout_s=0.2)
    slow = ServerPool([server], sleep=waits.append)
    fake_ml.faults.gate.clear()  # the server holds its answers: every try times out
    with pytest.raises(InferenceUnavailable, match="ReadTimeout"):
        slow.analyze(image)
    assert waits == [5.0, 10.0, 20.0]
    fake_ml.faults.gate.set()  # the held answers go to a client that hung up
    fake_ml.stop()
    waits.clear()
    with pytest.raises(InferenceUnavailable, match="ConnectError"):
        slow.analyze(image)
    assert waits == [5.0, 10.0, 20.0]
    with pytest.raises(InferenceUnavailable, match="does not answer") as err:
        server.ping()
    assert "--" not in str(err.value)  # the remedy names the setting; the CLI its option
    assert err.value.remedies == (Remedy("check_server", {"setting": "ml_uri"}),)


def test_malformed_json_and_a_wrong_model_are_errors(fake_ml) -> None:
    image = _decoded(FACES / "Barack_Obama" / "fr_obama.jpg")
    fake_ml.faults.malformed = 1
    with pytest.raises(InferenceError, match="malformed JSON"):
        _alone(fake_ml.url, "scrfd_sface").analyze(image)
    with pytest.raises(InferenceError, match="HTTP 422"):
        _alone(fake_ml.url, "buffalo_l").analyze(image)


def test_images_that_exhausted_retries_are_retried_next_run(cli, settings, fake_ml) -> None:
    url = str(settings.database_url)
    # One inference worker, so the 4 failing answers all go to the same image.
    env = _env(settings, RBV_ML_BACKOFF_S="0.001", RBV_ML_CLIP_MODEL="ViT-B-32__openai",
               RBV_INFERENCE_WORKERS="1")
    args = ("index", "-d", url, str(FACES), "--include", "*/Barack_Obama/*", "--ml-uri",
            fake_ml.url, "--json")
    n = len(list((FACES / "Barack_Obama").iterdir()))
    fake_ml.faults.fail_5xx = 4  # the first image fails all 4 attempts, then all is well
    fake_ml.faults.fail_5xx_after = 1  # after the start-up probe

    first = run_cli(cli, *args, env=env)

    assert first.exit_code == 3, first.output
    assert json.loads(first.stdout)["embed"]["failed"] == 1
    assert _scan_status(url, remote=True) == {"done": n - 1, "failed": 1}

    second = run_cli(cli, *args, env=env)

    assert second.exit_code == 0, second.output
    assert _scan_status(url, remote=True) == {"done": n}
    with psycopg.connect(url) as conn:  # CLIP embeddings stored when returned
        clips = conn.execute("SELECT model, vector_dims(embedding), count(*) FROM "
                             "clip_embeddings GROUP BY 1, 2").fetchall()
    assert clips == [("ViT-B-32__openai", 512, n)]


def test_a_server_down_mid_run_stops_with_exit_2_and_the_rerun_finishes(
        cli, settings, fake_ml) -> None:
    url = str(settings.database_url)
    # One inference worker, so the request count is exact (no image in flight beside).
    env = _env(settings, RBV_ML_BACKOFF_S="0.001", RBV_INFERENCE_WORKERS="1")
    args = ("index", "-d", url, str(FACES), "--include", "*/Madonna/*", "--ml-uri",
            fake_ml.url)
    n = len(list((FACES / "Madonna").iterdir()))
    fake_ml.faults.fail_5xx = 10_000
    fake_ml.faults.fail_5xx_after = 1  # the start-up probe

    first = run_cli(cli, *args, env=env)

    assert first.exit_code == 2, first.output
    assert "3 images in a row" in first.stderr and "re-run" in first.stderr
    assert fake_ml.requests == 1 + 3 * 4  # the probe; three images, 4 attempts each
    assert _scan_status(url, remote=True).get("done", 0) == 0
    fake_ml.faults.fail_5xx = 0

    second = run_cli(cli, *args, env=env)

    assert second.exit_code == 0, second.output
    assert _scan_status(url, remote=True) == {"done": n}


def test_unreachable_ml_server_fails_fast_with_exit_2(cli, settings, fake_ml) -> None:
    fake_ml.stop()
    result = run_cli(cli, "embed", "-d", str(settings.database_url), "--ml-uri", fake_ml.url,
                     env=_env(settings))
    assert result.exit_code == 2
    assert "does not answer" in result.stderr
    assert result.stderr.rstrip().endswith("; check --ml-uri / RBV_ML_URI and that the "
                                           "server is up"), result.stderr


def test_a_bad_server_address_or_model_names_the_setting(cli, settings, fake_ml) -> None:
    """Through the job: the setting by keyword, no option; through the CLI: the option."""
    with pytest.raises(ConfigError) as err:
        RemoteFaceAnalyzer("ftp://example.com", "scrfd_sface")
    assert err.value.setting == "ml_uri" and "--" not in str(err.value)
    bad = run_cli(cli, "embed", "-d", str(settings.database_url), "--ml-uri",
                  "ftp://example.com", env=_env(settings))
    assert bad.exit_code == 1
    assert bad.stderr == ("Error: an inference server's address must start with http:// "
                          "or https://, got 'ftp://example.com' (--ml-uri)\n")
    with pytest.raises(ConfigError) as err:
        RemoteFaceAnalyzer(fake_ml.url, "nonesuch").probe(retries=0)
    assert err.value.setting == "model_pack" and "--" not in str(err.value)
    assert "name one of them as the model pack" in str(err.value)
    refused = run_cli(cli, "embed", "-d", str(settings.database_url), "--ml-uri",
                      fake_ml.url, "--model-pack", "nonesuch", env=_env(settings))
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.endswith("name one of them as the model pack (the name the "
                                   "server's model files are kept under) (--model-pack)\n")


def _alone(url: str, model: str, sleep: Callable[[float], None] = time.sleep) -> ServerPool:
    """The analyzer of one server, unchecked (its width learnt from the first answer)."""
    return ServerPool([RemoteFaceAnalyzer(url, model)], sleep=sleep)


def _decoded(path: Path):  # type: ignore[no-untyped-def]
    return decode_for_detection(path, "JPEG", image_id=1, long_edge=1920,
                                max_pixels=10**9, keep_bytes=True)


def test_images_failing_at_once_report_the_limit_not_a_count_past_it(fake_ml) -> None:
    # Two workers failing at the same time used to report "4 images in a row" (limit 3).
    fake_ml.stop()
    analyzer = _alone(fake_ml.url, "scrfd_sface", sleep=lambda _: None)
    image = _decoded(FACES / "Barack_Obama" / "fr_obama.jpg")
    errors = []
    for _ in range(STOP_AFTER_FAILED_IMAGES + 2):
        with pytest.raises(InferenceUnavailable) as caught:
            analyzer.analyze(image)
        errors.append(caught.value)
    stops = errors[STOP_AFTER_FAILED_IMAGES - 1:]
    assert all(isinstance(e, InferenceServerDown) for e in stops)
    assert not any(isinstance(e, InferenceServerDown) for e in errors[:2])
    assert {str(e) for e in stops} == {str(stops[0])}
    assert f"failed {STOP_AFTER_FAILED_IMAGES} images in a row" in str(stops[-1])


# -- the pool's scheduling (pure logic: servers that answer or fail on command) ----------

class _Server:
    """Stands for one RemoteFaceAnalyzer in the pool's logic: up or down as the test says;
    ``gate``, when set, holds its answers until opened."""

    def __init__(self, url: str, dim: int = 128) -> None:
        self.url, self.model, self.min_score, self.clip_model = url, "buffalo_l", 0.5, None
        self.pack = self.pack_with(dim)
        self.dim, self.up, self.asked = dim, True, 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def pack_with(self, dim: int) -> PackInfo:
        return PackInfo(f"remote:buffalo_l@{self.url}", {"immich-ml": "buffalo_l"}, dim)

    def probe(self, retries: int = 3) -> None:
        if not self.up:
            raise InferenceUnavailable(f"the inference server at {self.url} does not answer")
        self.pack = self.pack_with(self.dim)

    def request(self, files: Any, data: Any) -> dict[str, str]:
        self.asked += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        if not self.up:
            raise TransientFailure("ConnectError")
        return {"by": self.url}

    def faces(self, body: dict[str, str], image: DecodedImage) -> ImageFaces:
        return ImageFaces([], extra=dict(body))

    def close(self) -> None:
        pass


IMAGE = DecodedImage(1, Path("x.png"), np.zeros((8, 8, 3), np.uint8), 1.0, (8, 8))


def _pool(*servers: _Server, now: list[float] | None = None,
          waits: list[float] | None = None) -> ServerPool:
    clock = now if now is not None else [0.0]
    return ServerPool(servers, backoff_s=5.0,  # type: ignore[arg-type]
                      sleep=(waits if waits is not None else []).append,
                      clock=lambda: clock[0]).start()


def test_a_failed_request_goes_to_the_next_server_at_once_and_the_failed_one_waits() -> None:
    a, b = _Server("http://a"), _Server("http://b")
    now, waits = [0.0], []
    pool = _pool(a, b, now=now, waits=waits)
    a.up = False

    assert [pool.analyze(IMAGE).extra["by"] for _ in range(4)] == ["http://b"] * 4
    assert waits == [] and a.asked == 1  # down: not asked again before its wait is over
    now[0] = RETRY_DOWN_AFTER * 5.0
    a.up = True
    assert [pool.analyze(IMAGE).extra["by"] for _ in range(4)] == \
        ["http://a", "http://b", "http://a", "http://b"]  # back: shared again
    assert [(s["url"], s["images"], s["problem"]) for s in pool.servers()] == \
        [("http://a", 2, None), ("http://b", 6, None)]


def test_when_every_server_fails_the_backoff_applies_then_the_run_stops() -> None:
    a, b = _Server("http://a"), _Server("http://b")
    waits: list[float] = []
    pool = _pool(a, b, waits=waits)
    a.up = b.up = False
    errors = []
    for _ in range(STOP_AFTER_FAILED_IMAGES):
        with pytest.raises(InferenceUnavailable) as caught:
            pool.analyze(IMAGE)
        errors.append(caught.value)
    assert waits == [5.0, 10.0, 20.0] * STOP_AFTER_FAILED_IMAGES  # one server's schedule
    assert a.asked == b.asked == 4 * STOP_AFTER_FAILED_IMAGES  # every server, each attempt
    assert str(errors[0]) == "every inference server (http://a, http://b) failed 4 " \
        "times (ConnectError); the image is retried on the next run"
    assert isinstance(errors[-1], InferenceServerDown)
    assert "failed 3 images in a row" in str(errors[-1])
    with pytest.raises(InferenceServerDown):  # stopped: nothing more is sent
        pool.analyze(IMAGE)
    assert a.asked == 4 * STOP_AFTER_FAILED_IMAGES
    assert all("ConnectError" in str(s["problem"]) for s in pool.servers())


def test_requests_in_flight_at_once_go_to_different_servers() -> None:
    a, b = _Server("http://a"), _Server("http://b")
    pool = _pool(a, b)
    a.gate = threading.Event()  # a holds its answer
    held = threading.Thread(target=pool.analyze, args=(IMAGE,))
    held.start()
    a.entered.wait()
    try:
        assert pool.analyze(IMAGE).extra["by"] == "http://b"  # a is busy
    finally:
        a.gate.set()
        held.join()


def test_start_skips_servers_that_do_not_answer_and_refuses_mixed_widths() -> None:
    live, dead = _Server("http://live"), _Server("http://dead")
    dead.up = False
    now = [0.0]
    pool = _pool(live, dead, now=now)
    assert pool.providers == ["remote http://live", "remote http://dead (does not answer: "
                              "skipped, tried again later)"]
    assert pool.pack.embedding_dim == 128
    # Back later with another model's width: probed before use, then never used.
    dead.up, dead.dim = True, 512
    now[0] = RETRY_DOWN_AFTER * 5.0
    assert pool.analyze(IMAGE).extra["by"] == "http://live"
    assert dead.asked == 0
    assert pool.servers()[1]["problem"] == \
        "http://dead serves 512-dimensional embeddings, the others 128; not used"

    with pytest.raises(ConfigError, match="http://live: 128, http://dead: 512") as widths:
        _pool(_Server("http://live"), _Server("http://dead", dim=512))
    assert widths.value.setting == "ml_uri" and "--" not in str(widths.value)
    gone, lost = _Server("http://gone"), _Server("http://lost")
    gone.up = lost.up = False
    with pytest.raises(InferenceUnavailable, match="at http://gone does not answer"):
        _pool(gone)
    with pytest.raises(InferenceUnavailable, match="none of the inference servers answers: "
                       "the inference server at http://gone does not answer; the inference "
                       "server at http://lost does not answer"):
        _pool(gone, lost)
