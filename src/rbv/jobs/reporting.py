"""How pipelines tell the outside world what they are doing, without printing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rbv.errors import Remedy, printable


@dataclass(frozen=True)
class Problem:
    """One file or folder that failed, and why (shown to users as one line), in words
    that name no command or option; ``remedies``: what would put it right, for the
    front end to word."""

    path: str
    reason: str
    remedies: tuple[Remedy, ...] = ()

    def __str__(self) -> str:
        return printable(f"{self.path}: {self.reason}")


class Reporter(Protocol):
    """Receives progress; the CLI draws a progress bar, tests may count."""

    def stage(self, name: str, total: int | None) -> None:
        """A new stage starts (``total`` None: unknown)."""

    def advance(self, items: int = 1, *, faces: int = 0, errors: int = 0) -> None:
        """``items`` more items finished, with these many faces and errors."""

    def problem(self, problem: Problem) -> None:
        """Something failed; the run goes on."""


class SilentReporter:
    """A reporter that ignores everything."""

    def stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, items: int = 1, *, faces: int = 0, errors: int = 0) -> None:
        pass

    def problem(self, problem: Problem) -> None:
        pass
