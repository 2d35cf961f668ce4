"""Looking after a library: its numbers, checks of its rows and files, duplicates, and
what it no longer needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rbv.library.room import Room

if TYPE_CHECKING:
    from rbv.jobs.library.dedup import DedupParams, DedupReport
    from rbv.jobs.library.prune import PruneReport
    from rbv.jobs.persons.audit import AuditReport


class Upkeep(Room):
    """What ``rbv stats``, ``audit``, ``dedup`` and ``prune`` run."""

    def stats(self) -> dict[str, Any]:
        """What is in the library, as ``rbv stats --json`` writes it: images, and per
        pack faces, persons and the clustering setting in force, the workers at work
        and the last runs (this machine's runs whose process is gone are marked
        interrupted first, so none shows as running)."""
        from rbv.jobs.library.stats import library_report
        from rbv.jobs.recording import close_dead_runs_here

        close_dead_runs_here(self.db)
        return library_report(self.db, self.settings.claim_lease_s)

    def audit(self, *, fix: bool = False, dry_run: bool = False) -> AuditReport:
        """What is inconsistent in the library, as ``rbv audit``; ``fix`` repairs what
        loses no one's work (``dry_run``: says what it would repair)."""
        from rbv.jobs.persons.audit import run_audit

        return run_audit(self.db, self.settings, fix=fix, dry_run=dry_run)

    def dedup(self, params: DedupParams | None = None, *,
              advance: Callable[[int], None] = lambda n: None) -> DedupReport:
        """Hash the photos not hashed yet, then group byte-identical and near-duplicate
        photos, as ``rbv dedup`` (``advance``: called with each batch hashed)."""
        from rbv.jobs.library.dedup import DedupParams, run_dedup

        return run_dedup(self.db, self.settings.model_pack, params or DedupParams(),
                         max_pixels=self.settings.max_image_pixels, advance=advance)

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Remove the photos found missing, with their faces, as ``rbv prune`` (their
        decisions passed first to the same faces of a copy, when one is found)."""
        from rbv.jobs.library.prune import run_prune

        return run_prune(self.db, dry_run=dry_run)
