"""rbv as a Python library: ``from rbv import Library``.

A front end, as the CLI and ``rbv serve`` are: each method is a thin call into the job
the matching command runs (:mod:`rbv.jobs`), and returns the object that job returns,
the one the command prints (and ``--json`` writes with ``as_dict()``). It takes resolved
values, a person's ``uuid.UUID`` and a face's ``int`` id, never text to look up (that is
the CLI's part), and it reads no environment variable: what it uses is what
:meth:`Library.open` is given. The jobs' own errors (:mod:`rbv.errors`) come through as
they are; docs/api.md lists them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from rbv.cluster.defaults import DEFAULT_K
from rbv.config import Settings, default_data_dir
from rbv.errors import ConfigError
from rbv.jobs.persons import edit_log, lookup
from rbv.jobs.persons.photos import PhotoQuery, PhotosResult, find_photos
from rbv.store import Database, open_database
from rbv.store.server.embedded import attached, leave_embedded
from rbv.store.server.migrations import apply_pending

if TYPE_CHECKING:
    from rbv.cluster.defaults import Method
    from rbv.faces.types import FaceAnalyzer
    from rbv.jobs.exchange.export_xmp import ExportXmpReport
    from rbv.jobs.grouping.cluster import ClusterReport
    from rbv.jobs.library.index import IndexSummary
    from rbv.jobs.persons.edit_log import EditRow, UndoResult
    from rbv.jobs.persons.lookup import PersonFace, PersonRow
    from rbv.jobs.persons.person_details import HideResult
    from rbv.jobs.persons.person_edit import Edited

StrPath = str | os.PathLike[str]
"""A path as a caller gives it: text (``~`` is the home folder) or a ``Path``."""

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


def _path(given: StrPath) -> Path:
    return Path(given).expanduser()


class Library:
    """An rbv library: its database, and the model pack and device its runs use. Open
    one with :meth:`open`; close it with :meth:`close` or a ``with`` block."""

    def __init__(self, db: Database, settings: Settings, holds: Path | None = None) -> None:
        self.db = db
        self.settings = settings
        self._holds = holds  # the data folder whose embedded server close() lets go of
        self._analyzer: FaceAnalyzer | None = None

    def __repr__(self) -> str:
        return f"Library({self.db.display})"

    @classmethod
    def open(cls, where: StrPath, *, model_pack: StrPath | None = None,
             device: str = "auto", migrate: bool = False) -> Library:
        """The library in ``where``: a data folder (rbv's embedded PostgreSQL under it,
        started or attached to, as ``rbv --data-dir``), or a ``postgresql://`` URL.

        ``model_pack``: the pack the runs use, by name or folder (as ``--model-pack``;
        None: the library's only pack, else ``buffalo_l`` in a library without
        faces). ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:1``… (as ``--device``).
        ``migrate``: create or upgrade the schema first (as ``rbv migrate``); else a
        library without the current schema raises :class:`rbv.errors.SchemaNotReady`.
        """
        text = os.fspath(where)
        url = text if text.startswith(URL_SCHEMES) else None
        data_dir = default_data_dir() if url else _path(text).absolute()
        settings = Settings(database_url=url, data_dir=data_dir,
                            model_pack=None if model_pack is None else os.fspath(model_pack),
                            device=device, server_linger_s=0.0)
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

    # -- indexing and clustering -----------------------------------------------------

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

        paths = [_path(t) for t in targets]
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

    # -- persons ---------------------------------------------------------------------

    def persons(self, *, hidden: bool = False, min_faces: int = 1,
                model_pack: str | None = None) -> list[PersonRow]:
        """Persons with their names and face and photo counts, most faces first, as
        ``rbv persons list`` (every pack's, or ``model_pack``'s); ``hidden`` includes
        hidden persons; named persons are listed whatever their faces."""
        return lookup.list_persons(self.db, model_pack, include_hidden=hidden,
                                   min_faces=min_faces)

    def person(self, person: uuid.UUID) -> PersonRow:
        """One person, hidden or not (:class:`rbv.errors.PersonNotFound` when no
        person has that id: merged into another, or deleted by a clustering run)."""
        return lookup.person(self.db, person)

    def faces(self, person: uuid.UUID, limit: int | None = None) -> list[PersonFace]:
        """The person's faces (``limit``: at most so many), its cover first, then best
        detections first, as ``rbv persons show``."""
        return lookup.faces(self.db, str(person), limit)[2]

    def photos(self, persons: Sequence[uuid.UUID], *, without: Sequence[uuid.UUID] = (),
               since: date | str | None = None, until: date | str | None = None,
               age: str | None = None, limit: int | None = None,
               copy_to: StrPath | None = None, link_to: StrPath | None = None
               ) -> PhotosResult:
        """The photos that show every one of ``persons`` and none of ``without``, oldest
        first, as ``rbv photos``. ``since``/``until``: inclusive, a date or YYYY,
        YYYY-MM, YYYY-MM-DD; ``age``: the first person's age in years (``3``, ``3-5``,
        ``4-``, ``-2``); ``copy_to``/``link_to``: gather them into that folder."""
        query = PhotoQuery(tuple(map(str, persons)), tuple(map(str, without)),
                           None if since is None else str(since),
                           None if until is None else str(until), limit, age)
        return find_photos(self.db, query,
                           copy_to=None if copy_to is None else _path(copy_to),
                           link_to=None if link_to is None else _path(link_to))

    # -- edits (each logged: history() lists them, undo() reverts the last) ----------

    def name(self, person: uuid.UUID, name: str, *, force: bool = False) -> Edited:
        """Name or rename a person, as ``rbv persons name`` (invisible characters are
        removed). A name another person has is refused (:class:`rbv.errors.ConfigError`)
        unless ``force``. The name it has already changes nothing (``edit_id`` None)."""
        from rbv.jobs.persons import person_details

        return person_details.name(self.db, person, name, force=force)

    def merge(self, target: uuid.UUID, sources: Sequence[uuid.UUID], *,
              override: bool = False, keep_name: str | None = None,
              keep_born: date | None = None, dry_run: bool = False) -> Edited:
        """Merge ``sources`` into ``target``, as ``rbv persons merge``: the named one is
        kept (``Edited.person``); ``keep_name``/``keep_born`` say which name or
        birthday stays when they differ; ``override`` removes the decisions that keep
        their faces apart."""
        from rbv.jobs.persons import merges

        return merges.merge(
            self.db, target, list(sources), override=override,
            dry_run=dry_run, keep_name=keep_name,
            keep_born=None if keep_born is None else keep_born.isoformat())

    def move(self, faces: Sequence[int], *, to: uuid.UUID | None = None,
             dry_run: bool = False) -> Edited:
        """Move faces to the person ``to`` by hand (None: a new person of their own),
        as ``rbv persons move``; every re-cluster keeps them there."""
        from rbv.jobs.persons import face_moves

        return face_moves.move(self.db, list(faces), to,
                               dry_run=dry_run)

    def reject(self, person: uuid.UUID, faces: Sequence[int], *,
               dry_run: bool = False) -> Edited:
        """Take faces out of a person for good, as ``rbv persons not-this-person``."""
        from rbv.jobs.persons import face_moves

        return face_moves.reject(self.db, person, list(faces), dry_run=dry_run)

    def hide(self, *persons: uuid.UUID, dry_run: bool = False) -> HideResult:
        """Hide persons from :meth:`persons` (their faces stay), as one edit."""
        from rbv.jobs.persons import person_details

        return person_details.hide(self.db, list(persons), True, dry_run=dry_run)

    def unhide(self, *persons: uuid.UUID, dry_run: bool = False) -> HideResult:
        """Show hidden persons again, as one edit."""
        from rbv.jobs.persons import person_details

        return person_details.hide(self.db, list(persons), False, dry_run=dry_run)

    def undo(self, count: int = 1, *, dry_run: bool = False) -> UndoResult:
        """Undo the last ``count`` edits still in effect, exactly, as ``rbv persons
        undo``: refused, changing nothing (:class:`rbv.errors.EditConflict`), when a
        row one of them changed was changed again since."""
        return edit_log.undo(self.db, count, dry_run=dry_run)

    def history(self, limit: int = 50) -> list[EditRow]:
        """The logged edits, newest first (``limit`` 0: all), as ``rbv persons
        history``."""
        return edit_log.history(self.db, limit)

    # -- other programs --------------------------------------------------------------

    def export_xmp(self, roots: Iterable[StrPath] = (), *, out: StrPath | None = None,
                   into_files: bool = False, dry_run: bool = False) -> ExportXmpReport:
        """Write the named faces into XMP face regions, as ``rbv export-xmp``: sidecars
        beside the photos (under ``out``, mirroring their tree), or into the photos
        themselves with ``into_files``; only photos under ``roots`` when given. Files
        that fail are listed in the report's ``problems``."""
        from rbv.jobs.exchange.export_xmp import ExportXmpOptions, export_xmp

        options = ExportXmpOptions(None if out is None else _path(out),
                                   tuple(_path(r) for r in roots), into_files, dry_run)
        pack = self.settings.model_pack
        return export_xmp(self.db, pack, options, sole_fallback=pack is None)

    # -- what the runs use -----------------------------------------------------------

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
