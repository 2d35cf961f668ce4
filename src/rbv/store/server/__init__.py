"""Running the database: connecting (embedded server or URL), the embedded PostgreSQL
and its linger watcher, opening with migrations applied, the migration runner, and the
advisory locks that keep two runs of one job apart."""
