"""PostgreSQL + pgvector storage: connection (embedded or URL), migrations, queries."""

from rbv.store.server.connection import Database
from rbv.store.server.opening import open_database

__all__ = ["Database", "open_database"]
