"""``photos``: the photos that show given persons (and not others), in a date range,
of an age, listed or gathered into a folder.

An age is the first person's by its birthday and each photo's date; for a person with
no birthday, by the ages an attribute model estimated from its faces (said as
estimated: a photo is of age 3 when its estimate is at least 3 and under 4)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from rbv.errors import ConfigError, Refused, Remedy
from rbv.formats.album import AlbumEntry, make_album
from rbv.jobs.persons.birthdays import age_words, parse_ages
from rbv.store import Database
from rbv.store.queries.attributes import photo_ages
from rbv.store.queries.birthdays import births, undated_photos
from rbv.store.queries.person_lookup import existing_person, labels
from rbv.store.queries.photos import PhotoHit, photos_with

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")


@dataclass(frozen=True)
class PhotoQuery:
    """Which photos: those of every one of ``persons`` and none of ``without`` (ids; a
    front end resolves what its user typed), in a date range, of an age."""

    persons: tuple[uuid.UUID, ...]
    without: tuple[uuid.UUID, ...] = ()
    since: str | None = None  # YYYY, YYYY-MM or YYYY-MM-DD, inclusive
    until: str | None = None  # inclusive: --to 2021 keeps all of 2021
    limit: int | None = None
    age: str | None = None  # the first person's age in whole years: 3, 3-5, 4-, -2


@dataclass
class PhotosResult:
    persons: list[str]
    photos: list[PhotoHit]
    album: list[AlbumEntry] = field(default_factory=list)
    album_errors: list[str] = field(default_factory=list)
    born: date | None = None  # with an age asked: the first person's birthday
    undated: int = 0  # with an age asked: the photos left out for having no date
    # With an age asked of a person without a birthday: the first person's estimated
    # age in each photo kept (None: ages by the birthday), and the photos left out
    # for having no estimate.
    estimated: dict[int, float] | None = None
    unestimated: int = 0

    @property
    def aged(self) -> bool:
        """Whether each photo has an age (an age was asked)."""
        return self.born is not None or self.estimated is not None

    def age(self, hit: PhotoHit) -> str:
        """The first person's age at the photo ("" when no age was asked); an
        estimate is said as one ("~34 years, estimated")."""
        if self.estimated is not None and hit.image_id in self.estimated:
            return f"~{self.estimated[hit.image_id]:.0f} years, estimated"
        return age_words(self.born, hit.taken_at)

    def as_dict(self) -> dict[str, object]:
        aged: dict[str, object] = (
            {"born": self.born.isoformat(), "undated": self.undated} if self.born else {})
        if self.estimated is not None:
            aged = {"born": None, "age_estimated": True, "unestimated": self.unestimated}

        def age_of(p: PhotoHit) -> dict[str, object]:
            if not self.aged:
                return {}
            if self.estimated is None:
                return {"age": self.age(p)}
            return {"age": self.age(p), "estimated_age": round(self.estimated[p.image_id], 1)}

        return {"persons": self.persons,
                "photos": [{"image_id": p.image_id, "taken_at": p.taken_at, "paths": p.paths,
                            "others": p.others, **age_of(p)}
                           for p in self.photos],
                "album": [{"source": a.source, "target": a.target, "action": a.action,
                           "sidecars": list(a.sidecars)}
                          for a in self.album],
                "album_errors": self.album_errors, **aged}


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


def _within(days: tuple[date, date | None], since: datetime | None,
            before: datetime | None) -> tuple[datetime | None, datetime | None]:
    """[since, before) narrowed to the days of an age range."""
    start = datetime.combine(days[0], time())
    end = None if days[1] is None else datetime.combine(days[1], time())
    return (max(start, since) if since else start,
            min(end, before) if end and before else end or before)


def find_photos(db: Database, query: PhotoQuery, *, copy_to: Path | None = None,
                link_to: Path | None = None) -> PhotosResult:
    """Photos with every person of ``query`` and none of its ``without`` (with its
    ``age``: taken when the first person was that old, by its birthday; photos with no
    date left out and counted; a person without a birthday by its faces' estimated
    ages, photos without an estimate left out and counted); with ``copy_to``/``link_to``
    they are also copied or symlinked into that folder."""
    if not query.persons:
        raise ConfigError("name at least one person")
    if copy_to is not None and link_to is not None:
        raise ConfigError("copy the photos or link them, not both")
    since = date_bound(query.since, end=False) if query.since else None
    before = date_bound(query.until, end=True) if query.until else None
    ages = parse_ages(query.age) if query.age is not None else None
    with db.connect() as conn:
        wanted = [existing_person(conn, p) for p in query.persons]
        unwanted = [existing_person(conn, p) for p in query.without]
        named = labels(conn, wanted)
        names = [named[p] for p in wanted]
        born = None
        estimated: dict[int, float] | None = None
        unestimated = 0
        if ages is not None:
            born = births(conn, wanted[:1]).get(wanted[0])
            if born is not None:
                since, before = _within(ages.dates(born), since, before)
        if ages is not None and born is None:
            hits = photos_with(conn, wanted, unwanted, since, before)
            estimated = photo_ages(conn, wanted[0], [h.image_id for h in hits])
            if not estimated:
                # (nor an estimated age: no attribute model has seen its faces)
                raise Refused(f"{names[0]} has no birthday, so no age: give it first",
                              kind="no_birthday", persons=[wanted[0]],
                              remedies=[Remedy("born", {"person": wanted[0]},
                                               "give the birthday")])
            unestimated = sum(h.image_id not in estimated for h in hits)
            hits = [h for h in hits if h.image_id in estimated
                    and ages.holds(estimated[h.image_id])][:query.limit]
        else:
            hits = photos_with(conn, wanted, unwanted, since, before, query.limit)
        undated = undated_photos(conn, wanted, unwanted) if born is not None else 0
    result = PhotosResult(names, hits, born=born, undated=undated, estimated=estimated,
                          unestimated=unestimated)
    folder = copy_to or link_to
    if folder is not None:
        chosen: Sequence[tuple[int, str]] = [(h.image_id, h.paths[0]) for h in hits if h.paths]
        result.album, errors = make_album(chosen, folder, link=link_to is not None)
        result.album_errors = [str(e) for e in errors]
    return result
