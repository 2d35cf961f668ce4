"""Where a staged original goes: a browsable, safe relative path.

With Immich's storage template on, ``originalPath`` ends in the template's path
(``…/library/<owner>/2024/2024-01-15/IMG_0001.jpg``): that part is kept. With it off
(Immich's default) the path is ``…/upload/<userId>/<xx>/<yy>/<uuid>.<ext>``, meaningless to
a person: the file goes to ``<yyyy>/<yyyy-mm-dd>/<originalFileName>`` by the photo's
local date instead (``undated/`` without one). Whatever the server says, the result never
leaves the staging folder (``..``, absolute paths, drive letters, odd characters).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rbv.immich.assets import ImmichAsset

_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*\\/]")
_MAX_PART = 200


def safe_relative_path(original_path: str, file_name: str, asset_id: str) -> PurePosixPath:
    """A relative path for the asset under the user's staging folder.

    Immich stores uploads as ``…/library/<owner>/<yyyy>/<date>/<name>``: the part after
    ``library/<owner>`` is kept; otherwise the whole path, made relative. ``.``/``..``
    and empty parts are dropped and unsafe characters replaced, so the result always
    stays inside the folder.
    """
    parts = _parts(original_path)
    if "library" in parts[:-1]:
        after = parts[parts.index("library") + 1:]
        parts = after[1:] if len(after) > 1 else after
    parts = [_clean(p) for p in parts]
    parts = [p for p in parts if p]
    if not parts:
        parts = [_clean(file_name) or asset_id]
    return PurePosixPath(*parts)


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_UPLOAD = re.compile(r"(^|/)upload/[^/]+/[0-9a-f]{2}/[0-9a-f]{2}/[^/]+$")  # template off


def staged_relative_path(asset: ImmichAsset) -> PurePosixPath:
    """Where ``asset`` is staged under the user's folder (see the module docstring)."""
    parts = _parts(asset.original_path)
    if "library" in parts[:-2] and not _UPLOAD.search(asset.original_path):
        return safe_relative_path(asset.original_path, asset.original_file_name, asset.id)
    name = _clean(PurePosixPath(asset.original_file_name.replace("\\", "/")).name)
    if not name or name == asset.id:  # no name given: the id, with the stored extension
        name = asset.id + (_clean(PurePosixPath(parts[-1]).suffix) if parts else "")
    date = _DATE.match(asset.local_date_time)
    folder = [date[1], f"{date[1]}-{date[2]}-{date[3]}"] if date else ["undated"]
    return PurePosixPath(*folder, name)


def _parts(original_path: str) -> list[str]:
    return [p for p in original_path.replace("\\", "/").split("/") if p not in ("", ".", "..")]


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
