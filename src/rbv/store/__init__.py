"""PostgreSQL + pgvector storage: connection (embedded or URL), migrations, queries."""

from rbv.store.connection import Database, open_database

__all__ = ["Database", "open_database"]
