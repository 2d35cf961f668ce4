"""Opening the database a command uses: the server named in the settings or the embedded
one, checked to answer and (for most commands) to have a current schema."""

from __future__ import annotations

from pathlib import Path

from rbv.config import Settings
from rbv.store.server.connection import Database, describe_url
from rbv.store.server.embedded import embedded_url, restart_embedded
from rbv.store.server.migrations import check_schema_current


def open_database(settings: Settings, *, require_schema: bool = True) -> Database:
    """Resolve the settings to a database, check it answers, and (unless
    ``require_schema`` is False) that its schema is current."""
    if settings.database_url:
        db = Database(
            settings.database_url, describe_url(settings.database_url), settings.connect_timeout_s,
            # Settings made in code without a data folder keep no files (not in the cwd)
            data_dir=Path(settings.data_dir) if Path(settings.data_dir) != Path() else None,
        )
    else:
        db = Database(
            embedded_url(settings.data_dir, settings.server_linger_s),
            f"the embedded server in {Path(settings.data_dir) / 'pg'}",
            settings.connect_timeout_s,
            embedded=True,
            restart=lambda: restart_embedded(settings.data_dir),
            data_dir=Path(settings.data_dir),
        )
    with db.connect() as conn:
        if require_schema:
            check_schema_current(conn)
    return db
