"""`--ml-uri` servers that answer well-formed JSON no recognizer gives (embeddings whose
norm overflows, 20,000 faces a photo, 4,096-d embeddings): nothing of it is stored; a
wrong answer is its photo's failure, a server wrong from the start is one line naming
it, and beside other servers a wrong one is dropped like a dead one."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import FACES, PACK, run_cli
from tests.support.ml_server import FakeInference

pytestmark = pytest.mark.slow  # ~40 s: indexes through ML servers over HTTP

PEOPLE = ("Elon_Musk", "Joe_Biden")  # 5 photos
PHOTOS = sum(len(list((FACES / who).iterdir())) for who in PEOPLE)
SAID = {  # what the one line says each wrong answer held
    "1e20": "a face embedding of norm 1.1e+21",
    "3e38": "a face embedding of norm 3e+38",
    "crowd": "20000 faces for one photo",
    "4096": "4096-dimensional face embeddings",
}


def _index(cli, settings: Settings, *uris: str, **env: str):  # type: ignore[no-untyped-def]
    include = [arg for who in PEOPLE for arg in ("--include", f"*/{who}/*")]
    ml = [arg for uri in uris for arg in ("--ml-uri", uri)]
    return run_cli(cli, "index", "-d", str(settings.database_url), str(FACES), *include,
                   *ml, "--json",
                   env={"RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(settings.data_dir),
                        "RBV_ML_BACKOFF_S": "0.001", **env})


def _stored(settings: Settings) -> tuple[int, list[float], dict[str, int]]:
    """Faces stored, their embeddings' norms, and the photos' scan status."""
    with psycopg.connect(str(settings.database_url)) as conn:
        norms = [float(np.linalg.norm(json.loads(v))) for (v,) in conn.execute(
            "SELECT embedding::text FROM face_embeddings").fetchall()]
        faces = conn.execute("SELECT count(*) FROM face_detections").fetchone()
        scans = dict(conn.execute(
            "SELECT status, count(*) FROM face_scans GROUP BY status").fetchall())
    assert faces is not None
    return faces[0], norms, scans


@pytest.mark.parametrize("how", sorted(SAID))
def test_a_server_wrong_from_the_start_is_one_line_naming_it(cli, settings, fake_ml, how) -> None:
    fake_ml.faults.wrong = how  # every answer, the start-up check's too

    result = _index(cli, settings, fake_ml.url)

    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: the inference server at {fake_ml.url} sent "), lines
    assert SAID[how] in lines[0]
    assert _stored(settings)[0] == 0


@pytest.mark.parametrize("how", ["1e20", "3e38", "crowd"])
def test_a_wrong_answer_is_its_photos_failure_retried_next_run(cli, settings, fake_ml, how) -> None:
    fake_ml.faults.wrong, fake_ml.faults.wrong_after, fake_ml.faults.wrong_answers = how, 1, 1

    first = _index(cli, settings, fake_ml.url, RBV_INFERENCE_WORKERS="1")

    assert first.exit_code == 3, first.output
    failures = json.loads(first.stdout)["embed"]["failures"]
    assert len(failures) == 1 and SAID[how] in failures[0], failures
    assert fake_ml.url in failures[0] and "/faces/" in failures[0]
    assert SAID[how] in first.stderr  # said as it happens
    faces, norms, scans = _stored(settings)
    assert scans == {"done": PHOTOS - 1, "failed": 1}
    assert faces < 5 * PHOTOS and norms == pytest.approx([1.0] * faces, abs=1e-4)

    second = _index(cli, settings, fake_ml.url, RBV_INFERENCE_WORKERS="1")

    assert second.exit_code == 0, second.output
    faces, norms, scans = _stored(settings)
    assert scans == {"done": PHOTOS}
    assert PHOTOS <= faces < 5 * PHOTOS and norms == pytest.approx([1.0] * faces, abs=1e-4)


@pytest.fixture
def second_ml() -> Iterator[FakeInference]:
    server = FakeInference(PACK).start()
    yield server
    server.stop()


@pytest.mark.parametrize("after", [0, 1], ids=["from-the-start", "after-the-check"])
@pytest.mark.parametrize("how", ["1e20", "4096"])
def test_a_wrong_server_beside_others_is_dropped_and_they_do_the_photos(
        cli, settings, fake_ml, second_ml, how, after) -> None:
    fake_ml.faults.wrong, fake_ml.faults.wrong_after = how, after

    result = _index(cli, settings, fake_ml.url, second_ml.url)

    assert result.exit_code == 0, result.output
    faces, norms, scans = _stored(settings)
    assert scans == {"done": PHOTOS}
    assert PHOTOS <= faces < 5 * PHOTOS and norms == pytest.approx([1.0] * faces, abs=1e-4)
    wrong, right = json.loads(result.stdout)["embed"]["servers"]
    assert wrong["url"] == fake_ml.url and wrong["images"] == 0
    assert SAID[how] in wrong["problem"]
    assert right == {"url": second_ml.url, "images": PHOTOS, "problem": None}


def test_a_server_wrong_for_every_photo_after_its_check_stops_in_one_line(
        cli, settings, fake_ml) -> None:
    fake_ml.faults.wrong, fake_ml.faults.wrong_after = "1e20", 1  # the check is right

    result = _index(cli, settings, fake_ml.url, RBV_INFERENCE_WORKERS="1")

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: the inference server at {fake_ml.url} sent {SAID['1e20']} (a recognizer's "
        "are 0.01 to 1000), for 3 images in a row; stopped. Images not done are left for "
        "the next run: re-run when the server is fixed")
    assert fake_ml.predictions == 1 + 3  # the check, then each image once: no retries
    assert _stored(settings)[0] == 0


def test_a_server_whose_width_is_not_the_librarys_packs_is_refused(cli, settings,
                                                                    fake_ml) -> None:
    assert _index(cli, settings, fake_ml.url).exit_code == 0
    before = _stored(settings)[0]
    fake_ml.faults.wrong = "256"  # another model's files under the same name

    result = _index(cli, settings, fake_ml.url)

    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: model pack remote:scrfd_sface@127.0.0.1 has 128-dimensional face "
        f"embeddings in this library, but remote {fake_ml.url} gives 256-dimensional "
        "ones; faces of different models are never mixed")
    assert _stored(settings)[0] == before
