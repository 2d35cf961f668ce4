"""Stage an Immich library: keep image assets with a big enough face, download their
originals, drop byte-duplicates, and save the rest under ``OUT/<user>/…``.

The main thread lists the library (:mod:`rbv.immich.listing`: every asset once, checked
against the server's own count) and hands each asset to a pool of workers;
a worker does the whole network chain for one asset (faces → size check → download →
sha256) and returns an outcome; the main thread alone dedups, renames the file into
place and records the outcome in the resumable :class:`StageState`. After
``breaker_threshold`` consecutive failed assets the server is probed: if it is down,
the run stops, saves its state and raises :class:`ImmichUnavailable` (exit code 2).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rbv.errors import ConfigError, ImmichError, ImmichUnavailable
from rbv.immich.assets import ImmichAsset, largest_face_short_edge
from rbv.immich.client import ImmichAuthError, ImmichClient, ImmichTransient
from rbv.immich.listing import Listing
from rbv.jobs.exchange.immich_paths import resolve_inside, staged_relative_path, with_suffix_tag
from rbv.jobs.exchange.immich_state import (
    DUP_DB,
    DUP_RUN,
    FAILED,
    NO_FACE,
    SMALL_FACE,
    STAGED,
    StageState,
)
from rbv.store import Database
from rbv.store.queries.images import known_sha256
from rbv.store.queries.immich_assets import asset_count, record_assets

DEFAULT_WORKERS = 8
STAGE_MIN_FACE = 90.0
BREAKER_THRESHOLD = 12
_USER_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_WOULD_DOWNLOAD = "would_download"


@dataclass(frozen=True)
class StageOptions:
    """What to stage and how."""

    out_dir: Path
    user: str = "immich"
    min_face: float = STAGE_MIN_FACE
    workers: int = DEFAULT_WORKERS
    page_size: int = 1000
    breaker_threshold: int = BREAKER_THRESHOLD
    dry_run: bool = False

    @property
    def user_dir(self) -> Path:
        return self.out_dir / self.user

    @property
    def state_path(self) -> Path:
        return self.out_dir / f".rbv-immich-{self.user}.json"

    @property
    def partial_dir(self) -> Path:
        return self.out_dir / ".rbv-partial"


@dataclass
class StageSummary:
    """Counts of one run; ``seen`` = the sum of the others."""

    seen: int = 0
    resumed: int = 0  # already finished by an earlier run
    staged: int = 0
    dup_db: int = 0
    dup_run: int = 0
    no_face: int = 0
    small_face: int = 0
    failed: int = 0
    would_download: int = 0
    rechecked: int = 0  # no_face assets of earlier runs asked about again
    server_images: int | None = None  # the server's own count of image assets
    listing_exact: bool = True  # False if a tie group larger than a page had to be paged
    detection_pending: int | None = None  # Immich's queued detection work (admin keys)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (asset id, message)

    @property
    def listing_complete(self) -> bool:
        """Whether every asset the server counts was listed (unknown counts as yes)."""
        return self.server_images is None or self.server_images == self.seen

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {
            "listing_complete": self.listing_complete,
            "errors": [{"asset": a, "error": e} for a, e in self.errors],
        }


@dataclass(frozen=True)
class _Outcome:
    status: str
    error: str | None = None
    face_short: float | None = None
    part: Path | None = None
    sha256: str | None = None
    size: int | None = None


def check_user_label(user: str) -> None:
    if not _USER_LABEL.match(user) or user in (".", ".."):
        raise ConfigError(f"the user label must be a simple folder name (letters, digits, "
                          f". _ -), got {user!r}", setting="user")


def stage_library(
    client: ImmichClient,
    db: Database | None,
    options: StageOptions,
    on_progress: Callable[[StageSummary], None] | None = None,
) -> StageSummary:
    """Stage every image asset of the server; see the module docstring."""
    check_user_label(options.user)
    if options.workers < 1:
        raise ConfigError("the number of workers must be at least 1", setting="workers")
    client.server_version()  # startup probe: ImmichUnavailable (exit 2) if down
    client.check_key()  # /server/version takes any key: a wrong one stops here
    state = StageState.load(options.state_path, client.url, options.user)
    return _Run(client, db, options, state, on_progress).run()


class _Run:
    def __init__(self, client: ImmichClient, db: Database | None, options: StageOptions,
                 state: StageState, on_progress: Callable[[StageSummary], None] | None) -> None:
        self.client = client
        self.db = db
        self.options = options
        self.state = state
        self.on_progress = on_progress
        self.summary = StageSummary()
        self.by_sha = state.staged_by_sha()
        self.claimed = state.claimed_paths()
        self.consecutive_errors = 0
        self.pending: dict[Future[_Outcome], ImmichAsset] = {}
        self.conn = db.connect(autocommit=True) if db is not None else None
        self.listing = Listing(client, options.page_size)

    def run(self) -> StageSummary:
        if not self.options.dry_run:
            self._record_asset_ids()
            self.options.partial_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.options.partial_dir.glob("*.part"):
                stale.unlink()
        pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="immich-stage")
        try:
            for page in self._pages():
                for asset in page:
                    self.summary.seen += 1
                    if self.state.is_final(asset.id):
                        self.summary.resumed += 1
                        continue
                    if self.state.status(asset.id) == NO_FACE:
                        self.summary.rechecked += 1  # Immich may not have looked yet
                    while len(self.pending) >= 2 * self.options.workers:
                        self._collect(FIRST_COMPLETED)
                    self.pending[pool.submit(self._examine, asset)] = asset
            while self.pending:
                self._collect(FIRST_COMPLETED)
        finally:
            # Stopping early (breaker, auth failure, Ctrl-C): finish what is running,
            # drop what never started, and keep every recorded outcome.
            for future in list(self.pending):
                if future.cancel():
                    del self.pending[future]
            pool.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(Exception):
                while self.pending:
                    self._collect(FIRST_COMPLETED, breaker=False)
            if not self.options.dry_run:
                self.state.save()
            if self.conn is not None:
                self.conn.close()
        for message in self.listing.problems:  # never staged, never given a path
            self.summary.seen += 1
            self.summary.failed += 1
            self.summary.errors.append(("?", message))
        self.summary.listing_exact = self.listing.exact
        with contextlib.suppress(ImmichTransient):
            self.summary.server_images = self.client.image_count()
        if self.summary.no_face:
            self.summary.detection_pending = self._detection_pending()
        return self.summary

    def _detection_pending(self) -> int | None:
        """Jobs Immich still has to run before it has looked for every face (thumbnails,
        metadata, face detection: waiting, active, delayed or paused); None when the key
        may not read the job queues (not an admin's)."""
        try:
            return self.client.queued_detection_jobs()
        except (ImmichAuthError, ImmichError):
            return None

    def _pages(self):  # type: ignore[no-untyped-def]
        try:
            yield from self.listing.pages()
        except ImmichTransient as exc:
            self._probe_or_stop(f"listing assets failed: {exc}")
            raise ImmichError(f"listing assets on {self.client.url} failed ({exc}); "
                              "re-run to resume") from None

    # -- workers -----------------------------------------------------------------------

    def _examine(self, asset: ImmichAsset) -> _Outcome:
        try:
            faces = self.client.faces(asset.id)
            if not faces:
                return _Outcome(NO_FACE)
            short = largest_face_short_edge(faces, asset.upright_size)
            if short < self.options.min_face:
                return _Outcome(SMALL_FACE, face_short=round(short, 1))
            if self.options.dry_run:
                return _Outcome(_WOULD_DOWNLOAD, face_short=round(short, 1))
            # Its own file: no two downloads ever share one.
            fd, name = tempfile.mkstemp(".part", f"{asset.id}.", self.options.partial_dir)
            os.close(fd)
            got = self.client.download_original(asset.id, Path(name))
            return _Outcome("downloaded", face_short=round(short, 1), part=got.path,
                            sha256=got.sha256, size=got.size)
        except ImmichAuthError:
            raise
        except (ImmichError, OSError) as exc:
            return _Outcome(FAILED, error=str(exc))

    # -- main thread -------------------------------------------------------------------

    def _collect(self, mode: str, *, breaker: bool = True) -> None:
        done, _ = wait(list(self.pending), return_when=mode)
        for future in done:
            asset = self.pending.pop(future)
            outcome = future.result()  # re-raises ImmichAuthError
            self._finish(asset, outcome)
            if outcome.status == FAILED:
                self.consecutive_errors += 1
                if breaker and self.consecutive_errors >= self.options.breaker_threshold:
                    self._probe_or_stop(f"{self.consecutive_errors} consecutive errors")
                    self.consecutive_errors = 0
            else:
                self.consecutive_errors = 0
            if self.on_progress:
                self.on_progress(self.summary)

    def _probe_or_stop(self, why: str) -> None:
        try:
            self.client.server_version(retry=False)
        except ImmichUnavailable:
            if not self.options.dry_run:
                self.state.save()
            s = self.summary
            raise ImmichUnavailable(
                f"{why}, and the Immich server at {self.client.url} does not answer; "
                f"stopped after {s.seen} assets ({s.staged} staged this run). State saved in "
                f"{self.options.state_path}; re-run the same command to resume"
            ) from None

    def _finish(self, asset: ImmichAsset, outcome: _Outcome) -> None:
        s = self.summary
        if outcome.status == FAILED:
            s.failed += 1
            s.errors.append((asset.id, outcome.error or "failed"))
            if not self.options.dry_run:
                self.state.record(asset.id, FAILED, error=outcome.error)
            return
        if outcome.status == _WOULD_DOWNLOAD:
            s.would_download += 1
            return
        if outcome.status in (NO_FACE, SMALL_FACE):
            setattr(s, outcome.status, getattr(s, outcome.status) + 1)
            if not self.options.dry_run:
                self.state.record(asset.id, outcome.status, face_short=outcome.face_short)
            return
        assert outcome.part is not None and outcome.sha256 is not None
        status, path = self._place(asset, outcome.part, outcome.sha256)
        setattr(s, status, getattr(s, status) + 1)
        self.state.record(asset.id, status, sha256=outcome.sha256, size=outcome.size,
                          path=path, face_short=outcome.face_short)
        if self.conn is not None:  # which photo is which asset: for immich-push
            record_assets(self.conn, self.client.url, self.options.user,
                          [(asset.id, outcome.sha256)])

    def _record_asset_ids(self) -> None:
        """Assets finished by runs of an rbv that did not record asset ids yet."""
        if self.conn is None:
            return
        known = {i: r["sha256"] for i, r in self.state.assets.items()
                 if r.get("status") in (STAGED, DUP_DB, DUP_RUN) and r.get("sha256")}
        if known and asset_count(self.conn, self.client.url, self.options.user) < len(known):
            record_assets(self.conn, self.client.url, self.options.user, list(known.items()))

    def _place(self, asset: ImmichAsset, part: Path, sha256: str) -> tuple[str, str | None]:
        if self.conn is not None and known_sha256(self.conn, [sha256]):
            part.unlink()
            return DUP_DB, None
        if sha256 in self.by_sha:
            part.unlink()
            return DUP_RUN, self.by_sha[sha256]
        relative = staged_relative_path(asset)
        target = resolve_inside(self.options.user_dir, relative)
        if str(relative) in self.claimed or target.exists():  # never over another file
            relative = with_suffix_tag(relative, asset.id[:8])
            target = resolve_inside(self.options.user_dir, relative)
        if str(relative) in self.claimed or target.exists():
            relative = with_suffix_tag(relative, asset.id)
            target = resolve_inside(self.options.user_dir, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)
        self.by_sha[sha256] = str(relative)
        self.claimed.add(str(relative))
        return STAGED, str(relative)
