"""Names and faces to and from other programs: XMP face regions, folders of photos by
person, Immich."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rbv.errors import ConfigError
from rbv.library.room import Room, StrPath, as_path, as_path_or_none

if TYPE_CHECKING:
    from rbv.jobs.exchange.discover import DiscoverParams, DiscoverReport
    from rbv.jobs.exchange.export_swap import SetResult, SwapParams
    from rbv.jobs.exchange.export_xmp import ExportXmpReport
    from rbv.jobs.exchange.immich_push import PushOptions, PushSummary
    from rbv.jobs.exchange.immich_stage import StageOptions, StageSummary
    from rbv.jobs.exchange.import_folders import ImportParams, ImportReport
    from rbv.jobs.exchange.import_xmp_report import ImportXmpOptions, ImportXmpReport
    from rbv.jobs.library.index import IndexSummary
    from rbv.jobs.reporting import Reporter

R = TypeVar("R")


def _given(**values: float | None) -> dict[str, Any]:
    """The keywords given (not None), for a callee whose defaults stand otherwise."""
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class IndexedFirst(Generic[R]):
    """A run over photos that indexes them first: the index's summary (None: not
    indexed, as asked or in a dry run) and the run's own result."""

    index: IndexSummary | None
    result: R


class Exchange(Room):
    """What ``rbv export-xmp`` and the other exchanges run."""

    def export_xmp(self, roots: Iterable[StrPath] = (), *, out: StrPath | None = None,
                   into_files: bool = False, dry_run: bool = False,
                   model_pack: str | None = None, reporter: Reporter | None = None
                   ) -> ExportXmpReport:
        """Write the named faces into XMP face regions, as ``rbv export-xmp``: sidecars
        beside the photos (under ``out``, mirroring their tree), or into the photos
        themselves with ``into_files``; only photos under ``roots`` when given. Files
        that fail are listed in the report's ``problems``."""
        from rbv.jobs.exchange.export_xmp import ExportXmpOptions, export_xmp

        options = ExportXmpOptions(as_path_or_none(out), tuple(as_path(r) for r in roots),
                                   into_files, dry_run)
        pack, fallback = self._pack(model_pack)
        return export_xmp(self.db, pack, options, sole_fallback=fallback, reporter=reporter)

    def import_xmp(self, options: ImportXmpOptions, *, model_pack: str | None = None,
                   reporter: Reporter | None = None) -> ImportXmpReport:
        """Name the faces after the XMP face regions of the photos (or of the sidecars
        under ``options.sidecars_from``), as ``rbv import-xmp``: one logged edit, which
        :meth:`undo` takes back whole; a region that would undo a decision is left and
        reported with its remedies."""
        from rbv.jobs.exchange.import_xmp import import_xmp

        pack, fallback = self._pack(model_pack)
        return import_xmp(self.db, pack, options, sole_fallback=fallback, reporter=reporter)

    def export_swap(self, manifest: StrPath, out: StrPath, params: SwapParams | None = None,
                    *, advance: Callable[[int], None] = lambda n: None) -> list[SetResult]:
        """Ranked single-face crops and a ``.fsz`` bundle per faceset of a refine
        ``manifest`` (its refine_manifest.json), under ``out``, as ``rbv export-swap``;
        with the manifest's pack unless the library names one. ``advance`` is called
        with each batch of faces cropped."""
        from rbv.jobs.exchange.export_swap import SwapParams, export_swap, read_manifest
        from rbv.jobs.library.analyzer import load_face_analyzer, with_library_pack

        path = as_path(manifest)
        settings = with_library_pack(self.settings, self.db, read_manifest(path).get("pack"))
        return export_swap(self.db, path, as_path(out), load_face_analyzer(settings),
                           params or SwapParams(), max_pixels=settings.max_image_pixels,
                           advance=advance)

    def immich_stage(self, options: StageOptions, *, timeout_s: float | None = None,
                     retry_wait_s: float | None = None,
                     max_download_bytes: int | None = None, index: bool = True,
                     on_progress: Callable[[StageSummary], None] | None = None,
                     reporter: Reporter | None = None) -> IndexedFirst[StageSummary]:
        """Download the Immich library's photos with faces into ``options.user_dir``,
        as ``rbv immich-stage``, on the server and with the key the settings name (the
        run recorded; ``partial`` when an asset failed or the listing was short), then
        index that folder (``index``; not in a dry run). ``on_progress`` is told the
        staging so far, ``reporter`` the indexing; the client's limits (None: its
        defaults) as :class:`rbv.immich.client.ImmichClient` takes them."""
        from rbv.immich.client import ImmichClient
        from rbv.jobs.exchange.immich_stage import stage_library
        from rbv.jobs.recording import recorded_run

        url, key = self.settings.immich_url, self.settings.immich_api_key
        if not url or not key:
            raise ConfigError("no Immich server or API key: the settings name none")
        indexing = index and not options.dry_run
        if indexing:
            self._face_analyzer()  # a pack or device that cannot be used fails first
        client = ImmichClient(url, key, **_given(timeout_s=timeout_s,
                                                 retry_wait_s=retry_wait_s,
                                                 max_download_bytes=max_download_bytes))
        parameters = {"user": options.user, "out": str(options.out_dir),
                      "min_face": options.min_face, "workers": options.workers}
        with client, recorded_run(self.db, "immich-stage", parameters,
                                  dry_run=options.dry_run) as run:
            summary = stage_library(client, self.db, options, on_progress=on_progress)
            run.counts = {"seen": summary.seen, "staged": summary.staged,
                          "failed": summary.failed}
            if summary.failed or not summary.listing_complete:
                run.status = "partial"
        indexed = None
        if indexing and options.user_dir.is_dir():  # every run: it picks up what a run
            indexed = self._indexed([options.user_dir], reporter=reporter)  # stopped left
        return IndexedFirst(indexed, summary)

    def immich_push(self, options: PushOptions, *, timeout_s: float | None = None,
                    retry_wait_s: float | None = None, model_pack: str | None = None,
                    on_progress: Callable[[PushSummary, int], None] | None = None
                    ) -> PushSummary:
        """Put the names of the faces staged in Immich on Immich's faces, as ``rbv
        immich-push``, on the server and with the key the settings name; the run is
        recorded (``partial`` when an asset failed: a re-run retries it).
        ``on_progress`` is told the summary so far and the assets to check; the
        client's limits as in :meth:`immich_stage`."""
        from rbv.immich.people import ImmichPeopleClient
        from rbv.jobs.exchange.immich_push import push_names
        from rbv.jobs.recording import recorded_run

        url, key = self.settings.immich_url, self.settings.immich_api_key
        if not url:
            raise ConfigError("no Immich server: the settings name none")
        if not key:
            raise ConfigError("no Immich API key: the settings hold none")
        client = ImmichPeopleClient(url, key, **_given(timeout_s=timeout_s,
                                                       retry_wait_s=retry_wait_s))
        parameters = {"server": client.url, "user": options.user, "min_iou": options.min_iou,
                      "recheck": options.recheck}
        pack, fallback = self._pack(model_pack)
        with client, recorded_run(self.db, "immich-push", parameters,
                                  dry_run=options.dry_run) as run:
            summary = push_names(client, self.db, pack, options, sole_fallback=fallback,
                                 on_progress=on_progress)
            run.counts = {k: v for k, v in summary.as_dict().items()
                          if isinstance(v, int) and not isinstance(v, bool)}
            run.status = "partial" if summary.failed else "ok"
        return summary

    def import_folders(self, roots: Sequence[StrPath], mixed: Sequence[StrPath] = (),
                       params: ImportParams | None = None, *, index: bool = True,
                       dry_run: bool = False, model_pack: str | None = None,
                       reporter: Reporter | None = None) -> IndexedFirst[ImportReport]:
        """A named person per hand-sorted folder under ``roots`` (its name the folder's),
        and the faces of ``mixed`` photos routed to them, as ``rbv import-folders``: one
        logged edit. The folders are indexed first (``index``; not in a dry run, which
        counts what that would add)."""
        from rbv.jobs.exchange.import_folders import ImportParams, import_folders

        tops, others = [as_path(r) for r in roots], [as_path(m) for m in mixed]
        indexed = (self._indexed([*tops, *others], reporter=reporter) if index and not dry_run
                   else None)
        settings = self._run_settings()
        pack, fallback = self._pack(model_pack)
        return IndexedFirst(indexed, import_folders(
            self.db, pack or settings.model_pack, tops, others, params or ImportParams(),
            dry_run=dry_run, sole_fallback=fallback, indexed_by=settings if index else None))

    def discover(self, folder: StrPath, out: StrPath, params: DiscoverParams | None = None,
                 swap: SwapParams | None = None, *, index: bool = True,
                 dry_run: bool = False, model_pack: str | None = None,
                 reporter: Reporter | None = None) -> IndexedFirst[DiscoverReport]:
        """New people among the faces of ``folder``'s photos, as ``rbv discover``:
        faces in no faceset and near none clustered into new facesets, recorded and
        written to ``out`` as export-swap writes them. The folder is indexed first
        (``index``; not in a dry run); ``reporter`` is told the indexing, then the
        faces cropped."""
        from rbv.jobs.exchange.discover import DiscoverParams, discover
        from rbv.jobs.exchange.export_swap import SwapParams

        where = as_path(folder)
        analyzer = None if dry_run else self._face_analyzer()
        indexed = self._indexed([where], reporter=reporter) if index and not dry_run else None
        settings = self._run_settings()
        pack, fallback = self._pack(model_pack)
        if reporter is not None:
            reporter.stage("cropping", None)
        return IndexedFirst(indexed, discover(
            self.db, pack or settings.model_pack, where, as_path(out), analyzer,
            params or DiscoverParams(), swap or SwapParams(), dry_run=dry_run,
            sole_fallback=fallback, max_pixels=settings.max_image_pixels,
            advance=(lambda n: None) if reporter is None else reporter.advance))
