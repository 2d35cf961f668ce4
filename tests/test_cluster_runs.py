"""`rbv cluster` on real faces in a real database: incremental stability, manual
decisions surviving --full, same-photo constraints, SQL resets, the run lock."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import psycopg
import pytest

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.evidence import library_impostor
from rbv.cluster.knn import build_knn_graph, ordered_knn_graph
from rbv.cluster.methods import Method
from rbv.config import Settings
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.jobs.grouping.estimate import (
    ESTIMATE_SAMPLE,
    estimate_from_faces,
    estimate_impostor,
    sample_rows,
)
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from rbv.store.queries.assignments import create_persons
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.pack_lookup import pack_files, pack_settings
from rbv.store.queries.packs import register_pack
from rbv.store.server.connection import Database
from rbv.store.server.locks import person_lock
from tests.conftest import FACES, SFACE_THRESHOLD, cluster_photos, run_cli
from tests.support.synthetic_faces import synthetic

pytestmark = pytest.mark.slow  # ~8 s: full and incremental runs of every method


def _cluster(cli, settings: Settings, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = run_cli(cli, "-d", str(settings.database_url), "cluster", "--model-pack",
                     "scrfd_sface", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _assignments(settings: Settings) -> dict[int, str | None]:
    with open_database(settings).connect() as conn:
        return {f: (str(p) if p else None) for f, p in conn.execute(
            "SELECT id, person_id FROM face_detections ORDER BY id")}


def _main_faces(settings: Settings) -> dict[int, str]:
    """face id → identity for the largest face of each photo under data/faces."""
    with open_database(settings).connect() as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT ON (f.image_id) f.id, p.path FROM face_detections f
            JOIN image_paths p ON p.image_id = f.image_id
            ORDER BY f.image_id, (f.x2 - f.x1) * (f.y2 - f.y1) DESC
            """).fetchall()
    return {f: Path(p).parent.name for f, p in rows if Path(p).is_relative_to(FACES)}


def test_incremental_run_keeps_person_ids_and_joins_new_faces_to_known_people(
    cli, faces_settings: Settings, sface_analyzer
) -> None:
    first = _cluster(cli, faces_settings, "--threshold", str(SFACE_THRESHOLD))
    assert first["new_persons"] > 0 and first["matched"] == 0
    before = _assignments(faces_settings)
    assert None not in before.values()

    db = open_database(faces_settings)
    run_index(db, faces_settings, cluster_photos(later=True), analyzer=sface_analyzer)
    second = _cluster(cli, faces_settings, "--threshold", str(SFACE_THRESHOLD))
    after = _assignments(faces_settings)

    assert {f: after[f] for f in before} == before  # earlier faces kept their person
    new_faces = set(after) - set(before)
    assert second["considered"] == len(new_faces) > 0
    identity = _main_faces(faces_settings)
    # The person of each identity: where most of its earlier faces are.
    person_of = {
        name: Counter(before[f] for f in before if identity.get(f) == name).most_common(1)[0][0]
        for name in set(identity.values())
    }
    new_labelled = [f for f in new_faces if f in identity]
    joined = [f for f in new_labelled if after[f] == person_of[identity[f]]]
    assert second["matched"] >= len(joined)
    # Most new photos of known people join their person; none joins a wrong one.
    assert len(joined) >= 0.75 * len(new_labelled), (len(joined), len(new_labelled))
    known_persons = set(before.values())
    wrong = [f for f in new_labelled if after[f] in known_persons
             and after[f] != person_of[identity[f]]]
    assert wrong == []


