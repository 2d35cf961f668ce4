"""What ``rbv serve``'s buttons do: each one of the edit functions the CLI uses (so
each is a logged, undoable edit under the pack's lock, refused on the same rules),
answered as a small JSON document for the page's script. Each answer sends what its
page showed (``shown``: :func:`rbv.serve.inputs.shown`): an answer from a page shown
before a person or face changed is refused (a 409 naming the change), changing
nothing. The answer names the edit made (the toast's Undo undoes that one, or refuses
if another edit came since)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from rbv.bounds import BIGINT_MAX
from rbv.config import Settings
from rbv.errors import ConfigError
from rbv.jobs.persons import (
    confirms,
    edit_log,
    face_moves,
    merges,
    not_faces,
    person_details,
    person_edit,
    splits,
)
from rbv.jobs.persons import faces as face_links
from rbv.jobs.persons.birthdays import parse_born, set_born
from rbv.serve import inputs
from rbv.serve.queue import SuggestionQueue
from rbv.store.queries.person_lookup import name_of, person_named, resolve_person
from rbv.store.queries.persons import pack_of
from rbv.store.server.connection import Database
from rbv.words import counted

Answer = dict[str, Any]


def _faces(body: dict[str, Any]) -> list[int]:
    faces = inputs.face_ids(body)
    if not faces:
        raise ConfigError("select one or more faces first")
    return faces


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} is missing")
    return inputs.plain(value.strip(), key)


def _person(body: dict[str, Any], key: str = "person") -> uuid.UUID:
    try:
        return uuid.UUID(_text(body, key))
    except ValueError:
        raise ConfigError(f"{key} is not a person id") from None


def _persons(body: dict[str, Any], key: str) -> list[uuid.UUID]:
    values = body.get(key)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{key} must be a list of person ids")
    try:
        return [uuid.UUID(v) for v in values]
    except ValueError:
        raise ConfigError(f"{key} holds something that is not a person id") from None


def _person_pairs(body: dict[str, Any], key: str) -> list[tuple[uuid.UUID, uuid.UUID]]:
    values = body.get(key)
    if not isinstance(values, list) or not all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(p, str) for p in v)
            for v in values):
        raise ConfigError(f"{key} must be a list of [person id, person id] pairs")
    try:
        pairs = [(uuid.UUID(one), uuid.UUID(two)) for one, two in values]
    except ValueError:
        raise ConfigError(f"{key} holds something that is not a person id") from None
    for one, two in pairs:
        _two(one, two)
    return pairs


def _two(one: uuid.UUID, two: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """A pair of persons, refused when it is one person twice (no page shows such a
    pair; taken as shown it would name another pair of that person's)."""
    if one == two:
        raise inputs.BadRequest(f"a pair of person {one} with itself; a pair is two persons")
    return one, two


def _box(body: dict[str, Any]) -> tuple[int, int, int, int]:
    """A box drawn on a photo: [x, y, width, height], whole pixels of the photo."""
    value = body.get("box")
    if not isinstance(value, list) or len(value) != 4:
        raise inputs.BadRequest("box must be [x, y, width, height] in pixels of the photo")
    x, y = (inputs.whole(v, "the box's corner", 0, 1_000_000) for v in value[:2])
    w, h = (inputs.whole(v, "the box's size", 1, 1_000_000) for v in value[2:])
    return x, y, w, h


class Actions:
    def __init__(self, db: Database, queue: SuggestionQueue,
                 settings: Settings | None = None) -> None:
        self.db = db
        self.queue = queue
        self.settings = settings or Settings()
        self.table: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "name": self.name, "merge": self.merge, "reject": self.reject,
            "move": self.move, "new": self.new_person, "same": self.same,
            "hide": self.hide, "unhide": self.unhide, "born": self.born,
            "accept": self.accept,
            "dismiss": self.dismiss, "skip": self.skip, "undo": self.undo,
            "grid": self.grid, "pairs": self.pairs, "split": self.split, "one": self.one_person,
            "hide_these": self.hide_these, "unhide_these": self.unhide_these,
            "hide_unnamed": self.hide_unnamed, "cover": self.cover,
            "notface": self.not_a_face, "isface": self.is_a_face,
            "draw": self.draw, "confirm": self.confirm, "box": self.box,
        }

    def run(self, action: str, body: dict[str, Any]) -> Answer:
        handler = self.table.get(action)
        if handler is None:
            raise ConfigError(f"unknown action {action!r}")
        answer = handler(body)
        answer.setdefault("ok", True)
        return answer

    @staticmethod
    def _done(message: str, edit: int | None, go: str | None = None) -> Answer:
        """The answer to an edit: ``edit`` is the one it logged (None: nothing changed),
        the one the toast's Undo names."""
        return {"message": message, "edit": edit, "go": go}

    def name(self, body: dict[str, Any]) -> Answer:
        given = inputs.name_text(_text(body, "name"), "name")
        person, new_name = _person(body), given.text
        said = f" ({given.note})" if given.note else ""
        if not body.get("force"):
            with self.db.connect() as conn:
                other = person_named(conn, pack_of(conn, person), new_name, other_than=person)
                if other is not None:
                    return {"ok": False, "confirm": "merge", "other": str(other),
                            "message": f"{name_of(conn, other)!r} is another person. "
                                       "Merge this person into it?"}
        done = person_details.name(self.db, person, new_name, force=bool(body.get("force")),
                                   shown=inputs.shown(body))
        if done.edit_id is None:
            return self._done(f"Named {new_name!r} already; nothing changed{said}", None)
        return self._done(f"Named {new_name!r}{said}", done.edit_id)

    def merge(self, body: dict[str, Any]) -> Answer:
        """``source`` (an id, or a name typed in) and ``person`` are merged: the named
        one is kept, whichever side it is (the page follows to it); two named persons
        only with ``keep_name`` (the name the user typed, offered the merge), two
        birthdays only with ``keep_born``, else a 409 whose remedies are the merges
        that keep each name (birthday)."""
        target = _person(body)
        with self.db.connect() as conn:
            source = resolve_person(conn, _text(body, "source"))
        if source == target:
            raise ConfigError("that is this person; pick another person to merge in")
        keep_name, keep_born = body.get("keep_name"), body.get("keep_born")
        done = merges.merge(self.db, target, [source],
                            override=bool(body.get("override")),
                            keep_name=keep_name if isinstance(keep_name, str) else None,
                            keep_born=keep_born if isinstance(keep_born, str) else None,
                            shown=inputs.shown(body))
        return self._done(_with_overrides(f"Merged: {counted(done.faces, 'face')} moved in", done),
                          done.edit_id, f"/person/{done.person or target}")

    def reject(self, body: dict[str, Any]) -> Answer:
        done = face_moves.reject(self.db, _person(body), _faces(body),
                                 shown=inputs.shown(body))
        return self._done(_with_overrides(
            f"{counted(done.faces, 'face')} taken out of this person for good", done),
            done.edit_id)

    def move(self, body: dict[str, Any]) -> Answer:
        faces = _faces(body)
        with self.db.connect() as conn:
            target = resolve_person(conn, _text(body, "to"))
        done = face_moves.move(self.db, faces, target, shown=inputs.shown(body))
        return self._done(_with_overrides(f"Moved {counted(done.faces, 'face')}", done),
                          done.edit_id)

    def new_person(self, body: dict[str, Any]) -> Answer:
        done = face_moves.move(self.db, _faces(body), None, shown=inputs.shown(body))
        return self._done(_with_overrides(
            f"Moved {counted(done.faces, 'face')} to a new person", done),
                          done.edit_id, f"/person/{done.person}" if done.person else None)

    def split(self, body: dict[str, Any]) -> Answer:
        """The person in two as its page showed it (``kept``, ``moved``: the halves' face
        ids), as `rbv persons split` does; refused when it would not split so now."""
        done = splits.split(self.db, _person(body), shown=(
            inputs.face_ids(body, "kept"), inputs.face_ids(body, "moved")),
            page=inputs.shown(body))
        return self._done(f"Split in two: {counted(done.sizes[1], 'face')} moved to a new "
                          "person",
                          done.edit_id)

    def one_person(self, body: dict[str, Any]) -> Answer:
        """The answer "they are one person" to a page that showed the person as two
        (``kept``, ``moved``: the halves' face ids): its faces linked as one, so review
        stops calling it two people; refused when it would not split so now."""
        done = face_links.one_person(self.db, _person(body), shown=(
            inputs.face_ids(body, "kept"), inputs.face_ids(body, "moved")),
            page=inputs.shown(body))
        return self._done(f"Kept as one person: {done.effect}", done.edit_id)

    def draw(self, body: dict[str, Any]) -> Answer:
        """A face drawn on a photo's page (``image``, ``box``), in ``person`` (an id or a
        name typed in) by hand when one is given, as `rbv faces add` adds it."""
        from rbv.jobs.persons.drawn import add_face

        image = inputs.whole(body.get("image"), "image")
        box = _box(body)
        person = body.get("person")
        if person is not None and not isinstance(person, str):
            raise inputs.BadRequest("person must be a person's name or id")
        person = inputs.plain(person.strip(), "person") if person and person.strip() else None
        target = None
        if person is not None:
            with self.db.connect() as conn:
                target = resolve_person(conn, person)
        done = add_face(self.db, self.settings, image_id=image, box=box, person=target)
        how = ("landmarks from the detector" if done.drawn == "detector"
               else "landmarks from the box: the detector found no face in it")
        into = (f" in {done.person_name!r}" if done.person_name
                else " in the person chosen" if done.person else "")
        return self._done(f"Added face {done.face_id}{into} ({how})", done.edit_id)

    def confirm(self, body: dict[str, Any]) -> Answer:
        """``faces`` of ``person`` confirmed (placed there by hand), as `rbv persons
        confirm` does; the answer says how many are left to confirm."""
        done = confirms.confirm(self.db, _person(body), _faces(body), shown=inputs.shown(body))
        if done.edit_id is None:
            return self._done("Confirmed already; nothing changed", None)
        return self._done(f"Confirmed {counted(done.confirmed, 'face')}; "
                          f"{counted(done.left, 'face')} left to confirm", done.edit_id)

    def box(self, body: dict[str, Any]) -> Answer:
        """Face ``face``'s box moved to ``box`` ([x1, y1, x2, y2] in pixels of the
        photo), as `rbv faces box` moves it."""
        from rbv.jobs.persons.face_boxes import move_box

        face = inputs.whole(body.get("face"), "face", 1, BIGINT_MAX)
        value = body.get("box")
        if not isinstance(value, list) or len(value) != 4:
            raise inputs.BadRequest("box must be [x1, y1, x2, y2] in pixels of the photo")
        done = move_box(self.db, self.settings, face, inputs.corners(value, "the box"),
                        shown=inputs.shown(body))
        if done.edit_id is None:
            return self._done("The box is there already; nothing changed", None)
        return self._done(f"Moved the box of face {face}; it keeps its person", done.edit_id)

    def same(self, body: dict[str, Any]) -> Answer:
        result = face_links.link(self.db, _faces(body), same=True, shown=inputs.shown(body))
        return self._done(f"Linked as one person: {result.effect}", result.edit_id)

    def not_a_face(self, body: dict[str, Any]) -> Answer:
        """``faces``: detections that are no face, as `rbv faces not-a-face` marks them."""
        done = not_faces.not_a_face(self.db, _faces(body), shown=inputs.shown(body))
        if done.edit_id is None:
            return self._done("Marked not a face already; nothing changed", None)
        dropped = f". Dropped {done.dropped}" if done.dropped else ""
        return self._done(f"{counted(len(done.changed), 'face')} marked not a face{dropped}",
                          done.edit_id)

    def is_a_face(self, body: dict[str, Any]) -> Answer:
        """``faces``: take their "not a face" mark back (`rbv faces is-a-face`)."""
        done = not_faces.is_a_face(self.db, _faces(body), shown=inputs.shown(body))
        if done.edit_id is None:
            return self._done("Not marked; nothing changed", None)
        n = len(done.changed)
        return self._done(f"{counted(n, 'face')} {'is a face' if n == 1 else 'are faces'} "
                          f"again; the next `rbv cluster` places {'it' if n == 1 else 'them'}",
                          done.edit_id)

    def hide(self, body: dict[str, Any]) -> Answer:
        done = person_details.hide(self.db, [_person(body)], True, shown=inputs.shown(body))
        return self._done("Hidden", _only(done.edit_ids))

    def unhide(self, body: dict[str, Any]) -> Answer:
        done = person_details.hide(self.db, [_person(body)], False, shown=inputs.shown(body))
        return self._done("Shown again", _only(done.edit_ids))

    def hide_these(self, body: dict[str, Any]) -> Answer:
        """The persons ticked on the people page (``persons``), hidden as one edit."""
        done = person_details.hide(self.db, _ticked(body), True,
                                   shown=inputs.shown(body))
        return self._done(f"Hid {counted(done.persons, 'person')} (the filter 'hidden' lists "
                          f"{'it' if done.persons == 1 else 'them'})",
                          _only(done.edit_ids))

    def unhide_these(self, body: dict[str, Any]) -> Answer:
        """The hidden persons ticked (``persons``), shown again as one edit."""
        done = person_details.hide(self.db, _ticked(body), False,
                                   shown=inputs.shown(body))
        return self._done(f"Showed {counted(done.persons, 'person')} again",
                          _only(done.edit_ids))

    def hide_unnamed(self, body: dict[str, Any]) -> Answer:
        """Every visible unnamed person with at most ``max_faces`` faces, hidden as one
        edit (as `rbv persons hide --unnamed --max-faces N`); with ``dry_run``, how many
        it would hide, changing nothing (the page asks before it hides)."""
        if body.get("max_faces") in (None, ""):
            raise inputs.BadRequest("max_faces is missing: type a number of faces")
        most = inputs.whole(body["max_faces"], "max_faces", 1, inputs.MAX_FACES)
        dry_run = body.get("dry_run") is True
        done = person_details.hide_unnamed(self.db, most, dry_run=dry_run)
        persons = (f"{counted(len(done.persons), 'unnamed person')} with at most "
                   f"{counted(most, 'face')}")
        if not done.persons:
            return {"message": f"No visible unnamed person has at most {counted(most, 'face')}; "
                               "nothing changed", "edit": None, "count": 0, "faces": 0}
        if dry_run:
            return {"message": f"Hide {persons} ({counted(done.faces, 'face')})?", "edit": None,
                    "count": len(done.persons), "faces": done.faces, "dry_run": True}
        return self._done(f"Hid {persons} ({counted(done.faces, 'face')})", done.edit_id)

    def cover(self, body: dict[str, Any]) -> Answer:
        """Show ``person`` by its face ``face`` (absent or null: by its automatic face
        again), as `rbv persons cover`."""
        face = inputs.optional_whole(body, "face", None, BIGINT_MAX)
        done = person_details.cover(self.db, _person(body), face, shown=inputs.shown(body))
        if done.edit_id is None:
            return self._done("Shown by that face already; nothing changed", None)
        return self._done("Cover chosen" if face is not None else "Cover: automatic again",
                          done.edit_id)

    def born(self, body: dict[str, Any]) -> Answer:
        """The person's birthday (``born``: YYYY-MM-DD; empty: cleared), as `rbv persons
        born` gives it."""
        text = body.get("born")
        if not isinstance(text, str):
            raise ConfigError("born is missing: give the birthday as YYYY-MM-DD")
        when = parse_born(inputs.plain(text, "born")) if text.strip() else None
        done = set_born(self.db, _person(body), when, shown=inputs.shown(body))
        if not done.changed:
            return self._done("Birthday as it was; nothing changed", None)
        return self._done(f"Born {when.isoformat()}" if when else "Birthday cleared",
                          done.edit_id)

    def accept(self, body: dict[str, Any]) -> Answer:
        return self._done(*self.queue.accept(*_two(_person(body, "keep"),
                                                   _person(body, "other"))))

    def dismiss(self, body: dict[str, Any]) -> Answer:
        return self._done(*self.queue.dismiss(*_two(_person(body, "keep"),
                                                   _person(body, "other"))))

    def grid(self, body: dict[str, Any]) -> Answer:
        """"Which of these are KEEP?": ``same`` (those ticked) of ``shown``."""
        keep, shown = _person(body, "keep"), _persons(body, "shown")
        for other in shown:
            _two(keep, other)
        return self._done(*self.queue.answer_grid(keep, _persons(body, "same"), shown))

    def pairs(self, body: dict[str, Any]) -> Answer:
        """"Which of these pairs are one person?": ``same`` (those ticked) of ``shown``,
        each a [keep, other] pair of person ids."""
        return self._done(*self.queue.answer_pairs(_person_pairs(body, "shown"),
                                                   _person_pairs(body, "same")))

    def skip(self, body: dict[str, Any]) -> Answer:
        return {"message": self.queue.skip(*_two(_person(body, "keep"),
                                                 _person(body, "other"))), "edit": None}

    def undo(self, body: dict[str, Any]) -> Answer:
        """Undo the newest ``count`` edits; with ``edit``, only when the oldest of them
        is still that one (another window or a script may have edited since), checked
        under the lock the undo holds."""
        count = inputs.optional_whole(body, "count", 1, inputs.MAX_UNDO) or 1
        result = edit_log.undo(self.db, count,
                               expected=inputs.optional_whole(body, "edit", None, BIGINT_MAX))
        what = ", ".join(f"#{e.id} {e.summary or e.command}" for e in result.undone)
        return {"message": f"Undid {what}", "edit": None}


def _ticked(body: dict[str, Any]) -> list[uuid.UUID]:
    """The persons ticked on the people page (``persons``): one or more, at most a
    request's worth."""
    values = body.get("persons")
    if isinstance(values, list) and len(values) > inputs.MAX_FACES:
        raise inputs.BadRequest(f"{len(values):,} persons in one request; at most "
                                f"{inputs.MAX_FACES:,}: tick fewer", 413)
    persons = _persons(body, "persons")
    if not persons:
        raise ConfigError("tick one or more persons first")
    return persons


def _only(edit_ids: list[int]) -> int | None:
    """The edit of a one-person hide (one pack: one edit, or none when nothing changed)."""
    return edit_ids[-1] if edit_ids else None


def _with_overrides(message: str, done: person_edit.Edited) -> str:
    """The action's message, and the earlier decisions it overrode (said, never silent)."""
    return f"{message}. {done.overrides}" if done.overrides else message
