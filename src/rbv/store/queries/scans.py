"""The work queue of ``embed``: ``face_scans`` rows per (image, pack).

Workers on any number of machines claim rows with ``FOR UPDATE SKIP LOCKED``, so no two
ever hold the same image. A claim is marked ``running`` with the worker's ``host:pid``
and time; results are committed per batch together with the scan status, so a crash
loses at most the batch in hand. A worker renews its claims with each batch it takes
(``renewed_at``): a claim is held on a lease. Claims of dead workers (same host,
process gone) and claims whose lease lapsed (not renewed for ``lease_s``, whoever holds
them: a worker on another machine that died) are taken back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from rbv.store.queries.attributes import save_attributes
from rbv.store.queries.faces import NewFace, insert_faces_ids


@dataclass(frozen=True)
class ScanClaim:
    """One image handed to this worker."""

    image_id: int
    attempts: int  # including this one


@dataclass(frozen=True)
class ScanFailure:
    image_id: int
    error: str


def enqueue_catalogued(conn: psycopg.Connection, pack_id: int) -> int:
    """Create a pending scan for every catalogued image that has none for the pack
    (old content kept for a carry excepted)."""
    cur = conn.execute(
        """
        INSERT INTO face_scans (image_id, pack_id)
        SELECT i.id, %s FROM images i
        WHERE i.status = 'ok'
          AND NOT EXISTS (SELECT 1 FROM face_scans s
                          WHERE s.image_id = i.id AND s.pack_id = %s)
          -- old content of a photo whose pixels changed: no path shows it
          AND NOT EXISTS (SELECT 1 FROM image_supersessions o WHERE o.old_image_id = i.id)
        ON CONFLICT DO NOTHING
        """,
        (pack_id, pack_id),
    )
    return cur.rowcount


@dataclass(frozen=True)
class DeadClaim:
    """A ``running`` scan whose worker is gone."""

    pack_id: int
    image_id: int
    worker: str
    claimed_at: datetime | None


def dead_claims(
    conn: psycopg.Connection,
    pack_id: int | None,
    host: str,
    is_alive: Callable[[int], bool],
    lease_s: float,
) -> list[DeadClaim]:
    """Claims (of one pack, or of all with None) whose worker is gone: a process of this
    host that no longer runs (killed, crashed), or any claim not renewed for ``lease_s``
    seconds (by the database's clock). Reads only."""
    rows = conn.execute(
        """
        SELECT pack_id, image_id, worker, claimed_at,
               coalesce(renewed_at, claimed_at) < now() - make_interval(secs => %s)
        FROM face_scans WHERE (%s::int IS NULL OR pack_id = %s) AND status = 'running'
        ORDER BY pack_id, image_id
        """,
        (lease_s, pack_id, pack_id),
    ).fetchall()
    dead = []
    for pack, image_id, worker, claimed_at, lapsed in rows:
        who_host, _, pid = str(worker or "").rpartition(":")
        if lapsed or (who_host == host and pid.isdigit() and not is_alive(int(pid))):
            dead.append(DeadClaim(int(pack), int(image_id), str(worker or ""), claimed_at))
    return dead


def release_dead_claims(
    conn: psycopg.Connection,
    pack_id: int,
    host: str,
    is_alive: Callable[[int], bool],
    lease_s: float,
) -> int:
    """Put back claims whose worker is gone (see :func:`dead_claims`). A claim that
    another worker took back and claimed meanwhile is left alone."""
    dead = dead_claims(conn, pack_id, host, is_alive, lease_s)
    if not dead:
        return 0
    return conn.execute(
        """
        UPDATE face_scans s
        SET status = 'pending', worker = NULL, claimed_at = NULL, renewed_at = NULL
        FROM unnest(%s::bigint[], %s::text[]) d(image_id, worker)
        WHERE s.pack_id = %s AND s.image_id = d.image_id AND s.worker = d.worker
          AND s.status = 'running'
        """,
        ([c.image_id for c in dead], [c.worker for c in dead], pack_id),
    ).rowcount


def renew_claims(conn: psycopg.Connection, pack_id: int, worker: str) -> int:
    """Renew the lease of every claim this worker holds on the pack."""
    return conn.execute(
        "UPDATE face_scans SET renewed_at = now() "
        "WHERE pack_id = %s AND status = 'running' AND worker = %s",
        (pack_id, worker),
    ).rowcount


@dataclass(frozen=True)
class WorkerClaims:
    """What one worker holds now (``rbv stats``)."""

    worker: str  # host:pid
    pack: str
    images: int
    claimed_since: datetime  # its oldest claim held
    renewed_at: datetime  # its latest renewal (or claim)
    lease_lapsed: bool  # not renewed for the lease: any worker may take the claims back


def claims_by_worker(conn: psycopg.Connection, lease_s: float) -> list[WorkerClaims]:
    """Who works on what: each worker's claims per pack. Reads only."""
    rows = conn.execute(
        """
        SELECT s.worker, p.name, count(*), min(s.claimed_at),
               max(coalesce(s.renewed_at, s.claimed_at)),
               max(coalesce(s.renewed_at, s.claimed_at)) < now() - make_interval(secs => %s)
        FROM face_scans s JOIN model_packs p ON p.id = s.pack_id
        WHERE s.status = 'running'
        GROUP BY s.worker, p.name ORDER BY min(s.claimed_at), s.worker
        """,
        (lease_s,),
    ).fetchall()
    return [WorkerClaims(str(r[0] or "?"), str(r[1]), int(r[2]), r[3], r[4], bool(r[5]))
            for r in rows]


def claim_pending_images(
    conn: psycopg.Connection,
    pack_id: int,
    worker: str,
    limit: int,
    *,
    max_attempts: int,
    failed_before: datetime,
) -> list[ScanClaim]:
    """Claim up to ``limit`` images for this worker and commit the claim.

    Pending rows come first in image order; failed rows are retried if they failed
    before ``failed_before`` (the start of this run: not twice in one run) and have
    fewer than ``max_attempts`` attempts.
    """
    with conn.transaction():
        rows = conn.execute(
            """
            WITH picked AS (
                SELECT image_id FROM face_scans
                WHERE pack_id = %(pack)s
                  AND (status = 'pending'
                       OR (status = 'failed' AND attempts < %(max)s
                           AND finished_at < %(before)s))
                  AND EXISTS (SELECT 1 FROM image_paths p
                              WHERE p.image_id = face_scans.image_id
                                AND p.missing_since IS NULL)
                ORDER BY image_id
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE face_scans s
            SET status = 'running', worker = %(worker)s, claimed_at = now(),
                renewed_at = now(), attempts = s.attempts + 1
            FROM picked
            WHERE s.pack_id = %(pack)s AND s.image_id = picked.image_id
            RETURNING s.image_id, s.attempts
            """,
            {"pack": pack_id, "max": max_attempts, "before": failed_before,
             "limit": limit, "worker": worker},
        ).fetchall()
    return sorted((ScanClaim(int(r[0]), int(r[1])) for r in rows), key=lambda c: c.image_id)


@dataclass(frozen=True)
class StoredScans:
    """What :func:`complete_scans` wrote: the images scanned and the failures of claims
    the worker still held, and the faces stored."""

    images: list[int]
    failed: list[int]
    faces: int


def complete_scans(
    conn: psycopg.Connection,
    pack_id: int,
    worker: str,
    faces_by_image: dict[int, list[NewFace]],
    failures: Sequence[ScanFailure],
) -> StoredScans:
    """Store one batch in ONE transaction: faces (binary COPY), scans ``done`` with
    their face count, failures ``failed`` with their reason. Only rows this worker
    still holds are written (a claim taken back meanwhile is left to its new owner,
    and not counted here: a worker frozen past its lease reported images another
    worker had scanned)."""
    with conn.transaction():
        ids = list(faces_by_image) + [f.image_id for f in failures]
        held = {int(r[0]) for r in conn.execute(
            """
            SELECT image_id FROM face_scans
            WHERE pack_id = %s AND image_id = ANY(%s) AND status = 'running' AND worker = %s
            FOR UPDATE
            """,
            (pack_id, ids, worker),
        )}
        done = [i for i in faces_by_image if i in held]
        failed = [f for f in failures if f.image_id in held]
        # A scan redone after a crash must not leave the first attempt's rows behind
        # (a face drawn by hand is no scan's: it stays).
        conn.execute("DELETE FROM face_detections WHERE pack_id = %s AND image_id = ANY(%s) "
                     "AND drawn IS NULL", (pack_id, done))
        new = [f for i in done for f in faces_by_image[i]]
        new_ids = insert_faces_ids(conn, new)
        save_attributes(conn, [(face_id, f.estimate)
                               for face_id, f in zip(new_ids, new, strict=True)
                               if f.estimate is not None])
        written = len(new_ids)
        with conn.cursor() as cur:
            cur.executemany(
                """
                UPDATE face_scans SET status = 'done', error = NULL, face_count = %s,
                    finished_at = now(), worker = NULL, claimed_at = NULL, renewed_at = NULL
                WHERE pack_id = %s AND image_id = %s
                """,
                [(len(faces_by_image[i]), pack_id, i) for i in done],
            )
            cur.executemany(
                """
                UPDATE face_scans SET status = 'failed', error = %s, finished_at = now(),
                    worker = NULL, claimed_at = NULL, renewed_at = NULL
                WHERE pack_id = %s AND image_id = %s
                """,
                [(f.error, pack_id, f.image_id) for f in failed],
            )
    return StoredScans(done, [f.image_id for f in failed], written)


def release_claims(conn: psycopg.Connection, pack_id: int, worker: str,
                   image_ids: Sequence[int]) -> None:
    """Hand back claims this worker will not finish (interrupted run); the attempt
    is not counted."""
    if image_ids:
        conn.execute(
            """
            UPDATE face_scans SET status = 'pending', worker = NULL, claimed_at = NULL,
                renewed_at = NULL, attempts = greatest(attempts - 1, 0)
            WHERE pack_id = %s AND image_id = ANY(%s) AND status = 'running' AND worker = %s
            """,
            (pack_id, list(image_ids), worker),
        )


def remaining_scans(conn: psycopg.Connection, pack_id: int, max_attempts: int) -> int:
    """Scans still to do for the pack (pending, or failed and still retryable) of
    images with a file to read (a path not marked missing)."""
    row = conn.execute(
        """
        SELECT count(*) FROM face_scans s WHERE pack_id = %s
          AND (status = 'pending' OR (status = 'failed' AND attempts < %s))
          AND EXISTS (SELECT 1 FROM image_paths p
                      WHERE p.image_id = s.image_id AND p.missing_since IS NULL)
        """,
        (pack_id, max_attempts),
    ).fetchone()
    return int(row[0]) if row else 0


def count_unscanned(conn: psycopg.Connection, fingerprint: str, max_attempts: int) -> int:
    """Catalogued images a pack (by fingerprint; maybe not registered yet) would scan:
    no scan yet, pending, or failed with attempts left. Reads only."""
    row = conn.execute(
        """
        SELECT count(*) FROM images i
        WHERE i.status = 'ok'
          AND EXISTS (SELECT 1 FROM image_paths p
                      WHERE p.image_id = i.id AND p.missing_since IS NULL)
          AND NOT EXISTS (
              SELECT 1 FROM face_scans s JOIN model_packs m ON m.id = s.pack_id
              WHERE s.image_id = i.id AND m.fingerprint = %s
                AND (s.status IN ('done', 'running')
                     OR (s.status = 'failed' AND s.attempts >= %s)))
        """,
        (fingerprint, max_attempts),
    ).fetchone()
    return int(row[0]) if row else 0


def unscanned_within(conn: psycopg.Connection, pack_id: int,
                     ranges: Sequence[tuple[bytes, bytes]], max_attempts: int) -> int:
    """Catalogued images with a path (not missing) in one of ``ranges`` (``lo <=
    path_bytes < hi``) that the pack would still scan: no scan yet, pending, or failed
    with attempts left. Reads only."""
    row = conn.execute(
        """
        SELECT count(*) FROM images i
        WHERE i.status = 'ok'
          AND EXISTS (SELECT 1 FROM image_paths p, unnest(%s::bytea[], %s::bytea[]) r(lo, hi)
                      WHERE p.image_id = i.id AND p.missing_since IS NULL
                        AND p.path_bytes >= r.lo AND p.path_bytes < r.hi)
          AND NOT EXISTS (
              SELECT 1 FROM face_scans s
              WHERE s.image_id = i.id AND s.pack_id = %s
                AND (s.status IN ('done', 'running')
                     OR (s.status = 'failed' AND s.attempts >= %s)))
        """,
        ([lo for lo, _ in ranges], [hi for _, hi in ranges], pack_id, max_attempts),
    ).fetchone()
    return int(row[0]) if row else 0