def test_manual_name_merge_and_not_this_person_survive_full_recluster(
    cli, faces_settings: Settings
) -> None:
    url = str(faces_settings.database_url)
    # A strict threshold splits some identities: a realistic reason to merge by hand.
    _cluster(cli, faces_settings, "--threshold", "0.7")
    identity = _main_faces(faces_settings)
    before = _assignments(faces_settings)
    by_person: dict[str, list[int]] = {}
    for f, p in before.items():
        by_person.setdefault(str(p), []).append(f)
    split = [sorted({str(before[f]) for f in identity if identity[f] == name},
                    key=lambda p: -len(by_person[p]))
             for name in sorted(set(identity.values()))]
    parts = next(p for p in split if len(p) >= 2)  # some identity is split at 0.7
    target, source = parts[0], parts[1]

    assert run_cli(cli, "-d", url, "persons", "name", target, "Angelina").exit_code == 0
    merged = run_cli(cli, "-d", url, "persons", "merge", "Angelina", source)
    assert merged.exit_code == 0, merged.output
    merged_faces = set(by_person[target]) | set(by_person[source])
    # Reject one of Obama's faces from his person.
    obama_face = next(f for f in sorted(identity) if identity[f] == "Barack_Obama")
    obama = str(before[obama_face])
    rejected = run_cli(cli, "-d", url, "persons", "not-this-person", obama, str(obama_face))
    assert rejected.exit_code == 0, rejected.output

    for method in ("evidence", "connected", "agglomerative", "hdbscan"):
        setting = (("--budget", "10") if method == "evidence"
                   else ("--threshold", str(SFACE_THRESHOLD)))
        report = _cluster(cli, faces_settings, "--full", "--method", method, *setting)
        assert report["faces"] == len(before)
        after = _assignments(faces_settings)
        assert {after[f] for f in merged_faces} == {target}, method
        assert after[obama_face] != obama, method
        listed = run_cli(cli, "-d", url, "persons", "list", "--json", "--limit", "0")
        names = {p["id"]: p["name"] for p in json.loads(listed.stdout)}
        assert names[target] == "Angelina", method
        assert source not in names  # merged away, never listed again


@pytest.mark.parametrize("method", ["evidence", "connected", "agglomerative", "hdbscan"])
def test_no_person_holds_two_faces_of_one_photo(cli, faces_settings: Settings,
                                                 method: str) -> None:
    # A setting so loose that similarity alone would lump the group photos together.
    loose = ("--budget", "1e12") if method == "evidence" else ("--threshold", "0.05")
    _cluster(cli, faces_settings, "--full", "--method", method, *loose)
    with open_database(faces_settings).connect() as conn:
        groups = conn.execute("SELECT count(*) FROM (SELECT image_id FROM face_detections "
                              "GROUP BY image_id HAVING count(*) >= 3) g").fetchone()
        doubles = conn.execute(
            "SELECT person_id, image_id, count(*) FROM face_detections "
            "GROUP BY person_id, image_id HAVING count(*) > 1").fetchall()
    assert groups and groups[0] >= 3  # the group photos are really there
    assert doubles == []


