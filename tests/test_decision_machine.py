"""Issue 28 #6: the user's decisions hold under random sequences of edits, automatic
runs, SQL resets and new photos (the machine: tests/support/decisions.py). A few
sequences here; scripts/decision_fuzz.py runs thousands."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from rbv.cluster.defaults import Method
from tests.pgserver import PasswordServer
from tests.support.decisions import Environment, machine_for, make_template

pytestmark = pytest.mark.slow  # random sequences of edits and cluster runs on real faces


@pytest.fixture(scope="session")
def decisions_env(pg_server: PasswordServer, sface_analyzer,  # type: ignore[no-untyped-def]
                  tmp_path_factory: pytest.TempPathFactory) -> Environment:
    data_dir = tmp_path_factory.mktemp("decisions")
    template = make_template(pg_server.url, sface_analyzer, data_dir)
    return Environment(pg_server.url, template, sface_analyzer, data_dir)


def test_decisions_hold_under_random_sequences(decisions_env: Environment) -> None:
    machine = machine_for(decisions_env)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=4, stateful_step_count=12, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck), database=None))


def test_a_named_person_keeps_its_face_beside_a_dismissed_suggestion(
        decisions_env: Environment) -> None:
    """Found by scripts/decision_fuzz.py (shrunk by hypothesis): after these steps the
    last ``cluster --full`` put a named person's only face in another person."""
    state = machine_for(decisions_env)()
    try:
        state.first_cluster()
        state.move(f=[507, 398], p=49)
        state.index_more()
        state.move(f=[0, 180, 674], p=0)
        state.cluster()
        state.merge(a=53, b=80)
        state.cluster()
        state.faces_link(a=346, b=774, same=True)
        state.faces_link(a=212, b=137, same=True)
        state.name(n="Di", p=6)
        state.name(n="Ada", p=62)
        state.cluster()
        state.cluster()
        state.suggestion(accept=False, i=50)
        state.decisions_hold()
        state.cluster_full()
        state.decisions_hold()
    finally:
        state.teardown()


def test_a_re_encoded_copy_keeps_its_decisions_through_prune_and_hidden_persons_stay(
        decisions_env: Environment) -> None:
    """Issue 54 items 8b, 8c and 6 as machine steps: a hand-placed face and a rejection
    on an editable photo, the photo brightened and indexed (the carry), re-encoded as
    PNG under another name with the original deleted, indexed and pruned; a person
    hidden, then full runs of other methods. Nothing is lost unsaid (check_said), and
    the hidden person's faces stay (check_automatic)."""
    state = machine_for(decisions_env)()
    try:
        state.first_cluster()
        copies = state.add_photos().values
        state.move(f=[-1], p=-1)  # the last face (a copy's) placed by hand in a new person
        state.not_this_person(p=0, f=0)
        state.edit_pixels(photo=copies[0], how="brighten")
        state.index_library()
        png = state.reencode(photo=copies[-1])
        state.reencode(photo=copies[0])
        state.index_library()
        state.prune()
        state.decisions_hold()
        state.hide(p=1, hidden=True)
        state.cluster_method(how=(Method.connected, 0.25))
        state.cluster_method(how=(Method.hdbscan, None))
        state.decisions_hold()
        assert png.exists()
    finally:
        state.teardown()
