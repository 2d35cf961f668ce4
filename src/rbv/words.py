"""Counts in words, shared by every front end and the reports they print."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun, singular for one: "1 face", "2,000 faces", "1 empty person",
    "3 empty persons" (``plural`` when it is not the noun and an "s")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
