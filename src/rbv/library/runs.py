"""The library's runs over its photos and faces: indexing, and grouping faces into
persons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rbv.cluster.defaults import DEFAULT_K
from rbv.errors import ConfigError
from rbv.library.room import Room, StrPath, as_path

if TYPE_CHECKING:
    from rbv.cluster.defaults import Method
    from rbv.jobs.grouping.cluster import ClusterReport
    from rbv.jobs.library.index import IndexSummary


class Runs(Room):
    """Indexing and clustering."""

    def index(self, targets: Iterable[StrPath], *, embed: bool = True,
              include: Sequence[str] = (), exclude: Sequence[str] = (),
              dry_run: bool = False) -> IndexSummary:
        """Catalogue the photos under ``targets`` (folders or files), then detect and
        embed their faces (``embed``: as ``rbv index``; False: as ``--no-embed``).
        ``include``/``exclude``: globs, as ``--include``/``--exclude``. Files that fail
        are counted in the summary (``failed``) and retried on the next run."""
        from rbv.jobs.library.carry import forget_said
        from rbv.jobs.library.index import run_index
        from rbv.media.discovery import PathFilter, refuse_missing

        paths = [as_path(t) for t in targets]
        if not paths:
            raise ConfigError("name what to index: one folder or file at least")
        refuse_missing(paths)
        analyzer = self._face_analyzer() if embed and not dry_run else None
        summary = run_index(self.db, self._run_settings(), paths,
                            PathFilter(include, exclude), analyzer, dry_run=dry_run)
        if summary.embed:  # returned to the caller: said, as the CLI's printed lines are
            forget_said(self.db, summary.embed.carry)
        return summary

    def cluster(self, *, full: bool = False, method: Method | None = None,
                threshold: float | None = None, budget: float | None = None,
                match_threshold: float | None = None, neighbors: int = DEFAULT_K,
                dry_run: bool = False) -> ClusterReport:
        """Group faces into persons, as ``rbv cluster``: new faces only, or every face
        with ``full`` (names, merges, moves and rejections kept). The other arguments
        are the command's options; None: the pack's setting."""
        from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack

        options = ClusterOptions(method=method, threshold=threshold, budget=budget,
                                 match_threshold=match_threshold, full=full,
                                 dry_run=dry_run, k=neighbors)
        pack = self.settings.model_pack
        return cluster_pack(self.db, pack, options, sole_fallback=pack is None)

