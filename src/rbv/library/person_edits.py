"""Edits of persons, each one logged edit (:meth:`~rbv.library.Library.history` lists
them, :meth:`~PersonEdits.undo` reverts the last): names, merges, moves, splits,
hiding, covers and birthdays."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from rbv.jobs.persons import edit_log
from rbv.library.room import Room

if TYPE_CHECKING:
    from rbv.cluster.defaults import Method
    from rbv.cluster.eras import EraParams
    from rbv.jobs.persons.birthdays import Born
    from rbv.jobs.persons.confirms import Confirmed
    from rbv.jobs.persons.edit_log import UndoResult
    from rbv.jobs.persons.person_details import BulkHidden, Covered, HideResult
    from rbv.jobs.persons.person_edit import Edited
    from rbv.jobs.persons.splits import EraSplit, SplitResult


class PersonEdits(Room):
    """The edits of ``rbv persons``."""

    def name(self, person: uuid.UUID, name: str, *, force: bool = False) -> Edited:
        """Name or rename a person, as ``rbv persons name`` (invisible characters are
        removed). A name another person has is refused (:class:`rbv.errors.Refused`)
        unless ``force``. The name it has already changes nothing (``edit_id`` None)."""
        from rbv.jobs.persons import person_details

        return person_details.name(self.db, person, name, force=force)

    def merge(self, target: uuid.UUID, sources: Sequence[uuid.UUID], *,
              override: bool = False, keep_name: str | None = None,
              keep_born: date | str | None = None, dry_run: bool = False) -> Edited:
        """Merge ``sources`` into ``target``, as ``rbv persons merge``: the named one is
        kept (``Edited.person``); ``keep_name``/``keep_born`` (a date, or YYYY-MM-DD)
        say which name or birthday stays when they differ; ``override`` removes the
        decisions that keep their faces apart."""
        from rbv.jobs.persons import merges

        return merges.merge(
            self.db, target, list(sources), override=override,
            dry_run=dry_run, keep_name=keep_name,
            keep_born=keep_born.isoformat() if isinstance(keep_born, date) else keep_born)

    def move(self, faces: Sequence[int], *, to: uuid.UUID | None = None,
             dry_run: bool = False) -> Edited:
        """Move faces to the person ``to`` by hand (None: a new person of their own),
        as ``rbv persons move``; every re-cluster keeps them there."""
        from rbv.jobs.persons import face_moves

        return face_moves.move(self.db, list(faces), to, dry_run=dry_run)

    def reject(self, person: uuid.UUID, faces: Sequence[int], *,
               dry_run: bool = False) -> Edited:
        """Take faces out of a person for good, as ``rbv persons not-this-person``."""
        from rbv.jobs.persons import face_moves

        return face_moves.reject(self.db, person, list(faces), dry_run=dry_run)

    def confirm(self, person: uuid.UUID, faces: Sequence[int] | None = None, *,
                dry_run: bool = False) -> Confirmed:
        """Confirm the person's ``faces`` (None: every unconfirmed one), as ``rbv persons
        confirm``: each is placed there by hand, so no automatic run moves it. Refused
        (:class:`rbv.errors.Refused`) when one of them is not the person's."""
        from rbv.jobs.persons.confirms import confirm

        return confirm(self.db, person, None if faces is None else list(faces),
                       dry_run=dry_run)

    def split(self, person: uuid.UUID, *, threshold: float | None = None,
              method: Method | None = None, dry_run: bool = False) -> SplitResult:
        """Split a person in two where the review's two-people test says it is two
        people, as ``rbv persons split`` (the larger half keeps the person; else it
        stays whole, and ``halves`` says why); ``threshold``/``method``: re-cluster its
        faces instead, the largest group keeping the person."""
        from rbv.jobs.persons import splits

        return splits.split(self.db, person, threshold, method, dry_run=dry_run)

    def split_eras(self, person: uuid.UUID, params: EraParams, *,
                   apply: bool = False) -> EraSplit:
        """A person's faces in age eras by their photos' years, as ``rbv eras``;
        ``apply``: each era after the largest becomes a new person."""
        from rbv.jobs.persons.splits import split_person_eras

        return split_person_eras(self.db, person, params, apply=apply)

    def hide(self, *persons: uuid.UUID, dry_run: bool = False) -> HideResult:
        """Hide persons from :meth:`persons` (their faces stay), as one edit."""
        from rbv.jobs.persons import person_details

        return person_details.hide(self.db, list(persons), True, dry_run=dry_run)

    def unhide(self, *persons: uuid.UUID, dry_run: bool = False) -> HideResult:
        """Show hidden persons again, as one edit."""
        from rbv.jobs.persons import person_details

        return person_details.hide(self.db, list(persons), False, dry_run=dry_run)

    def hide_unnamed(self, max_faces: int, *, model_pack: str | None = None,
                     dry_run: bool = False) -> BulkHidden:
        """Hide every visible unnamed person with at most ``max_faces`` faces and no
        birthday (of ``model_pack``, else of every pack), as one edit."""
        from rbv.jobs.persons import person_details

        return person_details.hide_unnamed(self.db, max_faces, self._listed_pack(model_pack),
                                           dry_run=dry_run)

    def cover(self, person: uuid.UUID, face: int | None, *,
              dry_run: bool = False) -> Covered:
        """Show the person by ``face``, one of its faces, wherever it is shown by one
        (None: by its automatic face again), as ``rbv persons cover``."""
        from rbv.jobs.persons import person_details

        return person_details.cover(self.db, person, face, dry_run=dry_run)

    def set_born(self, person: uuid.UUID, born: date | None, *,
                 dry_run: bool = False) -> Born:
        """Give a person its birthday (None: clear it), as ``rbv persons born``; the
        age at each photo follows from it. A day in the future is refused."""
        from rbv.jobs.persons import birthdays

        return birthdays.set_born(self.db, person, born, dry_run=dry_run)

    def undo(self, count: int = 1, *, dry_run: bool = False) -> UndoResult:
        """Undo the last ``count`` edits still in effect, exactly, as ``rbv persons
        undo``: refused, changing nothing (:class:`rbv.errors.EditConflict`), when a
        row one of them changed was changed again since."""
        return edit_log.undo(self.db, count, dry_run=dry_run)
