"""``prune``: remove the photos ``index`` found missing, with their faces.

Only what ``index`` marked missing is touched (a path inside a folder it walked whose
file was gone). An image still present at another path is never deleted: only its
missing path rows go. Persons are kept, names included, even when they lose every face
(``rbv audit`` lists them; ``--fix`` deletes the unnamed ones).
"""

from __future__ import annotations

from contextlib import ExitStack

from rbv.jobs.recording import recorded_run
from rbv.store import Database
from rbv.store.queries.audit import pack_names
from rbv.store.queries.missing import PruneCounts, prune_missing
from rbv.store.server.locks import person_lock


def run_prune(db: Database, *, dry_run: bool = False) -> PruneCounts:
    """Delete missing photos (images with no present path) and their faces, and every
    missing path row; with ``dry_run``, count what would go and write nothing."""
    with db.connect() as conn:
        packs = pack_names(conn)
    if dry_run:
        with db.connect() as conn:
            return prune_missing(conn, dry_run=True)
    with recorded_run(db, "prune", {}) as run, ExitStack() as locks:
        # Faces leave persons: no clustering or person edit may run meanwhile.
        for pack_id, name in sorted(packs.items()):
            locks.enter_context(person_lock(db, pack_id, name))
        with db.transaction() as conn:
            counts = prune_missing(conn, dry_run=False)
        run.counts = counts.as_dict()
    return counts
