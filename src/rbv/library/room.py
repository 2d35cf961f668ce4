"""What every room of :class:`rbv.library.Library` stands on: its database and
settings, and the pack's analyzer its runs share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from rbv.config import Settings
from rbv.store import Database

if TYPE_CHECKING:
    from rbv.faces.types import FaceAnalyzer

StrPath = str | os.PathLike[str]
"""A path as a caller gives it: text (``~`` is the home folder) or a ``Path``."""


def as_path(given: StrPath) -> Path:
    """``given`` as a path, ``~`` expanded."""
    return Path(given).expanduser()


def as_path_or_none(given: StrPath | None) -> Path | None:
    return None if given is None else as_path(given)


class Room:
    """The library's database and settings; each room of methods builds on them."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._analyzer: FaceAnalyzer | None = None

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
