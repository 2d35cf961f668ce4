"""`rbv faces same|different`: links every clustering method keeps, full and incremental."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbv.cluster.constraints import Constraints
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.config import Settings
from rbv.store import open_database
from rbv.store.queries import links as store_links
from tests.conftest import SFACE_THRESHOLD, run_cli

pytestmark = pytest.mark.slow  # ~10 s: links then full cluster runs


def _identities(k: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, 64))
    x = np.repeat(centers, per, axis=0) + 0.15 * rng.normal(size=(k * per, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(k), per)


@pytest.mark.parametrize("method", list(Method))
def test_every_method_keeps_same_and_different_links(method: Method) -> None:
    x, truth = _identities(3, 6)
    free = cluster_embeddings(x, method, 0.5)
    assert free[0] == free[1] and free[0] != free[6]
    linked = cluster_embeddings(x, method, 0.5,
                                Constraints.build(len(x), must=[(0, 6)], cannot=[(0, 1)]))
    assert linked[0] == linked[6] and linked[0] != linked[1]
    assert len(set(linked[truth == 2]) & set(linked[truth != 2])) == 0


def _ok(cli, *args: str):  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args)
    assert done.exit_code == 0, done.output
    return done


def _cluster(cli, url: str, method: str, *extra: str) -> None:  # type: ignore[no-untyped-def]
    threshold = ["--threshold", str(SFACE_THRESHOLD)] if method != "evidence" else []
    _ok(cli, "-d", url, "cluster", "--method", method, *threshold, *extra)


def _person_of(settings: Settings, *faces: int) -> list[str | None]:
    with open_database(settings).connect() as conn:
        found = dict(conn.execute("SELECT id, person_id::text FROM face_detections "
                                  "WHERE id = ANY(%s)", (list(faces),)).fetchall())
    return [found[f] for f in faces]


def _biggest(settings: Settings, skip: int = 0) -> list[tuple[int, int]]:
    """(face, photo) of the person with the (skip+1)-th most faces, one face per photo."""
    with open_database(settings).connect() as conn:
        person = conn.execute("SELECT person_id FROM face_detections WHERE person_id IS NOT "
                              "NULL GROUP BY person_id ORDER BY count(*) DESC, person_id "
                              "OFFSET %s LIMIT 1", (skip,)).fetchone()
        assert person is not None
        return [(int(f), int(i)) for f, i in conn.execute(
            "SELECT id, image_id FROM face_detections WHERE person_id = %s ORDER BY id",
            (person[0],))]


def test_refusals_are_one_clear_line_and_change_nothing(cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    with open_database(faces_settings).connect() as conn:
        a, b = conn.execute("SELECT a.id, b.id FROM face_detections a JOIN face_detections b "
                            "ON b.image_id = a.image_id AND b.id > a.id LIMIT 1").fetchone()
        c, d, e = (int(r[0]) for r in conn.execute(
            "SELECT min(id) FROM face_detections GROUP BY image_id ORDER BY 1 LIMIT 3"))

    def refused(*args: str) -> str:
        done = run_cli(cli, "-d", url, "faces", *args)
        assert done.exit_code == 1, done.output
        assert done.output.count("\n") == 1 and done.output.startswith("Error: ")
        return done.output

    assert "are of one photo" in refused("same", str(a), str(b))
    assert "is named twice" in refused("same", str(c), str(c))
    assert "no face with id 999999999" in refused("different", str(c), "999999999")
    dry = _ok(cli, "-d", url, "faces", "different", str(c), str(d), "--dry-run")
    assert "Dry run: nothing was changed." in dry.stdout
    _ok(cli, "-d", url, "faces", "same", str(c), str(d))  # not refused: the dry run wrote nothing
    _ok(cli, "-d", url, "faces", "same", str(d), str(e))
    assert "linked as one person" in refused("different", str(c), str(e))  # through d
    _ok(cli, "-d", url, "persons", "undo", "2")
    _ok(cli, "-d", url, "faces", "different", str(c), str(d))
    told = refused("same", str(d), str(c))
    assert f"1 'different' link (faces {min(c, d)}-{max(c, d)})" in told
    assert "--override" in told


@pytest.mark.parametrize("method", ["connected", "evidence"])
def test_links_change_a_full_clustering_and_survive_the_next(
        cli, faces_settings: Settings, method: str) -> None:
    url = str(faces_settings.database_url)
    _cluster(cli, url, method, "--full")
    (a, photo_a), (b, photo_b) = _biggest(faces_settings)[:2]
    assert photo_a != photo_b and len(set(_person_of(faces_settings, a, b))) == 1
    told = " ".join(_ok(cli, "-d", url, "faces", "different", str(a), str(b)).stdout.split())
    assert f"in person {_person_of(faces_settings, a)[0][:8]}: the link moves no face now; " \
        "the next full clustering puts them apart" in told

    c, d = _biggest(faces_settings, 1)[0][0], _biggest(faces_settings, 2)[0][0]
    q, r = _person_of(faces_settings, c, d)
    assert q != r
    told = _ok(cli, "-d", url, "faces", "same", str(c), str(d)).stdout
    assert q[:8] in told and r[:8] in told and "one person" in told

    for _ in range(2):  # the links hold, and hold again in the next full run
        _cluster(cli, url, method, "--full")
        pa, pb, pc, pd = _person_of(faces_settings, a, b, c, d)
        assert pa != pb
        assert pc == pd is not None


@pytest.mark.parametrize("method", ["connected", "evidence"])
def test_incremental_matching_keeps_links(cli, faces_settings: Settings, method: str) -> None:
    url = str(faces_settings.database_url)
    _cluster(cli, url, method)
    mine = _biggest(faces_settings)
    (f, photo), (e, _), (kept, _) = mine[0], mine[1], mine[2]
    home = _person_of(faces_settings, f)[0]
    other = next(g for g, p in _biggest(faces_settings, 1) if p != photo)
    target = _person_of(faces_settings, other)[0]
    _ok(cli, "-d", url, "faces", "same", str(f), str(other))
    _ok(cli, "-d", url, "faces", "different", str(e), str(kept))
    with open_database(faces_settings).connect() as conn:  # as if f and e were new faces
        conn.execute("UPDATE face_detections SET person_id = NULL, assigned_by = NULL "
                     "WHERE id = ANY(%s)", ([f, e],))
        conn.commit()
    _cluster(cli, url, method)
    pf, pe = _person_of(faces_settings, f, e)
    assert pf == target != home
    assert pe != home
    persons = json.loads(_ok(cli, "-d", url, "persons", "list", "--json", "--limit", "0"
                             ).stdout)
    assert target in {p["id"] for p in persons}


def test_split_keeps_links(cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _cluster(cli, url, "connected")
    (a, _), (b, _) = _biggest(faces_settings)[:2]
    person = _person_of(faces_settings, a)[0]
    assert person is not None
    _ok(cli, "-d", url, "faces", "different", str(a), str(b))
    # At similarity 0 every face of the person stays together, but for the link.
    _ok(cli, "-d", url, "persons", "split", person, "--threshold", "0", "--method",
        "connected")
    pa, pb = _person_of(faces_settings, a, b)
    assert pa != pb


@given(links=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=14),
       seeds=st.lists(st.integers(0, 11), min_size=1, max_size=6))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_groups_asked_at_once_are_each_face_s_group(faces_settings: Settings,
                                                    links: list[tuple[int, int]],
                                                    seeds: list[int]) -> None:
    """A grid's answer asks the "same" groups of two dozen faces in one query: each is
    the face's connected component of the links (chains and cycles included), and the
    group of several faces is the union of theirs."""
    component = list(range(12))  # union-find over the 12 faces, the reference

    def root(i: int) -> int:
        while component[i] != i:
            i = component[i]
        return i

    for a, b in links:
        component[root(a)] = root(b)
    with open_database(faces_settings).connect() as conn:
        faces = [int(r[0]) for r in conn.execute(
            "SELECT id FROM face_detections ORDER BY id LIMIT 12")]
        with conn.transaction(force_rollback=True):
            store_links.add_links(conn, True, [(faces[a], faces[b]) for a, b in links
                                               if a != b])
            asked = [faces[s] for s in seeds]
            groups = store_links.same_person_groups(conn, asked)
            assert set(groups) == set(asked)
            for s in seeds:
                assert groups[faces[s]] == {faces[i] for i in range(12)
                                            if root(i) == root(s)}
            assert store_links.same_person_group(conn, asked) == sorted(
                faces[i] for i in range(12) if root(i) in {root(s) for s in seeds})
