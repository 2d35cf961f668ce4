"""Shared fixtures: a real PostgreSQL + pgvector server, fresh databases, the CLI runner."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings
from typer.testing import CliRunner

from rbv.cli.app import app
from rbv.config import Settings
from rbv.store import Database, open_database
from rbv.store.server.migrations import apply_pending
from tests.pgserver import PasswordServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FACES = SHARED / "data" / "faces"
MISC = SHARED / "data" / "misc"
PACK = SHARED / "models" / "scrfd_sface"

_db_numbers = itertools.count(1)

# The suite draws the same examples on every run, so a red run is a change, never a
# draw (exploring new draws is scripts/tools/decision_fuzz.py's job, or HYPOTHESIS_PROFILE=explore).
hypothesis_settings.register_profile("suite", derandomize=True, database=None)
hypothesis_settings.register_profile("explore")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

# The embedded server stops with the last rbv process of a test (no watcher lingers on
# after the suite); test_store's linger test sets its own.
os.environ["RBV_SERVER_LINGER"] = "0"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PasswordServer]:
    with PasswordServer.running() as server:
        yield server


def _create_database(server: PasswordServer, name: str | None = None,
                     template: str | None = None) -> str:
    """Create a database on the test server (``name``, else a new test database's),
    empty or a copy of ``template``; returns its name."""
    name = name or f"rbv_test_{os.getpid()}_{next(_db_numbers)}"
    copied = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copied}')
    return name


@pytest.fixture
def empty_db_url(pg_server: PasswordServer) -> str:
    """URL of a new, empty (un-migrated) database on the test server."""
    return pg_server.url(_create_database(pg_server))


@pytest.fixture(scope="session")
def migrated_template(pg_server: PasswordServer, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """Name of a database with every migration applied, and nothing else."""
    name = _create_database(pg_server, f"rbv_migrated_template_{os.getpid()}")
    apply_pending(open_database(Settings(database_url=pg_server.url(name),
                                         data_dir=tmp_path_factory.mktemp("migrated")),
                                require_schema=False))
    return name


@pytest.fixture
def settings(pg_server: PasswordServer, migrated_template: str, tmp_path: Path) -> Settings:
    """Settings for a freshly migrated database on the test server: a copy of the
    session's migrated template (0.17 s, where applying the migrations took 0.4 s a
    test; the migrations themselves are tested on ``empty_db_url``)."""
    name = _create_database(pg_server, template=migrated_template)
    return Settings(database_url=pg_server.url(name), data_dir=tmp_path / "data")


@pytest.fixture
def db(settings: Settings) -> Database:
    return open_database(settings)


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def run_cli(runner: CliRunner, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Invoke rbv in-process with a clean environment (no DATABASE_URL leaks in)."""
    base = {"DATABASE_URL": "", "RBV_DATABASE_URL": ""}
    return runner.invoke(app, list(args), env={**base, **(env or {})})


# --- clustering: a session-wide template database with real faces indexed once ---------

CLUSTER_IDENTITIES = ("Angelina_Jolie", "Katy_Perry", "Scarlett_Johansson", "Jennifer_Aniston",
                      "Barack_Obama", "Matt_Damon")
CLUSTER_GROUP_PHOTOS = ("fr_two_people.jpg", "fr_obama_and_biden.jpg", "insightface_t1.jpg",
                        "deepface_selfie-many-people.jpg", "fr_kit_with_rose.jpg",
                        "deepface_couple.jpg", "immich_portrait.jpg")
SFACE_THRESHOLD = 0.46  # connected components' calibrated value on data/faces (rbv eval)


def cluster_photos(later: bool = False) -> list[Path]:
    """Photos of CLUSTER_IDENTITIES: all but the last two of each (``later`` False),
    or those last two (``later`` True: the photos of a second index run)."""
    out: list[Path] = []
    for identity in CLUSTER_IDENTITIES:
        photos = sorted((FACES / identity).iterdir())
        out.extend(photos[-2:] if later else photos[:-2])
    return out


@pytest.fixture(scope="session")
def sface_analyzer():  # type: ignore[no-untyped-def]
    from rbv.faces.analyzer import load_analyzer

    return load_analyzer(str(PACK), device="cpu")


@pytest.fixture(scope="session")
def faces_template(pg_server: PasswordServer, migrated_template: str, sface_analyzer,  # type: ignore[no-untyped-def]
                   tmp_path_factory) -> str:
    """Name of a database with the earlier cluster photos and the group photos indexed."""
    from rbv.jobs.library.index import run_index

    name = _create_database(pg_server, f"rbv_faces_template_{os.getpid()}",
                            template=migrated_template)
    s = Settings(database_url=pg_server.url(name),
                 data_dir=tmp_path_factory.mktemp("template"))
    run_index(open_database(s), s, [*cluster_photos(), *(MISC / p for p in CLUSTER_GROUP_PHOTOS)],
              analyzer=sface_analyzer)
    return name


