"""Queries on ``images``, ``image_paths`` and ``catalogue_failures``: the catalogue."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from rbv.media.orientation import turn_box
from rbv.store.queries.paths import path_bytes, path_from_bytes, path_text
from rbv.store.queries.supersessions import shown_again, supersede_image

_MTIME_TOLERANCE_S = 1e-3  # timestamptz keeps microseconds; file systems may keep ns


@dataclass(frozen=True)
class KnownPath:
    """What the catalogue remembers about a path."""

    image_id: int
    size_bytes: int | None
    mtime: datetime | None
    status: str  # of its image: ok | failed | pending
    missing: bool = False  # marked missing by an earlier index run
    format: str | None = None  # of its image
    image_hash: str | None = None  # of its image (None: not read since schema 18)
    sha256: str | None = None  # of the bytes catalogued at this path

    def unchanged(self, size: int, mtime: float) -> bool:
        """Same size and modification time as on disk, and catalogued fine."""
        return (
            self.status == "ok"
            and self.size_bytes == size
            and self.mtime is not None
            and abs(self.mtime.timestamp() - mtime) < _MTIME_TOLERANCE_S
        )


@dataclass(frozen=True)
class CataloguedFile:
    """A file that was read: its content hash and either its metadata or its error."""

    path: str
    gallery: str | None
    size: int
    mtime: float
    sha256: str
    format: str | None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    gps: tuple[float | None, float | None, float | None] = (None, None, None)
    camera: tuple[str | None, str | None] = (None, None)
    orientation: int | None = None
    exif: dict[str, Any] | None = None
    image_hash: str | None = None  # of the image data, metadata left out
    error: str | None = None  # set: the content is not a usable image


@dataclass(frozen=True)
class SavedFile:
    image_id: int
    new_image: bool  # False: the content was already catalogued (an alias or a re-run)
    same_path: bool  # the path already showed this content (touched, not changed)
    new_metadata: bool = False  # the path's bytes changed, its image data did not
    # the path's image data changed: its old content's faces wait to be carried over
    superseded: bool = False


def known_paths(conn: psycopg.Connection, paths: Sequence[str]) -> dict[str, KnownPath]:
    """The catalogue's record of each of ``paths`` that it knows."""
    rows = conn.execute(
        """
        SELECT p.path_bytes, p.image_id, p.size_bytes, p.mtime, i.status,
               p.missing_since IS NOT NULL, i.format, i.image_hash,
               coalesce(p.sha256, i.sha256)
        FROM image_paths p JOIN images i ON i.id = p.image_id
        WHERE p.path_bytes = ANY(%s)
        """,
        ([path_bytes(p) for p in paths],),
    ).fetchall()
    return {path_from_bytes(r[0]): KnownPath(*r[1:]) for r in rows}


def set_image_hashes(conn: psycopg.Connection, hashes: Sequence[tuple[int, str]]) -> None:
    """Record the image-data hash of images catalogued before rbv kept one."""
    with conn.cursor() as cur:
        cur.executemany("UPDATE images SET image_hash = %s WHERE id = %s AND image_hash IS NULL",
                        [(h, i) for i, h in hashes])


