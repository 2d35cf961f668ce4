"""``photos``: the photos that show given persons (and not others), in a date range,
listed or gathered into a folder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rbv.errors import ConfigError
from rbv.formats.album import AlbumEntry, make_album
from rbv.store import Database
from rbv.store.queries.persons import labels, resolve_person
from rbv.store.queries.photos import PhotoHit, photos_with

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


@dataclass(frozen=True)
class PhotoQuery:
    persons: tuple[str, ...]
    without: tuple[str, ...] = ()
    since: str | None = None  # YYYY, YYYY-MM or YYYY-MM-DD, inclusive
    until: str | None = None  # inclusive: --to 2021 keeps all of 2021
    limit: int | None = None


@dataclass
class PhotosResult:
    persons: list[str]
    photos: list[PhotoHit]
    album: list[AlbumEntry] = field(default_factory=list)
    album_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"persons": self.persons,
                "photos": [{"image_id": p.image_id, "taken_at": p.taken_at, "paths": p.paths,
                            "others": p.others} for p in self.photos],
                "album": [{"source": a.source, "target": a.target, "action": a.action,
                           "sidecars": list(a.sidecars)}
                          for a in self.album],
                "album_errors": self.album_errors}


def date_bound(text: str, *, end: bool) -> datetime:
    """The first moment of a YYYY[-MM[-DD]] date, or (``end``) the first moment after
    it, so that ranges include their last year, month or day."""
    m = _DATE.match(text.strip())
    if not m:
        raise ConfigError(f"{text!r} is not a date; use YYYY, YYYY-MM or YYYY-MM-DD")
    year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
    try:
        start = datetime(year, month, day)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a date ({exc})") from None
    if not end:
        return start
    if m[3]:
        return datetime.fromordinal(start.toordinal() + 1)
    if m[2]:
        return datetime(year + month // 12, month % 12 + 1, 1)
    return datetime(year + 1, 1, 1)


def find_photos(db: Database, query: PhotoQuery, *, copy_to: Path | None = None,
                link_to: Path | None = None) -> PhotosResult:
    """Photos with every person of ``query`` and none of its ``without``; with
    ``copy_to``/``link_to`` they are also copied or symlinked into that folder."""
    if not query.persons:
        raise ConfigError("name at least one person with --person")
    if copy_to is not None and link_to is not None:
        raise ConfigError("use --copy-to or --link-to, not both")
    since = date_bound(query.since, end=False) if query.since else None
    before = date_bound(query.until, end=True) if query.until else None
    with db.connect() as conn:
        wanted = [resolve_person(conn, p) for p in query.persons]
        unwanted = [resolve_person(conn, p) for p in query.without]
        named = labels(conn, wanted)
        names = [named[p] for p in wanted]
        hits = photos_with(conn, wanted, unwanted, since, before, query.limit)
    result = PhotosResult(names, hits)
    folder = copy_to or link_to
    if folder is not None:
        chosen: Sequence[tuple[int, str]] = [(h.image_id, h.paths[0]) for h in hits if h.paths]
        result.album, errors = make_album(chosen, folder, link=link_to is not None)
        result.album_errors = [str(e) for e in errors]
    return result
