"""Names and faces to and from other programs: XMP face regions, folders of photos by
person, Immich."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rbv.library.room import Room, StrPath, as_path, as_path_or_none

if TYPE_CHECKING:
    from rbv.jobs.exchange.export_xmp import ExportXmpReport


class Exchange(Room):
    """What ``rbv export-xmp`` and the other exchanges run."""

    def export_xmp(self, roots: Iterable[StrPath] = (), *, out: StrPath | None = None,
                   into_files: bool = False, dry_run: bool = False) -> ExportXmpReport:
        """Write the named faces into XMP face regions, as ``rbv export-xmp``: sidecars
        beside the photos (under ``out``, mirroring their tree), or into the photos
        themselves with ``into_files``; only photos under ``roots`` when given. Files
        that fail are listed in the report's ``problems``."""
        from rbv.jobs.exchange.export_xmp import ExportXmpOptions, export_xmp

        options = ExportXmpOptions(as_path_or_none(out), tuple(as_path(r) for r in roots),
                                   into_files, dry_run)
        pack = self.settings.model_pack
        return export_xmp(self.db, pack, options, sole_fallback=pack is None)
