"""`rbv immich-stage` / `immich-push` against the real Immich server, each test once
per version: v3.1.0 (the release users run, ``../shared/immich/server-v3``) and v1.135.3
(``../shared/immich/server``), built from source (cached) and run offline with the real
Immich-ML server serving the test pack as ``buffalo_l``: a labelled set uploaded through
the API, every asset sharing one ``fileCreatedAt`` (as files without EXIF dates do),
Immich's own detection and clustering run; then stage, cluster, name, push, and check
through Immich's API what a user would. The tests of one version run in order and share
its server and one rbv database; a build or start that fails fails them (never skips).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from rbv.errors import ImmichError
from rbv.immich.client import ImmichAuthError
from rbv.immich.people import ImmichPeopleClient
from tests.conftest import FACES, PACK, SHARED, run_cli
from tests.pgserver import PasswordServer
from tests.support.immich_ml import ImmichMl
from tests.support.immich_real import RealImmich

pytestmark = pytest.mark.slow  # a real Immich server

IDENTITIES = ("Mindy_Kaling", "Ben_Affleck", "Katy_Perry", "Scarlett_Johansson")
USER_NAMED = ("Scarlett_Johansson", "Barry")  # the user's own name for one cluster
LATE = "Jennifer_Aniston"  # uploaded while Immich's face detection is paused
TIED = "2024-01-15T14:30:00.000Z"
PAGE = "7"
SOURCES = {"v3.1.0": SHARED / "immich" / "server-v3",
           "v1.135.3": SHARED / "immich" / "server"}
ML_SOURCE = SHARED / "immich" / "machine-learning"


class World:
    """What the tests share: the server, the rbv database, the staging folder and which
    identity each uploaded asset shows."""

    def __init__(self, immich: RealImmich, db_url: str, out: Path) -> None:
        self.immich, self.db_url, self.out = immich, db_url, out
        self.identity: dict[str, str] = {}  # asset id -> identity
        self.env = {"IMMICH_API_KEY": immich.api_key, "RBV_MODEL_PACK": str(PACK)}

    def rbv(self, *args: str) -> Any:
        return run_cli(CliRunner(), "-d", self.db_url, *args, env=self.env)

    def stage(self, *extra: str) -> dict[str, Any]:
        result = self.rbv("immich-stage", "--out", str(self.out), "--url", self.immich.url,
                          "--page-size", PAGE, "--json", "--retry-wait", "0.2", *extra)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    def push(self, *extra: str) -> dict[str, Any]:
        result = self.rbv("immich-push", "--url", self.immich.url, "--json", *extra)
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    def people(self) -> dict[str, tuple[str, frozenset[str]]]:
        """Immich person id -> (name, its face ids), from every asset's faces."""
        names: dict[str, str] = {}
        faces: dict[str, set[str]] = {}
        for asset in self.identity:
            for face in self.immich.faces(asset):
                if face.get("person"):
                    names[face["person"]["id"]] = face["person"]["name"]
                    faces.setdefault(face["person"]["id"], set()).add(face["id"])
        return {p: (names[p], frozenset(f)) for p, f in faces.items()}

    def face_identity(self) -> dict[str, str]:
        return {face["id"]: who for asset, who in self.identity.items()
                for face in self.immich.faces(asset)}


@pytest.fixture(scope="module")
def immich_ml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImmichMl]:
    """The real Immich-ML server serving PACK, shared by both versions."""
    from tests.support.immich_ml import ImmichMlSetupError, ensure_venv

    recognizer = next(p for p in sorted(PACK.glob("*.onnx")) if p.name != "det_500m.onnx")
    try:
        ml = ImmichMl(ML_SOURCE, ensure_venv(ML_SOURCE), tmp_path_factory.mktemp("real-ml"),
                      PACK / "det_500m.onnx", recognizer).start()
    except ImmichMlSetupError as exc:
        pytest.fail(f"the Immich-ML server could not be set up: {exc}")
    yield ml
    ml.stop()


