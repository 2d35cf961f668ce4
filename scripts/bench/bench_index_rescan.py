"""The cost of noticing moved and deleted files on a nightly `rbv index` re-run.

A library of N small files (default 100k, in folders of 1,000) is catalogued straight
into a scratch database (rows as `index` writes them, so a re-run finds every file
unchanged). Then the re-run's catalogue pass is timed with the check for missing files
(what `rbv index` does) and without it (the baseline: the same pass, same process, same
files, with the check switched off), alternating, best of --repeat; the check's own
time is also taken, as a share of the re-run (steadier than the difference of two
whole runs on a busy machine). Last, 1% of the files are deleted and the run that
marks them missing is timed.

    uv run python scripts/bench/bench_index_rescan.py
    nice -n 10 uv run python scripts/bench/bench_index_rescan.py --files 1M --repeat 2
"""

from __future__ import annotations

import argparse
import functools
import io
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import rbv.jobs.library.catalogue as catalogue
from rbv.config import Settings
from rbv.jobs.library.catalogue import CatalogueSummary
from rbv.store import Database, open_database
from rbv.store.server.migrations import apply_pending

PER_FOLDER = 1_000


def _size(text: str) -> int:
    text = text.lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def make_library(root: Path, files: int) -> list[Path]:
    paths = []
    for i in range(files):
        folder = root / f"{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        path = folder / f"IMG_{i:07d}.jpg"
        path.write_bytes(b"x")
        paths.append(path)
    return paths


def catalogue_rows(db: Database, paths: list[Path]) -> None:
    """Images and paths as a finished `index` leaves them (status ok, size and mtime)."""
    with db.transaction() as conn:
        with conn.cursor().copy("COPY images (sha256, size_bytes, status) FROM STDIN") as cp:
            for i in range(len(paths)):
                cp.write_row((f"{i:064x}", 1, "ok"))
        buf = io.StringIO()
        for i, path in enumerate(paths):
            mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat()
            buf.write(f"{i:064x}\t{path}\t{mtime}\n")
        conn.execute("CREATE TEMP TABLE load (sha256 text, path text, mtime timestamptz)")
        with conn.cursor().copy("COPY load FROM STDIN") as cp:
            cp.write(buf.getvalue())
        conn.execute("INSERT INTO image_paths (image_id, path, mtime, size_bytes) "
                     "SELECT i.id, l.path, l.mtime, 1 FROM load l JOIN images i USING (sha256)")
        conn.execute("ANALYZE image_paths")


def timed(run: Callable[[], CatalogueSummary]) -> tuple[float, CatalogueSummary]:
    t = time.perf_counter()
    summary = run()
    return time.perf_counter() - t, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=_size, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database", default=None, help="a server URL (default: a "
                        "scratch embedded server)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="rbv-bench-rescan-"))
    try:
        settings = Settings(database_url=args.database, data_dir=scratch / "data")
        db = open_database(settings, require_schema=False)
        apply_pending(db)
        t = time.perf_counter()
        paths = make_library(scratch / "library", args.files)
        catalogue_rows(db, paths)
        print(f"{args.files:,} files written and catalogued in {time.perf_counter() - t:.1f} s")
        targets = [scratch / "library"]
        check = catalogue._notice_gone

        check_seconds: list[float] = []

        def timed_check(*a: object, **k: object) -> None:
            t = time.perf_counter()
            check(*a, **k)  # type: ignore[arg-type]
            check_seconds.append(time.perf_counter() - t)

        def rescan(with_check: bool) -> CatalogueSummary:
            catalogue._notice_gone = timed_check if with_check else (lambda *a, **k: None)
            try:
                return catalogue.run_catalogue(db, settings, targets)
            finally:
                catalogue._notice_gone = check

        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.repeat):
            for with_check in (False, True):
                seconds, summary = timed(functools.partial(rescan, with_check))
                assert summary.unchanged == args.files and summary.missing == 0, summary
                best[with_check] = min(best[with_check], seconds)
        print(f"re-run, nothing changed: {best[False]:.2f} s without the missing-file check, "
              f"{best[True]:.2f} s with it (the check itself: {min(check_seconds):.2f} s)")
        gone = paths[::100]
        for path in gone:
            path.unlink()
        seconds, summary = timed(lambda: rescan(True))
        assert summary.missing == len(gone), summary
        print(f"re-run after deleting {len(gone):,} files: {seconds:.2f} s, "
              f"{summary.missing:,} marked missing")
        print(f"with-check/without = {best[True] / best[False]:.3f} (whole re-run, best of "
              f"{args.repeat})")
        print(f"check/re-run = {min(check_seconds) / best[False]:.3f} (the check's own time "
              "over the re-run without it)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
