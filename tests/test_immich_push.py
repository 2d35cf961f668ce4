"""`rbv immich-push` end to end: photos staged from the fake Immich by immich-stage and
indexed with the real pack, persons named by import-folders, names pushed back; every
request and answer checked against Immich's OpenAPI document."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from tests.conftest import IMMICH_FAST as FAST
from tests.conftest import IMMICH_KEY, PACK, run_cli
from tests.pgserver import PasswordServer
from tests.support.immich_library import FakeAsset
from tests.support.immich_server import FakeImmich, Faults

pytestmark = pytest.mark.slow  # ~17 s: push runs against the stand-in Immich on real photos

IDENTITIES = ("Angelina_Jolie", "Katy_Perry", "Scarlett_Johansson")
ROTATED = "insightface_bulk_image_T1.jpeg"  # EXIF orientation 6: stored sideways
ROTATED_NAME = "Portrait Person"
OPERATIONS = {  # operation -> (path, method, status) in the OpenAPI document
    "getServerVersion": ("/server/version", "get", "200"),
    "getAllPeople": ("/people", "get", "200"),
    "getFaces": ("/faces", "get", "200"),
    "createPerson": ("/people", "post", "201"),
    "reassignFacesById": ("/faces/{id}", "put", "200"),
    "reassignFaces": ("/people/{id}/reassign", "put", "200"),
    "mergePerson": ("/people/{id}/merge", "post", "201"),
    "getPerson": ("/people/{id}", "get", "200"),
    "updatePerson": ("/people/{id}", "put", "200"),
    "getMyUser": ("/users/me", "get", "200"),
}
REQUESTS = {"createPerson": ("/people", "post"), "reassignFacesById": ("/faces/{id}", "put"),
            "reassignFaces": ("/people/{id}/reassign", "put"),
            "mergePerson": ("/people/{id}/merge", "post"),
            "updatePerson": ("/people/{id}", "put")}


def _owner(asset: FakeAsset) -> str:
    """Who the asset's photo shows: its identity folder, or the rotated portrait."""
    return ROTATED_NAME if asset.file_name == ROTATED else asset.original_path.split("/")[-2]


