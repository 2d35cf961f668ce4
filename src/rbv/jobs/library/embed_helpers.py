"""Helper processes for an embed run on a GPU: each its own interpreter, claiming from
the same queue as the run's own process (the claims are what let any number of
workers share a library), its progress and problems relayed to the run's reporter.

Measured with ``scripts/bench/bench_device.py``: on an NVIDIA H100 with 16 cores, on a
library of mostly tiny photos, one process scanned 773 images/s and two 1,251 (one
interpreter's lock held the run back); on an H200 with 16 cores and 10,720 photos of
real size, one process 532 images/s, two 537, three 574 (docs/models.md). A helper
costs its start (the interpreter, the models, the GPU's first calls: seconds), so it is
started only for a run of at least :data:`HELPER_MIN_IMAGES` photos.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from typing import Any, Protocol

from rbv.config import Settings
from rbv.faces.types import FaceAnalyzer
from rbv.jobs.library.scanning import EmbedSummary
from rbv.jobs.reporting import Problem, Reporter
from rbv.store.queries.packs import PackRow

GPU_PROCESSES = 2
"""Processes scanning at once on a GPU when ``embed_processes`` is 0 (auto)."""
HELPER_MIN_IMAGES = 10_000
"""Fewer queued photos than this: no helper. A helper pays for its start-up (about
``S`` seconds) once the run is longer than ``S``: at 532 images/s, from some 4,000 photos
for a start of 8 s; nightly runs of a day's photos are far below."""


class Outbox(Protocol):
    """Where a helper's messages go (a multiprocessing queue to the run's process)."""

    def put(self, item: tuple[Any, ...]) -> None: ...


def helper_count(settings: Settings, analyzer: FaceAnalyzer, todo: int | None) -> int:
    """How many helper processes a run of ``todo`` queued photos starts (None: a run
    with a limit, which scans alone)."""
    if todo is None or settings.ml_uri:  # a server does the work: threads feed it
        return 0
    if settings.embed_processes > 0:
        return settings.embed_processes - 1
    on_gpu = analyzer.batch_images > 1  # a local GPU (rbv.faces.analyzer)
    return GPU_PROCESSES - 1 if on_gpu and todo >= HELPER_MIN_IMAGES else 0


@dataclass
class Helpers:
    """The helper processes of one run and the thread relaying their messages."""

    processes: list[BaseProcess] = field(default_factory=list)
    messages: Queue[tuple[Any, ...]] | None = None
    relay: threading.Thread | None = None
    summaries: list[EmbedSummary] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def interrupt(self) -> None:
        """Interrupt the helpers as the run was (Ctrl-C reaches them too in a terminal,
        a signal to the run's process alone does not): each hands its claims back."""
        for process in self.processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGINT)

    def join_into(self, summary: EmbedSummary, report: Reporter) -> None:
        """Wait for every helper, then add what each did to ``summary``; a helper that
        failed is one problem line (its claims are taken back by the next worker that
        finds the queue empty: its process is gone)."""
        for process in self.processes:
            process.join()
        if self.messages is None or self.relay is None:
            return
        self.messages.put(("end",))
        self.relay.join()
        for process in self.processes:
            said = any(f.startswith(f"{process.name}: ") for f in self.failures)
            if process.exitcode and not said:  # died without a word (killed, say)
                self.failures.append(f"{process.name} ended with exit code {process.exitcode}")
        for failure in self.failures:
            problem = Problem("embed helper process", failure)
            summary.failures.append(problem)
            report.problem(problem)
        for one in self.summaries:
            summary.helpers.append(one.images)
            summary.images += one.images
            summary.faces += one.faces
            summary.no_faces += one.no_faces
            summary.failed += one.failed
            summary.taken_over += one.taken_over
            summary.failures += one.failures

    def _relay(self, report: Reporter) -> None:
        assert self.messages is not None
        while True:
            kind, *rest = self.messages.get()
            if kind == "end":
                return
            if kind == "advance":
                items, faces, errors = rest
                report.advance(items, faces=faces, errors=errors)
            elif kind == "problem":
                report.problem(rest[0])
            elif kind == "done":
                self.summaries.append(rest[0])
            elif kind == "failed":
                self.failures.append(rest[0])


def start_helpers(settings: Settings, analyzer: FaceAnalyzer, pack: PackRow,
                  todo: int | None, run_start: datetime, report: Reporter) -> Helpers:
    """Start the run's helper processes (none where :func:`helper_count` says so);
    ``run_start``: the run's start by the database's clock (an image that failed since
    is not tried again by a helper either)."""
    count = helper_count(settings, analyzer, todo)
    if count <= 0:
        return Helpers()
    context = multiprocessing.get_context("spawn")  # never fork a process with threads
    helpers = Helpers(messages=context.Queue())
    mine = replace(settings, embed_processes=1)
    for number in range(1, count + 1):
        process = context.Process(target=_helper_process,
                                  args=(mine, pack, helpers.messages, run_start),
                                  name=f"embed helper {number}", daemon=True)
        process.start()
        helpers.processes.append(process)
    helpers.relay = threading.Thread(target=helpers._relay, args=(report,),
                                     name="rbv-embed-relay", daemon=True)
    helpers.relay.start()
    return helpers


class _Relayed:
    """A helper's reporter: progress and problems go to the run's process."""

    def __init__(self, messages: Outbox) -> None:
        self.messages = messages

    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, items: int = 1, *, faces: int = 0, errors: int = 0) -> None:
        self.messages.put(("advance", items, faces, errors))

    def problem(self, problem: Problem) -> None:
        self.messages.put(("problem", problem))


def _helper_process(settings: Settings, pack: PackRow, messages: Queue[tuple[Any, ...]],
                    run_start: datetime) -> None:
    """A helper process's start: its interruptions as below, then :func:`helper_main`."""
    signal.signal(signal.SIGINT, _interrupted_once)
    helper_main(settings, pack, messages, run_start)


def _interrupted_once(signum: int, frame: object) -> None:
    """The first SIGINT (a terminal's Ctrl-C, or the run's process passing one on)
    interrupts; the next, while the claims are handed back, is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def helper_main(settings: Settings, pack: PackRow, messages: Outbox,
                run_start: datetime | None = None) -> None:
    """A helper process: the same analyzer as the run's (from the same settings), then
    the queue scanned until it is empty; its summary (or why it failed) goes back."""
    name = multiprocessing.current_process().name
    try:
        from rbv.jobs.library.analyzer import load_attribute_model, load_face_analyzer
        from rbv.jobs.library.scanning import scan_queue
        from rbv.store import open_database
        from rbv.store.queries.packs import pack_fingerprint
        from rbv.store.server.embedded import leave_embedded

        analyzer = load_face_analyzer(settings)
        if pack_fingerprint(analyzer.pack.files) != pack.fingerprint:
            raise RuntimeError(f"its model pack is not the run's ({analyzer.pack.name})")
        db = open_database(settings)
        try:
            summary = EmbedSummary(pack=pack.name)
            scan_queue(db, settings, analyzer, pack, summary, _Relayed(messages),
                       attributes=load_attribute_model(settings), run_start=run_start)
        finally:
            # A process of multiprocessing skips atexit: leave the server's handle list
            # now (the run's process is still attached, so the server stays up).
            leave_embedded(settings.data_dir, settings.server_linger_s)
        messages.put(("done", summary))
    except KeyboardInterrupt:  # the run was interrupted: scan_queue handed its claims back
        pass
    except Exception as exc:  # said by the run's process, which goes on alone
        messages.put(("failed", f"{name}: {type(exc).__name__}: {exc}"))
