"""The face lists (:mod:`rbv.jobs.grouping.face_lists`): the search over lists of stored
rows, and incremental ``rbv cluster`` runs that search them, on real faces in a real
database: the same persons as an exact search, the files private and kept up to date,
and a run that cannot use them searching the database's index instead."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from rbv.cluster.knn import nearest_lists, normalize
from rbv.cluster.knn_search import search_stored
from rbv.config import Settings
from rbv.jobs.grouping import cluster_update, face_lists
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.jobs.persons import edit_log
from rbv.jobs.persons.face_boxes import move_box
from rbv.store import open_database
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.server.connection import Database

NOBODY = 65534


def _stored(x: np.ndarray, home: np.ndarray, nlist: int) -> tuple[np.ndarray, ...]:
    """``x``'s rows in their lists' order, the offsets, and each stored row's index."""
    order = np.argsort(home, kind="stable")
    return x[order], np.searchsorted(home[order], np.arange(nlist + 1)), order


def test_lists_probed_whole_give_each_query_its_exact_nearest_rows() -> None:
    rng = np.random.default_rng(3)
    x = normalize(rng.normal(size=(700, 16)))
    centroids = normalize(rng.normal(size=(24, 16)))
    home = nearest_lists(x, centroids, 1)[:, 0]
    base_rows, base_offsets, base = _stored(x[:600], home[:600], 24)
    more_rows, more_offsets, more = _stored(x[600:], home[600:], 24)
    names = np.concatenate([base, 600 + more])  # stored row -> row of x
    queries = normalize(rng.normal(size=(40, 16)))
    parts = [(base_rows, base_offsets), (more_rows, more_offsets)]

    found, sims = search_stored(queries, nearest_lists(queries, centroids, 24), parts, 9)
    exact = np.argsort(-(queries @ x.T), axis=1, kind="stable")[:, :9]
    assert (names[found] == exact).all()
    assert np.allclose(sims, np.take_along_axis(queries @ x.T, exact, 1), atol=1e-6)

    # three lists probed: the best rows of those lists, nothing of the others
    probes = nearest_lists(queries, centroids, 3)
    found, sims = search_stored(queries, probes, parts, 9)
    for q in range(len(queries)):
        allowed = np.flatnonzero(np.isin(home, probes[q]))
        scores = x[allowed] @ queries[q]
        best = allowed[np.argsort(-scores, kind="stable")[:9]]
        got = names[found[q][found[q] >= 0]]
        assert list(got) == list(best[:len(got)])
        assert len(got) == min(9, len(allowed))


def test_fewer_rows_than_asked_are_padded() -> None:
    x = normalize(np.eye(4, 8, dtype=np.float32) + 0.1)
    rows, offsets, _ = _stored(x, np.array([0, 0, 1, 1]), 2)
    found, sims = search_stored(x[:1], np.array([[0]]), [(rows, offsets)], 5)
    assert list(found[0][:2]) != [-1, -1] and list(found[0][2:]) == [-1, -1, -1]
    assert np.isneginf(sims[0][2:]).all()
    # lists probed that hold no row, in either part: nothing found, no error
    empty = np.array([0, 0, 4])  # list 0 empty, list 1 the four rows
    found, sims = search_stored(x[:2], np.array([[0], [0]]),
                                [(rows, empty), (rows[:0], np.zeros(3, np.int64))], 3)
    assert (found == -1).all() and np.isneginf(sims).all()


# --- incremental runs on real faces --------------------------------------------------


def _run(db: Database, said: list[str] | None = None, **options: object) -> None:
    """A run; ``said``: what its progress and its report's notes said."""
    said = said if said is not None else []
    report = cluster_pack(db, "scrfd_sface", ClusterOptions(**options),  # type: ignore[arg-type]
                          said.append)
    said.extend(report.notes)


def _reset(db: Database, faces: list[int]) -> None:
    with db.connect() as conn:
        conn.execute("UPDATE face_detections SET person_id = NULL WHERE id = ANY(%s)",
                     (faces,))
        conn.commit()


def _persons(db: Database) -> dict[int, str]:
    with db.connect() as conn:
        return {f: str(p) for f, p in conn.execute("SELECT id, person_id FROM face_detections")}


def _some_faces(db: Database, n: int, offset: int = 0) -> list[int]:
    with db.connect() as conn:
        return [f for (f,) in conn.execute(
            "SELECT id FROM face_detections ORDER BY md5(id::text) LIMIT %s OFFSET %s",
            (n, offset))]


