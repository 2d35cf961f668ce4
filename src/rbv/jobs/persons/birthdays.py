"""A person's birthday (``rbv persons born``) and the age it gives each photo.

The birthday is a whole date: an age from a year alone would be a year off for half
the photos (a photo of March 2020 of someone born "2017" is 2 or 3), so a partial
date is refused, saying so. A photo's age comes from its EXIF date (``images.taken_at``,
the camera's local time; its day is what counts): whole years from 2 years on, whole
months before ("18 months"), "before birth" for a photo dated before the birthday and
"no date" for one without a date. The birthday is a decision like a name: every
clustering run keeps it on the person holding most of its faces, and a person with a
birthday is never deleted for being left without faces (:mod:`rbv.jobs.grouping.cluster`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime

from rbv.errors import ConfigError
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import birthdays as store
from rbv.store.queries.person_lookup import existing_person
from rbv.store.queries.persons import pack_of
from rbv.store.server.connection import Database

MONTHS_UNTIL = 24
"""Under this many months old an age is said in months ("18 months"), after in years."""
NO_DATE = "no date"
BEFORE_BIRTH = "before birth"

_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")
_PARTIAL = re.compile(r"^\s*\d{4}(-\d{1,2})?\s*$")
_AGES = re.compile(r"^\s*(\d{1,3})?\s*(-)?\s*(\d{1,3})?\s*$")


def parse_born(text: str, today: date | None = None) -> date:
    """A birthday as the user typed it (YYYY-MM-DD); a partial date, a day that does not
    exist or one in the future is refused (:class:`ConfigError`, one line)."""
    match = _DATE.match(text)
    if match is None:
        if _PARTIAL.match(text):
            raise ConfigError(
                f"{text.strip()!r} is not a whole date: give the day, YYYY-MM-DD (an age "
                "from a year or month alone would be a year off for many photos; photos "
                "are found by year with their dates instead)")
        raise ConfigError(f"{text.strip()!r} is not a date; give the birthday as YYYY-MM-DD")
    try:
        born = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise ConfigError(f"{text.strip()!r} is not a date ({exc})") from None
    return _past(born, today)


def _past(born: date, today: date | None = None) -> date:
    """``born``, refused when it is in the future."""
    today = today or date.today()
    if born > today:
        raise ConfigError(f"{born.isoformat()} is in the future (today is "
                          f"{today.isoformat()}); give the birthday as YYYY-MM-DD")
    return born


def age_months(born: date, taken: datetime | date | None) -> int | None:
    """Whole months from ``born`` to the day a photo was taken: -1 before birth, None
    with no date. A month is complete on the day of the month one was born, or on the
    first of the next month where that month is too short (:func:`add_months`)."""
    if taken is None:
        return None
    day = taken.date() if isinstance(taken, datetime) else taken
    if day < born:
        return -1
    months = (day.year - born.year) * 12 + day.month - born.month
    return months - 1 if add_months(born, months) > day else months


def add_months(born: date, months: int) -> date:
    """The day one is ``months`` months old: the same day of the month, or the first of
    the next month where that month is too short (born 29 February: 1 March)."""
    year, month = divmod(born.month - 1 + months, 12)
    year += born.year
    try:
        return date(year, month + 1, born.day)
    except ValueError:
        return date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)


def age_words(born: date | None, taken: datetime | date | None) -> str:
    """The age at a photo, short: "3 years", "18 months", "1 month", "before birth",
    "no date" ("" when the person has no birthday)."""
    if born is None:
        return ""
    months = age_months(born, taken)
    if months is None:
        return NO_DATE
    if months < 0:
        return BEFORE_BIRTH
    if months < MONTHS_UNTIL:
        return f"{months} month{'' if months == 1 else 's'}"
    return f"{months // 12} years"


@dataclass(frozen=True)
class AgeRange:
    """Whole years, both ends included (``last`` None: no upper end)."""

    first: int
    last: int | None

    def dates(self, born: date) -> tuple[date, date | None]:
        """The days of this range: from the birthday ``first`` years on, up to (not
        including) the one ``last`` + 1 years on."""
        end = None if self.last is None else add_months(born, 12 * (self.last + 1))
        return add_months(born, 12 * self.first), end

    def holds(self, years: float) -> bool:
        """Whether an age in (fractional) years is in the range: 3 holds 3.0 to 3.99."""
        return years >= self.first and (self.last is None or years < self.last + 1)

    def words(self) -> str:
        if self.last is None:
            return f"{self.first} or older"
        if self.last == self.first:
            return f"{self.first}"
        return f"{self.first} to {self.last}"


def parse_ages(text: str) -> AgeRange:
    """``3`` (3 years old), ``3-5`` (3 to 5, inclusive), ``4-`` (4 or older), ``-2``
    (up to 2)."""
    match = _AGES.match(text)
    if match is None or not (match[1] or match[3]) or (match[2] is None and match[3]):
        raise ConfigError(f"{text.strip()!r} is not an age range; use whole years: 3, 3-5, "
                          "4- (4 or older) or -2 (up to 2)")
    first = int(match[1]) if match[1] else 0
    last = first if match[2] is None else (int(match[3]) if match[3] else None)
    if last is not None and last < first:
        raise ConfigError(f"{text.strip()!r}: the first age is above the last; use FIRST-LAST, "
                          "e.g. 3-5")
    return AgeRange(first, last)


@dataclass(frozen=True)
class Born:
    """What ``rbv persons born`` did: the person, its birthday (None: cleared), the one
    it had, and its entry in the edit log (None: a dry run, or nothing changed)."""

    person: uuid.UUID
    born: date | None
    was: date | None
    edit_id: int | None

    @property
    def changed(self) -> bool:
        return self.born != self.was

    def as_dict(self, dry_run: bool) -> dict[str, object]:
        return {"person": str(self.person), "born": _iso(self.born), "was": _iso(self.was),
                "changed": self.changed, "edit": self.edit_id, "dry_run": dry_run}


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def set_born(db: Database, person: uuid.UUID, born: date | None, *, dry_run: bool = False,
             shown: Shown | None = None) -> Born:
    """Give a person its birthday (None: clear it), as one logged edit that ``rbv
    persons undo`` reverts. The birthday it has already changes nothing and logs no
    edit. A birthday in the future is refused, changing nothing."""
    if born is not None:
        _past(born)
    with db.connect() as conn:
        person = existing_person(conn, person)
        pack_id = pack_of(conn, person)
    with logged_edit(db, pack_id, "persons born",
                     {"person": str(person), "born": _iso(born)},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        was = store.born_of(conn, person)
        if was != born:
            store.set_born(conn, person, born)
        edit.summary = (f"birthday of {person} " + (f"set to {born.isoformat()}" if born
                                                     else "cleared")
                        + (f" (was {was.isoformat()})" if was else ""))
    return Born(person, born, was, edit.logged_id)


def born_of(db: Database, person: uuid.UUID) -> date | None:
    """The person's birthday (None: none given)."""
    with db.connect() as conn:
        return store.born_of(conn, person)