def save_catalogued(conn: psycopg.Connection, files: Sequence[CataloguedFile]) -> list[SavedFile]:
    """Store images (one per content) and their paths. A failed image's attempts are
    counted; an image that was failed and now reads fine becomes ``ok``. A path whose
    bytes changed but whose image data did not (its tags were edited) keeps its image
    row, with the new sha256 and metadata: its faces and what was decided about them
    stay."""
    saved = []
    raws = [path_bytes(f.path) for f in files]
    # Each path's image as it was, read for the whole batch at once; read again for a
    # path whose image an earlier file of the batch wrote (the same image at two paths).
    before = _images_of(conn, raws)
    written: set[int] = set()  # images this batch wrote so far
    seen: set[bytes] = set()
    for f, raw in zip(files, raws, strict=True):
        previous = before.get(raw)
        if (previous is not None and previous[0] in written) or raw in seen:
            previous = _images_of(conn, [raw]).get(raw)
        retagged = (previous is not None and f.error is None and f.image_hash is not None
                    and previous[3] == "ok" and previous[2] == f.image_hash
                    and previous[1] != f.sha256 and not known_sha256(conn, [f.sha256]))
        if retagged:
            assert previous is not None
            image_id, new = previous[0], False
            _retag_image(conn, image_id, f)
        else:
            image_id, new = _upsert_image(conn, f)
        conn.execute(
            """
            INSERT INTO image_paths (image_id, path, path_bytes, gallery, mtime, size_bytes,
                                     sha256)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (path_bytes) DO UPDATE SET image_id = EXCLUDED.image_id,
                gallery = EXCLUDED.gallery, mtime = EXCLUDED.mtime,
                size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,
                last_seen = now(), missing_since = NULL
            """,
            (image_id, path_text(f.path), raw,
             None if f.gallery is None else path_text(f.gallery), _timestamp(f.mtime), f.size,
             f.sha256),
        )
        superseded = False
        if not new:
            shown_again(conn, image_id)
        if previous and previous[0] != image_id and not conn.execute(
                "SELECT 1 FROM image_paths WHERE image_id = %s", (previous[0],)).fetchone():
            # The file's image data changed, and no path shows the old content any more.
            # It stays, with its faces and what was decided about them, until the new
            # content's faces are found: then each old face's person and decisions go to
            # the new face that is the same face, and what cannot go is said
            # (rbv.jobs.library.carry).
            superseded = supersede_image(conn, previous[0], image_id)
        conn.execute("DELETE FROM catalogue_failures WHERE path_bytes = %s", (raw,))
        written.add(image_id)
        if previous is not None:
            written.add(previous[0])
        seen.add(raw)
        saved.append(SavedFile(image_id, new, bool(previous and previous[0] == image_id),
                               new_metadata=retagged, superseded=superseded))
    return saved


def _images_of(conn: psycopg.Connection, raws: Sequence[bytes]
               ) -> dict[bytes, tuple[int, str, str | None, str]]:
    """Path (as bytes) → its image's id, sha256, image hash and status, for the paths
    the catalogue holds."""
    return {bytes(r[0]): (int(r[1]), r[2], r[3], r[4]) for r in conn.execute(
        "SELECT p.path_bytes, i.id, i.sha256, i.image_hash, i.status FROM image_paths p "
        "JOIN images i ON i.id = p.image_id WHERE p.path_bytes = ANY(%s)", (list(raws),))}


def _retag_image(conn: psycopg.Connection, image_id: int, f: CataloguedFile) -> None:
    """The same image data in new bytes: new sha256, size and metadata. Faces stay; a
    new orientation turns their boxes with the picture."""
    row = conn.execute("SELECT orientation, width, height FROM images WHERE id = %s",
                       (image_id,)).fetchone()
    assert row is not None
    _set_metadata(conn, image_id, f, sha256=f.sha256, size=f.size)
    before, after = row[0] or 1, f.orientation or 1
    if before != after and row[1] and row[2]:
        reorient_faces(conn, image_id, before, after, (int(row[1]), int(row[2])))


def reorient_faces(conn: psycopg.Connection, image_id: int, before: int, after: int,
                   shown: tuple[int, int]) -> None:
    """Move the image's face boxes and landmarks from the frame of EXIF orientation
    ``before`` (shown as ``shown`` = width, height) to that of ``after``. What was
    measured in the old frame (pHash, quality, crops) is dropped, to be measured again."""
    faces = conn.execute(
        "SELECT id, x1, y1, x2, y2, landmarks FROM face_detections WHERE image_id = %s",
        (image_id,)).fetchall()
    moved = []
    for face_id, x1, y1, x2, y2, landmarks in faces:
        box, points = turn_box((x1, y1, x2, y2), landmarks, before, after, shown)
        moved.append((*box, points, face_id))
    with conn.cursor() as cur:
        cur.executemany("UPDATE face_detections SET x1 = %s, y1 = %s, x2 = %s, y2 = %s, "
                        "landmarks = %s WHERE id = %s", moved)
    conn.execute("DELETE FROM image_hashes WHERE image_id = %s", (image_id,))
    conn.execute("DELETE FROM face_quality WHERE face_id = ANY(%s)",
                 ([face[0] for face in faces],))


def _set_metadata(conn: psycopg.Connection, image_id: int, f: CataloguedFile, *,
                  sha256: str | None = None, size: int | None = None) -> None:
    lat, lon, alt = f.gps
    make, model = f.camera
    conn.execute(
        """
        UPDATE images SET status = 'ok', error = NULL, attempts = attempts + 1,
            format = %s, width = %s, height = %s, taken_at = %s, gps_lat = %s, gps_lon = %s,
            gps_alt = %s, camera_make = %s, camera_model = %s, orientation = %s,
            exif = %s, image_hash = %s, sha256 = coalesce(%s, sha256),
            size_bytes = coalesce(%s, size_bytes), updated_at = now()
        WHERE id = %s
        """,
        (f.format, f.width, f.height, f.taken_at, lat, lon, alt, make, model, f.orientation,
         json.dumps(f.exif) if f.exif else None, f.image_hash, sha256, size, image_id),
    )


