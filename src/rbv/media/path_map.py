"""Where this machine sees the library: catalogued (stored) paths mapped to local ones.

A worker on a machine that mounts the library elsewhere (``/Volumes/photos`` where the
catalogue says ``/mnt/photos``) reads each catalogued path at its local place, and
``rbv index`` there catalogues what it finds under the stored name, so the same photo
never gets a second path nor is marked missing for not being at the stored one.

Paths are ``str`` as Python's file functions take them (a name that is not UTF-8 holds
surrogate escapes, see :mod:`rbv.store.queries.paths`), so mapping keeps their bytes.
Prefixes are taken as given: no symlink is resolved, only trailing slashes dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from rbv.errors import ConfigError

ENV_SEPARATOR = os.pathsep
"""Between the maps of ``$RBV_PATH_MAP`` (``:`` as in ``$PATH``)."""


@dataclass(frozen=True)
class PathMap:
    """``(stored, local)`` prefix pairs; the longest matching prefix wins, on whole
    path components (``/mnt/photos`` does not map ``/mnt/photos2``)."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> PathMap:
        """Maps written ``STORED=LOCAL`` (absolute paths; the first ``=`` splits)."""
        pairs = []
        for spec in specs:
            stored, sep, local = spec.partition("=")
            stored, local = _folder(stored), _folder(local)
            if not sep or not stored or not local:
                raise ConfigError(f"path map {spec!r}: not STORED=LOCAL (e.g. "
                                  "/mnt/photos=/Volumes/photos)")
            if not (stored.startswith("/") and local.startswith("/")):
                raise ConfigError(f"path map {spec!r}: both paths must be absolute")
            pairs.append((stored, local))
        return cls(tuple(pairs))

    @classmethod
    def from_env(cls, value: str) -> PathMap:
        """``$RBV_PATH_MAP``: maps separated by :data:`ENV_SEPARATOR`."""
        return cls.parse(s for s in value.split(ENV_SEPARATOR) if s)

    def to_local(self, stored: str) -> str:
        """Where this machine reads the catalogued path ``stored``."""
        return _replace(stored, list(self.pairs))

    def to_stored(self, local: str) -> str:
        """The catalogued name of the path ``local`` of this machine."""
        return _replace(local, [(loc, s) for s, loc in self.pairs])


def _folder(path: str) -> str:
    """The path without trailing slashes ("/" stays)."""
    return path.rstrip("/") or path[:1]


def _replace(path: str, pairs: list[tuple[str, str]]) -> str:
    """``path`` with the longest of the pairs' first folders that holds it replaced."""
    inside = [(old, new) for old, new in pairs
              if path == old or path.startswith(old.rstrip("/") + "/")]
    if not inside:
        return path
    old, new = max(inside, key=lambda pair: len(pair[0]))
    rest = path[len(old):].lstrip("/")
    return new if not rest else new.rstrip("/") + "/" + rest
