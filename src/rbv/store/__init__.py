"""PostgreSQL + pgvector storage: connection (embedded or URL), migrations, queries."""

from rbv.store.connection import Database
from rbv.store.opening import open_database

__all__ = ["Database", "open_database"]
