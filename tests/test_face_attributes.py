"""Issue 64, part 1: an estimated age and gender for every face. The pure parts (the
model's outputs read as estimates, the crop, the range checks) on small arrays; the
commands on real photos of the family set with the real model: `index
--attribute-model` stores one for every face, `enrich` fills a library indexed without,
a file that is no such model is one error line, the carry keeps a face's estimate."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image, ImageEnhance

from rbv.config import Settings
from rbv.faces.attributes import estimates_of, tight_crop
from rbv.faces.estimates import FaceEstimate
from rbv.store import Database
from rbv.store.queries.attributes import checked, face_ages, save_attributes
from tests.conftest import PACK, SHARED, run_cli

FAMILY = SHARED / "data" / "family" / "faces"
MODEL = SHARED / "models" / "extra" / "faceres_age_gender.onnx"
YOUNG = FAMILY / "lag_al_pacino" / "young__Aprile_00997_1.png"
ADULT = FAMILY / "lag_al_pacino" / "adult__Aprile_00997_2.png"
FATHER = FAMILY / "kfwII_fs_132_father" / "fs_132_1.png"
MOTHER = FAMILY / "kfwII_md_014_mother" / "md_014_1.png"
PHOTOS = (YOUNG, ADULT, FATHER, MOTHER)


# ----- pure parts ---------------------------------------------------------------------

def test_the_age_is_the_distributions_mean_and_the_gender_the_likelier_side() -> None:
    ages = np.zeros((2, 100), np.float32)
    ages[0, 30] = ages[0, 40] = 0.5  # mean 35, sd 5
    ages[1, 8] = 1.0
    genders = np.array([[0.9], [0.2]], np.float32)
    first, second = estimates_of(ages, genders, "m.onnx", "ab")
    assert first.age == pytest.approx(35) and first.age_spread == pytest.approx(5)
    assert (first.gender, first.gender_confidence) == ("male", pytest.approx(0.9))
    assert second.age == pytest.approx(8) and second.age_spread == pytest.approx(0)
    assert (second.gender, second.gender_confidence) == ("female", pytest.approx(0.8))
    assert (first.model, first.model_sha256) == ("m.onnx", "ab")


def test_the_crop_is_the_box_clipped_to_the_image_as_bgr() -> None:
    rgb = np.zeros((50, 80, 3), np.uint8)
    rgb[:, :, 0] = 200  # red
    crop = tight_crop(rgb, (-10.0, -5.0, 40.0, 60.0))
    assert crop is not None and crop.shape == (224, 224, 3)
    assert crop[:, :, 2].min() == 200 and crop[:, :, 0].max() == 0  # BGR: red is last
    assert tight_crop(rgb, (90.0, 10.0, 120.0, 40.0)) is None  # wholly outside


def test_no_nan_or_out_of_range_estimate_is_stored(db: Database) -> None:
    good = FaceEstimate(30.0, 5.0, "male", 0.9, "m.onnx", "ab")
    assert checked(good) == good
    for bad in (FaceEstimate(math.nan, 5.0, "male", 0.9, "m", "ab"),
                FaceEstimate(30.0, math.inf, "male", 0.9, "m", "ab"),
                FaceEstimate(130.0, 5.0, "male", 0.9, "m", "ab"),
                FaceEstimate(30.0, 5.0, "male", 0.4, "m", "ab"),
                FaceEstimate(30.0, 5.0, "x", 0.9, "m", "ab")):
        assert checked(bad) is None
        with db.transaction() as conn:  # no face is needed: nothing reaches the table
            assert save_attributes(conn, [(1, bad)]) == 0


# ----- the commands on real photos ----------------------------------------------------

def _library(tmp_path: Path, photos: tuple[Path, ...] = PHOTOS) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for photo in photos:
        shutil.copy(photo, lib / f"{photo.parent.name}__{photo.name}")
    return lib


def _index(cli, url: str, lib: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_cli(cli, "-d", url, "index", str(lib), "--model-pack", str(PACK),
                   "--device", "cpu", *extra, env=env)


def _rows(url: str) -> dict[str, tuple]:  # type: ignore[type-arg]
    """Photo file name -> (age, spread, gender, confidence, model, sha256) of its
    largest face (None when it has no estimate)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT ON (f.image_id) p.path, a.age, a.age_spread, a.gender,
                   a.gender_confidence, a.model, a.model_sha256
            FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id
            LEFT JOIN face_attributes a ON a.face_id = f.id
            ORDER BY f.image_id, (f.x2 - f.x1) * (f.y2 - f.y1) DESC
            """).fetchall()
    return {Path(r[0]).name: None if r[1] is None else tuple(r[1:]) for r in rows}


def _counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM face_detections), "
                           "(SELECT count(*) FROM face_attributes)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_index_with_the_model_estimates_every_face(cli, settings: Settings,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    url = str(settings.database_url)
    done = _index(cli, url, _library(tmp_path), "--attribute-model", str(MODEL))
    assert done.exit_code == 0, done.output
    assert "ages and genders by faceres_age_gender.onnx" in " ".join(done.output.split())
    faces, estimated = _counts(url)
    assert faces >= len(PHOTOS) and estimated == faces
    rows = _rows(url)
    name = {p: f"{p.parent.name}__{p.name}" for p in PHOTOS}
    assert rows[name[YOUNG]][0] < rows[name[ADULT]][0]  # the young face is estimated younger
    assert rows[name[FATHER]][2] == "male" and rows[name[MOTHER]][2] == "female"
    for age, spread, _, confidence, model, sha in rows.values():
        assert 0 <= age <= 100 and spread > 0 and 0.5 <= confidence <= 1
        assert model == MODEL.name and len(sha) == 64


def test_enrich_fills_a_library_indexed_without_the_model(cli, settings: Settings,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    url = str(settings.database_url)
    lib = _library(tmp_path, (YOUNG, FATHER))
    assert _index(cli, url, lib).exit_code == 0
    faces, estimated = _counts(url)
    assert faces >= 2 and estimated == 0  # no model named, none in the pack
    (lib / f"{FATHER.parent.name}__{FATHER.name}").unlink()  # unreadable now: one line
    done = run_cli(cli, "-d", url, "enrich", "--model-pack", str(PACK), "--json",
                   env={"RBV_ATTRIBUTE_MODEL": str(MODEL)})
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["attribute_model"] == MODEL.name and report["estimated"] >= 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "fs_132_1.png" in errors[0], done.stderr
    lib.joinpath(f"{FATHER.parent.name}__{FATHER.name}").write_bytes(FATHER.read_bytes())
    again = run_cli(cli, "-d", url, "enrich", "--model-pack", str(PACK),
                    "--attribute-model", str(MODEL))
    assert again.exit_code == 0, again.output
    assert _counts(url) == (faces, faces)  # the photo back: its faces filled, no others
    text = " ".join(again.output.split())
    assert f"Estimated the age and gender of {faces - report['estimated']} face" in text
    last = run_cli(cli, "-d", url, "enrich", "--model-pack", str(PACK), "--json",
                   "--attribute-model", str(MODEL))
    assert json.loads(last.stdout)["estimated"] == 0  # incremental


def test_a_file_that_is_no_attribute_model_is_one_error_line(cli, settings: Settings,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    url = str(settings.database_url)
    done = _index(cli, url, _library(tmp_path, (YOUNG,)), "--attribute-model",
                  str(PACK / "det_500m.onnx"))
    assert done.exit_code == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "is not an age and gender model" in lines[0] and "--attribute-model" in lines[0]
    missing = run_cli(cli, "-d", url, "enrich", "--attribute-model", str(tmp_path / "no.onnx"))
    assert missing.exit_code == 1 and "is not a file" in missing.stderr


def test_the_carry_keeps_a_faces_estimate(cli, settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = str(settings.database_url)
    lib = _library(tmp_path, (ADULT,))
    assert _index(cli, url, lib, "--attribute-model", str(MODEL)).exit_code == 0
    (before,) = _rows(url).values()
    photo = next(lib.iterdir())
    ImageEnhance.Brightness(Image.open(photo)).enhance(1.15).save(photo)  # new pixels
    done = _index(cli, url, lib)  # scanned again without the model
    assert done.exit_code == 0, done.output
    assert "keep their persons" in " ".join(done.output.split())
    with psycopg.connect(url) as conn:
        images = conn.execute("SELECT count(DISTINCT image_id) FROM face_detections").fetchone()
    assert images is not None and images[0] == 1  # the old content's faces are gone
    (after,) = _rows(url).values()
    assert after == before  # the same face, the same estimate


def test_face_ages_reads_the_stored_ages(cli, settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = str(settings.database_url)
    assert _index(cli, url, _library(tmp_path, (YOUNG,)), "--attribute-model",
                  str(MODEL)).exit_code == 0
    with psycopg.connect(url) as conn:
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM face_detections")]
        ages = face_ages(conn, [*ids, 10**9])
    assert set(ages) == set(ids) and all(0 <= a <= 100 for a in ages.values())


def test_a_full_batch_a_call_gives_the_same_estimates() -> None:
    """On a GPU every call is a full batch (one input shape); the zero-filled rest
    changes no face's estimate."""
    from dataclasses import replace

    from rbv.faces.attributes import open_attribute_model

    model = open_attribute_model(MODEL, ["CPUExecutionProvider"], threads=2)
    rgb = np.asarray(Image.open(ADULT).convert("RGB"))
    h, w = rgb.shape[:2]
    boxes = [(w * 0.2, h * 0.1, w * 0.8, h * 0.9), (0.0, 0.0, w / 2, h / 2)]
    plain = model.estimate(rgb, boxes)
    full = replace(model, max_batch=4, one_shape=True).estimate(rgb, boxes)
    for a, b in zip(plain, full, strict=True):
        assert a is not None and b is not None and b.gender == a.gender
        assert abs(a.age - b.age) < 1e-3 and abs(a.age_spread - b.age_spread) < 1e-3


def test_a_command_that_indexes_first_estimates_every_face_too(  # type: ignore[no-untyped-def]
        cli, settings: Settings, tmp_path: Path) -> None:
    # import-folders (like immich-stage and discover) indexes its folders first; that
    # indexing ran without the attribute model `rbv index` uses, so its faces had no age
    # until `rbv enrich`.
    url = str(settings.database_url)
    root = tmp_path / "sorted"
    for photo in PHOTOS:
        (root / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, root / photo.parent.name / photo.name)
    done = run_cli(cli, "-d", url, "import-folders", str(root), "--model-pack", str(PACK),
                   env={"RBV_ATTRIBUTE_MODEL": str(MODEL), "RBV_DEVICE": "cpu"})
    assert done.exit_code == 0, done.output
    faces, estimated = _counts(url)
    assert faces >= len(PHOTOS) and estimated == faces
