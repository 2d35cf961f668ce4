"""The :class:`Library` class, assembled from its rooms, and how one is opened and
closed (a data folder's embedded server is let go of by the last library of it)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from rbv.config import Settings, default_data_dir
from rbv.library.exchange import Exchange
from rbv.library.face_marks import FaceMarks
from rbv.library.person_edits import PersonEdits
from rbv.library.persons import Persons
from rbv.library.review import Review
from rbv.library.room import StrPath, as_path
from rbv.library.runs import Runs
from rbv.library.upkeep import Upkeep
from rbv.store import Database, open_database
from rbv.store.server.embedded import attached, leave_embedded
from rbv.store.server.migrations import apply_pending

URL_SCHEMES = ("postgresql://", "postgres://")

_holding: dict[Path, int] = {}
"""Data folders whose embedded server open libraries attached this process to, with
how many of them are open: the last one closed leaves the server."""


def _hold(data_dir: Path) -> bool:
    """Count one more library of ``data_dir``'s server, where libraries attach this
    process to it (False: the process was attached before, by something else, which
    leaves it at exit)."""
    if data_dir not in _holding and attached(data_dir):
        return False
    _holding[data_dir] = _holding.get(data_dir, 0) + 1
    return True


def _release(data_dir: Path) -> None:
    """One library of ``data_dir`` fewer: the last one leaves the server (which stops
    when no other rbv process uses it)."""
    _holding[data_dir] -= 1
    if not _holding[data_dir]:
        del _holding[data_dir]
        leave_embedded(data_dir)


class Library(Runs, Persons, PersonEdits, FaceMarks, Review, Exchange, Upkeep):
    """An rbv library: its database, and the model pack and device its runs use. Open
    one with :meth:`open`; close it with :meth:`close` or a ``with`` block."""

    def __init__(self, db: Database, settings: Settings, holds: Path | None = None, *,
                 sole_fallback: bool = False) -> None:
        super().__init__(db, settings, sole_fallback=sole_fallback)
        self._holds = holds  # the data folder whose embedded server close() lets go of

    def __repr__(self) -> str:
        return f"Library({self.db.display})"

    @classmethod
    def open(cls, where: StrPath, *, model_pack: StrPath | None = None,
             device: str = "auto", migrate: bool = False,
             attribute_model: StrPath | None = None) -> Library:
        """The library in ``where``: a data folder (rbv's embedded PostgreSQL under it,
        started or attached to, as ``rbv --data-dir``), or a ``postgresql://`` URL.

        ``model_pack``: the pack the runs use, by name or folder (as ``--model-pack``;
        None: the library's only pack, else ``buffalo_l`` in a library without
        faces). ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:1``… (as ``--device``).
        ``migrate``: create or upgrade the schema first (as ``rbv migrate``); else a
        library without the current schema raises :class:`rbv.errors.SchemaNotReady`.
        ``attribute_model``: an age and gender model file that ``index`` and ``enrich``
        estimate faces with (as ``--attribute-model``; None: the pack folder's, if any).
        """
        text = os.fspath(where)
        url = text if text.startswith(URL_SCHEMES) else None
        data_dir = default_data_dir() if url else as_path(text).absolute()
        settings = Settings(database_url=url, data_dir=data_dir,
                            model_pack=None if model_pack is None else os.fspath(model_pack),
                            device=device, server_linger_s=0.0,
                            attribute_model=None if attribute_model is None
                            else as_path(attribute_model))
        holds = data_dir if url is None and _hold(data_dir) else None
        try:
            if migrate:
                apply_pending(open_database(settings, require_schema=False))
            db = open_database(settings)
        except BaseException:
            if holds is not None:
                _release(holds)
            raise
        return cls(db, settings, holds)

    @classmethod
    def from_settings(cls, settings: Settings, *, says_losses: bool = False) -> Library:
        """The library ``settings`` name (its database, pack, device and every other
        setting, as a front end built them: the CLI from its options and environment).
        The settings' pack is a default: where the library has no faces of it but
        faces of one pack only, runs work on that one (a method's ``model_pack`` is
        strict). The embedded server is the process's, as ``settings`` say (its
        linger included): :meth:`close` leaves it running. ``says_losses``: the caller
        shows the carry's losses a run returns and then calls :meth:`losses_said` (a
        process killed in between says them again at the next run, never not at all)."""
        library = cls(open_database(settings), settings, sole_fallback=True)
        library._caller_says_losses = says_losses
        return library

    def close(self) -> None:
        """Let go of the library: the embedded server it started (or attached to) stops
        unless another rbv process, or another open library of the data folder, uses
        it. Closing twice is harmless."""
        self._analyzer = None
        held, self._holds = self._holds, None
        if held is not None:
            _release(held)

    def __enter__(self) -> Library:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
