"""``index``: discover → catalogue → (unless told not to) detect + embed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rbv.config import Settings
from rbv.errors import printable
from rbv.faces.types import FaceAnalyzer
from rbv.jobs.library.catalogue import CatalogueSummary, run_catalogue
from rbv.jobs.library.embed import EmbedSummary, run_embed
from rbv.jobs.recording import recorded_run
from rbv.jobs.reporting import Reporter
from rbv.media.discovery import PathFilter
from rbv.store import Database

if TYPE_CHECKING:
    from rbv.faces.attributes import AttributeModel


@dataclass
class IndexSummary:
    catalogue: CatalogueSummary
    embed: EmbedSummary | None  # None: --no-embed or --dry-run

    @property
    def failed(self) -> int:
        """Items that failed (files, folders, images); non-zero means exit code 3."""
        return len(self.catalogue.problems) + (self.embed.failed if self.embed else 0)

    def as_dict(self) -> dict[str, object]:
        return {"catalogue": self.catalogue.as_dict(),
                "embed": None if self.embed is None else self.embed.as_dict(),
                "failed": self.failed}


def run_index(
    db: Database,
    settings: Settings,
    targets: Sequence[Path],
    path_filter: PathFilter | None = None,
    analyzer: FaceAnalyzer | None = None,
    *,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    attributes: AttributeModel | None = None,
) -> IndexSummary:
    """Catalogue ``targets``; then, with an ``analyzer``, detect and embed every image
    still queued for its pack (with ``attributes``, estimating each new face's age and
    gender from the pixels decoded for it). A dry run reads and writes nothing beyond
    ``stat``."""
    if dry_run:
        return IndexSummary(run_catalogue(db, settings, targets, path_filter, dry_run=True,
                                          reporter=reporter), None)
    parameters = {
        # As text PostgreSQL takes: a non-UTF-8 name's bytes as \xNN.
        "targets": [printable(str(t)) for t in targets],
        "include": path_filter.include if path_filter else [],
        "exclude": path_filter.exclude if path_filter else [],
        "embed": analyzer is not None,
        "pack": analyzer.pack.name if analyzer else None,
        "attribute_model": attributes.name if attributes else None,
        "concurrency": settings.concurrency,
    }
    with recorded_run(db, "index", parameters) as run:
        catalogue = run_catalogue(db, settings, targets, path_filter, reporter=reporter)
        run.counts = catalogue.as_dict()
        embed = None
        if analyzer is not None:
            embed = run_embed(db, settings, analyzer, reporter=reporter, record=False,
                              attributes=attributes)
            run.counts["embed"] = embed.as_dict()
        summary = IndexSummary(catalogue, embed)
        run.status = "partial" if summary.failed else "ok"
    return summary
