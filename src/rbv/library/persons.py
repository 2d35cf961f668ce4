"""Reading persons: finding one by what a user typed, listing them, their faces and
photos, and the log of edits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from rbv.jobs.persons import edit_log, lookup
from rbv.library.room import Room, StrPath, as_path_or_none

if TYPE_CHECKING:
    from rbv.jobs.persons.confirms import Unconfirmed
    from rbv.jobs.persons.edit_log import EditRow
    from rbv.jobs.persons.lookup import PersonFace, PersonFaces, PersonRow
    from rbv.jobs.persons.photos import PhotosResult
    from rbv.pictures.contact_sheet import Sheet


class Persons(Room):
    """Persons, their faces and photos, as the commands list them."""

    def find(self, text: str) -> uuid.UUID:
        """The person ``text`` names, as a user types one: a uuid, a unique uuid prefix
        (4 characters or more), a name (any case) or a unique part of a name; a merged
        person's id gives the person it was merged into.
        :class:`rbv.errors.PersonNotFound` when none or several match (the message
        names them)."""
        return lookup.resolve(self.db, text)

    def find_all(self, texts: Sequence[str]) -> list[uuid.UUID]:
        """:meth:`find` for each of ``texts``, in their order (repeats kept)."""
        return lookup.resolve_all(self.db, texts)

    def labels(self, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """How each person is called in a message: its name, or ``person`` and its
        short id when unnamed."""
        return lookup.labels(self.db, persons)

    def relabel(self, texts: Sequence[str]) -> list[str]:
        """``texts`` (an edit's summary, which names persons by uuid) with each person
        called by its label."""
        return lookup.relabel(self.db, texts)

    def persons(self, *, hidden: bool = False, min_faces: int = 1,
                model_pack: str | None = None) -> list[PersonRow]:
        """Persons with their names and face and photo counts, most faces first, as
        ``rbv persons list`` (``model_pack``'s, else the settings' pack's:
        ``RBV_MODEL_PACK``, else every pack's); ``hidden`` includes hidden persons;
        named persons are listed whatever their faces."""
        return lookup.list_persons(self.db, self._listed_pack(model_pack), include_hidden=hidden,
                                   min_faces=min_faces)

    def person(self, person: uuid.UUID) -> PersonRow:
        """One person, hidden or not (:class:`rbv.errors.PersonNotFound` when no
        person has that id: merged into another, or deleted by a clustering run)."""
        return lookup.person(self.db, person)

    def faces(self, person: uuid.UUID, limit: int | None = None) -> list[PersonFace]:
        """The person's faces (``limit``: at most so many), its cover first, then best
        detections first, as ``rbv persons show``."""
        return self.person_faces(person, limit).faces

    def person_faces(self, person: uuid.UUID, limit: int | None = None) -> PersonFaces:
        """What ``rbv persons show`` shows: the person's label, cover face, birthday
        and faces (:meth:`faces`)."""
        return lookup.faces(self.db, person, limit)

    def unconfirmed(self, person: uuid.UUID, limit: int = 24) -> Unconfirmed:
        """The person's faces an automatic run put there that no decision confirms,
        least alike to it first (at most ``limit``), with how many are left, as ``rbv
        persons confirm PERSON`` lists them."""
        from rbv.jobs.persons.confirms import unconfirmed

        return unconfirmed(self.db, person, limit)

    def photos(self, persons: Sequence[uuid.UUID], *, without: Sequence[uuid.UUID] = (),
               since: date | str | None = None, until: date | str | None = None,
               age: str | None = None, limit: int | None = None,
               copy_to: StrPath | None = None, link_to: StrPath | None = None
               ) -> PhotosResult:
        """The photos that show every one of ``persons`` and none of ``without``, oldest
        first, as ``rbv photos``. ``since``/``until``: inclusive, a date or YYYY,
        YYYY-MM, YYYY-MM-DD; ``age``: the first person's age in years (``3``, ``3-5``,
        ``4-``, ``-2``); ``copy_to``/``link_to``: gather them into that folder."""
        from rbv.jobs.persons.photos import PhotoQuery, find_photos

        query = PhotoQuery(tuple(persons), tuple(without),
                           None if since is None else str(since),
                           None if until is None else str(until), limit, age)
        return find_photos(self.db, query, copy_to=as_path_or_none(copy_to),
                           link_to=as_path_or_none(link_to))

    def history(self, limit: int = 50) -> list[EditRow]:
        """The logged edits, newest first (``limit`` 0: all), as ``rbv persons
        history``."""
        return edit_log.history(self.db, limit)

    def contact_sheet(self, target: uuid.UUID | int, out: StrPath | None = None, *,
                      limit: int = 64, columns: int = 8, tile: int = 128) -> Sheet:
        """Write a PNG grid of face crops, each captioned with its face id, as ``rbv
        show``: a person's (best detections first) or a faceset's (``target`` its
        number); to ``out``, else ``<name>.png`` in the current folder."""
        from rbv.jobs.persons.show import contact_sheet

        return contact_sheet(self.db, target, as_path_or_none(out), limit=limit,
                             columns=columns, tile=tile,
                             max_pixels=self.settings.max_image_pixels)
