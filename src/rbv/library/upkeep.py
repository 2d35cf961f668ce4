"""Looking after a library: its numbers, checks of its files and rows, and what it no
longer needs."""

from __future__ import annotations

from rbv.library.room import Room


class Upkeep(Room):
    """What ``rbv stats``, ``audit``, ``dedup`` and ``prune`` run."""