@pytest.fixture(scope="module")
def server(immich_library, immich_spec) -> Iterator[FakeImmich]:  # type: ignore[no-untyped-def]
    assets = [a for a in immich_library if a.truth == "big_face" and (
        a.file_name == ROTATED or any(f"/admin/{i}/" in a.original_path for i in IDENTITIES))]
    assert any(a.file_name == ROTATED and a.orientation == 6 for a in assets)
    assert any(max(a.preview_size) < max(a.stored_size) for a in assets)  # scaled boxes
    fake = FakeImmich(assets, IMMICH_KEY, immich_spec)
    fake.template_on = True  # staged as library/<owner>/<identity>/<name>
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def template(pg_server: PasswordServer, server: FakeImmich,
             tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database where the server's assets were staged + indexed by immich-stage, the
    identity folders named by import-folders and the rotated portrait's face by hand."""
    name = f"rbv_push_template_{os.getpid()}_{os.urandom(4).hex()}"  # one per module using it
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_server.url(name)
    out = tmp_path_factory.mktemp("staging")
    cli = CliRunner()
    env = {"IMMICH_API_KEY": IMMICH_KEY, "RBV_MODEL_PACK": str(PACK),
           "RBV_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    assert run_cli(cli, "-d", url, "migrate").exit_code == 0
    staged = run_cli(cli, "-d", url, "immich-stage", "--out", str(out), "--url", server.url,
                     "--json", *FAST, env=env)
    assert staged.exit_code == 0, staged.output
    named = run_cli(cli, "-d", url, "import-folders", *(str(out / "immich" / i)
                                                        for i in IDENTITIES),
                    "--model-pack", str(PACK), "--no-index", "--json", env=env)
    assert named.exit_code == 0, named.output
    with psycopg.connect(url) as conn:
        face, pack = conn.execute(
            "SELECT f.id, f.pack_id FROM face_detections f JOIN image_paths p ON "
            "p.image_id = f.image_id WHERE p.path LIKE %s ORDER BY f.face_short DESC LIMIT 1",
            (f"%/{ROTATED}",)).fetchone()
        person = conn.execute("INSERT INTO persons (pack_id, source) VALUES (%s, 'manual') "
                              "RETURNING id", (pack,)).fetchone()[0]
        conn.execute("INSERT INTO person_names (person_id, name) VALUES (%s, %s)",
                     (person, ROTATED_NAME))
        conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = 'manual' "
                     "WHERE id = %s", (person, face))
    return name


@pytest.fixture
def db_url(pg_server: PasswordServer, template: str, server: FakeImmich) -> str:
    """A fresh copy of the template, and the server with no people (and up)."""
    name = f"rbv_push_{os.getpid()}_{os.urandom(4).hex()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    server.faults = Faults()
    if server._server is None:
        server.restart()
    with server.lock:
        for collected in (server.people, server.face_person, server.writes, server.requests,
                          server.responses, server.face_reads):
            collected.clear()
    return pg_server.url(name)


def push(db_url: str, server: FakeImmich, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli(CliRunner(), "-d", db_url, "immich-push", "--url", server.url, "--json",
                   *FAST, *extra, env={"IMMICH_API_KEY": IMMICH_KEY})


def named_in_immich(server: FakeImmich) -> dict[str, str]:
    """Face id -> name of its Immich person, for every face that has one."""
    return {f: server.people[p]["name"] for f, p in server.face_person.items()}


def assert_correct(server: FakeImmich, assigned: dict[str, str]) -> None:
    """Every face put in a person shows whom the asset's photo shows."""
    owner = {f: _owner(a) for a in server.assets.values() for f in a.face_ids}
    wrong = {f: (n, owner[f]) for f, n in assigned.items() if n != owner[f]}
    assert not wrong


def assert_contract(server: FakeImmich, spec: Any) -> None:
    for operation, body in server.responses:
        path, method, status = OPERATIONS[operation]
        assert spec.errors(body, spec.response_schema(path, method, status)) == [], operation
    for operation, body in server.requests:
        assert spec.errors(body, spec.request_schema(*REQUESTS[operation])) == [], operation


def test_push_creates_people_assigns_faces_and_a_second_run_changes_nothing(
        db_url: str, server: FakeImmich, immich_spec) -> None:  # type: ignore[no-untyped-def]
    with psycopg.connect(db_url) as conn:  # immich-stage recorded every asset it kept
        recorded = dict(conn.execute("SELECT asset_id, sha256 FROM immich_assets").fetchall())
    assert recorded == {a.id: a.sha256 for a in server.assets.values()}

    result = push(db_url, server)

    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert sorted(got["people_created"]) == sorted([*IDENTITIES, ROTATED_NAME])
    assert sorted(p["name"] for p in server.people.values()) == sorted(got["people_created"])
    assigned = named_in_immich(server)
    assert len(assigned) == got["assigned"] >= len(server.assets) - 2
    assert got["failed"] == 0 and got["conflicts"] == [] and got["unmatched"] <= 2
    assert_correct(server, assigned)
    rotated = next(a for a in server.assets.values() if a.file_name == ROTATED)
    assert any(assigned.get(f) == ROTATED_NAME for f in rotated.face_ids)
    assert Counter(op for op, _ in server.writes) == {
        "createPerson": 4, "reassignFacesById": len(assigned)}
    assert_contract(server, immich_spec)
    assert IMMICH_KEY not in result.output

    writes = len(server.writes)
    server.face_reads.clear()
    again = json.loads(push(db_url, server).stdout)
    assert again["resumed"] == got["assets"] and again["checked"] == 0
    assert len(server.writes) == writes and not server.face_reads  # not even asked

    rechecked = json.loads(push(db_url, server, "--recheck").stdout)
    assert rechecked["checked"] == got["assets"] and rechecked["assigned"] == 0
    assert rechecked["unchanged"] == got["assigned"] and not rechecked["people_created"]
    assert len(server.writes) == writes


def test_user_names_are_kept_and_reported_people_reused_never_deleted(
        db_url: str, server: FakeImmich, immich_spec) -> None:  # type: ignore[no-untyped-def]
    by_owner: dict[str, list[FakeAsset]] = {}
    for asset in server.assets.values():
        by_owner.setdefault(_owner(asset), []).append(asset)
    angelina = server.add_person("Angelina_Jolie")  # named by the user, with a face
    server.assign(by_owner["Angelina_Jolie"][0].face_ids[0], angelina)
    barry = server.add_person("Barry")  # a user's name for what rbv calls Katy_Perry
    katy_face = by_owner["Katy_Perry"][0].face_ids[0]
    server.assign(katy_face, barry)
    cluster = server.add_person("")  # Immich's own unnamed cluster
    for asset in by_owner["Scarlett_Johansson"][:3]:
        server.assign(asset.face_ids[0], cluster)
    before = {i: dict(p) for i, p in server.people.items()}

    result = push(db_url, server)

    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert "Angelina_Jolie" not in got["people_created"]  # found by name, reused
    assert [(c["immich_face_id"], c["name"], c["immich_name"]) for c in got["conflicts"]] \
        == [(katy_face, "Katy_Perry", "Barry")]
    assert server.face_person[katy_face] == barry  # untouched
    # Nothing deleted or renamed; the unnamed cluster, whose faces all are Scarlett's in
    # rbv, is named as a whole.
    assert server.people[cluster]["name"] == "Scarlett_Johansson"
    assert got["people_named"] == ["Scarlett_Johansson"]
    before[cluster]["name"] = "Scarlett_Johansson"
    for person_id, person in before.items():
        assert server.people[person_id] == person
    names = Counter(p["name"] for p in server.people.values())
    assert names["Angelina_Jolie"] == 1 and names["Scarlett_Johansson"] == 1
    assigned = named_in_immich(server)
    del assigned[katy_face]
    assert_correct(server, assigned)  # Scarlett's other faces went to the named cluster
    assert not any(op == "mergePerson" for op, _ in server.writes)
    assert_contract(server, immich_spec)

    text = push(db_url, server, "--recheck").stdout  # still reported, still untouched
    assert len(json.loads(text)["conflicts"]) == 1 and server.face_person[katy_face] == barry


def test_dry_run_changes_nothing_and_says_what_a_run_would(
        db_url: str, server: FakeImmich) -> None:
    dry = run_cli(CliRunner(), "-d", db_url, "immich-push", "--url", server.url, "--dry-run",
                  *FAST, env={"IMMICH_API_KEY": IMMICH_KEY})
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.stdout and "would create" in dry.stdout
    assert not server.writes and not server.people
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM immich_pushes").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM immich_people").fetchone()[0] == 0
    dry_json = json.loads(push(db_url, server, "--dry-run").stdout)

    real = json.loads(push(db_url, server).stdout)
    assert (dry_json["assigned"], sorted(dry_json["people_created"])) == \
        (real["assigned"], sorted(real["people_created"]))


@pytest.mark.parametrize("writes_before_outage", [1, 9])
def test_an_outage_exits_2_and_a_rerun_finishes_without_duplicates(
        db_url: str, server: FakeImmich, writes_before_outage: int) -> None:
    # 1: the server dies right after creating the first person, before it has a face
    # (so Immich would not list it): the re-run must reuse it, not make a second one.
    server.faults.down_after_writes = writes_before_outage

    result = push(db_url, server, "--workers", "2")

    assert result.exit_code == 2, result.output
    assert "does not answer" in result.stderr and "re-run" in result.stderr
    done_before = list(server.writes)
    assert len(done_before) == writes_before_outage
    server.restart()

    result = push(db_url, server)

    assert result.exit_code == 0, result.output
    names = Counter(p["name"] for p in server.people.values())
    assert sorted(names) == sorted([*IDENTITIES, ROTATED_NAME])
    assert set(names.values()) == {1}  # no person created twice
    face_writes = Counter(w[1][0] for w in server.writes if w[0] == "reassignFacesById")
    assert set(face_writes.values()) == {1}  # no face assigned twice
    assert_correct(server, named_in_immich(server))


def test_a_server_that_is_down_exits_2(db_url: str, server: FakeImmich) -> None:
    server.stop()
    result = push(db_url, server)
    assert result.exit_code == 2, result.output
    assert "does not answer" in result.stderr and IMMICH_KEY not in result.output


def test_without_a_key_is_a_setup_error(db_url: str, server: FakeImmich) -> None:
    result = run_cli(CliRunner(), "-d", db_url, "immich-push", "--url", server.url)
    assert result.exit_code == 1 and "IMMICH_API_KEY" in result.stderr


def test_boxes_are_compared_in_the_original_frame() -> None:
    from rbv.immich.people import ImmichFace, ImmichPerson
    from rbv.jobs.exchange.immich_push_plan import plan_asset
    from rbv.store.queries.immich_assets import AssetFaces, NamedFace

    # A 3000 x 4000 upright original; Immich detected on a 540 x 720 preview.
    asset = AssetFaces("a", 1, 3000, 4000, [NamedFace(7, (1000, 1000, 1600, 1800), "Ada"),
                                           NamedFace(8, (100, 100, 200, 200), "Bob")])
    faces = [ImmichFace("f1", (180, 180, 288, 324), (540, 720), None),
             ImmichFace("f2", (18, 18, 36, 36), (540, 720), ImmichPerson("p", "Robert"))]
    plan = plan_asset(asset, faces, 0.5)
    assert [(a.face_id, a.immich_face_id, a.name) for a in plan.assign] == [(7, "f1", "Ada")]
    assert [(c.name, c.immich_name) for c in plan.conflicts] == [("Bob", "Robert")]
    assert plan_asset(asset, [ImmichFace("f1", (180, 180, 288, 324), (3000, 4000), None)],
                      0.5).unmatched == [7, 8]  # unscaled: no overlap


def test_stage_records_asset_ids_of_earlier_runs_too(settings, server: FakeImmich,
                                                     tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = str(settings.database_url)
    args = ("-d", url, "immich-stage", "--out", str(tmp_path), "--url", server.url,
            "--no-index", "--json", *FAST)
    env = {"IMMICH_API_KEY": IMMICH_KEY}
    assert run_cli(CliRunner(), *args, env=env).exit_code == 0
    with psycopg.connect(url) as conn:  # as if staged by an rbv without the table
        conn.execute("DELETE FROM immich_assets")
    again = run_cli(CliRunner(), *args, env=env)
    assert again.exit_code == 0 and json.loads(again.stdout)["resumed"] == len(server.assets)
    with psycopg.connect(url) as conn:
        recorded = dict(conn.execute("SELECT asset_id, sha256 FROM immich_assets").fetchall())
    assert recorded == {a.id: a.sha256 for a in server.assets.values()}


def test_fake_reassign_and_merge_behave_as_immich_documents(
        db_url: str, server: FakeImmich, immich_spec) -> None:  # type: ignore[no-untyped-def]
    import httpx

    asset = next(iter(server.assets.values()))
    a, b, c = server.add_person("A"), server.add_person(""), server.add_person("C")
    server.assign(asset.face_ids[0], b)
    with httpx.Client(base_url=server.url + "/api", headers={"x-api-key": IMMICH_KEY}) as http:
        moved = http.put(f"/people/{a}/reassign",
                         json={"data": [{"assetId": asset.id, "personId": b}]})
        assert moved.status_code == 200 and server.face_person[asset.face_ids[0]] == a
        merged = http.post(f"/people/{c}/merge", json={"ids": [a]})
        assert merged.status_code == 201 and a not in server.people
        assert server.face_person[asset.face_ids[0]] == c
        assert_contract(server, immich_spec)  # before the requests Immich would refuse
        assert http.put(f"/faces/{c}", json={"id": "nope"}).status_code == 400
        assert http.post("/people", json={"name": "X", "bogus": 1}).status_code == 400
        assert http.get("/people", params={"size": 5000}).status_code == 400
        listed = http.get("/people", params={"withHidden": "true"}).json()
    assert [p["name"] for p in listed["people"]] == ["C"]  # A merged away, B has no face


def test_an_unnamed_immich_person_rbv_agrees_on_is_named_whole_not_split(
        db_url: str, server: FakeImmich, immich_spec) -> None:  # type: ignore[no-untyped-def]
    """rbv sees only the photos it staged (a face of 90 px or more); Immich's cluster
    also holds faces rbv never saw. Moving rbv's faces out would split the cluster: the
    cluster is named instead, when every face rbv matched in it has one name."""
    by_owner: dict[str, list[FakeAsset]] = {}
    for asset in server.assets.values():
        by_owner.setdefault(_owner(asset), []).append(asset)
    unseen = [f"0000ab{n:02d}-0000-4000-8000-000000000000" for n in range(5)]
    katy = server.add_person("")  # Immich's cluster of Katy: every face of hers + unseen
    for asset in by_owner["Katy_Perry"]:
        server.assign(asset.face_ids[0], katy)
    mixed = server.add_person("")  # a cluster mixing Angelina (3 faces) and Scarlett (1)
    for asset in [*by_owner["Angelina_Jolie"][:3], by_owner["Scarlett_Johansson"][0]]:
        server.assign(asset.face_ids[0], mixed)
    for face in unseen:  # faces on photos rbv never staged
        server.assign(face, katy)
        server.assign(face.replace("ab", "cd"), mixed)

    result = push(db_url, server)

    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["people_named"] == ["Katy_Perry"] and got["people_split"] == 1
    assert server.people[katy]["name"] == "Katy_Perry"
    assert all(server.face_person[f] == katy for f in unseen)  # the whole cluster
    assert got["named_faces"] == len(by_owner["Katy_Perry"])
    assert "Katy_Perry" not in got["people_created"]
    assert Counter(p["name"] for p in server.people.values())["Katy_Perry"] == 1
    assert not any(op == "reassignFacesById" and person == katy
                   for op, (_, person) in ((o, w) for o, w in server.writes
                                           if o == "reassignFacesById"))
    # The mixed cluster is left unnamed with what rbv did not match; rbv's faces moved.
    assert server.people[mixed]["name"] == ""
    assert {f for f, p in server.face_person.items() if p == mixed} == \
        {f.replace("ab", "cd") for f in unseen}
    assigned = {f: n for f, n in named_in_immich(server).items() if n and f not in unseen}
    assert_correct(server, assigned)
    assert_contract(server, immich_spec)
    text = run_cli(CliRunner(), "-d", db_url, "immich-push", "--url", server.url, "--recheck",
                   *FAST, env={"IMMICH_API_KEY": IMMICH_KEY}).stdout
    assert "faces named with their person" in text

    writes = len(server.writes)
    again = json.loads(push(db_url, server, "--recheck").stdout)
    assert again["assigned"] == again["named_faces"] == 0 and not again["people_named"]
    assert len(server.writes) == writes


def test_a_wrong_key_is_refused_even_with_nothing_to_push(
        db_url: str, server: FakeImmich) -> None:
    """``/server/version`` answers any key; ``/users/me`` checks it."""
    assert push(db_url, server).exit_code == 0
    for extra in ((), ("--dry-run",)):
        wrong = run_cli(CliRunner(), "-d", db_url, "immich-push", "--url", server.url,
                        *FAST, *extra, env={"IMMICH_API_KEY": "wrong-key"})
        assert wrong.exit_code == 1 and "refused the API key" in wrong.output
