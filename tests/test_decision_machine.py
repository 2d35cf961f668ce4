"""Issue 28 #6: the user's decisions hold under random sequences of edits, automatic
runs, SQL resets and new photos (the machine: tests/support/decisions.py). A few
sequences here; scripts/tools/decision_fuzz.py runs thousands."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from rbv.cluster.defaults import Method
from tests.support.decisions import DecisionMachine, Environment

pytestmark = pytest.mark.slow  # random sequences of edits and cluster runs on real faces


@pytest.fixture(autouse=True)
def _environment(decisions_env: Environment) -> Iterator[None]:
    """The machine runs against this session's server and template."""
    DecisionMachine.env = decisions_env
    yield
    del DecisionMachine.env


TestDecisionsHoldUnderRandomSequences = DecisionMachine.TestCase
TestDecisionsHoldUnderRandomSequences.settings = settings(
    max_examples=4, stateful_step_count=12,
    deadline=None)  # a step is a real cluster run or index: seconds


def _nth(items: list[Any], i: int) -> Any:
    """The sequences below were found when rules drew an index into the current list."""
    return items[i % len(items)]


def test_a_named_person_keeps_its_face_beside_a_dismissed_suggestion() -> None:
    """Found by scripts/tools/decision_fuzz.py (shrunk by hypothesis): after these steps the
    last ``cluster --full`` put a named person's only face in another person."""
    state = DecisionMachine()
    try:
        state.first_cluster()
        state.move([_nth(state.all_faces(), 507), _nth(state.all_faces(), 398)],
                   _nth(state.live_persons(), 49))
        state.index_more()
        faces = state.all_faces()
        state.move([_nth(faces, 0), _nth(faces, 180), _nth(faces, 674)],
                   _nth(state.live_persons(), 0))
        state.cluster()
        persons = state.live_persons()
        state.merge(_nth(persons, 53), _nth(persons, 80))
        state.cluster()
        faces = state.all_faces()
        state.faces_link(_nth(faces, 346), _nth(faces, 774), same=True)
        state.faces_link(_nth(faces, 212), _nth(faces, 137), same=True)
        state.name(_nth(state.live_persons(), 6), "Di")
        state.name(_nth(state.live_persons(), 62), "Ada")
        state.cluster()
        state.cluster()
        state.answer(_nth(state.ranking()[1].suggestions, 50), accept=False)
        state.decisions_hold()
        state.cluster_full()
        state.decisions_hold()
    finally:
        state.teardown()


def test_a_re_encoded_copy_keeps_its_decisions_through_prune_and_hidden_persons_stay(
        ) -> None:
    """Issue 54 items 8b, 8c and 6 as machine steps: a hand-placed face and a rejection
    on an editable photo, the photo brightened and indexed (the carry), re-encoded as
    PNG under another name with the original deleted, indexed and pruned; a person
    hidden, then full runs of other methods. Nothing is lost unsaid (check_said), and
    the hidden person's faces stay (check_automatic)."""
    state = DecisionMachine()
    try:
        state.first_cluster()
        copies = state.add_photos().values
        state.index_library()
        state.move([state.all_faces()[-1]], None)  # a copy's face, by hand in a new person
        person = state.live_persons()[0]
        state.reject(person, [f for p, f in state.held_faces() if p == person][0])
        state.edit_pixels(photo=copies[0], how="brighten")
        state.index_library()
        png = state.reencode(photo=copies[-1])
        state.reencode(photo=copies[0])
        state.index_library()
        state.prune()
        state.decisions_hold()
        state.hide(_nth(state.live_persons(), 1), hidden=True)
        state.cluster_method(how=(Method.connected, 0.25))
        state.cluster_method(how=(Method.hdbscan, None))
        state.decisions_hold()
        assert png.exists()
    finally:
        state.teardown()


