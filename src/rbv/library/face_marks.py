"""Decisions about faces, each one logged edit: linked as one person or as different
persons, marked not a face (and back), a face drawn by hand, a face's box moved."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rbv.library.room import Room, StrPath

if TYPE_CHECKING:
    from rbv.jobs.persons.drawn import Added
    from rbv.jobs.persons.face_boxes import BoxMoved
    from rbv.jobs.persons.faces import LinkResult
    from rbv.jobs.persons.not_faces import MarkedFace, MarkResult


class FaceMarks(Room):
    """The edits of ``rbv faces``."""

    def same(self, faces: Sequence[int], *, override: bool = False, dry_run: bool = False,
             forecast: bool = False) -> LinkResult:
        """Link faces as one person in every clustering, as ``rbv faces same``;
        ``override`` removes the earlier decisions that keep them apart; ``forecast``
        says what the next full clustering will change (run, then rolled back)."""
        from rbv.jobs.persons.faces import link

        return link(self.db, list(faces), same=True, override=override, dry_run=dry_run,
                    forecast=forecast)

    def different(self, faces: Sequence[int], *, dry_run: bool = False,
                  forecast: bool = False) -> LinkResult:
        """Link faces as different persons in every clustering, as ``rbv faces
        different``; ``forecast`` as in :meth:`same`."""
        from rbv.jobs.persons.faces import link

        return link(self.db, list(faces), same=False, dry_run=dry_run, forecast=forecast)

    def not_a_face(self, faces: Sequence[int], *, model_pack: str | None = None,
                   dry_run: bool = False) -> MarkResult:
        """Mark detections that are no face, as ``rbv faces not-a-face``: each leaves
        its person and every clustering, and the decisions about it are dropped."""
        from rbv.jobs.persons.not_faces import not_a_face

        return not_a_face(self.db, list(faces), model_pack=self._listed_pack(model_pack),
                          dry_run=dry_run)

    def is_a_face(self, faces: Sequence[int], *, model_pack: str | None = None,
                  dry_run: bool = False) -> MarkResult:
        """Take the not-a-face mark back, as ``rbv faces is-a-face``: the faces wait,
        with no person, for the next clustering."""
        from rbv.jobs.persons.not_faces import is_a_face

        return is_a_face(self.db, list(faces), model_pack=self._listed_pack(model_pack),
                         dry_run=dry_run)

    def not_faces(self, *, model_pack: str | None = None) -> list[MarkedFace]:
        """The faces marked not a face (of ``model_pack``, else of every pack), newest
        mark first, as ``rbv faces not-faces``."""
        from rbv.jobs.persons.not_faces import listing

        return listing(self.db, self._listed_pack(model_pack))

    def add_face(self, photo: StrPath | int, box: tuple[int, int, int, int], *,
                 person: uuid.UUID | None = None, dry_run: bool = False) -> Added:
        """Add a face the detector missed, as ``rbv faces add``: ``box`` is (x, y,
        width, height) in pixels of the upright photo, given by its path as indexed or
        its image id; in ``person`` by hand when given, else the next clustering places
        it. Refused (:class:`rbv.errors.Refused`) for a box outside the photo or mostly
        a face found already, a photo not indexed, a person with a face of the
        photo."""
        from rbv.jobs.persons.drawn import add_face

        if isinstance(photo, int):
            return add_face(self.db, self.settings, image_id=photo, box=box, person=person,
                            dry_run=dry_run)
        return add_face(self.db, self.settings, photo=os.fspath(photo), box=box,
                        person=person, dry_run=dry_run)

    def move_box(self, face: int, box: tuple[int, int, int, int], *,
                 dry_run: bool = False) -> BoxMoved:
        """Move or resize a face's box, as ``rbv faces box``: ``box`` is (x1, y1, x2, y2)
        in pixels of the upright photo. The face keeps its person and every decision
        about it, and is embedded again at the new box; undo puts the old box back.
        Refused for a box outside the photo, too small or mostly another face, and for
        a face marked not a face."""
        from rbv.jobs.persons.face_boxes import move_box

        return move_box(self.db, self.settings, face, box, dry_run=dry_run)
