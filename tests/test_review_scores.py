"""The scores of merge suggestions (issue 30): calibrated, ranked by what an answer is
worth, and learning from each answer; `rbv persons suggest` shows what the page shows.
On real faces through `rbv serve`, and the pure logic on small arrays."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.pair_odds import COHORT, PRIOR, PairOdds, _cohort
from rbv.cluster.suggestions import face_care, faces_put_right, suggest_merges
from rbv.config import Settings
from rbv.jobs.persons.evidence import Suggestion, load_evidence, merge_suggestions
from rbv.serve.app import ReviewServer
from rbv.store import open_database
from rbv.store.queries.review import face_prominence
from tests.conftest import run_cli
from tests.serve_client import Client, identity_of_persons

SFACE = ImpostorModel(0.10, 0.087, 0.02)


def _ranking(server: ReviewServer) -> list[Suggestion]:
    server.queue.warm().join()  # ranked in the background: wait for it
    ranking = server.queue.ranker.ranking
    assert ranking is not None
    if not server.queue._current(wait=False)[1]:  # stale: rank again
        server.queue.warm().join()
        ranking = server.queue.ranker.ranking
        assert ranking is not None
    return ranking.suggestions


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_a_no_lowers_the_scores_of_pairs_like_it_and_undo_forgets_it(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    server, client = served
    url = str(faces_settings.database_url)
    before = _ranking(server)
    # ranked as documented: probability × the faces a "yes" puts right, most first
    # (each face counted by how much a user cares about it, at most one: see
    # test_faces_small_behind_a_photos_subjects_count_for_less)
    worth = [s.worth for s in before]
    assert worth == sorted(worth, reverse=True)
    assert all(s.worth <= s.probability * float(faces_put_right(
        np.float64(s.keep.faces), np.float64(s.other.faces))) + 1e-9 for s in before)

    who = identity_of_persons(url, alone=False)
    told = next(s for s in before if who.get(str(s.keep.id)) and who.get(str(s.other.id))
                and who[str(s.keep.id)] != who[str(s.other.id)])
    done = client.post("dismiss", {"keep": str(told.keep.id), "other": str(told.other.id)})
    assert done.status == 200, done.text

    after = {(s.keep.id, s.other.id): s for s in _ranking(server)}
    pending = [(s, after[(s.keep.id, s.other.id)]) for s in before
               if (s.keep.id, s.other.id) in after]
    assert (told.keep.id, told.other.id) not in after
    assert len(pending) == len(before) - 1
    # The pair most like the one told apart now scores lower, and so do most pairs.
    like = min(pending, key=lambda ba: float(np.linalg.norm(
        np.subtract(ba[0].features, told.features))))
    assert like[1].probability < like[0].probability
    moved = [_logit(b.probability) - _logit(a.probability) for a, b in pending]
    assert sum(m < 0 for m in moved) > len(moved) / 2

    # `rbv persons suggest` shows the same queue with the same (learned) scores
    listed = json.loads(run_cli(cli, "-d", url, "persons", "suggest", "--json",
                                "--min-score", "0", "--limit", "10").stdout)["suggestions"]
    page = _ranking(server)[:10]
    assert [(s["keep"]["id"], s["merge"]["id"]) for s in listed] == [
        (str(s.keep.id), str(s.other.id)) for s in page]
    assert [s["probability"] for s in listed] == [round(s.probability, 4) for s in page]

    # Undone, the answer no longer counts: the scores are what they were.
    undone = client.post("undo", {"count": 1, "edit": done.json()["edit"]})
    assert undone.status == 200, undone.text
    again = {(s.keep.id, s.other.id): s.probability for s in _ranking(server)}
    assert again == {(s.keep.id, s.other.id): s.probability for s in before}


def test_the_pair_page_shows_the_learned_score(served: tuple[ReviewServer, Client]) -> None:
    server, client = served
    top = _ranking(server)[0]
    page = client.get("/suggestions").text
    shown = re.search(r"score ([0-9.]+)", page)
    assert shown is not None and float(shown[1]) == round(top.probability, 2)


def test_faces_small_behind_a_photos_subjects_count_for_less(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    with open_database(faces_settings).connect() as conn:
        evidence = load_evidence(conn, "scrfd_sface")
        ids, prominence = face_prominence(conn, evidence.pack.id)
        boxes = conn.execute("SELECT id, image_id, least(x2 - x1, y2 - y1) FROM "
                             "face_detections ORDER BY id").fetchall()
        ranked = merge_suggestions(conn, evidence, None, 0.0)
    largest: dict[int, float] = {}
    for _, image, short in boxes:
        largest[image] = max(largest.get(image, 0.0), short)
    assert ids.tolist() == [face for face, _, _ in boxes]
    assert prominence == pytest.approx([short / largest[image] for _, image, short in boxes],
                                       rel=1e-5)
    # the group photos have faces small behind their subjects
    small = set(ids[prominence < 0.5].tolist())
    assert small
    care = dict(zip(ids.tolist(), face_care(prominence).tolist(), strict=True))
    faces_of = {p.id: evidence.faces.ids[evidence.rows_of(i)].tolist()
                for i, p in enumerate(evidence.persons)}
    with_small = [s for s in ranked if small & {*faces_of[s.keep.id], *faces_of[s.other.id]}]
    assert with_small
    for s in ranked:  # worth: the probability times the faces put right, each as cared
        cared = [sum(care[f] for f in faces_of[p.id]) for p in (s.keep, s.other)]
        assert s.worth == pytest.approx(s.probability * float(faces_put_right(
            np.float64(cared[0]), np.float64(cared[1]))))
    assert all(s.worth < s.probability * float(faces_put_right(
        np.float64(s.keep.faces), np.float64(s.other.faces))) for s in with_small)


# --- the pure logic on small arrays ---------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_a_cohort_is_the_average_of_the_nearest_others_leaving_the_pair_out() -> None:
    rng = np.random.default_rng(5)
    person = rng.integers(0, 6, 80)
    value = rng.random(80)
    got = _cohort(person, value, fill=-1.0)
    for i in range(80):
        others = np.sort(value[(person == person[i]) & (np.arange(80) != i)])[::-1][:COHORT]
        assert math.isclose(got[i], others.mean() if len(others) else -1.0)


def test_answers_move_the_scores_towards_what_the_user_said() -> None:
    x = np.array([[-6.0, 1.0, 0.5], [-4.0, 0.5, 0.0], [-9.0, 2.0, 1.0]])
    assert PRIOR.learned([]) is PRIOR
    prior = PRIOR.probability(x)
    no = PRIOR.learned([[*row, 0.0] for row in x for _ in range(20)]).probability(x)
    yes = PRIOR.learned([[*row, 1.0] for row in x for _ in range(20)]).probability(x)
    assert (no < prior).all() and (yes > prior).all()
    # Answers that one feature separates perfectly stay finite (the prior holds them).
    separable = [[-20.0, 5.0, 5.0, 1.0]] * 50 + [[-1.0, -1.0, -1.0, 0.0]] * 500
    learned = PRIOR.learned(separable)
    assert np.isfinite([learned.intercept, *learned.weights]).all()
    assert np.isfinite(learned.probability(np.array([[-300.0, 40.0, 40.0]]))).all()


def test_a_large_persons_lost_half_comes_before_two_lone_faces_at_equal_odds() -> None:
    rng = np.random.default_rng(2)
    centres = _unit(rng.standard_normal((3, 64)))
    halves = _unit(np.repeat(centres[:1], 16, axis=0) + 0.1 * rng.standard_normal((16, 64)))
    lone = _unit(np.repeat(centres[1:2], 2, axis=0) + 0.1 * rng.standard_normal((2, 64)))
    other = _unit(np.repeat(centres[2:], 5, axis=0) + 0.1 * rng.standard_normal((5, 64)))
    x = np.concatenate([halves, lone, other])
    codes = np.repeat(np.arange(5), [8, 8, 1, 1, 5])  # 0+1 one person, 2+3 another
    images = np.arange(len(x))
    even = PairOdds(0.0, (0.0, 0.0, 0.0))  # every pair at even odds: worth decides
    ranked = suggest_merges(x, codes, images, SFACE, odds=even, k=4)
    assert {ranked[0].a, ranked[0].b} == {0, 1}
    assert all(m.probability == 0.5 for m in ranked)
    # With the shipped calibration both are likely, and the halves still come first.
    ranked = suggest_merges(x, codes, images, SFACE, k=4)
    order = [{m.a, m.b} for m in ranked]
    assert order.index({0, 1}) < order.index({2, 3})


def test_strangers_small_behind_the_subjects_of_photos_come_after_the_subjects() -> None:
    rng = np.random.default_rng(7)
    centres = _unit(rng.standard_normal((4, 64)))

    def person(c: int, n: int) -> np.ndarray:
        return _unit(np.repeat(centres[c:c + 1], n, axis=0) + 0.1 * rng.standard_normal((n, 64)))

    # persons 0+1: one person's two halves of 3 faces, each the subject of its photo;
    # persons 2+3: one stranger's two halves of 4 faces, small behind others' subjects
    x = np.concatenate([person(0, 3), person(0, 3), person(1, 4), person(1, 4),
                        person(2, 5), person(3, 5)])
    codes = np.repeat(np.arange(6), [3, 3, 4, 4, 5, 5])
    images = np.arange(len(x))
    prominence = np.r_[np.ones(6), np.full(8, 0.2), np.ones(10)]
    even = PairOdds(0.0, (0.0, 0.0, 0.0))
    plain = [{m.a, m.b} for m in suggest_merges(x, codes, images, SFACE, odds=even, k=4)]
    assert plain.index({2, 3}) < plain.index({0, 1})  # by faces alone: the larger first
    cared = suggest_merges(x, codes, images, SFACE, odds=even, k=4,
                           care=face_care(prominence))
    order = [{m.a, m.b} for m in cared]
    assert order.index({0, 1}) < order.index({2, 3})  # the subjects come first
    assert {2, 3} in order  # later, never hidden
    # a face counts by its area against its photo's largest face
    assert face_care(np.array([1.0, 0.8, 0.25])).tolist() == pytest.approx([1.0, 0.64,
                                                                            0.0625])
