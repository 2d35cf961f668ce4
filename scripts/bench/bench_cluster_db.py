"""`rbv cluster` end to end against PostgreSQL: full re-cluster of N synthetic faces,
1,000 new faces matched incrementally (through the face lists from 100k faces, their
first run making them, else the pack's pgvector HNSW index; also in the first run after
the server restarted, with and without pg_prewarm), and the re-cluster an incremental run
makes once the library has grown 1.25×.

Complements ``bench_cluster.py`` (algorithms in memory) with what a user waits for:
reading embeddings (binary COPY), clustering, writing persons, and the HNSW queries
of the incremental path, with the method ``rbv cluster`` uses by default (evidence
linkage). Each run is a child process (its peak memory is its own) and prints its
stages. Baseline in the same run: the same clustering in memory on the same faces
(estimate, k-NN graph, linkage; no database); the first full run's stages are set
against the baseline's, and the last line is ``db/memory = X``, the first full run
through the database divided by that.

    uv run python scripts/bench/bench_cluster_db.py --faces 100k --dim 512
    uv run python scripts/bench/bench_cluster_db.py --faces 100k --dim 128 --method connected
    uv run python scripts/bench/bench_cluster_db.py --database postgresql://… --faces 1M
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import sql

from bench_cluster import THRESHOLD, _size, synthetic, warm_up_clustering
from rbv.cluster.calibrations import DEFAULT_METHOD, resolve_setting
from rbv.cluster.constraints import Constraints
from rbv.cluster.evidence import ImpostorModel, random_pair_similarities
from rbv.cluster.knn import DEFAULT_K, build_knn_graph
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.config import Settings
from rbv.jobs.grouping.cluster import (
    MADE_WITH,
    REGROUP_GROWTH,
    ClusterOptions,
    cluster_pack,
)
from rbv.jobs.grouping.estimate import ESTIMATE_SAMPLE
from rbv.store import open_database
from rbv.store.queries.assignments import count_faces
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.pack_lookup import update_pack_settings
from rbv.store.queries.packs import ensure_pack_index, register_pack
from rbv.store.server import embedded, postmaster
from rbv.store.server.connection import Database
from rbv.store.server.migrations import apply_pending

LOAD_BATCH = 50_000
_URL_VARIABLE = "RBV_BENCH_DATABASE_URL"
_DATA_VARIABLE = "RBV_BENCH_DATA_DIR"  # the scratch data folder, for the children


def _options(method: str, full: bool) -> ClusterOptions:
    m = Method(method)
    return ClusterOptions(method=m, threshold=None if m is Method.evidence else THRESHOLD,
                          full=full)


def child_cluster(url: str, pack: str, method: str, full: bool,
                  dry_run: bool = False) -> dict[str, Any]:
    """One ``rbv cluster`` run (what the CLI calls), with its stages timed and the
    highest resident memory seen in each (sampled every 50 ms)."""
    # the scratch data folder: where rbv keeps the pack's face lists
    db = open_database(Settings(database_url=url, data_dir=Path(os.environ[_DATA_VARIABLE])))
    load = os.getloadavg()[0]
    stages: list[tuple[str, float, float]] = []
    since, current, high = [time.perf_counter()], [""], [_rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            high[0] = max(high[0], _rss_mb())

    def stage(text: str) -> None:
        now, rss = time.perf_counter(), _rss_mb()
        if current[0]:
            stages.append((current[0], now - since[0], max(high[0], rss)))
        since[0], current[0], high[0] = now, text, rss

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    report = cluster_pack(db, pack, replace(_options(method, full), dry_run=dry_run), stage)
    stage("")
    done.set()
    return {"seconds": report.seconds, "faces": report.faces, "considered": report.considered,
            "matched": report.matched, "new_persons": report.new_persons,
            "reassigned": report.reassigned, "notes": report.notes, "stages": stages,
            "full": report.full, "load": (load, os.getloadavg()[0])}


def child_memory(data: str, pack_files: dict[str, str], method: str) -> dict[str, Any]:
    """The same clustering as a first full run, on arrays already in memory."""
    x = np.load(f"{data}/x.npy")
    images = np.load(f"{data}/images.npy")
    load = os.getloadavg()[0]
    started = time.perf_counter()
    stages: list[tuple[str, float]] = []
    m = Method(method)
    setting = resolve_setting({}, pack_files, m,
                              threshold=None if m is Method.evidence else THRESHOLD)
    t = time.perf_counter()
    if m is Method.evidence and setting.needs_estimate:
        rows = np.random.default_rng(0).choice(len(x), min(ESTIMATE_SAMPLE, len(x)),
                                               replace=False)
        pairs = random_pair_similarities(x[rows], images[rows])
        setting = setting.with_impostor(ImpostorModel.from_library_pairs(pairs), "est")
        stages.append(("estimating the impostor model", time.perf_counter() - t))
    t = time.perf_counter()
    constraints = Constraints.build(len(x), image_ids=images)
    stages.append(("constraints", time.perf_counter() - t))
    t = time.perf_counter()
    graph = build_knn_graph(x, DEFAULT_K)
    stages.append((f"{DEFAULT_K}-NN graph", time.perf_counter() - t))
    t = time.perf_counter()
    labels = cluster_embeddings(x, setting.method, setting.threshold or 0.0, constraints,
                                graph=graph, impostor=setting.impostor,
                                budget=setting.budget or 0.0)
    stages.append(("clustering", time.perf_counter() - t))
    return {"seconds": time.perf_counter() - started, "persons": int(labels.max()) + 1,
            "stages": stages, "load": (load, os.getloadavg()[0])}


def in_child(method: str, url: str, *argv: str) -> dict[str, Any]:
    """Run this script as ``--child …``; its JSON result plus its peak RSS (MB). The
    database URL goes by environment, not in the visible arguments."""
    proc = subprocess.Popen([sys.executable, __file__, "--method", method, "--child", *argv],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, _URL_VARIABLE: url})
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {argv[0]} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if result.get("peak_mb") is None:
        result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def _own_peak_mb() -> float | None:
    """This process's peak RSS since exec (VmHWM). ``ru_maxrss`` of a child also counts
    the parent's pages it was forked with, before exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """This process's resident memory now (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def show(title: str, r: dict[str, Any]) -> None:
    for name, seconds, *peak in r["stages"]:
        memory = f"  (up to {peak[0]:,.0f} MB)" if peak else ""
        print(f"  {seconds:8.2f} s  {name}{memory}")
    before, after = r["load"]
    print(f"{title}: {r['seconds']:.1f} s, peak memory {r['peak_mb']:,.0f} MB "
          f"(load {before:.1f} → {after:.1f})", flush=True)


_LIKE = {"estimat": "estimat", "graph": "-NN graph", "clustering": "clustering"}
"""Stages of a database run (its progress lines) and of the in-memory baseline that do
the same work."""


def against(memory: dict[str, Any], full: dict[str, Any]) -> None:
    """The first full run's stages that the baseline has too, and their ratio."""
    for key, like in _LIKE.items():
        mine = sum(s for name, s, *_ in full["stages"] if key in name.lower())
        base = sum(s for name, s, *_ in memory["stages"] if like in name)
        if mine and base:
            print(f"  {key:<10} db {mine:8.2f} s, memory {base:8.2f} s: db/memory "
                  f"{mine / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--new", type=_size, default=1_000)
    parser.add_argument("--method", default=DEFAULT_METHOD.value,
                        choices=[m.value for m in Method],
                        help=f"{DEFAULT_METHOD.value} (default: what `rbv cluster` uses), or "
                        f"connected, agglomerative, hdbscan (threshold {THRESHOLD})")
    parser.add_argument("--database", default=None, help="a server URL (default: a "
                        "scratch embedded server)")
    parser.add_argument("--row-by-row", action="store_true", help="also load the faces "
                        "into a second pack whose HNSW index exists before the first face "
                        "(the crossover against building it after the load)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-memory "
                        "clustering (at 1M it costs as long as the full run)")
    parser.add_argument("--rounds", type=int, default=2, help="incremental runs: the first "
                        "on the --new faces, each later one on --new random faces whose "
                        "person was taken away")
    parser.add_argument("--no-growth", action="store_true", help="skip the re-cluster an "
                        "incremental run makes once the library has grown 1.25× (evidence; "
                        "as long as a full run)")
    parser.add_argument("--no-cold", action="store_true", help="skip the incremental "
                        "runs right after a restart of the scratch server, with and "
                        "without pg_prewarm")
    parser.add_argument("--keep", type=Path, default=None, help="keep the scratch "
                        "embedded server's folder here (default: a temporary folder deleted "
                        "at the end)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "memory":
            result = child_memory(rest[0], json.loads(rest[1]), args.method)
        else:
            result = child_cluster(os.environ[_URL_VARIABLE], rest[0], args.method,
                                   kind == "full", dry_run=kind == "dry-run")
        result["peak_mb"] = _own_peak_mb()
        print(json.dumps(result))
        return

    # Stopped (kill, timeout): exit as from Ctrl-C, so the scratch server is stopped and
    # its folder removed (the default ends the process with its 3 GB cache still held).
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        scratch = str(args.keep)
    else:
        scratch = tempfile.mkdtemp(prefix="rbv-bench-")
        # Registered before the server starts, so it runs after the server is stopped.
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.environ[_DATA_VARIABLE] = scratch  # the children's data folder (face lists)
    if args.database is None:
        # rbv sizes the embedded server's buffer cache from its second start on (see
        # rbv.store.server.embedded.shared_buffers_mb): the first start, as a user's first
        # command, in a child whose server stops with it.
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from rbv.config import Settings; from rbv.store import open_database; "
                        "open_database(Settings(data_dir=Path(sys.argv[1]), server_linger_s=0), "
                        "require_schema=False)", scratch], check=True)
    # The scratch server stops with this process (a lingering one outlived its folder,
    # which atexit removes, and kept its cache).
    settings = Settings(database_url=args.database, data_dir=Path(scratch), server_linger_s=0)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    # The last --new faces are stored before the server's restarts (cold rows).
    x, _, images = synthetic(args.faces + 2 * args.new, args.dim)
    old = slice(0, args.faces)
    name = f"bench{args.dim}_{time.time_ns()}"
    files = {"r.onnx": name}
    np.save(f"{scratch}/x.npy", x[old])
    np.save(f"{scratch}/images.npy", images[old])

    with db.transaction() as conn:
        rows = conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) "
            "SELECT md5(%s || g::text) || md5(g::text || %s), 1, 'ok' "
            "FROM generate_series(0, %s) g RETURNING id", (name, name, len(x) - 1)).fetchall()
    image_id = np.array([int(r[0]) for r in rows], np.int64)

    def load(start: int, stop: int, pack_id: int) -> None:
        for lo in range(start, stop, LOAD_BATCH):
            hi = min(stop, lo + LOAD_BATCH)
            with db.transaction() as conn:
                insert_faces(conn, (NewFace(int(image_id[img]), pack_id, (0, 0, 100, 100),
                                            None, 0.9, None, emb)
                                    for img, emb in zip(images[lo:hi], x[lo:hi], strict=True)))

    t = time.perf_counter()
    with db.transaction() as conn:
        pack = register_pack(conn, name, files, args.dim)
    load(0, args.faces, pack.id)
    load_s = time.perf_counter() - t
    with db.connect() as conn:
        buffers = conn.execute("SELECT current_setting('shared_buffers'), "
                               "current_setting('huge_pages_status', true)").fetchone()
    print(f"{args.faces:,} faces × {args.dim}-d on {db.display} (shared_buffers "
          f"{buffers[0] if buffers else '?'}, huge pages {buffers[1] if buffers else '?'}), "
          f"method {args.method}: load {load_s:.1f} s", flush=True)

    # A full run never searches the HNSW index (it reads every vector), so the index is
    # built after it here; that gives the big figures sooner.
    memory = None
    warm_up_clustering()  # a first run's numba compile would land in the baseline's time
    if not args.no_baseline:
        memory = in_child(args.method, "", "memory", scratch, json.dumps(files))
        show("the same clustering in memory (baseline)", memory)
    full = in_child(args.method, db.url, "full", name)
    show(f"rbv cluster --full (first): {full['faces']:,} faces, "
         f"{full['new_persons']:,} persons", full)
    if memory is not None:
        against(memory, full)
    again = in_child(args.method, db.url, "full", name)
    show(f"rbv cluster --full again, nothing new ({again['reassigned']:,} faces changed "
         "person)", again)

    t = time.perf_counter()
    with db.transaction() as conn:
        ensure_pack_index(conn, pack)
    index_s = time.perf_counter() - t
    print(f"HNSW index built after the load: {index_s:.1f} s "
          f"({index_s / args.faces * 1e3:.2f} ms a face)", flush=True)
    if args.row_by_row:
        t = time.perf_counter()
        with db.transaction() as conn:
            other = register_pack(conn, name + "_rows", {"r.onnx": name + "_rows"}, args.dim)
            insert_faces(conn, [NewFace(int(image_id[0]), other.id, (0, 0, 1, 1), None, 0.9,
                                        None, x[0])])
            ensure_pack_index(conn, other)
        load(0, args.faces, other.id)
        rows_s = time.perf_counter() - t
        print(f"the same load into a pack whose HNSW index exists from the first face: "
              f"{rows_s:.1f} s, against {load_s + index_s:.1f} s for load + build "
              f"({rows_s / (load_s + index_s):.1f}×)", flush=True)
    t = time.perf_counter()
    load(args.faces, args.faces + args.new, pack.id)
    insert_s = time.perf_counter() - t
    print(f"{args.new:,} new faces stored, HNSW maintained row by row: {insert_s:.2f} s "
          f"({insert_s / args.new * 1e3:.2f} ms a face)", flush=True)
    inc = in_child(args.method, db.url, "incremental", name)
    show(f"rbv cluster (incremental): {inc['considered']:,} new faces, {inc['matched']:,} "
         f"joined known persons, {inc['new_persons']:,} new persons", inc)
    for round_ in range(2, args.rounds + 1):
        with db.transaction() as conn:  # as a SQL reset of --new random faces would
            conn.execute("UPDATE face_detections SET person_id = NULL WHERE id IN (SELECT id "
                         "FROM face_detections WHERE pack_id = %s AND person_id IS NOT NULL "
                         "ORDER BY random() LIMIT %s)", (pack.id, args.new))
        inc = in_child(args.method, db.url, "incremental", name)
        show(f"rbv cluster (incremental, round {round_}: {args.new:,} random faces without "
             f"their person, the index warm): {inc['matched']:,} joined known persons", inc)
    if args.database is None and not args.no_cold:
        load(args.faces + args.new, len(x), pack.id)
        cold: dict[str, list[dict[str, Any]]] = {}
        for preload in ("pg_prewarm", "", "pg_prewarm", ""):
            restart_server(db, settings.data_dir, shared_preload_libraries=preload or None)
            cold.setdefault(preload, []).append(in_child(args.method, db.url, "dry-run", name))
            show(f"rbv cluster --dry-run (incremental) right after the server restarted, "
                 f"{'with' if preload else 'without'} pg_prewarm: "
                 f"{cold[preload][-1]['considered']:,} new faces", cold[preload][-1])
        restart_server(db, settings.data_dir,
                       shared_preload_libraries="pg_prewarm")  # as shipped
        best = {k: min(r["seconds"] for r in v) for k, v in cold.items()}
        print(f"first incremental after a restart, without / with pg_prewarm (best of 2) = "
              f"{best[''] / best['pg_prewarm']:.2f}", flush=True)
    if not args.no_growth and Method(args.method) is Method.evidence:
        with db.transaction() as conn:  # as if the persons were made at 1/1.25 the size
            made = int(count_faces(conn, pack) / REGROUP_GROWTH)
            update_pack_settings(conn, pack.id, {MADE_WITH: made})
        grown = in_child(args.method, db.url, "incremental", name)
        show(f"rbv cluster (incremental, the library grown {REGROUP_GROWTH:g}× since its "
             f"persons were made: {'every face' if grown['full'] else 'NOT'} "
             f"re-clustered)", grown)
        print(f"growth re-cluster / first --full = {grown['seconds'] / full['seconds']:.2f}")
    for data in ("x.npy", "images.npy"):
        Path(scratch, data).unlink()
    if memory is None:
        print("db/memory = not measured (--no-baseline)")
    else:
        print(f"db/memory = {full['seconds'] / memory['seconds']:.2f}")

def restart_server(db: Database, data_dir: Path, **system: str | None) -> None:
    """Stop the embedded server of ``data_dir`` and start it again with ``system`` (server
    settings, None: PostgreSQL's default) in its ``postgresql.auto.conf``, as a user's
    next command would start it; checks that the server took them."""
    with db.connect(autocommit=True) as conn:
        for name, value in system.items():
            if value is None:  # ALTER SYSTEM SET … = '' would set it to ""
                conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
            else:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(
                    sql.Identifier(name), sql.Literal(value)))
    pgdata = (data_dir / "pg").resolve()
    postmaster.stop(pgdata, postmaster.server_user())
    url = embedded.restart_embedded(data_dir)
    assert url == db.url, "the server moved"
    with db.connect() as conn:
        for name, value in system.items():
            row = conn.execute("SELECT current_setting(name), sourcefile LIKE "
                               "'%%postgresql.auto.conf' FROM pg_settings WHERE name = %s",
                               (name,)).fetchone()
            assert row is not None and (not row[1] if value is None else row[0] == value), row


if __name__ == "__main__":
    main()
