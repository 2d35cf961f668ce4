"""Queries on ``immich_assets``, ``immich_people`` and ``immich_pushes``: which photo came
from which Immich asset, and what ``immich-push`` did on that server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


def record_assets(conn: psycopg.Connection, server: str, user: str,
                  assets: Sequence[tuple[str, str]]) -> int:
    """Remember (asset id, sha256) pairs of ``server``; returns how many rows changed."""
    if not assets:
        return 0
    cur = conn.execute(
        """
        INSERT INTO immich_assets (server, asset_id, sha256, user_label)
        SELECT %s, a, s, %s FROM unnest(%s::text[], %s::text[]) AS t (a, s)
        ON CONFLICT (server, asset_id) DO UPDATE
            SET sha256 = EXCLUDED.sha256, user_label = EXCLUDED.user_label,
                staged_at = now()
            WHERE immich_assets.sha256 <> EXCLUDED.sha256
        """,
        (server, user, [a for a, _ in assets], [s for _, s in assets]),
    )
    return cur.rowcount


def asset_count(conn: psycopg.Connection, server: str, user: str) -> int:
    row = conn.execute("SELECT count(*) FROM immich_assets WHERE server = %s AND "
                       "user_label = %s", (server, user)).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class NamedFace:
    """One of rbv's named faces, box in upright original pixels."""

    face_id: int
    box: tuple[float, float, float, float]
    name: str
    drawn: bool = False  # drawn by hand (`rbv faces add`): Immich's detector missed it too


@dataclass
class AssetFaces:
    """An Immich asset whose photo has named faces in rbv."""

    asset_id: str
    image_id: int
    width: int  # upright
    height: int
    faces: list[NamedFace]


def named_faces_of_assets(conn: psycopg.Connection, server: str, pack_id: int,
                          user: str | None = None) -> list[AssetFaces]:
    """Every asset of ``server`` (of one ``user`` label, or all) whose photo has faces of
    named, visible persons of the pack; in asset id order."""
    rows = conn.execute(
        """
        SELECT a.asset_id, i.id, i.width, i.height, f.id, f.x1, f.y1, f.x2, f.y2, n.name,
               f.drawn IS NOT NULL
        FROM immich_assets a
        JOIN images i ON i.sha256 = a.sha256 AND i.width > 0 AND i.height > 0
        JOIN face_detections f ON f.image_id = i.id AND f.pack_id = %s
        JOIN persons p ON p.id = f.person_id AND NOT p.hidden AND p.merged_into IS NULL
        JOIN person_names n ON n.person_id = p.id
        WHERE a.server = %s AND (%s::text IS NULL OR a.user_label = %s)
        ORDER BY a.asset_id, f.id
        """,
        (pack_id, server, user, user),
    ).fetchall()
    out: list[AssetFaces] = []
    for r in rows:
        if not out or out[-1].asset_id != r[0]:
            out.append(AssetFaces(r[0], int(r[1]), int(r[2]), int(r[3]), []))
        out[-1].faces.append(NamedFace(int(r[4]), (r[5], r[6], r[7], r[8]), r[9], bool(r[10])))
    return out


def pushed_signatures(conn: psycopg.Connection, server: str) -> dict[str, str]:
    """Asset id → signature of what immich-push last finished for it."""
    rows = conn.execute("SELECT asset_id, signature FROM immich_pushes WHERE server = %s",
                        (server,)).fetchall()
    return {r[0]: r[1] for r in rows}


def record_push(conn: psycopg.Connection, server: str, asset_id: str, signature: str,
                assigned: int, conflicts: int) -> None:
    conn.execute(
        """
        INSERT INTO immich_pushes (server, asset_id, signature, assigned, conflicts)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (server, asset_id) DO UPDATE
            SET signature = EXCLUDED.signature, assigned = EXCLUDED.assigned,
                conflicts = EXCLUDED.conflicts, pushed_at = now()
        """,
        (server, asset_id, signature, assigned, conflicts),
    )


def recorded_people(conn: psycopg.Connection, server: str) -> dict[str, str]:
    """Name → the Immich person id rbv used for it on ``server``."""
    rows = conn.execute("SELECT name, immich_person_id FROM immich_people WHERE server = %s",
                        (server,)).fetchall()
    return {r[0]: r[1] for r in rows}


def record_person(conn: psycopg.Connection, server: str, name: str, person_id: str,
                  created: bool) -> None:
    conn.execute(
        """
        INSERT INTO immich_people (server, name, immich_person_id, created_by_rbv)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (server, name) DO UPDATE
            SET immich_person_id = EXCLUDED.immich_person_id,
                created_by_rbv = EXCLUDED.created_by_rbv, recorded_at = now()
            WHERE immich_people.immich_person_id <> EXCLUDED.immich_person_id
        """,
        (server, name, person_id, created),
    )