def test_a_full_run_over_an_approximate_graph_moves_faces_alike_together_and_keeps_all(
        cli, faces_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the exact graph's limit a full run puts the faces in the order of the
    graph's inverted lists, in place, before clustering (the merge loop then finds a
    person's faces together in memory): the same persons as in the order they were
    read, and every decision kept (a name, a face rejected from its person)."""
    from rbv.jobs.grouping import cluster as cluster_job

    monkeypatch.setattr(cluster_job, "ordered_knn_graph", partial(ordered_knn_graph,
                                                                  exact_limit=0))
    url = str(faces_settings.database_url)
    _cluster(cli, faces_settings, "--full")
    persons = Counter(p for p in _assignments(faces_settings).values())
    named = str(persons.most_common(1)[0][0])
    rejected = max(f for f, p in _assignments(faces_settings).items() if p == named)
    assert run_cli(cli, "-d", url, "persons", "name", named, "Angelina").exit_code == 0
    assert run_cli(cli, "-d", url, "persons", "not-this-person", named,
                   str(rejected)).exit_code == 0

    def partition() -> set[frozenset[int]]:
        faces: dict[str | None, set[int]] = {}
        after = _assignments(faces_settings)
        for f, p in after.items():
            faces.setdefault(p, set()).add(f)
        assert after[rejected] != named and sum(p == named for p in after.values()) > 1
        return {frozenset(v) for v in faces.values()}

    moved: list[np.ndarray] = []
    together = cluster_job.ordered_knn_graph

    def spy(*args):  # type: ignore[no-untyped-def]
        out = together(*args)
        moved.append(out[0].ids.copy())
        return out

    def unmoved(faces, embeddings, k):  # type: ignore[no-untyped-def]
        return faces, embeddings, build_knn_graph(embeddings, k, exact_limit=0)

    monkeypatch.setattr(cluster_job, "ordered_knn_graph", unmoved)
    _cluster(cli, faces_settings, "--full")
    as_read = partition()
    with open_database(faces_settings).transaction() as conn:  # else "nothing changed"
        conn.execute("UPDATE face_detections SET person_id = NULL WHERE id = "
                     "(SELECT min(id) FROM face_detections WHERE assigned_by <> 'manual')")
    monkeypatch.setattr(cluster_job, "ordered_knn_graph", spy)
    _cluster(cli, faces_settings, "--full")
    assert len(moved) == 1 and not np.array_equal(moved[0], np.sort(moved[0]))
    assert partition() == as_read
    listed = run_cli(cli, "-d", url, "persons", "list", "--json", "--limit", "0")
    assert {p["id"]: p["name"] for p in json.loads(listed.stdout)}[named] == "Angelina"


def test_sql_reset_then_cluster_rebuilds_persons_without_touching_embeddings(
    cli, faces_settings: Settings
) -> None:
    _cluster(cli, faces_settings, "--threshold", str(SFACE_THRESHOLD))
    db = open_database(faces_settings)
    with db.transaction() as conn:
        embeddings = conn.execute("SELECT face_id, embedding FROM face_embeddings "
                                  "ORDER BY face_id").fetchall()
        conn.execute("UPDATE face_detections SET person_id = NULL")
        conn.execute("DELETE FROM persons")
    report = _cluster(cli, faces_settings, "--threshold", str(SFACE_THRESHOLD))
    assert report["considered"] == len(embeddings) and report["new_persons"] > 0
    with db.connect() as conn:
        unassigned = conn.execute("SELECT count(*) FROM face_detections WHERE person_id IS NULL"
                                  ).fetchone()
        again = conn.execute("SELECT face_id, embedding FROM face_embeddings "
                             "ORDER BY face_id").fetchall()
    assert unassigned == (0,)
    for (a, x), (b, y) in zip(embeddings, again, strict=True):
        assert a == b
        np.testing.assert_array_equal(x.to_numpy(), y.to_numpy())


def test_full_run_with_nothing_changed_keeps_persons_and_any_change_reclusters(
    cli, faces_settings: Settings
) -> None:
    threshold = ("--threshold", str(SFACE_THRESHOLD))
    first = _cluster(cli, faces_settings, "--full", *threshold)
    assert first["new_persons"] > 0
    before = _assignments(faces_settings)
    again = _cluster(cli, faces_settings, "--full", *threshold)
    assert any("nothing changed since the last full run" in n for n in again["notes"])
    assert _assignments(faces_settings) == before
    # Another setting, or one face moved by hand in SQL: a real re-cluster.
    other = _cluster(cli, faces_settings, "--full", "--threshold", "0.5")
    assert not any("nothing changed" in n for n in other["notes"])
    with open_database(faces_settings).transaction() as conn:
        conn.execute("UPDATE face_detections SET person_id = NULL "
                     "WHERE id = (SELECT min(id) FROM face_detections)")
    fresh = _cluster(cli, faces_settings, "--full", "--threshold", "0.5")
    assert not any("nothing changed" in n for n in fresh["notes"])
    assert None not in _assignments(faces_settings).values()


def test_second_run_exits_with_a_clear_message_while_one_holds_the_lock(
    cli, faces_settings: Settings
) -> None:
    db = open_database(faces_settings)
    with db.connect() as conn:
        pack_id = conn.execute("SELECT id FROM model_packs").fetchone()[0]  # type: ignore[index]
    with person_lock(db, pack_id, "scrfd_sface"):
        result = run_cli(cli, "-d", str(faces_settings.database_url), "cluster")
    assert result.exit_code == 1
    assert result.output.startswith("Error: another clustering run or person edit is running "
                                    "on pack scrfd_sface")
    ok = run_cli(cli, "-d", str(faces_settings.database_url), "cluster")
    assert ok.exit_code == 0, ok.output
    with db.connect() as conn:
        runs = conn.execute("SELECT command, status, parameters->>'method', counts->>'faces' "
                            "FROM runs WHERE command = 'cluster'").fetchall()
    assert len(runs) == 1 and runs[0][:3] == ("cluster", "ok", "evidence")
    assert int(runs[0][3]) > 0


def test_dry_run_writes_nothing_and_threshold_comes_from_the_pack(
    cli, faces_settings: Settings
) -> None:
    url = str(faces_settings.database_url)
    plain = run_cli(cli, "-d", url, "cluster", "--dry-run")
    assert plain.exit_code == 0, plain.output
    # No calibration stored: the built-in one for SFace, found by the recognizer's hash.
    said = " ".join(plain.output.split())  # the setting wraps at the terminal's width
    assert ("evidence: faces grouped so that at most 10 pairs of different people may join "
            "in the whole library (rbv's default budget); two lone faces join at "
            "similarity") in said
    assert "impostor" not in said  # the model's internals: --verbose
    verbose = run_cli(cli, "-d", url, "cluster", "--dry-run", "--verbose")
    said = " ".join(verbose.output.split())
    assert "evidence, budget 10 (rbv's default budget); impostor model mu 0.100" in said
    assert "built in for SFace" in said
    connected = run_cli(cli, "-d", url, "cluster", "--dry-run", "--method", "connected")
    assert "connected at similarity 0.52 (built in for SFace" in connected.output
    assert "Dry run: nothing was written." in plain.output
    with open_database(faces_settings).transaction() as conn:
        assert conn.execute("SELECT count(*) FROM persons").fetchone() == (0,)
        conn.execute("UPDATE model_packs SET settings = %s",
                     (json.dumps({"thresholds": {"connected": 0.42}}),))
    calibrated = run_cli(cli, "-d", url, "cluster", "--method", "connected")
    assert calibrated.exit_code == 0, calibrated.output
    assert "connected at similarity 0.42 (the pack's calibrated value)" in calibrated.output


def test_an_incremental_run_reclusters_everything_once_the_library_has_grown_by_a_quarter(
    cli, faces_settings: Settings, sface_analyzer
) -> None:
    """Evidence linkage asks more of a merge in a bigger library, and known persons never
    merge or split later: persons made when the library was small would keep merges the
    grown library refuses. So an incremental run re-clusters every face (as --full) once
    the pack holds 1.25 times the faces its persons were made with; names and manual
    decisions stay."""
    url = str(faces_settings.database_url)
    first = _cluster(cli, faces_settings)
    made_with = first["faces"]
    with psycopg.connect(url) as conn:
        recorded = conn.execute("SELECT settings->'persons_made_with' FROM model_packs "
                                "WHERE name = 'scrfd_sface'").fetchone()
    assert recorded == (made_with,)
    identity = _main_faces(faces_settings)
    before = _assignments(faces_settings)
    obama_face = next(f for f in sorted(identity) if identity[f] == "Barack_Obama")
    obama = str(before[obama_face])
    assert run_cli(cli, "-d", url, "persons", "name", obama, "Barack").exit_code == 0
    stranger = next(f for f in sorted(identity) if identity[f] != "Barack_Obama")
    moved = run_cli(cli, "-d", url, "persons", "move", str(stranger), "--to", "Barack")
    assert moved.exit_code == 0, moved.output

    # A few new photos (under a quarter more): an ordinary incremental run.
    run_index(open_database(faces_settings), faces_settings, cluster_photos(later=True),
              analyzer=sface_analyzer)
    small = _cluster(cli, faces_settings)
    assert small["full"] is False and small["considered"] > 0
    assert not any("has grown" in note for note in small["notes"])
    after_small = _assignments(faces_settings)
    assert {f: after_small[f] for f in before} == {**before, stranger: obama}

    # As if the persons had been made when the library held a third of its faces.
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE model_packs SET settings = jsonb_set(settings, "
                     "'{persons_made_with}', to_jsonb(%s::int))", (len(after_small) // 3,))
    text = run_cli(cli, "-d", url, "cluster")
    assert text.exit_code == 0, text.output
    assert (f"The library has grown from {len(after_small) // 3:,} to {len(after_small):,} "
            "faces since its persons were made") in text.output
    assert "Assigned" in text.output  # reported as the full run it was
    regrouped = _assignments(faces_settings)
    assert regrouped[stranger] == obama  # the manual move holds
    listed = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json",
                                "--limit", "0").stdout)
    assert {p["name"] for p in listed} >= {"Barack"}
    with open_database(faces_settings).connect() as conn:
        doubles = conn.execute(
            "SELECT 1 FROM face_detections WHERE person_id IS NOT NULL "
            "GROUP BY person_id, image_id HAVING count(*) > 1").fetchall()
    assert doubles == []
    # Re-clustered at this size: the next run is incremental again.
    again = _cluster(cli, faces_settings)
    assert again["full"] is False and again["considered"] == 0
    # A pack clustered by an rbv before this rule has no count: the next run records the
    # pack's size and stays incremental (no surprise re-cluster after the upgrade).
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE model_packs SET settings = settings - 'persons_made_with'")
    upgraded = _cluster(cli, faces_settings)
    assert upgraded["full"] is False
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT settings->'persons_made_with' FROM model_packs "
                            "WHERE name = 'scrfd_sface'").fetchone() == (len(regrouped),)


@pytest.mark.parametrize("method", ["evidence", "connected"])
def test_a_batch_of_new_faces_too_big_for_index_searches_gets_the_same_persons(
        cli, faces_settings: Settings, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """Above HNSW_BATCH_LIMIT new faces, known persons are found in memory, not through
    the HNSW index: the same neighbours (exact on a small library), so the same persons."""
    from rbv.jobs.grouping import cluster_update

    extra = () if method == "evidence" else ("--threshold", str(SFACE_THRESHOLD))
    _cluster(cli, faces_settings, "--full", "--method", method, *extra)
    with open_database(faces_settings).connect() as conn:
        new = [f for (f,) in conn.execute(
            "SELECT id FROM face_detections ORDER BY md5(id::text) LIMIT 40")]
    known = {p for f, p in _assignments(faces_settings).items() if f not in new}

    def incremental(limit: int) -> tuple[dict[int, str | None], list[list[int]]]:
        """The new faces' known persons, and the grouping of the others."""
        with open_database(faces_settings).connect() as conn:
            conn.execute("UPDATE face_detections SET person_id = NULL WHERE id = ANY(%s)",
                         (new,))
            conn.commit()
        monkeypatch.setattr(cluster_update, "HNSW_BATCH_LIMIT", limit)
        report = _cluster(cli, faces_settings, "--method", method, *extra)
        assert report["considered"] == len(new)
        found = {f: p for f, p in _assignments(faces_settings).items() if f in new}
        groups: dict[str | None, list[int]] = {}
        for f, p in found.items():
            if p not in known:
                groups.setdefault(p, []).append(f)
        return ({f: p for f, p in found.items() if p in known},
                sorted(sorted(g) for g in groups.values()))

    searched, in_memory = incremental(5_000), incremental(0)
    assert len(searched[0]) >= 10  # many rejoin their persons (18 of 40 with evidence)
    assert in_memory == searched


def test_a_full_run_estimates_the_impostor_model_from_the_faces_it_read_as_from_a_sample(
        db: Database) -> None:
    """A full run on a recognizer rbv has no calibration for estimates the impostor model
    from the faces it has read (and the hidden persons' faces, but no face marked not a
    face) instead of reading a sample again: the model the database's sample gives, the
    same faces in the same order; the pack's settings and the run's record hold it."""
    x, _, images = synthetic(3_000, 64, seed=5)
    with db.transaction() as conn:
        image_ids = [int(r[0]) for r in conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) SELECT md5(g::text) || "
            "md5('y' || g::text), 1, 'ok' FROM generate_series(1, %s) g RETURNING id",
            (len(x),))]
        pack = register_pack(conn, "unknown", {"r.onnx": "unknown"}, x.shape[1])
        insert_faces(conn, (NewFace(image_ids[int(i)], pack.id, (0, 0, 100, 100), None, 0.9,
                                    None, e) for i, e in zip(images, x, strict=True)))
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM face_detections ORDER BY id")]
        hidden = create_persons(conn, pack, 1, "manual")[0]
        conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = 'manual' "
                     "WHERE id = ANY(%s)", (hidden, ids[:100]))
        conn.execute("UPDATE persons SET hidden = true WHERE id = %s", (hidden,))
        conn.execute("INSERT INTO not_faces (face_id) SELECT unnest(%s::bigint[])",
                      (ids[100:120],))
    with db.connect() as conn:
        setting = resolve_setting(pack_settings(conn, pack.id), pack_files(conn, pack.id),
                                  Method.evidence)
        assert setting.needs_estimate
        sampled = estimate_impostor(conn, pack, setting)
        visible = load_faces(conn, pack, hidden=False)
        assert len(visible) == len(x) - 120
        read = estimate_from_faces(conn, pack, setting, visible)
    assert sampled.impostor is not None and read.impostor == sampled.impostor
    assert read.impostor_source == sampled.impostor_source
    # the visible faces alone are another sample: another model
    rows = sample_rows(visible.ids, ESTIMATE_SAMPLE)
    assert library_impostor(visible.embeddings[rows], visible.image_ids[rows])[0] \
        != sampled.impostor
    cluster_pack(db, "unknown", ClusterOptions(method=Method.evidence, full=True))
    with db.connect() as conn:
        stored = pack_settings(conn, pack.id)["impostor"]
        row = conn.execute("SELECT parameters FROM runs WHERE command = 'cluster' "
                           "ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None and row[0]["setting"]["impostor"] == sampled.impostor.as_dict()
    assert {k: stored[k] for k in ("mu", "sigma", "tau")} == sampled.impostor.as_dict()
