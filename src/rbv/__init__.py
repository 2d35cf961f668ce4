"""rbv: find every face in a photo library and group faces into persons.

``from rbv import Library`` opens one from Python (:mod:`rbv.library`, docs/api.md);
``import rbv`` alone loads nothing more (the CLI starts without the database and model
libraries)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rbv.library import Library

__all__ = ["Library", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Library":
        from rbv.library import Library

        return Library
    raise AttributeError(f"module 'rbv' has no attribute {name!r}")
