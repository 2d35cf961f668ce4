"""What every room of :class:`rbv.library.Library` stands on: its database and
settings, and the pack's analyzer its runs share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rbv.config import Settings
from rbv.store import Database

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rbv.faces.attributes import AttributeModel
    from rbv.faces.types import FaceAnalyzer
    from rbv.jobs.library.carry import CarrySummary
    from rbv.jobs.library.index import IndexSummary
    from rbv.jobs.reporting import Reporter
    from rbv.media.discovery import PathFilter

StrPath = str | os.PathLike[str]
"""A path as a caller gives it: text (``~`` is the home folder) or a ``Path``."""


def as_path(given: StrPath) -> Path:
    """``given`` as a path, ``~`` expanded."""
    return Path(given).expanduser()


def as_path_or_none(given: StrPath | None) -> Path | None:
    return None if given is None else as_path(given)


class Room:
    """The library's database and settings; each room of methods builds on them."""

    def __init__(self, db: Database, settings: Settings, *,
                 sole_fallback: bool = False) -> None:
        self.db = db
        self.settings = settings
        # the settings' pack is a default (a front end's environment): where the
        # library has no faces of it but one pack only, that pack is meant
        self._sole_fallback = sole_fallback
        self._analyzer: FaceAnalyzer | None = None
        self._attributes: tuple[AttributeModel | None] | None = None  # loaded: a 1-tuple
        # a front end that prints the carry's losses forgets them itself, once printed
        # (losses_said): killed in between, the next run says them again
        self._caller_says_losses = False

    def losses_said(self, carry: CarrySummary) -> None:
        """``carry``'s losses (``dropped``) have been shown to the user: forget them,
        so no later run returns them again. Only for a library made with
        ``Library.from_settings(..., says_losses=True)``; the others forget them as
        they return them."""
        from rbv.jobs.library.carry import forget_said

        forget_said(self.db, carry)

    def _returned(self, carry: CarrySummary) -> None:
        """``carry`` is returned to the caller: said, unless the caller says it."""
        if not self._caller_says_losses:
            self.losses_said(carry)

    def _pack(self, model_pack: str | None) -> tuple[str | None, bool]:
        """The pack a run works on, and whether the library's only pack stands in for
        it (:func:`~rbv.store.queries.pack_lookup.find_pack`): ``model_pack`` when
        given (strictly), else the settings' own."""
        if model_pack is not None:
            return model_pack, False
        pack = self.settings.model_pack
        return pack, pack is None or self._sole_fallback

    def _listed_pack(self, model_pack: str | None) -> str | None:
        """The pack a listing or a mark keeps to: ``model_pack`` when given, else the
        settings' own (``RBV_MODEL_PACK``: the default every command's help names),
        found as :meth:`_pack`'s is (the library's only pack standing in where it has
        none of it); None, every pack, where neither names one."""
        pack, fallback = self._pack(model_pack)
        if pack is None:
            return None
        from rbv.jobs.persons.lookup import pack_name

        return pack_name(self.db, pack, sole_fallback=fallback)

    def _run_settings(self) -> Settings:
        """The settings with the pack resolved (the library's own when none was given)
        and the inference workers counted."""
        from rbv.jobs.library.analyzer import with_inference_workers, with_library_pack

        return with_library_pack(with_inference_workers(self.settings), self.db)

    def _face_analyzer(self) -> FaceAnalyzer:
        """The pack's analyzer on the device, loaded at the first run that needs it."""
        if self._analyzer is None:
            from rbv.jobs.library.analyzer import load_face_analyzer

            self._analyzer = load_face_analyzer(self._run_settings())
        return self._analyzer

    def _attribute_model(self) -> AttributeModel | None:
        """The age and gender model runs use (the settings', else the pack folder's;
        None where there is none), loaded at the first run that asks."""
        if self._attributes is None:
            from rbv.jobs.library.analyzer import load_attribute_model

            self._attributes = (load_attribute_model(self._run_settings()),)
        return self._attributes[0]

    def _indexed(self, paths: Sequence[Path], path_filter: PathFilter | None = None, *,
                 embed: bool = True, dry_run: bool = False,
                 reporter: Reporter | None = None) -> IndexSummary:
        """Catalogue ``paths``, then (``embed``) detect and embed their faces, each new
        face with its estimated age and gender where an attribute model is at hand:
        what ``rbv index`` does, and every command that indexes first. The carry's
        losses are returned once."""
        from rbv.jobs.library.index import run_index

        analyzer = self._face_analyzer() if embed and not dry_run else None
        summary = run_index(self.db, self._run_settings(), list(paths), path_filter,
                            analyzer, dry_run=dry_run, reporter=reporter,
                            attributes=self._attribute_model() if analyzer else None)
        if summary.embed:
            self._returned(summary.embed.carry)
        return summary