@pytest.fixture
def faces_settings(pg_server: PasswordServer, faces_template: str, tmp_path: Path) -> Settings:
    """Settings for a fresh copy of the indexed template database."""
    name = _create_database(pg_server, template=faces_template)
    return Settings(database_url=pg_server.url(name), data_dir=tmp_path / "data",
                    model_pack="scrfd_sface")


@pytest.fixture
def served(cli, faces_settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`rbv serve` (in this process) over the indexed library clustered at 0.7, and a
    client signed in to it: (ReviewServer, tests.serve_client.Client)."""
    from tests.serve_client import serving

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    with serving(faces_settings, tmp_path / "cache") as pair:
        yield pair


# --- import-folders: the identity folders of data/faces as named persons ---------------

FOLDER_IDENTITIES = [*CLUSTER_IDENTITIES, "Joe_Biden", "Kit_Harington", "Rose_Leslie"]
FOLDER_MIXED = ["fr_obama_and_biden.jpg", "fr_kit_with_rose.jpg", "deepface_couple.jpg"]


def import_folders(cli, settings: Settings, *extra: str) -> dict:  # type: ignore[no-untyped-def]
    """`rbv import-folders --json` of FOLDER_IDENTITIES (FOLDER_MIXED as group photos)."""
    args = ["-d", str(settings.database_url), "import-folders",
            *(str(FACES / name) for name in FOLDER_IDENTITIES), "--model-pack", str(PACK),
            "--json"]
    for photo in FOLDER_MIXED:
        args += ["--mixed", str(MISC / photo)]
    result = run_cli(cli, *args, *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- immich-stage / --ml-uri: local fake servers (tests/support) -------------------------

IMMICH_SPEC = SHARED / "immich" / "immich-openapi-specs.json"
IMMICH_KEY = "rbv-test-key-5f3c9a71e2d84b06aa0c"  # a secret: must never appear in output
IMMICH_FAST = ("--retry-wait", "0.01", "--timeout", "60")
"""Quick retries; a timeout no answer of the stand-in reaches on a loaded machine: a
timed-out request is retried, and a test counting reads would see the retry (an asset
read twice under load at 5 s). A test of timeouts passes its own ``--timeout``."""


@pytest.fixture(scope="session")
def immich_spec():  # type: ignore[no-untyped-def]
    from tests.support.openapi import OpenApi

    return OpenApi(IMMICH_SPEC)


@pytest.fixture(scope="session")
def immich_library():  # type: ignore[no-untyped-def]
    """~214 real-photo assets with real detector face boxes (built once, ~15 s)."""
    from tests.support.immich_library import build_library

    return build_library(SHARED, PACK)


@pytest.fixture
def fake_immich(immich_library, immich_spec):  # type: ignore[no-untyped-def]
    from tests.support.immich_server import FakeImmich

    server = FakeImmich(immich_library, IMMICH_KEY, immich_spec).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _inference_server():  # type: ignore[no-untyped-def]
    from tests.support.ml_server import FakeInference

    server = FakeInference(PACK).start()
    yield server
    server.stop()


@pytest.fixture
def fake_ml(_inference_server):  # type: ignore[no-untyped-def]
    """The fake Immich-ML server (real detections from PACK), with faults reset."""
    from tests.support.ml_server import MlFaults

    if _inference_server._server is None:
        _inference_server.start()
    _inference_server.faults = MlFaults()
    _inference_server.requests = _inference_server.predictions = 0
    _inference_server.entries = []
    return _inference_server


def _system_command(command: str, package: str, needed_for: str) -> str:
    """Path of a Debian package's command; a missing one fails the test (never skips)."""
    from tests.support.system_packages import MissingPackage, command_path

    try:
        return command_path(command, package, needed_for)
    except MissingPackage as exc:
        pytest.fail(str(exc), pytrace=False)


# -- XMP: an independent reader -------------------------------------------------------

@pytest.fixture(scope="session")
def exiftool() -> str:
    """Path of Debian's exiftool (``scripts/tools/install_test_packages.sh``); the tests that
    need it fail when it is missing."""
    return _system_command("exiftool", "libimage-exiftool-perl", "to read XMP back")


# -- Debian's chromium, driven by Playwright ---------------------------------------------

@pytest.fixture(scope="session")
def chromium():  # type: ignore[no-untyped-def]
    """One headless Debian chromium for the run (``tests.support.browser``)."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM_ARGS

    executable = _system_command("chromium", "chromium", "to open rbv's pages")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):  # type: ignore[no-untyped-def]
    """A page of its own browser context (no cookie of another test), 1280×900."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()



@pytest.fixture(scope="session")
def decisions_env(pg_server: PasswordServer, sface_analyzer,  # type: ignore[no-untyped-def]
                  tmp_path_factory: pytest.TempPathFactory):
    """The decision machine's server, indexed template and analyzer (tests/support/
    decisions.py), built once per session for every module that runs the machine."""
    from tests.support.decisions import Environment, make_template

    data_dir = tmp_path_factory.mktemp("decisions")
    template = make_template(pg_server.url, sface_analyzer, data_dir)
    return Environment(pg_server.url, template, sface_analyzer, data_dir)
