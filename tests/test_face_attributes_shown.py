"""Issue 64, part 1: the estimated ages and genders where a user reads them, each said
as estimated: `persons show` (and its --json), `photos --age` for a person without a
birthday, and serve's person and photo pages. On the indexed library of real faces,
estimated by `enrich` with the real attribute model."""

from __future__ import annotations

import json
import re
import statistics

import psycopg

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from tests.conftest import SHARED, run_cli
from tests.serve_client import Client, face_ids

MODEL = SHARED / "models" / "extra" / "faceres_age_gender.onnx"


def _ok(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args, env={"COLUMNS": "160"})
    assert done.exit_code == 0, (args, done.output)
    return str(done.stdout)


def _estimate(cli, url: str) -> None:  # type: ignore[no-untyped-def]
    _ok(cli, url, "enrich", "--attribute-model", str(MODEL))


def _largest_person(cli, url: str) -> str:  # type: ignore[no-untyped-def]
    rows = json.loads(_ok(cli, url, "persons", "list", "--json"))
    rows = rows["persons"] if isinstance(rows, dict) else rows
    return str(max(rows, key=lambda r: r["faces"])["id"])


def _ages(url: str, person: str) -> list[float]:
    with psycopg.connect(url) as conn:
        return [float(r[0]) for r in conn.execute(
            "SELECT a.age FROM face_attributes a JOIN face_detections f ON f.id = a.face_id "
            "WHERE f.person_id = %s", (person,))]


def test_persons_show_says_the_estimated_ages(cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    person = _largest_person(cli, url)
    before = " ".join(_ok(cli, url, "persons", "show", person).split())
    assert "estimated" not in before.lower() and "est. age" not in before
    _estimate(cli, url)
    ages = _ages(url, person)
    text = " ".join(_ok(cli, url, "persons", "show", person).split())
    assert "est. age" in text
    assert (f"Estimated by an age model from {len(ages)} faces, not known: median "
            f"{statistics.median(ages):.0f} years, from {min(ages):.0f} to "
            f"{max(ages):.0f}") in text
    shown = json.loads(_ok(cli, url, "persons", "show", person, "--json"))
    assert shown["estimated"]["faces"] == len(ages)
    assert abs(shown["estimated"]["median_age"] - statistics.median(ages)) < 0.1
    assert shown["estimated"]["gender"] in ("female", "male")
    assert all(f["estimated_age"] is not None and f["estimated_gender"] in ("female", "male")
               for f in shown["faces"])


def test_photos_age_falls_back_on_the_estimates_and_says_so(cli, faces_settings: Settings  # type: ignore[no-untyped-def]
                                                            ) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    person = _largest_person(cli, url)
    refused = run_cli(cli, "-d", url, "photos", "-p", person, "--age", "0-")
    assert refused.exit_code == 1 and "has no birthday, so no age" in refused.stderr
    _estimate(cli, url)
    every = " ".join(_ok(cli, url, "photos", "-p", person, "--age", "0-").split())
    with psycopg.connect(url) as conn:
        photos = conn.execute("SELECT count(DISTINCT image_id) FROM face_detections "
                              "WHERE person_id = %s", (person,)).fetchone()
    assert photos is not None
    assert f"{photos[0]} photos with" in every and "aged 0 or older as estimated from the "\
        "faces" in every and "has no birthday" in every
    assert len(re.findall(r"~\d+ years, estimated", every)) == photos[0]
    ages = sorted(_ages(url, person))
    low = int(statistics.median(ages))
    some = json.loads(_ok(cli, url, "photos", "-p", person, "--age", f"{low}-", "--json"))
    assert some["age_estimated"] is True and some["born"] is None
    assert 0 < len(some["photos"]) < photos[0]
    assert all(p["estimated_age"] >= low and p["age"].endswith("estimated")
               for p in some["photos"])


def test_serve_pages_show_the_estimates(cli, served: tuple[ReviewServer, Client],  # type: ignore[no-untyped-def]
                                        faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _, client = served
    person = _largest_person(cli, url)
    assert "estimated age" not in client.get(f"/person/{person}").text
    _estimate(cli, url)
    page = client.get(f"/person/{person}").text
    assert re.search(r"estimated age \d+ \(\d+–\d+\) from \d+ faces", page)
    assert len(re.findall(r"~\d+, (?:fe)?male \(estimated\)", page)) >= 2
    face = face_ids(page)[0]
    photo = client.get(f"/photo-of/{face}").text
    assert re.search(r"~\d+, (?:fe)?male \(estimated\)", photo)