def test_imports_are_edits_and_a_merge_keeps_the_named_side_as_machine_steps() -> None:
    """Issue 51 items 6 and 7 as machine steps: import-xmp (naming the unnamed person
    that holds a name's faces) and import-folders are edits that undo restores exactly;
    two named persons merge only when told which name stays, the named one kept."""
    state = DecisionMachine()
    try:
        state.first_cluster()
        persons = state.live_persons()
        held = dict(state.held_faces())
        state.name(persons[0], "Ada")
        state.name(persons[1], "Ben")
        state.merge(persons[0], persons[1])  # refused: two names
        assert not state.undoable[2:], "a merge of two names was not refused"
        state.merge(persons[1], persons[0], told=True)  # --keep-name Ada: persons[0] kept
        assert persons[0] in state.live_persons() and persons[1] not in state.live_persons()
        candidates = state.template_faces_drawn()
        unnamed = [c for c in candidates[1:] if held.get(c[0]) is None][:2]
        steps = len(state.undoable)
        state.xmp_step([(candidates[0], "Cy"), *[(c, "Di") for c in unnamed]])
        assert len(state.undoable) == steps + 1, "import-xmp logged no edit"
        state.undo(1)
        state.import_folder("Ben_Affleck")
        assert len(state.undoable) == steps + 1, "import-folders logged no edit"
        state.undo(1)
        state.decisions_hold()
    finally:
        state.teardown()


def test_a_pages_answer_is_refused_after_a_terminal_edit_and_taken_when_still_so() -> None:
    """Issue 62 #3 as machine steps: a page looked at, the person named and a face of it
    placed by hand from the terminal; each of the page's answers is refused, changing
    nothing (the rule checks it), and the page looked at again is answered."""
    state = DecisionMachine()
    try:
        persons = list(state.first_cluster().values)
        person = persons[0]
        page = state.look(person)
        state.name(person, "Di")
        for how in ("name", "hide", "born", "cover"):
            state.stale_answer(page, how, "Ada")
        page = state.look(person)
        state.move([page.faces[0].id], person)
        assert (page.faces[0].id, uuid.UUID(person), "manual") in state.state()["faces"]
        for how in ("move", "not a face"):
            state.stale_answer(page, how, "Ada")
        state.stale_answer(state.look(person), "name", "Ada")  # fresh: taken
        assert state.state()["names"].count((uuid.UUID(person), "Ada")) == 1
        state.decisions_hold()
    finally:
        state.teardown()


def test_confirmed_faces_and_a_moved_box_hold_through_runs_and_undo() -> None:
    """Issue 64 part 3 as machine steps: faces confirmed (one, then a screen with a
    rejection, then all) stay through incremental and full runs and new photos; a box
    moved stays through them too, and undo (straight after, and after the runs) puts
    the old box and embedding back."""
    state = DecisionMachine()
    try:
        state.first_cluster()
        person, face = state.unconfirmed_held()[0]
        state.confirm_faces(person, [face])
        state.confirm_any(person, state.all_faces()[-1])  # another's face: refused
        held = [f for p, f in state.unconfirmed_held() if p == person]
        state.move_box(held[0] if held else face, "shift")
        state.undo(1)  # restores the box and embedding exactly (the rule checks)
        original = {f: b for f, *b in state.state()["boxes"]}[face]
        state.move_box(face, "grow")
        before = {f: b for f, *b in state.state()["boxes"]}
        state.cluster()
        state.index_more()
        state.cluster_full()
        state.confirm_faces(person, None)
        state.cluster_full()
        state.decisions_hold()
        boxes = {f: b for f, *b in state.state()["boxes"]}
        assert boxes[face] == before[face]
        # undo the confirmation, then the box moved before the runs: its old box back
        state.undo(1)
        with state.db.connect() as conn:
            edits = conn.execute("SELECT id, command FROM person_edits WHERE undone_by IS NULL "
                                 "AND undoes IS NULL ORDER BY id DESC").fetchall()
        assert edits[0][1] == "faces box", edits
        state.undo(1)
        template = state.state()
        assert before[face] != original
        assert {f: b for f, *b in template["boxes"]}[face] == original
        assert face not in {f for f, _how in template["drawn"]}
        state.decisions_hold()
    finally:
        state.teardown()
