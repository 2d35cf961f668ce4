"""Issue 64, part 2: faces compared as the people they are, not as the age they were.
Once faces have estimated ages a full clustering (and the reviews) centre each face on
the library's own faces of about its age (:mod:`rbv.cluster.ages`). The pure rules on
small arrays; the command on real photos with the real age model."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import psycopg

from rbv.cluster.ages import AgeCentres
from rbv.cluster.defaults import ImpostorModel
from rbv.config import Settings
from rbv.store import open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack
from tests.conftest import CLUSTER_IDENTITIES, SHARED, run_cli

MODEL = SHARED / "models" / "extra" / "faceres_age_gender.onnx"
DIM = 64
STRANGERS = ImpostorModel(0.0, 0.125, 0.03)  # random directions in 64 dimensions


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _mean_similarity(x: np.ndarray) -> float:
    s = x @ x.T
    return float(s[np.triu_indices(len(x), 1)].mean())


class _Library:
    """Faces made of an age part (children share one direction), a person part and
    noise, with their ages."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.child = _unit(self.rng.normal(size=DIM))
        self.faces: list[np.ndarray] = []
        self.ages: list[float] = []

    def person(self) -> np.ndarray:
        return _unit(self.rng.normal(size=DIM))

    def photos(self, who: np.ndarray, age: float, n: int) -> np.ndarray:
        childish = max(0.0, (14 - age) / 14)  # a baby most, a teenager hardly
        x = _unit(1.2 * childish * self.child + who
                  + 0.6 * _unit(self.rng.normal(size=(n, DIM))))
        self.faces.extend(x)
        self.ages.extend([age] * n)
        return x

    def everyone(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.faces, np.float32), np.array(self.ages)

    def strangers(self, n: int, ages: tuple[float, float]) -> None:
        for age in self.rng.uniform(*ages, size=n):
            self.photos(self.person(), float(age), 1)


def _centred(lib: _Library) -> tuple[AgeCentres, np.ndarray, np.ndarray]:
    x, ages = lib.everyone()
    centres = AgeCentres.measure(x, ages, STRANGERS)
    assert centres is not None
    return centres, x, ages


def test_child_strangers_stop_looking_alike_and_a_child_meets_the_adult_they_became() -> None:
    lib = _Library()
    lib.strangers(150, (1, 8))
    lib.strangers(300, (25, 60))
    ada = lib.person()
    young, grown = lib.photos(ada, 5, 1), lib.photos(ada, 35, 1)
    centres, x, ages = _centred(lib)
    children = ages < 8
    before = _mean_similarity(x[children][:150])
    moved = centres.centred(x, ages)
    after = _mean_similarity(moved[children][:150])
    assert before > 0.25 and abs(after) < 0.08, (before, after)
    ada_before = float(young[0] @ grown[0])
    ada_after = float(centres.centred(young, np.array([5.0]))[0]
                      @ centres.centred(grown, np.array([35.0]))[0])
    assert ada_after > ada_before + 0.1, (ada_before, ada_after)


def test_a_child_with_most_photos_of_their_age_still_looks_like_themselves() -> None:
    """Most photos at age 3 are one child's: an average of faces would be that child,
    and centring on it would leave the child's photos looking like strangers."""
    lib = _Library(1)
    lib.strangers(8, (2, 4))
    lib.strangers(300, (25, 60))
    own = lib.photos(lib.person(), 3, 80)
    centres, _, _ = _centred(lib)
    before = _mean_similarity(own)
    after = _mean_similarity(centres.centred(own, np.full(len(own), 3.0)))
    assert after > 0.5 * before, (before, after)


def test_a_lone_elder_keeps_who_they_are() -> None:
    lib = _Library(2)
    lib.strangers(300, (20, 50))
    own = lib.photos(lib.person(), 88, 4)
    centres, _, _ = _centred(lib)
    before = _mean_similarity(own)
    after = _mean_similarity(centres.centred(own, np.full(len(own), 88.0)))
    assert after > 0.6 * before, (before, after)  # centred on their own mean: ~0


