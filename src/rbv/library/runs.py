"""The library's runs over its photos and faces: indexing, and grouping faces into
persons."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from rbv.cluster.defaults import DEFAULT_K
from rbv.errors import ConfigError
from rbv.library.room import Room, StrPath, as_path

if TYPE_CHECKING:
    from rbv.cluster.defaults import Method
    from rbv.cluster.refine import RefineParams
    from rbv.jobs.grouping.cluster import ClusterReport
    from rbv.jobs.grouping.refine import Refined
    from rbv.jobs.library.embed import EmbedSummary
    from rbv.jobs.library.enrich import EnrichSummary
    from rbv.jobs.library.index import IndexSummary
    from rbv.jobs.reporting import Reporter


def _quiet(stage: str) -> None:
    """Told nothing: a run's stages unsaid."""


def _untold(done: int, total: int) -> None:
    """Told nothing: a run's progress unsaid."""


class Runs(Room):
    """Indexing and clustering."""

    def index(self, targets: Iterable[StrPath], *, embed: bool = True,
              include: Sequence[str] = (), exclude: Sequence[str] = (),
              dry_run: bool = False, reporter: Reporter | None = None) -> IndexSummary:
        """Catalogue the photos under ``targets`` (folders or files), then detect and
        embed their faces (``embed``: as ``rbv index``; False: as ``--no-embed``).
        ``include``/``exclude``: globs, as ``--include``/``--exclude``. Files that fail
        are counted in the summary (``failed``) and retried on the next run. The
        decisions the carry to edited photos could not keep are in the summary's
        ``embed.carry.dropped``, once: a later run does not return them again."""
        from rbv.media.discovery import PathFilter, refuse_missing

        paths = [as_path(t) for t in targets]
        if not paths:
            raise ConfigError("name what to index: one folder or file at least")
        refuse_missing(paths)
        return self._indexed(paths, PathFilter(include, exclude), embed=embed,
                             dry_run=dry_run, reporter=reporter)

    def embed(self, *, limit: int | None = None,
              reporter: Reporter | None = None) -> EmbedSummary:
        """Detect and embed the faces of the catalogued photos the pack has not scanned
        (at most ``limit``), as ``rbv embed``: one of any number of workers sharing
        the library. What the carry could not keep is said once, as :meth:`index`."""
        from rbv.jobs.library.embed import run_embed

        summary = run_embed(self.db, self._run_settings(), self._face_analyzer(), limit=limit,
                            reporter=reporter, attributes=self._attribute_model())
        self._returned(summary.carry)
        return summary

    def embed_work(self) -> tuple[str, int]:
        """The pack's name and how many photos :meth:`embed` would scan now (no model
        is loaded), as ``rbv embed --dry-run``."""
        from rbv.jobs.library.analyzer import load_pack_info
        from rbv.jobs.library.embed import count_embed_work

        settings = self._run_settings()
        pack = load_pack_info(settings)
        return pack.name, count_embed_work(self.db, settings, pack)

    def analyzer_words(self) -> str:
        """The pack's models, loaded now when not yet (a pack or device that cannot
        be used fails here, before a run), and where they run, in a line."""
        from rbv.jobs.library.analyzer import describe_analyzer

        words = describe_analyzer(self._face_analyzer())
        attributes = self._attribute_model()
        return words if attributes is None else f"{words}; ages and genders by {attributes.name}"

    def enrich(self, *, redo: bool = False, model_pack: str | None = None,
               progress: Callable[[int, int], None] = _untold) -> EnrichSummary:
        """Score the pack's faces for quality (pose, blur, and dense landmarks where the
        pack has their models here), as ``rbv enrich``: those not scored yet, or all
        with ``redo``; with an attribute model (the settings' ``attribute_model``, else
        the pack folder's), estimate the age and gender of every face without one.
        ``progress`` is told the faces done and their total."""
        from rbv.faces.analyzer import DECODE_FACTOR
        from rbv.jobs.library.analyzer import load_landmark_models, with_library_pack
        from rbv.jobs.library.enrich import run_enrich

        settings = with_library_pack(self.settings, self.db)
        _, fallback = self._pack(model_pack)
        return run_enrich(self.db, settings.model_pack, redo=redo,
                          models=load_landmark_models(settings),
                          max_pixels=settings.max_image_pixels, progress=progress,
                          sole_fallback=fallback, attributes=self._attribute_model(),
                          long_edge=DECODE_FACTOR * settings.det_size)

    def cluster(self, *, full: bool = False, method: Method | None = None,
                threshold: float | None = None, budget: float | None = None,
                match_threshold: float | None = None, neighbors: int = DEFAULT_K,
                dry_run: bool = False, model_pack: str | None = None,
                by_age: bool | None = None,
                progress: Callable[[str], None] = _quiet) -> ClusterReport:
        """Group faces into persons, as ``rbv cluster``: new faces only, or every face
        with ``full`` (names, merges, moves and rejections kept). The other arguments
        are the command's options; None: the pack's setting (``by_age``: compare faces
        centred by their estimated ages, or as the recognizer made them). ``model_pack``: that
        pack's faces rather than the library's pack; ``progress`` is told each stage."""
        from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack

        options = ClusterOptions(method=method, threshold=threshold, budget=budget,
                                 match_threshold=match_threshold, full=full,
                                 dry_run=dry_run, k=neighbors, by_age=by_age)
        pack, fallback = self._pack(model_pack)
        return cluster_pack(self.db, pack, options, progress, sole_fallback=fallback)

    def refine(self, out: StrPath, params: RefineParams | None = None, *,
               crops: bool = True, dry_run: bool = False, model_pack: str | None = None,
               progress: Callable[[int, int], None] = _untold) -> Refined:
        """Build quality-gated facesets with stable numbers, as ``rbv refine``: record
        them, then write ``out``/faceset_NNN/ and its manifest (``dry_run``: neither).
        ``progress`` is told the faces written and their total; a photo that cannot
        be read is listed in ``problems``, the rest written."""
        from rbv.cluster.refine import RefineParams
        from rbv.jobs.grouping.refine import Refined, run_refine, write_tree

        pack, fallback = self._pack(model_pack)
        report, facts = run_refine(self.db, pack, params or RefineParams(), dry_run=dry_run,
                                   sole_fallback=fallback)
        if dry_run:
            return Refined(report, [])
        total = sum(len(f.face_ids) for f in report.facesets)
        written = 0

        def advance(faces: int) -> None:
            nonlocal written
            written += faces
            progress(written, total)

        progress(0, total)
        return Refined(report, write_tree(self.db, report, facts, as_path(out), crops=crops,
                                          max_pixels=self.settings.max_image_pixels,
                                          advance=advance))
