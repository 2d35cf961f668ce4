"""Reading a pack's faces for clustering: a whole pack in blocks of records, a few faces
a row each, both the same faces, persons, flags and vectors bit for bit."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import rbv.store.queries.face_reads as face_reads
from rbv.store import Database
from rbv.store.queries.assignments import create_persons, write_assignments
from rbv.store.queries.face_reads import _FaceArrays, load_faces
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.packs import register_pack


def _library(db: Database) -> dict:
    """Two packs whose faces' ids interleave (one pack's blocks hold gaps and none of
    its faces at all), persons, a manual face, a hidden person and a face marked not a
    face."""
    rng = np.random.default_rng(3)
    with db.transaction() as conn:
        mine = register_pack(conn, "mine", {"r.onnx": "a" * 64}, 512)
        other = register_pack(conn, "other", {"r.onnx": "b" * 64}, 128)
        vectors = {}
        for i in range(60):
            image = conn.execute("INSERT INTO images (sha256, size_bytes, status) "
                                 "VALUES (%s, 1, 'ok') RETURNING id", (f"{i:064x}",)).fetchone()
            assert image
            # runs of this pack's faces and the other's, so some blocks hold none of it
            pack = mine if (i // 9) % 3 != 1 else other
            v = rng.normal(size=pack.embedding_dim).astype(np.float32)
            insert_faces(conn, [NewFace(int(image[0]), pack.id, (0, 0, 9, 9), None, 0.9, None,
                                        v)])
            if pack is mine:
                vectors[int(image[0])] = v
        rows = conn.execute("SELECT id, image_id FROM face_detections WHERE pack_id = %s "
                            "ORDER BY id", (mine.id,)).fetchall()
        ids = [int(f) for f, _ in rows]
        a, b, hidden = create_persons(conn, mine, 3)
        write_assignments(conn, ids[:10], [a] * 10, "cluster")
        write_assignments(conn, ids[10:14], [b] * 4, "cluster")
        write_assignments(conn, ids[14:17], [hidden] * 3, "cluster")
        conn.execute("UPDATE face_detections SET assigned_by = 'manual' WHERE id = %s",
                     (ids[3],))
        conn.execute("UPDATE persons SET hidden = true WHERE id = %s", (hidden,))
        conn.execute("INSERT INTO not_faces (face_id) VALUES (%s)", (ids[20],))
    persons: dict[int, uuid.UUID | None] = dict.fromkeys(ids)
    persons.update({f: a for f in ids[:10]} | {f: b for f in ids[10:14]}
                   | {f: hidden for f in ids[14:17]})
    return {"pack": mine, "ids": ids, "vectors": [vectors[int(i)] for _, i in rows],
            "persons": persons, "manual": ids[3], "hidden": set(ids[14:17]),
            "not_face": ids[20]}


@pytest.mark.parametrize("block", [4, 1_024])
def test_a_whole_pack_read_in_blocks_is_every_face_as_stored(
        db: Database, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    monkeypatch.setattr(face_reads, "BLOCK_IDS", block)  # 4: blocks of 0-4 of its faces
    lib = _library(db)
    with db.connect() as conn:
        every = load_faces(conn, lib["pack"])
        visible = load_faces(conn, lib["pack"], hidden=False)
        by_row = load_faces(conn, lib["pack"], ids=lib["ids"])  # a face a row
    kept = [i for i, f in enumerate(lib["ids"]) if f != lib["not_face"]]
    assert every.ids.tolist() == [lib["ids"][i] for i in kept]
    assert np.array_equal(every.embeddings, np.array([lib["vectors"][i] for i in kept]))
    assert every.person_ids == [lib["persons"][f] for f in every.ids.tolist()]
    assert every.manual.tolist() == [f == lib["manual"] for f in every.ids.tolist()]
    assert every.image_ids.tolist() == sorted(every.image_ids.tolist())
    for name in ("ids", "image_ids", "manual", "embeddings"):
        assert np.array_equal(getattr(by_row, name), getattr(every, name)), name
    assert by_row.person_ids == every.person_ids
    assert visible.ids.tolist() == [f for f in every.ids.tolist() if f not in lib["hidden"]]
    assert np.array_equal(visible.embeddings,
                          every.embeddings[~np.isin(every.ids, list(lib["hidden"]))])


def test_a_sample_is_the_same_faces_in_the_same_random_order_each_time(db: Database) -> None:
    lib = _library(db)
    with db.connect() as conn:
        first = load_faces(conn, lib["pack"], sample=15)
        again = load_faces(conn, lib["pack"], sample=15)
    assert len(first) == 15
    assert first.ids.tolist() == again.ids.tolist()
    assert first.ids.tolist() != sorted(first.ids.tolist())  # md5 order, not id order
    position = {f: i for i, f in enumerate(lib["ids"])}
    assert np.array_equal(first.embeddings,
                          np.array([lib["vectors"][position[f]] for f in first.ids.tolist()]))


def _records(ids: list[int], dim: int) -> np.ndarray:
    rows = _FaceArrays(dim, 0).record
    out = np.zeros(len(ids), rows)
    out["id"], out["image"], out["dim"] = ids, [10 * i for i in ids], dim
    out["vec"] = np.array([np.full(dim, i, np.float32) for i in ids])
    return out


def test_more_faces_than_counted_and_blocks_out_of_order_still_read_in_key_order() -> None:
    faces = _FaceArrays(3, 1)  # counted one face; five come
    faces.add(np.array([7, 7]), _records([30, 31], 3))
    faces.add(np.array([2, 2, 2]), _records([10, 11, 12], 3))
    out = faces.faces()
    assert out.ids.tolist() == [10, 11, 12, 30, 31]  # by block, each block's own order kept
    assert out.image_ids.tolist() == [100, 110, 120, 300, 310]
    assert out.embeddings[:, 0].tolist() == [10, 11, 12, 30, 31]
    assert out.person_ids == [None] * 5


def test_a_vector_of_another_width_is_refused() -> None:
    records = _records([1], 4)
    records["dim"] = 3  # a row whose vector says another width
    with pytest.raises(ValueError, match="another width"):
        _FaceArrays(4, 2).add(np.array([0]), records)
