"""A rich progress bar for long pipelines (images, faces, errors, rate, ETA), and the
one-line reports of failed files on stderr."""

from __future__ import annotations

import math
import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from rbv.cli.remedies import with_remedies
from rbv.jobs.reporting import Problem


def rate(per_second: float, unit: str = "img/s") -> str:
    """A speed to 3 significant digits with thousands separators ("126,000 img/s",
    "12.3 img/s"): more digits than that are noise."""
    if not math.isfinite(per_second) or per_second <= 0:
        return f"0 {unit}"
    decimals = 2 - math.floor(math.log10(per_second))
    return f"{round(per_second, decimals):,.{max(decimals, 0)}f} {unit}"


class ProgressReporter:
    """Implements :class:`rbv.jobs.reporting.Reporter`: a bar on a terminal (unless
    ``enabled`` is False), and one ``Error: path: reason`` line per failure always."""

    def __init__(self, enabled: bool = True) -> None:
        self.errors = Console(stderr=True, highlight=False, soft_wrap=True)
        self.enabled = enabled and self.errors.is_terminal
        self._progress = Progress(
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[faces]} faces, {task.fields[errors]} errors"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.errors,
            disable=not self.enabled,
            transient=False,
        )
        self._task: TaskID | None = None
        self._faces = 0
        self._errors = 0

    def __enter__(self) -> ProgressReporter:
        self._progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.__exit__(kind, exc, tb)

    def stage(self, name: str, total: int | None) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)
        self._faces = self._errors = 0
        self._task = self._progress.add_task(name, total=total, faces=0, errors=0, rate="")

    def advance(self, items: int = 1, *, faces: int = 0, errors: int = 0) -> None:
        if self._task is None:
            return
        self._faces += faces
        self._errors += errors
        task = self._progress.tasks[self._task]
        speed = task.speed
        self._progress.update(self._task, advance=items, faces=self._faces,
                              errors=self._errors,
                              rate=rate(speed) if speed else "")

    def problem(self, problem: Problem) -> None:
        line = "Error: " + with_remedies(str(problem), problem.remedies)
        if self.enabled:
            self._progress.console.print(line, markup=False)
        else:
            sys.stderr.write(line + "\n")
