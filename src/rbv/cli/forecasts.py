"""A forecast of the next full clustering (:class:`ClusterForecast`) in words: a summary
line naming the run it forecasts, then one line per person."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rbv.cli.remedies import command
from rbv.errors import Remedy
from rbv.words import counted

if TYPE_CHECKING:  # the forecast needs the clustering stack; a plain edit does not
    from rbv.jobs.grouping.forecast import ClusterForecast, PersonChange

NEXT_RUN = Remedy("cluster_full")
"""The run a forecast is of."""
SHOWN_CHANGES = 8
"""Persons a forecast lists in words (JSON lists every one)."""


def as_json(forecast: ClusterForecast) -> dict[str, Any]:
    """The forecast's JSON, with the command line of the run it forecasts."""
    return {"command": command(NEXT_RUN).strip("`"), **forecast.as_dict()}


def lines(forecast: ClusterForecast, limit: int = SHOWN_CHANGES,
          edit: str = "the edit") -> list[str]:
    """The forecast in words: a summary line, then one line per person (those of
    ``edit``, when told apart, first and apart)."""
    run = command(NEXT_RUN)
    if not forecast.moved and not forecast.removed:
        return [f"The next {run} would move no face."]
    head = (f"The next {run} would move {counted(forecast.moved, 'face')}"
            + (f", create {counted(forecast.created, 'person')}" if forecast.created else "")
            + (f", remove {counted(forecast.removed, 'emptied person')}" if forecast.removed
               else "") + ":")
    if forecast.by_edit is None:
        return [head, *_listed(forecast.changes, limit)]
    if not forecast.by_edit:
        return [head, f" {edit[0].upper()}{edit[1:]} changes none of it: the run makes "
                f"these moves without it too.", *_listed(forecast.anyway, limit)]
    mine = [f" Because of {edit}:", *_listed(forecast.by_edit, limit)]
    if not forecast.anyway:
        return [head, *mine, f" Nothing else: without {edit} it would move no face."]
    moved = len({f for c in forecast.anyway for f in c.left + c.joined})
    return [head, *mine, f" With or without {edit} ({counted(moved, 'face')}):",
            *_listed(forecast.anyway, limit)]


def _listed(changes: list[PersonChange], limit: int) -> list[str]:
    shown = [f"  {c.words()}" for c in changes[:limit]]
    more = len(changes) - limit
    return [*shown, *([f"  … and {counted(more, 'more person')} (--json lists them all)"]
                      if more > 0 else [])]
