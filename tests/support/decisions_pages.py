"""The decision machine's rule for a stale page's answer (issue 62 #3): a person's page
is looked at (what it shows, built here from the machine's own reading of the
database), then, steps later, one of its buttons is answered with what it showed. What
must hold: when anything it showed of the person or of the faces the answer names
changed since, the answer is refused, changing nothing; when nothing did, it is never
refused as out of date."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, multiple, rule

from rbv.errors import RbvError, ShownChanged
from rbv.jobs.persons import face_moves, not_faces, person_details
from rbv.jobs.persons.birthdays import set_born
from rbv.jobs.persons.shown import FaceShown, PersonShown, Shown

State = dict[str, list[tuple[Any, ...]]]
ANSWERS = ["name", "hide", "born", "cover", "move", "not a face"]


def page_of(state: State, person: uuid.UUID, faces: list[int] | None = None) -> Shown | None:
    """The person's page as ``state`` shows it (None: the person is gone or merged), with
    ``faces`` (default: its first three faces)."""
    rows: dict[Any, tuple[bool, Any]] = {p: (h, m) for p, h, m in state["persons"]}
    names: dict[Any, str] = dict(state["names"])
    born: dict[Any, date] = dict(state["born"])
    covers: dict[Any, int] = dict(state["covers"])
    if person not in rows or rows[person][1] is not None:
        return None
    placed = {f: (p, by) for f, p, by in state["faces"]}
    marked = {f for (f,) in state["not_faces"]}
    chosen = covers.get(person)
    cover = (chosen if chosen in placed and placed[chosen][0] == person
             and chosen not in marked else None)
    if faces is None:
        faces = sorted(f for f, (p, _by) in placed.items() if p == person)[:3]
    return Shown((PersonShown(person, names.get(person), rows[person][0],
                              (born.get(person), cover)),),
                 tuple(FaceShown(f, *placed.get(f, (None, "gone"))) for f in faces))


class PageRules:
    """Mixed into DecisionMachine: pages looked at, answered steps later."""

    pages = Bundle("pages")  # what a person's page showed at one step
    persons = Bundle("persons")  # DecisionMachine's bundle (a bundle is its name)

    db: Any
    state: Any
    edit: Any

    @rule(target=pages, person=persons)
    def look(self, person: str) -> Any:
        """A person's page loaded (nothing when the person is gone)."""
        shown = page_of(self.state(), uuid.UUID(person))
        return multiple() if shown is None else shown

    @rule(page=pages, how=st.sampled_from(ANSWERS), name=st.sampled_from(["Ada", "Zoe"]))
    def stale_answer(self, page: Shown, how: str, name: str) -> None:
        """One of the page's buttons answered with what it showed, however long ago."""
        person = page.persons[0].id
        faces = [f.id for f in page.faces]
        now = page_of(self.state(), person, faces)
        changed = now != page
        face = faces[0] if faces else None
        if face is None and how in ("move", "not a face"):
            how = "hide"
        answers = {
            "name": lambda: person_details.name(self.db, person, name, shown=page),
            "hide": lambda: person_details.hide(self.db, [person], not page.persons[0].hidden,
                                                shown=page),
            "born": lambda: set_born(self.db, person, date(1990, 5, 6), shown=page),
            "cover": lambda: person_details.cover(self.db, person, face, shown=page),
            "move": lambda: face_moves.move(self.db, faces[:1], None, shown=page),
            "not a face": lambda: not_faces.not_a_face(self.db, faces[:1], shown=page),
        }
        refusals: list[RbvError] = []

        def answer() -> None:
            try:
                answers[how]()
            except RbvError as exc:
                refusals.append(exc)
                raise

        self.edit(f"page of {person.hex[:8]}: {how}", answer)  # refused: nothing changed
        if changed:
            assert refusals, f"a {how} from a page out of date went through"
        else:
            assert not any(isinstance(e, ShownChanged) for e in refusals), (
                f"a {how} from a page that is still so was refused: {refusals}")
