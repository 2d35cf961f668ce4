"""Where a staged original goes: a safe relative path built from a server-supplied one.

Immich's ``originalPath`` is whatever the server says; it must never place a file
outside the staging folder (``..``, absolute paths, drive letters, odd characters).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*\\/]")
_MAX_PART = 200


def safe_relative_path(original_path: str, file_name: str, asset_id: str) -> PurePosixPath:
    """A relative path for the asset under the user's staging folder.

    Immich stores uploads as ``…/library/<owner>/<yyyy>/<date>/<name>``: the part after
    ``library/<owner>`` is kept; otherwise the whole path, made relative. ``.``/``..``
    and empty parts are dropped and unsafe characters replaced, so the result always
    stays inside the folder.
    """
    parts = [p for p in original_path.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    if "library" in parts[:-1]:
        after = parts[parts.index("library") + 1:]
        parts = after[1:] if len(after) > 1 else after
    parts = [_clean(p) for p in parts]
    parts = [p for p in parts if p]
    if not parts:
        parts = [_clean(file_name) or asset_id]
    return PurePosixPath(*parts)


def resolve_inside(root: Path, relative: PurePosixPath) -> Path:
    """``root / relative``, refusing anything that would land outside ``root``."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"unsafe path {relative}")
    return target


def with_suffix_tag(relative: PurePosixPath, tag: str) -> PurePosixPath:
    """``a/b/name~tag.jpg``: a distinct name when two assets share a path."""
    return relative.with_name(f"{relative.stem}~{tag}{relative.suffix}")


def _clean(part: str) -> str:
    part = _UNSAFE.sub("_", part).strip().rstrip(".")
    if part in ("", ".", ".."):
        return ""
    return part[:_MAX_PART]
