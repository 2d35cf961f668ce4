"""What ``rbv serve``'s buttons do: each one of the edit functions the CLI uses (so
each is a logged, undoable edit under the pack's lock, refused on the same rules),
answered as a small JSON document for the page's script. The answer names the edit
made (the toast's Undo undoes that one, or refuses if another edit came since)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from rbv.bounds import BIGINT_MAX
from rbv.errors import ConfigError
from rbv.jobs.persons import edit_log
from rbv.jobs.persons import edits as editing
from rbv.jobs.persons import faces as face_links
from rbv.serve import inputs
from rbv.serve.queue import SuggestionQueue
from rbv.store.queries.persons import name_of, pack_of, person_named, resolve_person
from rbv.store.server.connection import Database

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


class Actions:
    def __init__(self, db: Database, queue: SuggestionQueue) -> None:
        self.db = db
        self.queue = queue
        self.table: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "name": self.name, "merge": self.merge, "reject": self.reject,
            "move": self.move, "new": self.new_person, "same": self.same,
            "hide": self.hide, "unhide": self.unhide, "accept": self.accept,
            "dismiss": self.dismiss, "skip": self.skip, "undo": self.undo,
            "grid": self.grid, "pairs": self.pairs, "split": self.split, "one": self.one_person,
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
        person, new_name = _person(body), _text(body, "name")
        if not body.get("force"):
            with self.db.connect() as conn:
                other = person_named(conn, pack_of(conn, person), new_name, other_than=person)
                if other is not None:
                    return {"ok": False, "confirm": "merge", "other": str(other),
                            "message": f"{name_of(conn, other)!r} is another person. "
                                       "Merge this person into it?"}
        done = editing.name(self.db, str(person), new_name, force=bool(body.get("force")))
        if done.edit_id is None:
            return self._done(f"Named {new_name!r} already; nothing changed", None)
        return self._done(f"Named {new_name!r}", done.edit_id)

    def merge(self, body: dict[str, Any]) -> Answer:
        """``source`` (an id, or a name typed in) and ``person`` are merged: the named
        one is kept, whichever side it is (the page follows to it); two named persons
        only with ``keep_name`` (the name the user typed, offered the merge), else a 409
        naming the commands."""
        target = _person(body)
        with self.db.connect() as conn:
            source = resolve_person(conn, _text(body, "source"))
        if source == target:
            raise ConfigError("that is this person; pick another person to merge in")
        keep_name = body.get("keep_name")
        done = editing.merge(self.db, str(target), [str(source)],
                             override=bool(body.get("override")),
                             keep_name=keep_name if isinstance(keep_name, str) else None)
        return self._done(_with_overrides(f"Merged: {done.faces:,} face(s) moved in", done),
                          done.edit_id, f"/person/{done.person or target}")

    def reject(self, body: dict[str, Any]) -> Answer:
        done = editing.reject(self.db, str(_person(body)), _faces(body))
        return self._done(_with_overrides(
            f"{done.faces} face(s) taken out of this person for good", done), done.edit_id)

    def move(self, body: dict[str, Any]) -> Answer:
        faces = _faces(body)
        with self.db.connect() as conn:
            target = resolve_person(conn, _text(body, "to"))
        done = editing.move(self.db, faces, str(target))
        return self._done(_with_overrides(f"Moved {done.faces} face(s)", done), done.edit_id)

    def new_person(self, body: dict[str, Any]) -> Answer:
        done = editing.move(self.db, _faces(body), None)
        return self._done(_with_overrides(f"Moved {done.faces} face(s) to a new person", done),
                          done.edit_id, f"/person/{done.person}" if done.person else None)

    def split(self, body: dict[str, Any]) -> Answer:
        """The person in two as its page showed it (``kept``, ``moved``: the halves' face
        ids), as `rbv persons split` does; refused when it would not split so now."""
        done = editing.split(self.db, str(_person(body)), shown=(
            inputs.face_ids(body, "kept"), inputs.face_ids(body, "moved")))
        return self._done(f"Split in two: {done.sizes[1]:,} face(s) moved to a new person",
                          done.edit_id)

    def one_person(self, body: dict[str, Any]) -> Answer:
        """The answer "they are one person" to a page that showed the person as two
        (``kept``, ``moved``: the halves' face ids): its faces linked as one, so review
        stops calling it two people; refused when it would not split so now."""
        done = face_links.one_person(self.db, str(_person(body)), shown=(
            inputs.face_ids(body, "kept"), inputs.face_ids(body, "moved")))
        return self._done(f"Kept as one person: {done.effect}", done.edit_id)

    def same(self, body: dict[str, Any]) -> Answer:
        result = face_links.link(self.db, _faces(body), same=True)
        return self._done(f"Linked as one person: {result.effect}", result.edit_id)

    def hide(self, body: dict[str, Any]) -> Answer:
        done = editing.hide(self.db, [str(_person(body))], True)
        return self._done("Hidden", _only(done.edit_ids))

    def unhide(self, body: dict[str, Any]) -> Answer:
        done = editing.hide(self.db, [str(_person(body))], False)
        return self._done("Shown again", _only(done.edit_ids))

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


def _only(edit_ids: list[int]) -> int | None:
    """The edit of a one-person hide (one pack: one edit, or none when nothing changed)."""
    return edit_ids[-1] if edit_ids else None


def _with_overrides(message: str, done: editing.Edited) -> str:
    """The action's message, and the earlier decisions it overrode (said, never silent)."""
    return f"{message}. {done.overrides}" if done.overrides else message