def _upsert_image(conn: psycopg.Connection, f: CataloguedFile) -> tuple[int, bool]:
    row = conn.execute(
        """
        INSERT INTO images (sha256, size_bytes, format, status, error, attempts)
        VALUES (%s, %s, %s, 'pending', NULL, 0)
        ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
        RETURNING id, status, (xmax = 0) AS inserted
        """,
        (f.sha256, f.size, f.format),
    ).fetchone()
    assert row is not None  # INSERT … ON CONFLICT DO UPDATE … RETURNING yields a row
    image_id, status, inserted = int(row[0]), str(row[1]), bool(row[2])
    if status == "ok":
        if f.image_hash is not None:  # catalogued before rbv kept the image-data hash
            conn.execute("UPDATE images SET image_hash = %s WHERE id = %s "
                         "AND image_hash IS NULL", (f.image_hash, image_id))
        return image_id, False
    if f.error is not None:
        conn.execute(
            """
            UPDATE images SET status = 'failed', error = %s, attempts = attempts + 1,
                format = %s, updated_at = now()
            WHERE id = %s
            """,
            (f.error, f.format, image_id),
        )
        return image_id, inserted
    _set_metadata(conn, image_id, f)
    return image_id, True


def record_unreadable(
    conn: psycopg.Connection, path: str, error: str, size: int | None, mtime: float | None
) -> None:
    """Remember a file that could not be read at all (no content, so no image row)."""
    conn.execute(
        """
        INSERT INTO catalogue_failures (path, path_bytes, error, size_bytes, mtime)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (path_bytes) DO UPDATE SET error = EXCLUDED.error,
            attempts = catalogue_failures.attempts + 1, size_bytes = EXCLUDED.size_bytes,
            mtime = EXCLUDED.mtime, last_seen = now()
        """,
        (path_text(path), path_bytes(path), error, size,
         None if mtime is None else _timestamp(mtime)),
    )


def image_paths_of(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, list[str]]:
    """Every known path of each image: present ones first, each group oldest first
    (aliases in order of discovery)."""
    rows = conn.execute(
        "SELECT image_id, path_bytes FROM image_paths WHERE image_id = ANY(%s) "
        "ORDER BY missing_since IS NOT NULL, id",
        (list(image_ids),),
    ).fetchall()
    found: dict[int, list[str]] = {}
    for image_id, raw in rows:
        found.setdefault(int(image_id), []).append(path_from_bytes(raw))
    return found


def image_formats(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, str]:
    rows = conn.execute(
        "SELECT id, format FROM images WHERE id = ANY(%s)", (list(image_ids),)
    ).fetchall()
    return {int(r[0]): str(r[1]) for r in rows if r[1]}


def _timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def known_sha256(conn: psycopg.Connection, digests: Collection[str]) -> set[str]:
    """The subset of ``digests`` (hex sha256) that are images in the database."""
    if not digests:
        return set()
    rows = conn.execute(
        "SELECT sha256 FROM images WHERE sha256 = ANY(%s)", (list(digests),)
    ).fetchall()
    return {row[0] for row in rows}


def scanned_paths(conn: psycopg.Connection, pack_id: int) -> list[tuple[int, str]]:
    """(image id, path) of every path of the images the pack has scanned."""
    return [(int(i), path_from_bytes(p)) for i, p in conn.execute(
        "SELECT p.image_id, p.path_bytes FROM image_paths p JOIN face_scans s "
        "ON s.image_id = p.image_id AND s.pack_id = %s", (pack_id,))]


def photo_files(conn: psycopg.Connection) -> Callable[[int], tuple[str | None, list[str]]]:
    """Where an image's bytes are, for :class:`rbv.pictures.pixels.PhotoSource`: its
    format and every known path of it (:func:`image_paths_of`)."""
    def locate(image_id: int) -> tuple[str | None, list[str]]:
        return (image_formats(conn, [image_id]).get(image_id),
                image_paths_of(conn, [image_id]).get(image_id, []))
    return locate
