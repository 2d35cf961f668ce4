"""Names and faces to and from other programs: XMP face regions, folders of photos by
person, Immich."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rbv.errors import ConfigError
from rbv.library.room import Room, StrPath, as_path, as_path_or_none

if TYPE_CHECKING:
    from rbv.jobs.exchange.export_swap import SetResult, SwapParams
    from rbv.jobs.exchange.export_xmp import ExportXmpReport
    from rbv.jobs.exchange.immich_push import PushOptions, PushSummary


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

    def immich_push(self, options: PushOptions, *, timeout_s: float = 30.0,
                    retry_wait_s: float = 5.0, model_pack: str | None = None,
                    on_progress: Callable[[PushSummary, int], None] | None = None
                    ) -> PushSummary:
        """Put the names of the faces staged in Immich on Immich's faces, as ``rbv
        immich-push``, on the server and with the key the settings name; the run is
        recorded (``partial`` when an asset failed: a re-run retries it).
        ``on_progress`` is told the summary so far and the assets to check."""
        from rbv.immich.people import ImmichPeopleClient
        from rbv.jobs.exchange.immich_push import push_names
        from rbv.jobs.recording import recorded_run

        url, key = self.settings.immich_url, self.settings.immich_api_key
        if not url:
            raise ConfigError("no Immich server: the settings name none")
        if not key:
            raise ConfigError("no Immich API key: the settings hold none")
        client = ImmichPeopleClient(url, key, timeout_s=timeout_s, retry_wait_s=retry_wait_s)
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
