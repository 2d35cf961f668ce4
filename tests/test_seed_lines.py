"""The command lines of the rbv this project grew from, run as its users have them in
their shell history and cron (through bash, with $DATABASE_URL set; only the example
folder and server are this test's); and commands that need a model pack take the
library's own when none is named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.store.server.migrations import available_migrations
from tests.conftest import FACES, MISC, PACK, SHARED, run_cli
from tests.support.immich_ml import (
    SERVED_NAME,
    ImmichMl,
    ImmichMlSetupError,
    ensure_venv,
    write_square_pack,
)

RBV = Path(sys.executable).with_name("rbv")
MIGRATE = 'rbv migrate --database "$DATABASE_URL"'
INDEX = 'rbv index --target /mnt/galleries --database "$DATABASE_URL" --ml-uri http://ml:3003'
INDEX_CHUNK = ('rbv index --target /mnt/galleries/new-chunk --database "$DATABASE_URL" '
               "--ml-uri http://ml:3003")
CLUSTER = 'rbv cluster --database "$DATABASE_URL"'
CLUSTER_075 = 'rbv cluster --database "$DATABASE_URL" --threshold 0.75'
RELAXED = ("--min-images", "3", "--min-face", "30")


def _seed_line(line: str, settings: Settings, galleries: Path | None = None,
               ml: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one seed line through bash as written, /mnt/galleries and http://ml:3003
    standing for this test's folder and server."""
    if galleries is not None:
        line = line.replace("/mnt/galleries", str(galleries))
    if ml is not None:
        line = line.replace("http://ml:3003", ml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RBV_")}
    env.update(DATABASE_URL=str(settings.database_url), RBV_DATA_DIR=str(settings.data_dir),
               RBV_SERVER_LINGER="0", PATH=f"{RBV.parent}{os.pathsep}{env['PATH']}")
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


# --- rbv migrate -----------------------------------------------------------------------

def test_seed_migrate_creates_the_schema(empty_db_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=empty_db_url, data_dir=tmp_path / "data")
    done = _seed_line(MIGRATE, settings)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(empty_db_url) as conn:
        applied = [v for (v,) in conn.execute("SELECT version FROM schema_migrations "
                                              "ORDER BY version")]
    assert applied == [m.version for m in available_migrations()]
    again = _seed_line(MIGRATE, settings)  # cron runs it every time
    assert again.returncode == 0, again.stderr


# --- rbv index --target … --ml-uri … (the real Immich-ML server) ---------------------------

@pytest.fixture(scope="module")
def immich_ml(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImmichMl]:
    try:
        venv = ensure_venv(SHARED / "immich" / "machine-learning")
        server = ImmichMl(SHARED / "immich" / "machine-learning", venv,
                          tmp_path_factory.mktemp("immich-ml"), PACK / "det_500m.onnx",
                          PACK / "face_recognition_sface_2021dec_int8bq_ort.onnx").start()
    except ImmichMlSetupError as exc:
        pytest.fail(f"the real Immich ML server is needed: {exc}")
    yield server
    server.stop()


def _gallery(folder: Path, who: str, photos: slice) -> int:
    """Copy some photos of ``who`` into ``folder``; how many."""
    folder.mkdir(parents=True)
    chosen = sorted((FACES / who).iterdir())[photos]
    for photo in chosen:
        shutil.copyfile(photo, folder / photo.name)
    return len(chosen)


def _scanned(url: str) -> tuple[list[str], int, int]:
    """The packs, the images scanned by them, and the faces with an embedding."""
    with psycopg.connect(url) as conn:
        packs = [n for (n,) in conn.execute("SELECT name FROM model_packs ORDER BY id")]
        row = conn.execute("SELECT (SELECT count(*) FROM face_scans WHERE status = 'done'), "
                           "(SELECT count(*) FROM face_detections f JOIN face_embeddings e "
                           "ON e.face_id = f.id)").fetchone()
    assert row is not None
    return packs, int(row[0]), int(row[1])


def _index_galleries(settings: Settings, galleries: Path, server: ImmichMl) -> int:
    n = _gallery(galleries / "obama", "Barack_Obama", slice(0, 3))
    n += _gallery(galleries / "katy", "Katy_Perry", slice(0, 3))
    done = _seed_line(INDEX, settings, galleries, server.url)
    assert done.returncode == 0, done.stderr
    assert f"Catalogued {n} files: {n} new images" in done.stdout
    assert f"Scanned {n} images:" in done.stdout
    return n


@pytest.mark.slow  # the real Immich-ML server: ~30 s the first time
def test_seed_index_target_with_ml_uri(settings: Settings, tmp_path: Path,
                                       immich_ml: ImmichMl) -> None:
    n = _index_galleries(settings, tmp_path / "galleries", immich_ml)
    packs, scanned, faces = _scanned(str(settings.database_url))
    assert packs == [f"remote:{SERVED_NAME}@127.0.0.1"]  # the server's model, no pack named
    assert scanned == n and faces >= n


@pytest.mark.slow
def test_seed_index_target_new_chunk(settings: Settings, tmp_path: Path,
                                     immich_ml: ImmichMl) -> None:
    galleries = tmp_path / "galleries"
    n = _index_galleries(settings, galleries, immich_ml)
    _, _, faces_before = _scanned(str(settings.database_url))
    chunk = _gallery(galleries / "new-chunk", "Jerry_Seinfeld", slice(0, 3))
    done = _seed_line(INDEX_CHUNK, settings, galleries, immich_ml.url)
    assert done.returncode == 0, done.stderr
    assert f"Catalogued {chunk} files: {chunk} new images" in done.stdout
    packs, scanned, faces = _scanned(str(settings.database_url))
    assert packs == [f"remote:{SERVED_NAME}@127.0.0.1"]  # the same pack: one library
    assert scanned == n + chunk and faces >= faces_before + chunk


def test_target_adds_to_the_folders_named(cli, settings: Settings) -> None:
    url = str(settings.database_url)
    photos = ["fr_two_people.jpg", "immich_portrait.jpg", "deepface_couple.jpg"]
    result = run_cli(cli, "index", "--target", str(MISC / photos[0]), str(MISC / photos[1]),
                     "--target", str(MISC / photos[2]), "-d", url, "--no-embed", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["catalogue"]["new_images"] == 3
    nothing = run_cli(cli, "index", "-d", url, "--no-embed")
    assert nothing.exit_code == 1
    assert nothing.stderr == ("Error: name what to index: rbv index FOLDER "
                              "(or --target FOLDER)\n")


# --- rbv cluster [--threshold 0.75] ------------------------------------------------------

def _persons(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {str(p): int(n) for p, n in conn.execute(
            "SELECT person_id, count(*) FROM face_detections WHERE person_id IS NOT NULL "
            "GROUP BY person_id")}


def test_seed_cluster(faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    done = _seed_line(CLUSTER, faces_settings)
    assert done.returncode == 0, done.stderr
    faces = _count(url, "SELECT count(*) FROM face_detections")
    assert done.stdout.startswith("Pack scrfd_sface: evidence")
    assert f"{faces} new faces: 0 joined known persons, {faces} clustered" \
        in " ".join(done.stdout.split())
    assert sum(_persons(url).values()) == faces


def test_seed_cluster_threshold_is_a_similarity(faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    done = _seed_line(CLUSTER_075, faces_settings)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Pack scrfd_sface: connected at similarity 0.75 "
                                  "(--threshold)")
    # Connected components at similarity 0.75: each face of a person of several faces
    # has one of them at least that similar (a distance of 0.75 would link far more).
    lonely = _count(url, """
        SELECT count(*) FROM face_detections f JOIN face_embeddings e ON e.face_id = f.id
        WHERE f.person_id IN (SELECT person_id FROM face_detections GROUP BY person_id
                              HAVING count(*) > 1)
          AND NOT EXISTS (SELECT 1 FROM face_detections g JOIN face_embeddings h
                          ON h.face_id = g.id WHERE g.person_id = f.person_id
                          AND g.id <> f.id AND 1 - (e.embedding <=> h.embedding) >= 0.75)""")
    assert lonely == 0
    strict = _persons(url)
    assert max(strict.values()) > 1  # some faces were linked
    looser = _seed_line(CLUSTER_075.replace("0.75", "0.4") + " --full", faces_settings)
    assert looser.returncode == 0, looser.stderr
    assert len(_persons(url)) < len(strict)  # higher = stricter: more, smaller persons


def test_seed_cluster_then_threshold_says_how_to_apply_it_to_every_face(
        faces_settings: Settings) -> None:
    assert _seed_line(CLUSTER, faces_settings).returncode == 0
    done = _seed_line(CLUSTER_075, faces_settings)
    assert done.returncode == 0, done.stderr
    assert "0 new faces" in done.stdout  # incremental: no face to group
    assert "made with another setting (evidence" in done.stdout
    assert "Run `rbv cluster --full` to re-cluster every face with it" in " ".join(
        done.stdout.split())  # wrapped at 80 columns


# --- the library's own pack --------------------------------------------------------------

def _rbv(cli, settings: Settings, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return run_cli(cli, "-d", str(settings.database_url), *args,
                   env={"RBV_MODEL_PACK": "", "RBV_DATA_DIR": str(settings.data_dir), **env})


def _refined(cli, settings: Settings, tmp_path: Path, *pack: str) -> Path:  # type: ignore[no-untyped-def]
    assert _rbv(cli, settings, "cluster", "--threshold", "0.46", *pack).exit_code == 0
    result = _rbv(cli, settings, "refine", str(tmp_path / "refined"), *RELAXED, "--no-crops",
                  *pack)
    assert result.exit_code == 0, result.output
    return tmp_path / "refined" / "refine_manifest.json"


@pytest.mark.slow  # export-swap and discover crop and re-detect real faces
def test_export_swap_discover_embed_use_the_library_pack(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    settings = Settings(database_url=faces_settings.database_url,
                        data_dir=faces_settings.data_dir)  # no pack named
    swap = tmp_path / "swap"
    result = _rbv(cli, settings, "export-swap", str(_refined(cli, settings, tmp_path)),
                  str(swap), "--min-face", "30", "--json")
    assert result.exit_code == 0, result.output
    assert sum(s["written"] for s in json.loads(result.stdout)["facesets"]) > 0

    mixed = tmp_path / "mixed"
    new = _gallery(mixed, "Mark_Zuckerberg", slice(0, 4))
    result = _rbv(cli, settings, "discover", str(mixed), str(swap), *RELAXED,
                  "--swap-min-face", "30", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["photos"] == new  # indexed with the pack
    assert _count(str(settings.database_url), "SELECT count(*) FROM model_packs") == 1

    result = _rbv(cli, settings, "embed", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Would scan 0 images with scrfd_sface; nothing was written.\n"


@pytest.mark.slow
def test_several_packs_none_named_lists_them_and_a_manifest_names_its_own(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    settings = Settings(database_url=faces_settings.database_url,
                        data_dir=faces_settings.data_dir)
    manifest = _refined(cli, settings, tmp_path)  # refine records the pack in its manifest
    square = write_square_pack(PACK, tmp_path / "square")  # other files: another pack
    result = _rbv(cli, settings, "embed", "--model-pack", str(square), "--limit", "1")
    assert result.exit_code == 0, result.output

    listed = _rbv(cli, settings, "embed", "--dry-run")
    assert listed.exit_code == 1
    assert listed.stderr == ("Error: several packs in this database (packs: scrfd_sface, "
                             "square); pass --model-pack NAME or set RBV_MODEL_PACK\n")
    named = _rbv(cli, settings, "embed", "--dry-run", RBV_MODEL_PACK=str(square))
    assert named.exit_code == 0, named.output
    assert named.stdout.startswith("Would scan ")

    result = _rbv(cli, settings, "export-swap", str(manifest), str(tmp_path / "swap"),
                  "--min-face", "30", "--json")
    assert result.exit_code == 0, result.output
    assert sum(s["written"] for s in json.loads(result.stdout)["facesets"]) > 0


def test_a_library_from_before_folders_were_recorded_learns_its_folder_at_the_next_embed(
        cli, faces_settings: Settings) -> None:
    settings = Settings(database_url=faces_settings.database_url,
                        data_dir=faces_settings.data_dir)
    with psycopg.connect(str(settings.database_url)) as conn:
        conn.execute("UPDATE model_packs SET folder = NULL")  # as schema 24 leaves it
    lost = _rbv(cli, settings, "embed", "--dry-run")
    assert lost.exit_code == 1
    assert lost.stderr.startswith("Error: model pack 'scrfd_sface' is not in ")
    assert _rbv(cli, settings, "embed", "--model-pack", str(PACK)).exit_code == 0
    found = _rbv(cli, settings, "embed", "--dry-run")
    assert found.exit_code == 0, found.output
    assert found.stdout == "Would scan 0 images with scrfd_sface; nothing was written.\n"
