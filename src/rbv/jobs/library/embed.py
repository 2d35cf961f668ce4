"""Detect + embed: register the pack, queue what it has not scanned, scan the queue
(:mod:`rbv.jobs.library.scanning`, with helper processes on a GPU:
:mod:`rbv.jobs.library.embed_helpers`), then build the pack's HNSW index and carry the
decisions of photos whose pixels changed."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from rbv.config import Settings
from rbv.errors import ModelPackError
from rbv.faces.types import FaceAnalyzer, PackInfo
from rbv.jobs.library.carry import run_carry
from rbv.jobs.library.embed_helpers import start_helpers
from rbv.jobs.library.scanning import EmbedSummary, scan_queue
from rbv.jobs.recording import process_alive, recorded_run
from rbv.jobs.reporting import Reporter, SilentReporter
from rbv.store import Database
from rbv.store.queries.assignments import count_faces
from rbv.store.queries.packs import (
    PackRow,
    drop_pack_index,
    ensure_pack_index,
    has_pack_index,
    pack_fingerprint,
    register_pack,
)
from rbv.store.queries.scans import (
    count_unscanned,
    enqueue_catalogued,
    release_dead_claims,
    remaining_scans,
)
from rbv.store.server.locks import lock_pack_preparation, server_now

if TYPE_CHECKING:
    from rbv.faces.attributes import AttributeModel

HNSW_REBUILD_SHARE = 0.5
"""A run that may add at least this share of the pack's faces (one face per image
assumed) drops the pack's HNSW index and rebuilds it at the end. Measured (2 cores,
scripts/bench/bench_cluster_db.py, 100k faces): a face costs 1.4 ms (128-d) to 3.1 ms
(512-d) to add to the index, 0.22 to 0.30 ms in a build, so rebuilding P + B faces
beats B inserts from B ≈ 0.11·P (512-d) to 0.18·P (128-d); 0.5 leaves room for runs
that find fewer faces than images, and for a busy machine (0.14–0.33·P measured
there)."""


def count_embed_work(db: Database, settings: Settings, pack: PackInfo) -> int:
    """How many images ``embed`` would scan with ``pack`` now (for ``--dry-run``)."""
    with db.connect() as conn:
        return count_unscanned(conn, pack_fingerprint(pack.files), settings.max_scan_attempts)


def prepare_pack(db: Database, settings: Settings, analyzer: FaceAnalyzer,
                 limit: int | None = None) -> PackRow:
    """Register the analyzer's pack, queue every catalogued image it has not scanned,
    and take back claims of dead workers. Before a load at least
    :data:`HNSW_REBUILD_SHARE` times the pack's faces, the pack's HNSW index is
    dropped, to be rebuilt when the run ends (cheaper than row by row)."""
    with db.transaction() as conn:
        lock_pack_preparation(conn)
        pack = register_pack(conn, analyzer.pack.name, analyzer.pack.files,
                             analyzer.pack.embedding_dim, analyzer.pack.folder)
        if pack.embedding_dim != analyzer.pack.embedding_dim:  # the same files, remotely
            raise ModelPackError(
                f"model pack {pack.name} has {pack.embedding_dim}-dimensional face "
                f"embeddings in this library, but {', '.join(analyzer.providers)} gives "
                f"{analyzer.pack.embedding_dim}-dimensional ones; faces of different "
                "models are never mixed")
        enqueue_catalogued(conn, pack.id)
        release_dead_claims(conn, pack.id, socket.gethostname(), process_alive,
                            settings.claim_lease_s)
        if has_pack_index(conn, pack):
            coming = remaining_scans(conn, pack.id, settings.max_scan_attempts)
            if limit is not None:
                coming = min(coming, limit)
            if coming >= HNSW_REBUILD_SHARE * max(1, count_faces(conn, pack)):
                drop_pack_index(conn, pack)
    return pack


def run_embed(
    db: Database,
    settings: Settings,
    analyzer: FaceAnalyzer,
    *,
    limit: int | None = None,
    reporter: Reporter | None = None,
    keep_bytes: bool | None = None,
    record: bool = True,
    attributes: AttributeModel | None = None,
) -> EmbedSummary:
    """Detect and embed faces of every queued image of the analyzer's pack (at most
    ``limit`` images), as one of possibly many workers sharing the database.

    ``keep_bytes`` hands the analyzer each file's original bytes too
    (``DecodedImage.data``); by default the analyzer's ``wants_original_bytes``
    attribute decides. With ``record`` the run is recorded in ``runs``. With
    ``attributes`` each new face gets its estimated age and gender too.
    """
    if not record:
        return _embed_pass(db, settings, analyzer, limit, reporter, keep_bytes, attributes)
    parameters = {"pack": analyzer.pack.name, "limit": limit,
                  "concurrency": settings.concurrency,
                  "inference_workers": settings.inference_workers,
                  "providers": list(analyzer.providers)}
    with recorded_run(db, "embed", parameters) as run:
        summary = _embed_pass(db, settings, analyzer, limit, reporter, keep_bytes, attributes)
        run.counts = summary.as_dict()
        run.status = "partial" if summary.failed else "ok"
    return summary


def _embed_pass(
    db: Database,
    settings: Settings,
    analyzer: FaceAnalyzer,
    limit: int | None,
    reporter: Reporter | None,
    keep_bytes: bool | None,
    attributes: AttributeModel | None,
) -> EmbedSummary:
    report = reporter or SilentReporter()
    started = time.perf_counter()
    pack = prepare_pack(db, settings, analyzer, limit)
    with db.connect() as conn:
        todo = remaining_scans(conn, pack.id, settings.max_scan_attempts)
        run_start = server_now(conn)
    report.stage("embed", todo if limit is None else min(todo, limit))
    summary = EmbedSummary(pack=pack.name)
    helpers = start_helpers(settings, analyzer, pack, todo if limit is None else None,
                            run_start, report)
    try:
        scan_queue(db, settings, analyzer, pack, summary, report, limit=limit,
                   keep_bytes=keep_bytes, attributes=attributes, run_start=run_start)
    except BaseException:
        helpers.interrupt()  # they hand their claims back, and are waited for
        raise
    finally:
        helpers.join_into(summary, report)
    with db.transaction() as conn:  # the first faces are in: build the HNSW index once
        ensure_pack_index(conn, pack)
    # Photos whose pixels changed: their old faces' persons and decisions go to the new
    # faces now found (also those an interrupted run left waiting).
    summary.carry = run_carry(db, pack, analyzer, settings)
    summary.seconds = time.perf_counter() - started
    summary.servers = analyzer.servers()
    return summary


