"""`rbv eval` on a small labelled folder of real photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rbv.cluster.evaluation import subject_face
from rbv.config import Settings
from rbv.face_rows import FacePlace
from rbv.jobs.grouping.eval import label_main_faces, read_labels
from rbv.store import open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack
from tests.conftest import FACES, PACK, SHARED, run_cli

pytestmark = pytest.mark.slow  # ~15 s: rbv eval of every method on labelled folders

LFW = SHARED / "data" / "lfw_many" / "faces"

IDENTITIES = ("Barack_Obama", "Matt_Damon", "Jack_Dorsey", "Mark_Zuckerberg")


def _labelled_folder(root: Path) -> Path:
    """<identity>/<image> links to real photos (read in place, not copied)."""
    for name in IDENTITIES:
        (root / name).mkdir(parents=True)
        for photo in sorted((FACES / name).iterdir()):
            (root / name / photo.name).symlink_to(photo)
    return root


def test_eval_scores_every_method_and_calibration_stores_thresholds(
    cli, settings: Settings, tmp_path: Path
) -> None:
    folder = _labelled_folder(tmp_path / "labelled")
    url = str(settings.database_url)
    result = run_cli(cli, "-d", url, "eval", str(folder), "--model-pack", str(PACK),
                     "--calibrate", "--store", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["identities"] == len(IDENTITIES)
    assert report["labelled_faces"] >= 18
    methods = {s["method"] for s in report["scores"]}
    assert methods == {"evidence", "connected", "agglomerative", "hdbscan", "immich-baseline"}
    for method, sweep in report["calibration"].items():
        best = max(s["bcubed"]["f1"] for s in sweep)
        assert best > 0.9, method  # four well-separated people
        lo, hi = report["plateaus"][method]
        assert lo <= report["recommended_thresholds"][method] <= hi
        if method != "evidence":
            assert 0.2 <= report["recommended_thresholds"][method] <= 0.8
    with open_database(settings).connect() as conn:
        stored = conn.execute("SELECT settings FROM model_packs").fetchone()[0]  # type: ignore[index]
    assert stored["thresholds"]["connected"] == report["recommended_thresholds"]["connected"]
    assert stored["impostor"]["mu"] == report["impostor"]["mu"]
    again = run_cli(cli, "-d", url, "cluster", "--dry-run", "--verbose")
    assert "labelled different-person pairs of" in again.output  # the stored model is used
    connected = run_cli(cli, "-d", url, "cluster", "--dry-run", "--method", "connected")
    assert "the pack's calibrated value" in connected.output


def test_eval_of_a_folder_without_labels_says_what_it_expects(cli, settings: Settings,
                                                               tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli(cli, "-d", str(settings.database_url), "eval", str(tmp_path / "empty"),
                     "--model-pack", str(PACK))
    assert result.exit_code == 1
    assert result.output.startswith("Error: no labelled images in")


def _place(face: int, box: tuple[float, float, float, float], size: int | None = 250
           ) -> FacePlace:
    return FacePlace(face, "p.jpg", box, size, size)


def test_the_labelled_face_is_the_subject_largest_unless_a_central_face_has_one_beside_it(
) -> None:
    alone = _place(1, (200, 0, 250, 60))  # the only face: the label's, wherever it is
    assert subject_face([alone]) == 1
    # an LFW crop: the subject in the centre, a larger face of someone beside them at the
    # edge (Kate_Capshaw_0002: Steven Spielberg)
    subject, beside = _place(1, (80, 70, 170, 180)), _place(2, (170, 31, 250, 192))
    assert subject_face([beside, subject]) == 1
    # the largest face off centre, the other not central either (data/faces: Jerry
    # Seinfeld beside Julia Louis-Dreyfus): the largest is the label's
    big, other = _place(1, (0, 40, 110, 200), 300), _place(2, (150, 180, 230, 260), 300)
    assert subject_face([other, big]) == 1
    # a central largest face stays the label's, whatever else is central
    assert subject_face([_place(1, (60, 60, 190, 190)), _place(2, (110, 110, 140, 140))]) == 1
    # the photo's size unknown: the largest
    assert subject_face([_place(1, (80, 70, 170, 180), None),
                         _place(2, (170, 31, 250, 192), None)]) == 2


def test_eval_labels_the_person_a_centred_photo_is_of_not_a_larger_face_beside_them(
        cli, settings: Settings, tmp_path: Path) -> None:
    """Real LFW photos: in Kate_Capshaw_0002 Steven Spielberg's face, cut by the edge, is
    larger than hers; the labelled face must be hers (like her face in _0001)."""
    folder = tmp_path / "lfw" / "Kate_Capshaw"
    folder.mkdir(parents=True)
    for photo in sorted((LFW / "Kate_Capshaw").iterdir()):
        (folder / photo.name).symlink_to(photo)
    url = str(settings.database_url)
    result = run_cli(cli, "-d", url, "index", str(folder), "--model-pack", str(PACK))
    assert result.exit_code == 0, result.output
    with open_database(settings).connect() as conn:
        pack = find_pack(conn, None, sole_fallback=True)
        faces, places = load_faces(conn, pack), faces_with_paths(conn, pack)
    labels = read_labels(folder.parent, None)
    truth, missing = label_main_faces(faces, places, labels)
    assert missing == 0
    second = [p for p in places if p.path.endswith("_0002.jpg")]
    assert len(second) >= 2  # her face and his
    labelled = {f for f, t in zip(faces.ids.tolist(), truth.tolist(), strict=True) if t}
    assert len(labelled) == 2
    row = {f: i for i, f in enumerate(faces.ids.tolist())}
    first = next(f for f in labelled if all(f != p.face_id for p in second))
    hers = next(f for f in labelled if f != first)
    largest = max(second, key=lambda p: p.area).face_id
    assert hers != largest
    e = faces.embeddings

    def cos(a: int, b: int) -> float:
        return float(e[row[a]] @ e[row[b]])

    assert cos(hers, first) > 0.3 > cos(largest, first)  # the same woman; not him


def test_eval_labels_every_photo_index_catalogues(tmp_path: Path) -> None:
    """`rbv eval` reads the labelled photos `rbv index` catalogues: one list of image
    suffixes (a .gif or .jfif photo is labelled too)."""
    from rbv.media.sniff import IMAGE_SUFFIXES

    for suffix in IMAGE_SUFFIXES:
        (tmp_path / "ada").mkdir(exist_ok=True)
        (tmp_path / "ada" / f"photo{suffix}").write_bytes(b"")
    (tmp_path / "ada" / "notes.txt").write_text("not a photo")
    labels = read_labels(tmp_path)
    assert sorted(p.suffix for p in labels) == sorted(IMAGE_SUFFIXES)
    assert set(labels.values()) == {"ada"}
