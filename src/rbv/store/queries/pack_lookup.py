"""Finding a registered model pack by name, and its calibrated settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from rbv.errors import PackNotFound, Remedy
from rbv.store.queries.packs import PackRow


def find_pack(conn: psycopg.Connection, name_or_path: str | None, *,
              sole_fallback: bool = False) -> PackRow:
    """The pack registered under this name (a path counts by its folder name).

    With ``None`` (or ``sole_fallback`` and no such name), the only pack in the
    database; otherwise an error that lists the choices.
    """
    rows = [PackRow(*r) for r in conn.execute(
        "SELECT id, name, fingerprint, embedding_dim FROM model_packs ORDER BY id")]
    if name_or_path is not None:
        name = Path(name_or_path).name or name_or_path
        matches = [p for p in rows if p.name in (name, name_or_path)]
        if len(matches) > 1:  # e.g. `remote:x@host` and a folder named x@host
            listed = ", ".join(f"{p.name} (id {p.id}, {p.fingerprint[:12]}…)" for p in matches)
            raise PackNotFound(f"model pack {name_or_path!r} matches several packs: "
                               f"{listed}; name one in full")
        if matches:
            return matches[0]
    if (name_or_path is None or sole_fallback) and len(rows) == 1:
        return rows[0]
    known = ", ".join(sorted({p.name for p in rows})) or "none yet"
    wanted = f"no faces for model pack {name_or_path!r}" if name_or_path else "several packs"
    raise PackNotFound(f"{wanted} in this database (packs: {known})", remedies=[
        *([] if rows else [Remedy("index_first")]), Remedy("choose_pack")])


def pack_row(conn: psycopg.Connection, pack_id: int) -> PackRow:
    """The registered pack with this id (persons and faces reference it, so it exists)."""
    row = conn.execute("SELECT id, name, fingerprint, embedding_dim FROM model_packs "
                       "WHERE id = %s", (pack_id,)).fetchone()
    if row is None:
        raise PackNotFound(f"no model pack with id {pack_id} in this database")
    return PackRow(*row)


def pack_settings(conn: psycopg.Connection, pack_id: int) -> dict[str, Any]:
    """The pack's stored settings (calibrated thresholds etc.)."""
    row = conn.execute("SELECT settings FROM model_packs WHERE id = %s", (pack_id,)).fetchone()
    return dict(row[0]) if row and row[0] else {}


def update_pack_settings(conn: psycopg.Connection, pack_id: int, values: dict[str, Any]) -> None:
    """Merge ``values`` into the pack's settings."""
    conn.execute("UPDATE model_packs SET settings = settings || %s::jsonb WHERE id = %s",
                 (json.dumps(values), pack_id))


def pack_files(conn: psycopg.Connection, pack_id: int) -> dict[str, str]:
    """The pack's model files: name → sha256 (how a recognizer is recognised)."""
    row = conn.execute("SELECT files FROM model_packs WHERE id = %s", (pack_id,)).fetchone()
    return {str(k): str(v) for k, v in (row[0] or {}).items()} if row else {}


def pack_folders(conn: psycopg.Connection) -> dict[str, str | None]:
    """Every registered pack's name and the folder its models last ran from (None: a
    remote server's model, or a pack registered before rbv recorded folders)."""
    return {str(name): folder for name, folder in conn.execute(
        "SELECT name, folder FROM model_packs ORDER BY id")}


def pack_ids(conn: psycopg.Connection) -> list[int]:
    """Every registered pack's id, oldest first."""
    return [int(r[0]) for r in conn.execute("SELECT id FROM model_packs ORDER BY id")]