@pytest.fixture(scope="module", params=sorted(SOURCES, reverse=True))
def real_immich(request: pytest.FixtureRequest, immich_ml: ImmichMl,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealImmich]:
    """One real Immich server of the version the parameter names, with its own
    PostgreSQL and Redis; built on first use and cached (``tests.support.immich_build``)."""
    from tests.support.immich_build import ImmichBuildError, build_data, ensure_build, node_bin
    from tests.support.immich_real import ImmichRealError

    source = SOURCES[request.param]
    server = None
    try:
        server_dir = ensure_build(source)
        server = RealImmich(server_dir, tmp_path_factory.mktemp("real-immich"), immich_ml.url,
                            node=node_bin(source), build_data=build_data(source))
        server.start()
    except (ImmichBuildError, ImmichRealError) as exc:
        if server is not None:
            server.stop()
        pytest.fail(f"the real Immich server {request.param} could not be set up: {exc}")
    assert "v" + ".".join(map(str, server.version)) == request.param
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(real_immich: RealImmich, pg_server: PasswordServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    name = f"rbv_immich_real_{os.getpid()}_{real_immich.version[0]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    w = World(real_immich, pg_server.url(name), tmp_path_factory.mktemp("real-staging"))
    assert w.rbv("migrate").exit_code == 0
    for identity in IDENTITIES:
        for photo in sorted((FACES / identity).iterdir()):
            w.identity[real_immich.upload(photo, TIED)] = identity
    real_immich.wait_for_jobs()
    yield w


def test_stage_lists_every_tied_asset_once_and_accounts_for_each(world: World) -> None:
    got = world.stage()

    count = world.immich.image_count()
    assert count == len(world.identity)
    tied = world.immich.post("/search/metadata", {"takenAfter": TIED, "takenBefore": TIED,
                                                  "size": 1000})["assets"]["items"]
    assert len(tied) > 3 * int(PAGE)  # files without EXIF dates: one time, many pages
    assert got["seen"] == got["server_images"] == count and got["listing_complete"]
    assert got["listing_exact"]  # ties split by upload time, never paged
    assert got["failed"] == 0
    accounted = (got["staged"] + got["dup_db"] + got["dup_run"] + got["no_face"]
                 + got["small_face"])
    assert accounted == count
    assert got["staged"] >= 20 and got["small_face"] + got["no_face"] > 0
    # Each staged file once, under a name the user gave, never the server's uuid path.
    files = [p for p in (world.out / "immich").rglob("*") if p.is_file()]
    assert len(files) == got["staged"]
    originals = {p.name for i in IDENTITIES for p in (FACES / i).iterdir()}
    for path in files:
        relative = path.relative_to(world.out / "immich")
        year, day, _ = relative.parts  # <yyyy>/<yyyy-mm-dd>/<name>: the photo's date
        assert day.startswith(year + "-") and len(day) == 10, relative
        assert path.name in originals or "~" in path.name, path.name


def test_an_asset_immich_has_not_looked_at_yet_is_staged_later(world: World) -> None:
    immich = world.immich
    immich.job("faceDetection", "pause")
    try:
        photo = sorted((FACES / LATE).iterdir())[0]
        late = immich.upload(photo, TIED)
        world.identity[late] = LATE
        immich.wait_for_jobs(queues=("thumbnailGeneration", "metadataExtraction"),
                             requeue=False)
        before = world.stage("--no-index")
        assert before["no_face"] >= 1 and before["detection_pending"] >= 1
        assert before["seen"] == immich.image_count()
    finally:
        immich.job("faceDetection", "resume")
    immich.wait_for_jobs()
    assert immich.faces(late)  # Immich found the face once it looked

    after = world.stage()

    assert after["staged"] == 1 and after["rechecked"] >= 1
    assert after["seen"] == immich.image_count() and after["listing_complete"]


def test_push_names_whole_immich_people_and_leaves_user_names(world: World) -> None:
    cluster = world.rbv("cluster", "--json")
    assert cluster.exit_code == 0, cluster.output
    # Name each rbv person by the identity most of its faces' photos show.
    with psycopg.connect(world.db_url) as conn:
        rows = conn.execute(
            "SELECT f.person_id::text, a.asset_id FROM face_detections f "
            "JOIN images i ON i.id = f.image_id JOIN immich_assets a ON a.sha256 = i.sha256 "
            "WHERE f.person_id IS NOT NULL").fetchall()
    votes: dict[str, Counter[str]] = {}
    for person, asset in rows:
        votes.setdefault(person, Counter())[world.identity[asset]] += 1
    named: set[str] = set()
    for person, counter in sorted(votes.items(), key=lambda kv: -sum(kv[1].values())):
        identity = counter.most_common(1)[0][0]
        if identity not in named:
            assert world.rbv("persons", "name", person, identity).exit_code == 0
            named.add(identity)
    assert set(IDENTITIES) <= named
    # The user named Immich's cluster of one identity themselves.
    who = world.face_identity()
    before = world.people()
    user_cluster = max((p for p, (_, faces) in before.items()),
                       key=lambda p: sum(who[f] == USER_NAMED[0] for f in before[p][1]))
    world.immich.put(f"/people/{user_cluster}", {"name": USER_NAMED[1]})
    before = world.people()

    got = world.push()

    assert got["failed"] == 0
    after = world.people()
    # The user's name and its faces are untouched; rbv's disagreement is reported.
    assert after[user_cluster] == before[user_cluster]
    assert any(c["immich_name"] == USER_NAMED[1] for c in got["conflicts"])
    # Unnamed clusters were named whole: every face they had (plus faces rbv put in).
    named_whole = [p for p, (name, faces) in after.items()
                   if name and p in before and not before[p][0]]
    assert named_whole and got["people_named"]
    for person in named_whole:
        assert after[person][1] >= before[person][1]
    assert sorted(after[p][0] for p in named_whole) == sorted(got["people_named"])
    # One Immich person per name, and its faces show that identity (Immich's clusters
    # may hold a stray face: nearly all).
    names = Counter(name for name, _ in after.values() if name)
    assert all(n == 1 for n in names.values()), names
    for name, faces in after.values():
        if name in IDENTITIES:
            right = sum(who.get(f) == name for f in faces)
            assert right >= 0.9 * len(faces), (name, right, len(faces))


def test_rerunning_changes_nothing(world: World) -> None:
    before = world.people()

    pushed = world.push("--recheck")
    staged = world.stage()

    assert pushed["assigned"] == pushed["named_faces"] == 0 and not pushed["people_named"]
    assert world.people() == before
    assert staged["staged"] == 0 and staged["failed"] == 0
    assert staged["resumed"] + staged["rechecked"] == staged["seen"] == \
        world.immich.image_count()


def test_an_error_answer_is_one_line_with_the_servers_words(world: World) -> None:
    immich = world.immich
    unknown = "7b0e7a4e-0000-4000-8000-000000000000"
    with ImmichPeopleClient(immich.url, immich.api_key, retries=0) as client:
        assert client.update_method == ("PATCH" if immich.version >= (3, 0, 0) else "PUT")
        with pytest.raises(ImmichError) as no_person:
            client.name_person(unknown, "Nobody")
        with pytest.raises(ImmichError) as not_an_id:
            client.asset_faces("not-a-uuid")
    with ImmichPeopleClient(immich.url, "wrong-" + immich.api_key, retries=0) as client, \
            pytest.raises(ImmichAuthError) as refused:
        client.check_key()

    # v1: {"message": ..., "correlationId"}; v3: {"message"} + X-Correlation-ID
    assert "refused the API key: HTTP 401: Invalid API key (correlation id " \
        in str(refused.value)
    assert "HTTP 400: Not found or no person" in str(no_person.value)
    assert "(correlation id " in str(no_person.value)
    line = str(not_an_id.value)
    assert "\n" not in line and "(correlation id " in line
    if immich.version >= (3, 0, 0):
        assert "HTTP 400: Validation failed: id: Invalid UUID" in line
    else:
        assert "HTTP 400: id must be a UUID" in line


def test_a_face_drawn_in_rbv_is_created_in_immich_once(world: World) -> None:
    """A face both detectors missed, drawn by hand in rbv in a named person: immich-push
    makes it in Immich (POST /api/faces, Immich's own "tag a face") at the box drawn, in
    the Immich person of that name; a re-run matches it and makes no second."""
    with psycopg.connect(world.db_url) as conn:
        rows = conn.execute(
            "SELECT a.asset_id, min(p.path), i.width, i.height, array_agg(DISTINCT n.name) "
            "FROM immich_assets a JOIN images i ON i.sha256 = a.sha256 "
            "JOIN image_paths p ON p.image_id = i.id "
            "JOIN face_detections f ON f.image_id = i.id "
            "LEFT JOIN person_names n ON n.person_id = f.person_id "
            "GROUP BY a.asset_id, i.width, i.height ORDER BY a.asset_id").fetchall()
    asset, path, width, height, names = next(r for r in rows if r[0] in world.identity)
    other = next(i for i in IDENTITIES if i not in names and i != USER_NAMED[0])
    side = min(width, height) // 5  # the top-left corner: background in these portraits
    before = {f["id"] for f in world.immich.faces(asset)}
    drawn = world.rbv("faces", "add", path, "--box", f"0,0,{side},{side}", "--person", other,
                      "--json")
    assert drawn.exit_code == 0, drawn.output

    preview = world.push("--dry-run")
    assert preview["created"] == 1 and {f["id"] for f in world.immich.faces(asset)} == before
    got = world.push()

    assert got["created"] == 1 and got["failed"] == 0, got
    made = [f for f in world.immich.faces(asset) if f["id"] not in before]
    assert len(made) == 1 and made[0]["person"]["name"] == other
    scale = width / made[0]["imageWidth"]
    assert abs(made[0]["boundingBoxX1"] * scale) <= 2 and abs(made[0]["boundingBoxY1"] * scale) <= 2
    assert abs(made[0]["boundingBoxX2"] * scale - side) <= 2
    assert abs(made[0]["boundingBoxY2"] * scale - side) <= 2
    again = world.push("--recheck")  # matched now, like any face: no second one
    assert again["created"] == 0 and again["failed"] == 0
    assert len(world.immich.faces(asset)) == len(before) + 1
