"""The decision machine's rules for issue 64 part 3: a person's unconfirmed faces
confirmed (one face, every one, or a confirm screen answered as ``rbv serve``'s is:
the faces rejected one click each, then "confirm all shown"), and a face's box moved.

What must hold (checked here after each rule, and by DecisionMachine after every
automatic step): a confirmed face is placed by hand in its person, so no automatic run
moves it (``check_hand_placed``); a box moved is the box the user set through every
cluster run and index (``check_hand_placed``: a face whose box is the user's keeps it),
the face keeps its person and decisions, and undo restores the box and embedding
exactly (the state compared holds every face's box)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, precondition, rule

from rbv.jobs.persons import confirms, face_moves
from rbv.jobs.persons.face_boxes import move_box

State = dict[str, list[tuple[Any, ...]]]
SCREEN = 24  # faces a confirm screen shows (rbv.serve.pages.CONFIRM_SHOWN)


def moved_box(box: tuple[float, ...], how: str, width: int, height: int
              ) -> tuple[int, int, int, int]:
    """A face's box moved as a user moves one: shifted by a fifth of its width, grown or
    shrunk by a sixth on each side, or pushed past the photo's edge (refused)."""
    x1, y1, x2, y2 = (round(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if how == "shift":
        x1, x2 = x1 + w // 5, x2 + w // 5
    elif how == "grow":
        x1, y1, x2, y2 = x1 - w // 6, y1 - h // 6, x2 + w // 6, y2 + h // 6
    elif how == "shrink":
        x1, y1, x2, y2 = x1 + w // 6, y1 + h // 6, x2 - w // 6, y2 - h // 6
    else:
        return x1, y1, width + 10, y2
    return (max(0, x1), max(0, y1), min(width, x2), min(height, y2))


class ConfirmRules:
    """Mixed into DecisionMachine."""

    faces = Bundle("faces")  # DecisionMachine's bundles (a bundle is its name)
    persons = Bundle("persons")

    def unconfirmed_held(self) -> list[tuple[str, int]]:
        """(person, face) of every face an automatic run placed."""
        return [(p, f) for f, p, by in self.state()["faces"]  # type: ignore[attr-defined]
                if p is not None and by != "manual" for p in [str(p)]]

    def check_confirmed(self, person: str, faces: list[int]) -> None:
        placed = {f: (str(p), by) for f, p, by in self.state()["faces"]}  # type: ignore[attr-defined]
        wrong = {f: placed.get(f) for f in faces if placed.get(f) != (person, "manual")}
        assert not wrong, f"faces confirmed in {person[:8]} are not placed there by hand: {wrong}"

    @precondition(lambda self: self.unconfirmed_held())
    @rule(data=st.data(), every=st.booleans())
    def confirm(self, data: st.DataObject, every: bool) -> None:
        """`rbv persons confirm PERSON FACE` (or ``--all``) on a face a run placed."""
        person, face = data.draw(st.sampled_from(self.unconfirmed_held()), label="person, face")
        self.confirm_faces(person, None if every else [face])

    def confirm_faces(self, person: str, faces: list[int] | None) -> None:
        """Confirm ``faces`` of ``person`` (None: every unconfirmed one)."""
        before = {f for p, f in self.unconfirmed_held() if p == person}
        done: list[Any] = []
        self.edit(f"confirm {person[:8]} {'--all' if faces is None else faces}",  # type: ignore[attr-defined]
                  lambda: done.append(confirms.confirm(
                      self.db, uuid.UUID(person), faces)))  # type: ignore[attr-defined]
        if done:
            self.check_confirmed(person, sorted(before) if faces is None else faces)

    @rule(person=persons, face=faces)
    def confirm_any(self, person: str, face: int) -> None:
        """A face of the sequence confirmed in a person of it: refused, changing nothing,
        unless the person holds it (DecisionMachine.edit checks a refusal)."""
        self.edit(f"confirm {person[:8]} {face} (any)",  # type: ignore[attr-defined]
                  lambda: confirms.confirm(self.db, uuid.UUID(person), [face]))  # type: ignore[attr-defined]

    @precondition(lambda self: self.unconfirmed_held())
    @rule(data=st.data())
    def confirm_screen(self, data: st.DataObject) -> None:
        """A confirm screen answered as serve's is: some faces taken out (Not this
        person, one click, one edit each), then the rest confirmed at once."""
        person = data.draw(st.sampled_from(sorted({p for p, _f in self.unconfirmed_held()})),
                           label="person")
        screen = confirms.unconfirmed(self.db, uuid.UUID(person), SCREEN)  # type: ignore[attr-defined]
        shown = [f.id for f in screen.faces]
        similarity = [f.similarity for f in screen.faces]
        assert similarity == sorted(similarity), "a confirm screen is not least alike first"
        wrong = [f for f in shown if data.draw(st.booleans(), label=f"reject {f}")]
        for face in wrong:
            self.edit(f"confirm screen {person[:8]}: not this person {face}",  # type: ignore[attr-defined]
                      lambda face=face: face_moves.reject(self.db, uuid.UUID(person), [face]))  # type: ignore[attr-defined]
        rest = [f for f in shown if f not in wrong]
        if rest:
            self.edit(f"confirm screen {person[:8]}: confirm all shown {rest}",  # type: ignore[attr-defined]
                      lambda: confirms.confirm(self.db, uuid.UUID(person), rest))  # type: ignore[attr-defined]
            self.check_confirmed(person, rest)

    def face_boxes(self) -> dict[int, tuple[tuple[float, ...], int, int]]:
        """Face → (its box, its photo's width and height)."""
        with self.db.connect() as conn:  # type: ignore[attr-defined]
            return {int(f): ((x1, y1, x2, y2), int(w), int(h)) for f, x1, y1, x2, y2, w, h
                    in conn.execute(
                        "SELECT f.id, f.x1, f.y1, f.x2, f.y2, i.width, i.height "
                        "FROM face_detections f JOIN images i ON i.id = f.image_id")}

    @rule(face=faces, how=st.sampled_from(["shift", "grow", "shrink", "outside"]))
    def move_box(self, face: int, how: str) -> None:
        """`rbv faces box FACE X1 Y1 X2 Y2`: a face of the sequence (perhaps deleted
        since, or marked not a face: refused) moved; the face keeps its person and how
        it was placed."""
        boxes = self.face_boxes()
        if face in boxes:
            old, width, height = boxes[face]
            box = moved_box(old, how, width, height)
        else:
            box = (0, 0, 64, 64)
        before = {f: (p, by) for f, p, by in self.state()["faces"]}  # type: ignore[attr-defined]
        done: list[Any] = []
        self.edit(f"faces box {face} {how} {box}",  # type: ignore[attr-defined]
                  lambda: done.append(move_box(
                      self.db, self.settings, face, box,  # type: ignore[attr-defined]
                      analyzer=self.env.analyzer)))  # type: ignore[attr-defined]
        if not done:
            return
        state = self.state()  # type: ignore[attr-defined]
        now = {f: (p, by) for f, p, by in state["faces"]}
        assert now == before, f"moving the box of face {face} moved a face"
        at = {f: tuple(round(v) for v in b) for f, *b in state["boxes"]}
        assert at[face] == box, f"face {face}'s box is {at[face]}, not the {box} set"
        assert face in {f for f, _how in state["drawn"]}, f"face {face}'s box is not the user's"