def _new_faces(db: Database, n: int, seed: int) -> list[int]:
    """``n`` faces of new photos, each near a face of the library (another photo of
    someone known)."""
    rng = np.random.default_rng(seed)
    with db.connect() as conn:
        pack = int(conn.execute("SELECT id FROM model_packs WHERE name = 'scrfd_sface'")
                   .fetchone()[0])
        faces = load_faces(conn, find_pack(conn, "scrfd_sface"),
                           ids=_some_faces(db, n))
        near = normalize(faces.embeddings + rng.normal(0, 0.02, faces.embeddings.shape))
        images = [int(r[0]) for r in conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) SELECT md5(%s || g::text) "
            "|| md5(g::text), 1, 'ok' FROM generate_series(1, %s) g RETURNING id",
            (f"face-lists-{seed}", len(near)))]
        insert_faces(conn, [NewFace(i, pack, (0, 0, 100, 100), None, 0.9, None, e)
                            for i, e in zip(images, near, strict=True)])
        made = [f for (f,) in conn.execute(
            "SELECT id FROM face_detections WHERE image_id = ANY(%s)", (images,))]
        conn.commit()
    return made


def _folder(db: Database) -> Path:
    [folder] = (Path(db.data_dir or "") / "face-lists").iterdir()
    return folder


def _state(db: Database) -> dict:  # type: ignore[type-arg]
    return json.loads((_folder(db) / "lists.json").read_text())


