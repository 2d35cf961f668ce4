"""Looking over the persons: the merges they may need, the faces that may not be
theirs, and a static site of both."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from rbv.library.room import Room, StrPath, as_path, as_path_or_none

if TYPE_CHECKING:
    from rbv.jobs.exchange.site import SiteReport
    from rbv.jobs.persons.evidence import CommandLine
    from rbv.jobs.persons.review import LargestReport, ReviewReport
    from rbv.jobs.persons.suggest import SuggestReport


class Review(Room):
    """What ``rbv persons suggest``, ``persons review`` and ``site`` run. A pack named
    by ``model_pack`` is meant strictly; None: the library's pack (as every run's)."""

    def suggest(self, limit: int = 20, *, min_score: float | None = None,
                sheets: StrPath | None = None, model_pack: str | None = None
                ) -> SuggestReport:
        """The first ``limit`` merge suggestions scoring at least ``min_score`` (None:
        the command's default), most worth answering first, as ``rbv persons
        suggest``; with ``sheets``, a PNG of each pair side by side in that folder.
        Each suggestion's ``remedy`` is the merge that accepts it."""
        from rbv.jobs.persons.evidence import DEFAULT_MIN_SCORE
        from rbv.jobs.persons.suggest import suggest

        pack, fallback = self._pack(model_pack)
        return suggest(self.db, pack, limit,
                       min_score=DEFAULT_MIN_SCORE if min_score is None else min_score,
                       sheet_dir=as_path_or_none(sheets),
                       max_pixels=self.settings.max_image_pixels, sole_fallback=fallback)

    def review(self, person: uuid.UUID, limit: int = 40, *,
               sheet: StrPath | None = None) -> ReviewReport:
        """The person's faces, least typical first (at most ``limit``), the doubtful
        ones and whether it looks like two people, as ``rbv persons review PERSON``;
        with ``sheet``, a contact sheet of them (a PNG file)."""
        from rbv.jobs.persons.review import review

        return review(self.db, person, limit, sheet=as_path_or_none(sheet),
                      max_pixels=self.settings.max_image_pixels)

    def review_largest(self, top: int = 30, *, model_pack: str | None = None
                       ) -> LargestReport:
        """Review's verdict on each of the ``top`` persons with the most faces, as
        ``rbv persons review --top``."""
        from rbv.jobs.persons.review import review_largest

        pack, fallback = self._pack(model_pack)
        return review_largest(self.db, pack, top, sole_fallback=fallback)

    def site(self, out: StrPath, command: CommandLine, *, max_faces: int | None = None,
             suggestions: int | None = None, min_score: float | None = None,
             model_pack: str | None = None) -> SiteReport:
        """Write or update a static review site under ``out``, as ``rbv site``: a page
        per person and the merge suggestions; each fix a page offers is shown as
        ``command`` words its remedy (the CLI's words: ``rbv.cli.remedies.command_line``).
        None: the command's default."""
        from rbv.jobs.exchange.site import DEFAULT_MAX_FACES, DEFAULT_SUGGESTIONS, build_site
        from rbv.jobs.persons.evidence import DEFAULT_MIN_SCORE

        pack, fallback = self._pack(model_pack)
        return build_site(
            self.db, as_path(out), pack, command=command, sole_fallback=fallback,
            max_faces=DEFAULT_MAX_FACES if max_faces is None else max_faces,
            suggestions=DEFAULT_SUGGESTIONS if suggestions is None else suggestions,
            min_score=DEFAULT_MIN_SCORE if min_score is None else min_score,
            max_pixels=self.settings.max_image_pixels)
