"""Groups joined by pairs: the one union-find rbv uses for links, answers and tests."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def roots(pairs: Iterable[tuple[T, T]]) -> dict[T, T]:
    """Each item named in ``pairs`` → its group's representative (one member, the same
    for every member of a group joined directly or through others)."""
    parent: dict[T, T] = {}

    def root(item: T) -> T:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b in pairs:
        parent[root(a)] = root(b)
    return {item: root(item) for item in list(parent)}


def groups(pairs: Iterable[tuple[T, T]]) -> list[list[T]]:
    """The groups ``pairs`` join, each in the order its members first appear."""
    found: dict[T, list[T]] = {}
    for item, root in roots(pairs).items():
        found.setdefault(root, []).append(item)
    return list(found.values())