@pytest.fixture
def lists_db(faces_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The indexed faces clustered once, face lists used whatever the library's size."""
    db = open_database(faces_settings)
    _run(db, full=True)
    monkeypatch.setattr(cluster_update, "LISTS_MIN_FACES", 0)
    monkeypatch.setattr(face_lists, "ADDED_SHARE", 100.0)  # a small library: as at 1M
    return db


def test_the_face_lists_give_the_persons_an_exact_search_gives_and_stay_private(
        lists_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    db = lists_db
    new = _some_faces(db, 40)
    _reset(db, new)
    monkeypatch.setattr(cluster_update, "HNSW_BATCH_LIMIT", 0)  # exact, in memory
    monkeypatch.setattr(cluster_update, "LISTS_MIN_FACES", 10**9)
    _run(db)
    exact = _persons(db)
    assert not (Path(db.data_dir or "") / "face-lists").exists()

    _reset(db, new)
    monkeypatch.setattr(cluster_update, "LISTS_MIN_FACES", 0)
    monkeypatch.setattr(face_lists, "SEARCH_BLOCK", 16)  # the new faces searched in blocks
    monkeypatch.setattr(face_lists, "PROBES", 10**6)  # every list: an exact search
    said: list[str] = []
    _run(db, said)
    listed = _persons(db)
    # new persons get new ids: compare who is with whom, and the known persons exactly
    known = {f: p for f, p in exact.items() if f not in new}
    assert {f: p for f, p in listed.items() if f not in new} == known
    assert {f: exact[f] for f in new if exact[f] in known.values()} == \
        {f: listed[f] for f in new if exact[f] in known.values()}
    assert sum(exact[f] in known.values() for f in new) >= 10
    assert any("putting the pack's faces in lists" in s for s in said)

    folder = _folder(db)
    state = _state(db)
    assert state["added"]  # the run's new faces, added after it
    for path in (folder.parent, folder, *folder.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_face_lists_take_new_faces_merge_them_and_are_made_again_when_not_the_databases(
        lists_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    db = lists_db
    every = len(_persons(db))
    _reset(db, _some_faces(db, 10))
    _run(db)
    first = _state(db)
    base = np.load(_folder(db) / first["base"] / "ids.npy")
    assert len(base) == every - 10 and first["added"]

    monkeypatch.setattr(face_lists, "ADDED_SHARE", 0.0)  # merged at once
    _reset(db, _some_faces(db, 5, offset=20))  # in the lists already: nothing to add
    _run(db)
    assert _state(db) == first
    new = _new_faces(db, 6, seed=1)
    assert len(new) == 6
    _run(db)
    merged = _state(db)
    ids = np.load(_folder(db) / merged["base"] / "ids.npy")
    assert merged["added"] is None and merged["base"] != first["base"]
    assert sorted(ids.tolist()) == sorted(_persons(db))  # every face once
    assert set(new) <= set(ids.tolist()) and None not in _persons(db).values()
    assert sorted(p.name for p in _folder(db).iterdir()) == sorted(
        [merged["base"], "lists.json", "lock"])  # the replaced files removed

    # lists made when the library had one face: made again now that it has doubled
    (_folder(db) / "lists.json").write_text(json.dumps(dict(merged, trained_on=1)))
    _reset(db, _some_faces(db, 5, offset=30))
    said: list[str] = []
    _run(db, said)
    assert any("putting the pack's faces in lists" in s for s in said)
    merged = _state(db)  # made of the faces with a person, then the 5 new ones added
    assert merged["trained_on"] == len(np.load(_folder(db) / merged["base"] / "ids.npy")) - 5

    # lists that are not this pack's (another database under the same name, files of
    # another pack): made again
    (_folder(db) / "lists.json").write_text(json.dumps(dict(merged, pack=merged["pack"] + 1)))
    _reset(db, _some_faces(db, 5, offset=40))
    said = []
    _run(db, said)
    assert _state(db)["base"] != merged["base"]
    assert any("putting the pack's faces in lists" in s for s in said)
    assert None not in _persons(db).values()


def test_damaged_face_lists_are_made_again_and_unwritable_ones_leave_the_index_to_search(
        lists_db: Database) -> None:
    db = lists_db
    _reset(db, _some_faces(db, 10))
    _run(db)
    (_folder(db) / "lists.json").write_text("{not json")
    new = _some_faces(db, 10, offset=30)
    _reset(db, new)
    said: list[str] = []
    _run(db, said)
    assert any("putting the pack's faces in lists" in s for s in said), said
    assert _state(db)["version"] and all(_persons(db)[f] != "None" for f in new)

    shutil.rmtree(_folder(db).parent)
    (Path(db.data_dir or "") / "face-lists").write_text("not a folder")
    _reset(db, new)
    said = []
    _run(db, said)
    assert any("could not be used" in s and "searched in the database's index" in s
               for s in said), said
    assert all(_persons(db)[f] != "None" for f in new)


@pytest.mark.skipif(os.geteuid() != 0, reason="a folder of another user needs root")
def test_face_lists_in_a_folder_of_another_user_are_never_read(lists_db: Database) -> None:
    db = lists_db
    _reset(db, _some_faces(db, 10))
    _run(db)
    folder = _folder(db)
    planted = folder.with_name(folder.name + ".theirs")
    shutil.copytree(folder, planted)
    shutil.rmtree(folder)
    planted.rename(folder)
    for path in (folder, *folder.rglob("*")):
        os.chown(path, NOBODY, NOBODY)
    new = _some_faces(db, 10, offset=30)
    _reset(db, new)
    said: list[str] = []
    _run(db, said)
    assert any("not a private folder of this user" in s for s in said), said
    assert all(_persons(db)[f] != "None" for f in new)


def test_a_box_moved_by_hand_is_searched_at_its_new_embedding_and_its_undo_too(
        lists_db: Database, faces_settings: Settings, sface_analyzer) -> None:  # type: ignore[no-untyped-def]
    """Moving a box embeds the face again (a logged edit, as is its undo): the next run
    adds the face at its new embedding to the lists, and its old row is never found."""
    db = lists_db
    _reset(db, _some_faces(db, 10))
    _run(db)  # the lists made
    with db.connect() as conn:
        face, x1, y1, x2, y2 = conn.execute(
            "SELECT id, x1, y1, x2, y2 FROM face_detections WHERE person_id IS NOT NULL "
            "ORDER BY (x2 - x1) * (y2 - y1) DESC LIMIT 1").fetchone()
    shift = (x2 - x1) * 0.15
    for step in ("moved", "undone"):
        if step == "moved":
            move_box(db, faces_settings, face, (round(x1 + shift), round(y1 + shift),
                                                round(x2 + shift), round(y2 + shift)),
                     analyzer=sface_analyzer)
        else:
            edit_log.undo(db, 1)
        with db.connect() as conn:
            now = load_faces(conn, find_pack(conn, "scrfd_sface"), ids=[face]).embeddings[0]
        _reset(db, _some_faces(db, 3, offset=40 + len(step)))
        _run(db)  # a run: the lists take the change
        folder = _folder(db)
        added = folder / _state(db)["added"]
        ids, rows = np.load(added / "ids.npy"), np.load(added / "rows.npy")
        assert np.array_equal(rows[list(ids).index(face)], now), step
        # searched with its own embedding, every list probed: it is found first, as itself
        lists = face_lists._read(folder)
        probes = nearest_lists(now[None], lists.centroids, len(lists.centroids))
        found, sims = search_stored(now[None], probes, lists.parts, 5)
        faces = lists.faces_at(found)[0]
        first = int(np.flatnonzero(faces >= 0)[0])  # (after the undo its old row ties)
        assert faces[first] == face and sims[0][first] > 0.999, step
        assert list(faces).count(face) == 1, step  # its old row is no face any more


def test_faces_a_full_run_placed_are_added_before_the_next_search(lists_db: Database) -> None:
    """Faces given a person by a full run (no incremental run saw them) are added to the
    lists by the next incremental run, before it searches."""
    db = lists_db
    _reset(db, _some_faces(db, 10))
    _run(db)  # the lists made
    placed = _new_faces(db, 4, seed=2)
    _run(db, full=True)
    assert set(placed) <= {f for f, p in _persons(db).items() if p != "None"}
    _reset(db, _some_faces(db, 3, offset=40))
    _run(db)
    ids = np.load(_folder(db) / _state(db)["added"] / "ids.npy")
    assert set(placed) <= set(ids.tolist())