def test_a_library_with_too_few_ages_is_compared_as_the_recognizer_made_it() -> None:
    lib = _Library(3)
    lib.strangers(300, (20, 50))
    x, ages = lib.everyone()
    ages[: len(ages) // 2 + 1] = np.nan  # under half the faces have an age
    assert AgeCentres.measure(x, ages, STRANGERS) is None
    assert AgeCentres.measure(x[:10], np.full(10, 30.0), STRANGERS) is None


def test_a_full_run_compares_faces_by_age_once_enrich_gave_them_ages(
    cli, faces_settings: Settings
) -> None:
    url = str(faces_settings.database_url)
    first = run_cli(cli, "-d", url, "cluster", "--full", "--json")
    assert first.exit_code == 0, first.output
    assert not any("compared by age" in n for n in json.loads(first.stdout)["notes"])
    raw = _persons_of_identities(faces_settings)
    enriched = run_cli(cli, "-d", url, "enrich", "--model-pack", "scrfd_sface",
                       "--attribute-model", str(MODEL))
    assert enriched.exit_code == 0, enriched.output
    again = run_cli(cli, "-d", url, "cluster", "--full", "--json")
    assert again.exit_code == 0, again.output
    notes = json.loads(again.stdout)["notes"]
    # the ages are an input: the run is not "nothing changed since the last full run"
    assert not any("nothing changed" in n for n in notes), notes
    assert any("centred by estimated age" in n for n in notes), notes
    # asked as made, the run compares them as the recognizer made them, and the runs
    # after it keep that choice (nothing changed: had they gone back to the recognizer's
    # default, by age for SFace, they would have re-clustered)
    for asked, centred in (("--as-made", False), (None, None), ("--by-age", True),
                           (None, None)):
        run = run_cli(cli, "-d", url, "cluster", "--full", "--json", *filter(None, [asked]))
        assert run.exit_code == 0, run.output
        said = json.loads(run.stdout)["notes"]
        if centred is None:
            assert any("nothing changed" in n for n in said), said
        else:
            assert any("centred by estimated age" in n for n in said) == centred, said
    # no person holds two of the six people, and none of them is in more pieces than
    # when compared as the recognizer made them (Jennifer Aniston: 3 then)
    aged = _persons_of_identities(faces_settings)
    pieces = [p for persons in aged.values() for p in persons]
    assert len(pieces) == len(set(pieces)), aged
    assert all(len(aged[k]) <= len(raw[k]) for k in raw), (aged, raw)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM face_attributes").fetchone()[0] >= 30


def _persons_of_identities(settings: Settings) -> dict[str, set[object]]:
    """Per identity (the photo's folder) of CLUSTER_IDENTITIES: the persons its faces
    are in."""
    db = open_database(settings)
    with db.connect() as conn:
        pack = find_pack(conn, "scrfd_sface")
        faces = load_faces(conn, pack)
        places = faces_with_paths(conn, pack)
    person = dict(zip(faces.ids.tolist(), faces.person_ids, strict=True))
    out: dict[str, set[object]] = defaultdict(set)
    for place in places:
        folder = Path(place.path).parent.name
        if folder in CLUSTER_IDENTITIES:
            out[folder].add(person[place.face_id])
    assert len(out) == len(CLUSTER_IDENTITIES)
    return out


def test_a_first_run_of_a_library_with_ages_groups_by_age(cli, faces_settings: Settings
                                                         ) -> None:
    """The nightly `rbv cluster` of a new library (no `--full` ever) groups by age too:
    its first run is a full one; an incremental run would group its new faces as the
    recognizer made them."""
    url = str(faces_settings.database_url)
    enriched = run_cli(cli, "-d", url, "enrich", "--model-pack", "scrfd_sface",
                       "--attribute-model", str(MODEL))
    assert enriched.exit_code == 0, enriched.output
    first = run_cli(cli, "-d", url, "cluster", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["full"] is True
    assert any("centred by estimated age" in n for n in report["notes"]), report["notes"]
    again = json.loads(run_cli(cli, "-d", url, "cluster", "--json").stdout)
    assert again["full"] is False  # later runs are incremental, as before
