"""`rbv eras`: splitting a person's faces into eras, on small synthetic arrays and on a
real person named by `rbv import-folders`."""

from __future__ import annotations

import json

import numpy as np
import psycopg

from rbv.cluster.eras import EraParams, split_eras
from rbv.config import Settings
from tests.conftest import import_folders, run_cli


def test_eras_anchor_attach_by_similarity_and_year_and_keep_thin_fragments() -> None:
    rng = np.random.default_rng(4)
    basis = np.eye(64)
    a, b, u, v, w = basis[:5]
    side = np.sqrt(1 - 0.62**2)  # similarity 0.62 to the anchor: between the attach
    near_f, near_g = 0.62 * a + side * u, 0.62 * a + side * v  # and sub-cluster cuts

    def tight(centre: np.ndarray, n: int) -> np.ndarray:
        return centre + 0.01 * rng.normal(size=(n, 64))

    x = np.concatenate([tight(a, 25), tight(b, 25), tight(near_f, 3), tight(near_g, 3),
                        tight(w, 3)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    years = np.r_[np.full(25, 1995.0), np.full(25, 2015.0),
                  [1998.0, 1998.0, np.nan],  # near A, same era: attached
                  [2012.0, 2012.0, 2012.0],  # near A, 17 years later: kept apart
                  [1995.0, 1995.0, 1995.0]]  # right years, but far from every anchor
    eras = split_eras(x, years, np.arange(len(x), dtype=np.int64), EraParams())
    anchored = [e for e in eras if not e.thin]
    assert {e.dominant_year for e in anchored} == {1995, 2015}
    era_a = next(e for e in anchored if e.dominant_year == 1995)
    assert set(era_a.rows) == set(range(25)) | {50, 51, 52}
    assert era_a.first_year == 1995 and era_a.last_year == 1998
    thin = sorted(sorted(e.rows) for e in eras if e.thin)
    assert thin == [[53, 54, 55], [56, 57, 58]]


def test_eras_of_an_imported_person_and_apply_splits_it(cli, faces_settings: Settings) -> None:
    import_folders(cli, faces_settings)
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        names = dict(conn.execute(
            "SELECT n.name, count(f.id) FROM person_names n JOIN persons p ON p.id = n.person_id "
            "LEFT JOIN face_detections f ON f.person_id = p.id GROUP BY n.name").fetchall())

    eras = run_cli(cli, "-d", str(faces_settings.database_url), "eras", "Angelina_Jolie",
                   "--anchor-min", "3", "--json")
    assert eras.exit_code == 0, eras.output
    doc = json.loads(eras.stdout)
    assert sum(e["faces"] for e in doc["eras"]) == doc["faces"] == names["Angelina_Jolie"]
    assert all(e["faces"] >= 3 for e in doc["eras"] if not e["thin"])

    # --apply: every anchored era after the largest becomes a new, named, manual person
    split = run_cli(cli, "-d", str(faces_settings.database_url), "eras", "Angelina_Jolie",
                    "--anchor-min", "1", "--sub-cluster-similarity", "0.95", "--apply", "--json")
    assert split.exit_code == 0, split.output
    applied = json.loads(split.stdout)
    anchored = [e for e in applied["eras"] if not e["thin"]]
    assert len(applied["new_persons"]) == len(anchored) - 1 > 0
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        after = dict(conn.execute(
            "SELECT n.name, count(f.id) FROM person_names n JOIN face_detections f "
            "ON f.person_id = n.person_id WHERE n.name LIKE 'Angelina_Jolie%%' "
            "GROUP BY n.name").fetchall())
    assert sum(after.values()) == names["Angelina_Jolie"]  # no face lost
    assert after["Angelina_Jolie"] == anchored[0]["faces"]
    assert all(n.startswith("Angelina_Jolie (") for n in after if n != "Angelina_Jolie")


def test_photos_without_dates_are_said_once(cli, faces_settings: Settings) -> None:
    """Photos without EXIF years: said once, not "no year" on each of a dozen one-face
    fragments (issue 52 #2)."""
    import_folders(cli, faces_settings)
    url = str(faces_settings.database_url)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE images SET taken_at = NULL")
    eras = run_cli(cli, "-d", url, "eras", "Angelina_Jolie", "--sub-cluster-similarity",
                   "0.9", env={"COLUMNS": "80"})
    assert eras.exit_code == 0, eras.output
    doc = json.loads(run_cli(cli, "-d", url, "eras", "Angelina_Jolie", "--sub-cluster-similarity",
                             "0.9", "--json").stdout)
    assert len(doc["eras"]) > 3 and all(e["thin"] for e in doc["eras"])  # fragments
    assert eras.stdout.splitlines() == [
        f"Angelina_Jolie: {doc['faces']} faces, none with an EXIF year.",
        "Their photos carry no date, so eras are by look alone.",
        f"  {len(doc['eras'])} thin fragments: {doc['faces']} faces, 1 each."]
