"""How many clicks and faces looked at a person needs to make a library right in ``rbv
serve``'s review queue.

FOLDER is indexed (into a scratch data directory, kept: photos are indexed once) and
clustered with the shipped defaults; then a truthful simulated user answers the web
page's "Same person?" prompts through the page's own code (serve's SuggestionQueue:
the same ranking as ``rbv persons suggest``), from the labels, on the review page
(``/review``, the default: a grid or a page of pairs, whichever is worth more per
second while likely pairs are left, then grids) or on one kind of screen alone
(``--prompt``). In "which of these are X?" grids it ticks each person whose labelled
faces are mostly X's identity (one click each) and presses Done (one click). On pages
of "which of these pairs are one person?" (``--prompt pairs``) it ticks each pair whose
persons' labelled faces are mostly of one identity (one click each) and presses Done
(one click); a pair with a side that has no labelled face is left out and counted as its
probability (the ticks a truthful user is expected to make there; ``--unknown-click``: a
click each). In "same
person?" pairs (``--prompt pair``) it says yes when the two persons' labelled faces are
mostly of one identity, no when of two; in both it skips (one click) when a person has
no labelled face.
After each click, pairwise and BCubed F over the labelled faces (each labelled photo's
largest face) are measured. Where the page says nothing likely is left, the user goes on
to the unlikely pairs (one click; ``--stop-when-unlikely``: stops there).

Effort is counted as a person spends it: clicks, and the faces shown (every face image
on every screen: the grid's person's faces and one per candidate, both faces of each
pair on a page, both sides of a one-pair prompt), with a modelled time of 0.4 s a face
looked at + 1 s a click (``rbv.serve.screens``, the model the pages choose screens by).

Prints F, faces shown and minutes after 0, 25, 50, 100, 200, 400 clicks, the clicks,
faces and minutes needed to reach F 0.90 / 0.95 / 0.99 / 0.995, how reliable the
probabilities shown were (pairs shown at probability p vs how often they were one
person), and every change the page made that the user did not ask for (a merge of
anything but the persons answered one, a face moved by a "no").

    uv run python scripts/bench/review_effort.py ../shared/data/family
    uv run python scripts/bench/review_effort.py ../shared/data/faces \
        --labels ../shared/data/labels.csv
    uv run python scripts/bench/review_effort.py ../shared/data/lfw_many --clicks 100 \
        --json out.json
    uv run python scripts/bench/review_effort.py ../shared/data/family --prompt pairs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from rbv.cluster import pair_odds
from rbv.cluster.metrics import bcubed, pairwise
from rbv.cluster.pair_odds import PairOdds
from rbv.config import Settings
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.jobs.grouping.eval import faces_under, label_main_faces, read_labels
from rbv.jobs.library.analyzer import load_attribute_model, load_face_analyzer
from rbv.jobs.library.enrich import run_enrich
from rbv.jobs.library.index import run_index
from rbv.jobs.persons import evidence as evidence_module
from rbv.jobs.persons import person_details
from rbv.jobs.persons.evidence import Suggestion
from rbv.serve import ranking as ranking_module
from rbv.serve import screens
from rbv.serve.queue import Grid, PairsPage, SuggestionQueue
from rbv.store import Database, open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.server.migrations import apply_pending

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
AGE_MODEL = SHARED / "models" / "extra" / "faceres_age_gender.onnx"
CHECKPOINTS = (0, 25, 50, 100, 200, 400)
TARGETS = (0.90, 0.95, 0.99, 0.995)
T = TypeVar("T")
GO_ON = True  # past "nothing likely left", the user goes on (--stop-when-unlikely: not)
NOT_TICKED = 2.0  # above every probability: no candidate shown ticked, as the page

# Everything a review decides, cleared before each run: the run starts from the clustering.
RESET = """
UPDATE face_detections SET person_id = NULL, assigned_by = NULL;
DELETE FROM persons;
DELETE FROM must_links; DELETE FROM cannot_links; DELETE FROM person_rejections;
DELETE FROM person_edits;
"""


@dataclass
class Session:
    """What the simulated user has done and seen."""

    clicks: int = 0
    faces: int = 0  # face images on the screens shown so far
    dry: bool = False  # the queue ran dry (else the clicks allowed were spent)
    going_on: bool = False  # past "nothing likely left", on the unlikely pairs
    going_on_at: int | None = None  # clicks made when the user went on
    answers: Counter[str] = field(default_factory=Counter)
    curve: list[dict[str, float]] = field(default_factory=list)
    shown: list[tuple[float, bool]] = field(default_factory=list)  # (probability, same)
    shown_at: list[int] = field(default_factory=list)  # the clicks made before each was shown
    unasked: list[str] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # answer → next prompt, seconds
    # each prompt: clicks before, its person's faces (labelled), persons shown, ticked
    prompts: list[dict[str, object]] = field(default_factory=list)

    def start(self, person_of: dict[int, uuid.UUID | None], truth: dict[int, str]) -> None:
        """The curve's first point: the clustering, nothing shown."""
        self.curve.append({"clicks": 0, "faces_shown": 0, **scores(person_of, truth)})

    def click(self, person_of: dict[int, uuid.UUID | None] | None = None,
              truth: dict[int, str] | None = None) -> None:
        """One click, and F after it (as before it when ``person_of`` is not given)."""
        self.clicks += 1
        f = (scores(person_of, truth) if person_of is not None and truth is not None
             else {k: self.curve[-1][k] for k in ("pairwise_f", "bcubed_f")})
        self.curve.append({"clicks": self.clicks, "faces_shown": self.faces, **f})


def open_scratch(folder: Path, pack: str, data: Path | None = None,
                 attribute_model: Path | None = None) -> tuple[Database, Settings]:
    """The scratch database of FOLDER (one per folder in /tmp unless ``data``), its
    schema up to date."""
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
    data = data or Path("/tmp") / f"rbv-review-effort-{folder.name}-{key}"
    settings = Settings(data_dir=data, model_pack=pack, attribute_model=attribute_model)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    return db, settings


def prepare(db: Database, settings: Settings, pack_name: str, folder: Path) -> None:
    """Index FOLDER (a re-run finds it indexed), estimate ages where an attribute model is
    given and faces have none, and cluster it afresh with the defaults."""
    attributes = load_attribute_model(settings)
    run_index(db, settings, [folder], analyzer=load_face_analyzer(settings),
              attributes=attributes)
    with db.connect() as conn:
        conn.execute(RESET)
        if attributes is None:  # faces compared as the recognizer made them
            conn.execute("DELETE FROM face_attributes")
    if attributes is not None:
        run_enrich(db, pack_name, attributes=attributes)
    cluster_pack(db, pack_name, ClusterOptions(full=True))


def truth_of(db: Database, pack_name: str, folder: Path, labels_csv: Path | None
             ) -> dict[int, str]:
    """Face id → identity, for each labelled photo's main face."""
    with db.connect() as conn:
        pack = find_pack(conn, pack_name)
        faces = load_faces(conn, pack)
        paths = faces_with_paths(conn, pack)
    inside = faces_under(paths, folder)
    truth, _ = label_main_faces(faces, [p for p in paths if p.face_id in inside],
                                read_labels(folder, labels_csv))
    return {int(f): t for f, t in zip(faces.ids.tolist(), truth.tolist(), strict=True)
            if t is not None}


def persons_now(db: Database, pack_name: str) -> dict[int, uuid.UUID | None]:
    with db.connect() as conn:
        faces = load_faces(conn, find_pack(conn, pack_name))
    return dict(zip(faces.ids.tolist(), faces.person_ids, strict=True))


def scores(person_of: dict[int, uuid.UUID | None], truth: dict[int, str]) -> dict[str, float]:
    ids = sorted(truth)
    codes: dict[object, int] = {}
    # a face with no person is alone
    predicted = [codes.setdefault(person_of.get(f) or ("alone", f), len(codes)) for f in ids]
    names = {t: i for i, t in enumerate(sorted(set(truth.values())))}
    actual = [names[truth[f]] for f in ids]
    return {"pairwise_f": round(pairwise(predicted, actual).f1, 4),
            "bcubed_f": round(bcubed(predicted, actual).f1, 4)}


def identity(person: uuid.UUID, person_of: dict[int, uuid.UUID | None],
             truth: dict[int, str]) -> str | None:
    """What the user sees a person as: the identity most of its labelled faces have."""
    seen = Counter(truth[f] for f, p in person_of.items() if p == person and f in truth)
    return seen.most_common(1)[0][0] if seen else None


def changed(before: dict[int, uuid.UUID | None], after: dict[int, uuid.UUID | None]
            ) -> dict[int, tuple[uuid.UUID | None, uuid.UUID | None]]:
    return {f: (p, after.get(f)) for f, p in before.items() if after.get(f) != p}


def _next_prompt(session: Session, queue: SuggestionQueue,
                 ask: Callable[..., tuple[T | None, str]]) -> T | None:
    """The next prompt from the ranking made after the last answer (the user takes
    longer than a ranking), its wait timed; None (the queue ran dry) is noted. When
    the page says nothing likely is left, the user goes on to the unlikely pairs (one
    click) unless ``--stop-when-unlikely``."""
    queue.warm().join()
    started = time.perf_counter()
    prompt, _note = ask(unlikely=session.going_on)
    session.waits.append(time.perf_counter() - started)
    if prompt is None and not session.going_on and queue.left().unlikely and GO_ON:
        session.going_on = True
        session.going_on_at = session.clicks
        session.answers["go on"] += 1
        session.click()
        prompt, _note = ask(unlikely=True)
    session.dry = prompt is None
    return prompt


def review_grids(db: Database, pack_name: str, truth: dict[int, str], clicks: int,
                 *, mixed: bool = False, names: int = 0, ada: bool = False,
                 pre_tick: float = NOT_TICKED) -> Session:
    """Answer the page's "which of these are X?" grids truthfully (tick each person who
    is X: one click each; then Done: one click) until ``clicks`` or the queue runs dry.
    The user takes longer than a fresh ranking, so each grid comes from the ranking
    made after the last answer. ``mixed``: ask the grid's first pair alone ("same
    person?", one click) where that is worth more per expected click than the grid;
    ``names``: first name the ``names`` largest persons (one click each, one person per
    identity); ``ada``: as ``mixed``, only where one side is named and the other not
    ("is this Ada?"); ``pre_tick``: the grid shows the candidates this likely or more
    ticked (the page shows none so; one click for each whose answer differs)."""
    session = Session()
    queue = SuggestionQueue(db, pack_name)
    person_of = persons_now(db, pack_name)
    session.start(person_of, truth)
    if names:
        _name_largest(session, db, pack_name, truth, person_of, names)
    while session.clicks < clicks:
        grid = _next_prompt(session, queue, queue.next_grid)
        if grid is None:
            break
        shown = [c.person.id for c in grid.candidates]
        prompt = _grid_prompt(session, grid, person_of, truth)
        if mixed or ada:
            mine = [t for t in queue._waiting()[0]
                    if grid.keep.id in (t.keep.id, t.other.id)][:len(shown)]
            per_click = sum(t.worth for t in mine) / (1 + sum(t.probability for t in mine))
            if mine and mine[0].worth > per_click and (
                    not ada or bool(mine[0].keep.name) != bool(mine[0].other.name)):
                prompt["pair"] = True
                person_of = _answer_pair(session, queue, db, pack_name, truth, person_of,
                                         mine[0])
                continue
        person_of = _grid_screen(session, queue, db, pack_name, truth, person_of, grid,
                                 prompt, pre_tick)
    return session


def _grid_prompt(session: Session, grid: Grid, person_of: dict[int, uuid.UUID | None],
                 truth: dict[int, str]) -> dict[str, object]:
    """A grid as the JSON's ``prompts`` lists it (added to them)."""
    prompt: dict[str, object] = {
        "at": session.clicks, "faces": grid.keep.faces,
        "labelled": sum(p == grid.keep.id and f in truth for f, p in person_of.items()),
        "shown": len(grid.candidates), "top_p": round(grid.candidates[0].probability, 4),
        "screen": "grid", "unlikely": session.going_on,
        "faces_shown": len(grid.keep_faces) + len(grid.candidates),
        "person_faces_shown": len(grid.keep_faces)}
    session.prompts.append(prompt)
    return prompt


def _grid_screen(session: Session, queue: SuggestionQueue, db: Database, pack_name: str,
                 truth: dict[int, str], person_of: dict[int, uuid.UUID | None], grid: Grid,
                 prompt: dict[str, object], pre_tick: float = NOT_TICKED
                 ) -> dict[int, uuid.UUID | None]:
    """Answer one "which of these are X?" grid truthfully (tick each person who is X:
    one click each; then Done: one click; a skip when X has no labelled face); returns
    who each face belongs to after."""
    anchor = identity(grid.keep.id, person_of, truth)
    shown = [c.person.id for c in grid.candidates]
    session.faces += len(grid.keep_faces) + len(grid.candidates)
    if anchor is None:  # the user cannot tell from the labels: skipped, one click
        for other in shown:
            queue.skip(grid.keep.id, other)
        session.click()
        session.answers["skip"] += 1
        return person_of
    same = []
    for c in grid.candidates:
        theirs = identity(c.person.id, person_of, truth)
        if theirs is not None:
            session.shown.append((c.probability, theirs == anchor))
            session.shown_at.append(session.clicks)
        if theirs == anchor:
            same.append(c.person.id)
    prompt["ticked"] = len(same)
    prompt["ticked_at"] = [i for i, c in enumerate(grid.candidates) if c.person.id in same]
    prompt["ticked_p"] = [round(c.probability, 4) for c in grid.candidates
                          if c.person.id in same]
    changes = sum((c.probability >= pre_tick) != (c.person.id in same)
                  for c in grid.candidates)
    prompt["changed"] = changes
    queue.answer_grid(grid.keep.id, same, shown)
    after = persons_now(db, pack_name)
    # the ticked and the grid's person become one (in whichever of them is kept)
    _unasked_pairs(session, person_of, after, [(grid.keep.id, p) for p in same], "grid")
    person_of = after
    for _ in range(changes + 1):  # each tick (or untick of one shown ticked), then Done
        session.click(person_of, truth)
    session.answers["ticked"] += len(same)
    session.answers["grids"] += 1
    return person_of


def review_pair_pages(db: Database, pack_name: str, truth: dict[int, str], clicks: int,
                      *, unknown_click: bool = False) -> Session:
    """Answer the page's "which of these pairs are one person?" truthfully (tick each
    pair that is one person: one click each; then Done: one click) until ``clicks`` or
    the queue runs dry. A pair with a side that has no labelled face is skipped (its
    answer is unknown) and counted as its probability of being one person (the ticks a
    truthful user is expected to make there), or with ``unknown_click`` as a click each
    (the most it could cost). Each page comes from the ranking made after the last
    answer."""
    owed = 0.0  # expected ticks on pairs of unknown answer, not yet counted as clicks
    session = Session()
    queue = SuggestionQueue(db, pack_name)
    person_of = persons_now(db, pack_name)
    session.start(person_of, truth)
    while session.clicks < clicks:
        page = _next_prompt(session, queue, queue.next_pairs)
        if page is None:
            break
        person_of, owed = _pairs_screen(session, queue, db, pack_name, truth, person_of,
                                        page, owed, unknown_click)
    return session


def _pairs_screen(session: Session, queue: SuggestionQueue, db: Database, pack_name: str,
                  truth: dict[int, str], person_of: dict[int, uuid.UUID | None],
                  page: PairsPage, owed: float, unknown_click: bool
                  ) -> tuple[dict[int, uuid.UUID | None], float]:
    """Answer one page of "which of these pairs are one person?" truthfully; returns who
    each face belongs to after, and the expected ticks on pairs of unknown answer not
    yet counted as clicks (see :func:`review_pair_pages`)."""
    shown, same, unknown = [], [], 0
    session.faces += 2 * len(page.pairs)  # both faces of every pair on the page
    for s in page.pairs:
        keep, other = (identity(p.id, person_of, truth) for p in (s.keep, s.other))
        if keep is None or other is None:
            queue.skip(s.keep.id, s.other.id)
            unknown += 1
            owed += 1.0 if unknown_click else s.probability
            continue
        shown.append((s.keep.id, s.other.id))
        session.shown.append((s.probability, keep == other))
        session.shown_at.append(session.clicks)
        if keep == other:
            same.append((s.keep.id, s.other.id))
    session.prompts.append({"at": session.clicks, "shown": len(shown),
                            "ticked": len(same), "unknown": unknown,
                            "top_p": round(page.pairs[0].probability, 4),
                            "screen": "pairs", "unlikely": session.going_on,
                            "faces_shown": 2 * len(page.pairs)})
    if shown:
        queue.answer_pairs(shown, same)
        after = persons_now(db, pack_name)
        _unasked_pairs(session, person_of, after, same)
        person_of = after
    session.answers["unknown"] += unknown
    expected = int(owed)
    owed -= expected
    for _ in range(len(same) + expected + bool(shown)):  # each tick, then Done
        session.click(person_of, truth)
    session.answers["ticked"] += len(same)
    session.answers["pages"] += 1
    return person_of, owed


def review_best(db: Database, pack_name: str, truth: dict[int, str], clicks: int
                ) -> Session:
    """Answer the review page's screens (``/review``: the grid or the page of pairs,
    whichever is worth more per second while likely pairs are left, then grids; see
    ``SuggestionQueue.next_screen``), as :func:`review_grids` and
    :func:`review_pair_pages` answer them."""
    session = Session()
    queue = SuggestionQueue(db, pack_name)
    person_of = persons_now(db, pack_name)
    session.start(person_of, truth)
    owed = 0.0
    while session.clicks < clicks:
        screen = _next_prompt(session, queue, queue.next_screen)
        if screen is None:
            break
        if isinstance(screen, Grid):
            person_of = _grid_screen(session, queue, db, pack_name, truth, person_of, screen,
                                     _grid_prompt(session, screen, person_of, truth))
        else:
            person_of, owed = _pairs_screen(session, queue, db, pack_name, truth, person_of,
                                            screen, owed, False)
    return session


def _unasked_pairs(session: Session, before: dict[int, uuid.UUID | None],
                   after: dict[int, uuid.UUID | None],
                   same: list[tuple[uuid.UUID, uuid.UUID]], answer: str = "pairs") -> None:
    """Every face that moved other than into a person the ticked pairs joined it to."""
    joined: dict[uuid.UUID, set[uuid.UUID]] = {}
    for one, two in same:
        group = joined.get(one, {one}) | joined.get(two, {two})
        for p in group:
            joined[p] = group
    for face, (was, now) in changed(before, after).items():
        if was is None or now not in joined.get(was, set()):
            session.unasked.append(f"click {session.clicks} ({answer}): face {face} "
                                   f"{was} -> {now}")


def _name_largest(session: Session, db: Database, pack_name: str, truth: dict[int, str],
                  person_of: dict[int, uuid.UUID | None], names: int) -> None:
    """Name the ``names`` largest persons with a labelled face, one person per identity,
    as a user would (one click each: the name typed and Enter)."""
    sizes = Counter(p for p in person_of.values() if p is not None)
    named: set[str] = set()
    for person, _ in sizes.most_common():
        if len(named) >= names:
            break
        who = identity(person, person_of, truth)
        if who is None or who in named:
            continue
        person_details.name(db, person, who)
        named.add(who)
        session.faces += 1  # the person's page: its faces, looked at once
        session.click()
        session.answers["named"] += 1


def _unasked(session: Session, before: dict[int, uuid.UUID | None],
             after: dict[int, uuid.UUID | None], asked: set[int], keep: uuid.UUID,
             answer: str) -> None:
    """Every face that moved but was not in a person the user said is ``keep``."""
    for face, (was, now) in changed(before, after).items():
        if face not in asked or now != keep:
            session.unasked.append(f"click {session.clicks} ({answer}): face {face} "
                                   f"{was} -> {now}")


def review_pairs(db: Database, pack_name: str, truth: dict[int, str], clicks: int
                 ) -> Session:
    """Answer the page's "same person?" pairs truthfully until ``clicks`` or the queue
    runs dry."""
    session = Session()
    queue = SuggestionQueue(db, pack_name)
    person_of = persons_now(db, pack_name)
    session.start(person_of, truth)
    while session.clicks < clicks:
        pair = _next_prompt(session, queue, queue.next_or_waiting)
        if pair is None:
            break
        person_of = _answer_pair(session, queue, db, pack_name, truth, person_of,
                                 pair.suggestion)
    return session


def _answer_pair(session: Session, queue: SuggestionQueue, db: Database, pack_name: str,
                 truth: dict[int, str], person_of: dict[int, uuid.UUID | None],
                 s: Suggestion) -> dict[int, uuid.UUID | None]:
    """Answer one "same person?" pair truthfully (one click: yes, no, or skip when a
    side has no labelled face); returns who each face belongs to after."""
    keep, other = identity(s.keep.id, person_of, truth), identity(s.other.id, person_of,
                                                                  truth)
    session.faces += sum(min(p.faces, screens.SIDE_FACES) for p in (s.keep, s.other))
    if keep is None or other is None:
        queue.skip(s.keep.id, s.other.id)
        answer = "skip"
    else:
        session.shown.append((s.probability, keep == other))
        session.shown_at.append(session.clicks)
        if keep == other:
            queue.accept(s.keep.id, s.other.id)
            answer = "yes"
        else:
            queue.dismiss(s.keep.id, s.other.id)
            answer = "no"
    session.answers[answer] += 1
    after = persons_now(db, pack_name)
    asked = ({f for f, p in person_of.items() if p == s.other.id} if answer == "yes"
             else set())
    _unasked(session, person_of, after, asked, s.keep.id, answer)
    session.click(after, truth)
    return after


RELIABILITY_BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0001)


def reliability(shown: list[tuple[float, bool]]) -> list[dict[str, float]]:
    """Pairs shown at probability p against how often they were one person, by bins."""
    out = []
    for lo, hi in zip(RELIABILITY_BINS, RELIABILITY_BINS[1:], strict=False):
        inside = [same for p, same in shown if lo <= p < hi]
        if inside:
            mean_p = float(np.mean([p for p, _ in shown if lo <= p < hi]))
            out.append({"from": lo, "to": min(hi, 1.0), "pairs": len(inside),
                        "shown_p": round(mean_p, 3),
                        "same": round(sum(inside) / len(inside), 3)})
    return out


def calibration_error(shown: list[tuple[float, bool]], bins: int = 10) -> float | None:
    """Expected calibration error: over ten equal bins of the probability shown, the
    gap between the average probability and how often the pairs were one person,
    weighted by the pairs in each bin."""
    if not shown:
        return None
    p = np.array([q for q, _ in shown])
    same = np.array([s for _, s in shown], float)
    at = np.minimum((p * bins).astype(int), bins - 1)
    error = sum(abs(p[at == b].mean() - same[at == b].mean()) * (at == b).sum()
                for b in range(bins) if (at == b).any())
    return round(float(error / len(p)), 4)


BREAKDOWN_AT = 0.95
"""The pairwise F up to which ``faces_by_screen`` counts (the issue-64 target)."""


def faces_by_screen(session: Session) -> list[dict[str, object]]:
    """Where the faces shown went, up to the click pairwise F first reached
    ``BREAKDOWN_AT`` (all of the run where it never did): per phase (likely pairs, the
    unlikely ones after "go on"), screen kind and, for grids, how many of the grid's
    person's faces it showed; with the screens, the faces, the ticks and the clicks."""
    reached = next((p["clicks"] for p in session.curve if p["pairwise_f"] >= BREAKDOWN_AT),
                   None)
    rows: dict[tuple[str, str, str], Counter[str]] = {}
    for prompt in session.prompts:
        if "screen" not in prompt or (reached is not None and _count(prompt["at"]) >= reached):
            continue
        own = _count(prompt.get("person_faces_shown"))
        key = ("unlikely" if prompt["unlikely"] else "likely", str(prompt["screen"]),
               "" if prompt["screen"] == "pairs" else "1" if own == 1
               else f"{screens.SIDE_FACES}" if own >= screens.SIDE_FACES
               else f"2-{screens.SIDE_FACES - 1}")
        row = rows.setdefault(key, Counter())
        ticks = _count(prompt.get("ticked"))
        row["screens"] += 1
        row["faces"] += _count(prompt["faces_shown"])
        row["ticks"] += ticks
        row["clicks"] += ticks + 1
    return [{"phase": phase, "screen": screen, "person_faces": own, **row}
            for (phase, screen, own), row in sorted(rows.items())]


def _count(value: object) -> int:
    """A count a prompt holds (absent: 0)."""
    return value if isinstance(value, int) else 0


def ceiling(person_of: dict[int, uuid.UUID | None], truth: dict[int, str]
            ) -> dict[str, object]:
    """What the run ended with, and what no merge can put right: pairwise precision and
    recall; the persons holding labelled faces of several identities (the wrong pairs
    in them: a review of merges never parts them); and the pairwise F the end would have
    with each such person's faces of other identities than its most common apart."""
    ids = sorted(truth)
    mine: dict[uuid.UUID, Counter[str]] = {}
    for f in ids:
        if (person := person_of.get(f)) is not None:
            mine.setdefault(person, Counter())[truth[f]] += 1
    mixed = {p: c for p, c in mine.items() if len(c) > 1}
    most = {p: c.most_common(1)[0][0] for p, c in mixed.items()}
    wrong = sum((sum(c.values()) ** 2 - sum(n * n for n in c.values())) // 2
                for c in mixed.values())
    codes: dict[object, int] = {}
    names = {t: i for i, t in enumerate(sorted(set(truth.values())))}
    actual = [names[truth[f]] for f in ids]
    now = pairwise([codes.setdefault(person_of.get(f) or ("alone", f), len(codes))
                    for f in ids], actual)
    apart = [codes.setdefault(
        ("apart", f) if (p := person_of.get(f)) is not None and most.get(p, truth[f]) != truth[f]
        else p or ("alone", f), len(codes)) for f in ids]
    return {"precision": round(now.precision, 4), "recall": round(now.recall, 4),
            "mixed_persons": [dict(c) for c in mixed.values()], "wrong_pairs": wrong,
            "f_with_them_apart": round(pairwise(apart, actual).f1, 4)}


SECONDS_A_FACE = screens.SECONDS_A_FACE
SECONDS_A_CLICK = screens.SECONDS_A_CLICK
TIME_MODEL = (f"{SECONDS_A_FACE} s a face looked at + {SECONDS_A_CLICK} s a click "
              "(the page's load and the ranking not counted)")


def minutes(point: dict[str, float]) -> float:
    """The modelled minutes a person spent to reach a point of the curve."""
    return round((SECONDS_A_FACE * point["faces_shown"]
                  + SECONDS_A_CLICK * point["clicks"]) / 60.0, 1)


def summary(session: Session) -> dict[str, object]:
    curve = session.curve
    at = {c: next((p for p in reversed(curve) if p["clicks"] <= c), curve[-1])
          for c in CHECKPOINTS}
    reached = {f"{t:.2f}": next((p for p in curve if p["pairwise_f"] >= t), None)
               for t in TARGETS}
    clicks_to = {t: None if p is None else int(p["clicks"]) for t, p in reached.items()}
    faces_to = {t: None if p is None else int(p["faces_shown"]) for t, p in reached.items()}
    minutes_to = {t: None if p is None else minutes(p) for t, p in reached.items()}
    waits = sorted(session.waits[1:]) or [0.0]
    return {"clicks": session.clicks, "faces_shown": session.faces, "ran_dry": session.dry,
            "minutes": minutes(curve[-1]), "time_model": TIME_MODEL,
            "went_on_at_click": session.going_on_at,
            "answers": dict(session.answers),
            "at": {str(c): at[c] for c in CHECKPOINTS}, "clicks_to": clicks_to,
            "faces_to": faces_to, "minutes_to": minutes_to,
            "curve": curve, "reliability": reliability(session.shown),
            "calibration_error": calibration_error(session.shown),
            "shown": [[at, round(p, 4), same] for at, (p, same)
                      in zip(session.shown_at, session.shown, strict=True)],
            "unasked_changes": session.unasked, "prompts": session.prompts,
            "faces_by_screen": faces_by_screen(session),
            "next_prompt_p95_s": round(float(np.percentile(waits, 95)), 4)}


def report(name: str, faces: int, out: dict[str, object]) -> None:
    print(f"\n{name}: {faces:,} labelled faces; {out['clicks']} clicks "
          f"({', '.join(f'{k} {v}' for k, v in out['answers'].items())}), "  # type: ignore[attr-defined]
          f"{out['faces_shown']:,} faces shown, {out['minutes']} min modelled")
    print(f"modelled time: {out['time_model']}")
    print(f"{'clicks':>7} {'faces shown':>12} {'minutes':>8} {'pairwise F':>11} {'BCubed F':>9}")
    for c, p in out["at"].items():  # type: ignore[attr-defined]
        print(f"{c:>7} {p['faces_shown']:>12,} {minutes(p):>8.1f} {p['pairwise_f']:>11.3f} "
              f"{p['bcubed_f']:>9.3f}"
              + ("" if p["clicks"] == int(c) else f"  (queue ran dry at {p['clicks']})"
                 if out["ran_dry"] else f"  (stopped at {p['clicks']}: --clicks)"))
    for what in ("clicks", "faces", "minutes"):
        print(f"{what} to pairwise F " + ", ".join(
            f"{t}: {n if n is not None else 'not reached'}"
            for t, n in out[f"{what}_to"].items()))  # type: ignore[attr-defined]
    print("probabilities shown against how often the pairs were one person "
          f"(expected calibration error {out['calibration_error']}):")
    print(f"{'shown p':>12} {'pairs':>6} {'mean p':>7} {'same':>6}")
    for row in out["reliability"]:  # type: ignore[attr-defined]
        print(f"{row['from']:>5.2f}-{row['to']:<5.2f} {row['pairs']:>6} {row['shown_p']:>7.3f} "
              f"{row['same']:>6.3f}")
    unasked = out["unasked_changes"]
    print(f"changes the user did not ask for: {len(unasked)}")  # type: ignore[arg-type]
    for line in unasked[:10]:  # type: ignore[index]
        print(f"  {line}")
    if out["went_on_at_click"] is not None:
        print(f"nothing likely left at click {out['went_on_at_click']}: went on to the "
              "unlikely pairs")
    print(f"answer -> next prompt, p95: {out['next_prompt_p95_s']:.3f} s")
    print(f"faces shown by screen, up to pairwise F {BREAKDOWN_AT} (all where not reached):")
    print(f"{'phase':>9} {'screen':>6} {'own faces':>9} {'screens':>8} {'faces':>6} "
          f"{'ticks':>6} {'clicks':>6}")
    if not out["faces_by_screen"]:
        print("  none: reached before any screen")
    for row in out["faces_by_screen"]:  # type: ignore[attr-defined]
        print(f"{row['phase']:>9} {row['screen']:>6} {row['person_faces']:>9} "
              f"{row['screens']:>8} {row['faces']:>6,} {row['ticks']:>6} {row['clicks']:>6}")
    end = out.get("ceiling")
    if end:
        print(f"at the end: pairwise precision {end['precision']}, recall {end['recall']}; "  # type: ignore[index]
              f"{len(end['mixed_persons'])} persons hold several identities "  # type: ignore[index]
              f"({end['wrong_pairs']} wrong pairs, which no merge parts); with their "  # type: ignore[index]
              f"other identities' faces apart, pairwise F {end['f_with_them_apart']}")  # type: ignore[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--labels", type=Path, default=None,
                        help="labels.csv (path,identity); default: FOLDER/labels.csv")
    parser.add_argument("--clicks", type=int, default=400, help="clicks at most")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--prompt", choices=("review", "grid", "pairs", "pair", "mixed",
                                                  "ada"),
                        default="review",
                        help="answer the review page's screens (default: /review, a grid "
                        "or a page of pairs, whichever is worth more, then grids), its "
                        "grids alone, its pages of pairs or its pairs one at a time; "
                        "mixed: a grid's first pair alone where that is worth more per "
                        "click; ada: the same, only for an unnamed "
                        "person and a named one")
    parser.add_argument("--unknown-click", action="store_true",
                        help="pairs: count a pair with a side that has no labelled face as "
                        "a click (default: as its probability, the ticks expected there)")
    parser.add_argument("--page", type=int, default=None, metavar="N",
                        help="pairs: at most N pairs a page (default: the page's, "
                        "rbv.serve.screens.PAIRS_PAGE)")
    parser.add_argument("--stop-when-unlikely", action="store_true",
                        help="stop where the page says nothing likely is left (default: "
                        "go on to the unlikely pairs, one click)")
    parser.add_argument("--min-worth", type=float, default=None, metavar="W",
                        help="faces an answer is expected to put right below which a pair "
                        "is unlikely (default: the page's, rbv.serve.ranking.MIN_WORTH)")
    parser.add_argument("--names", type=int, default=0,
                        help="grids: first name the N largest persons (a click each)")
    parser.add_argument("--pre-tick", type=float, default=NOT_TICKED, metavar="P",
                        help="grids: count clicks as if the page showed the candidates "
                        "of probability P or more ticked (a click to untick each one "
                        "not the person; default: none shown ticked, as the page)")
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--data", type=Path, default=None,
                        help="scratch data directory (kept; default: one per FOLDER in /tmp)")
    parser.add_argument("--attribute-model", type=Path, default=AGE_MODEL,
                        help="the age model faces are estimated with (default: "
                             "../shared/models/extra/faceres_age_gender.onnx)")
    parser.add_argument("--no-ages", action="store_true",
                        help="no estimated ages: faces compared as the recognizer made them "
                             "(review before issue 64)")
    parser.add_argument("--prior", default=None,
                        help="INTERCEPT,W1,W2,W3: the calibration's prior instead of the "
                        "shipped one (scripts/bench/calibrate_suggestions.py prints each set's, "
                        "fitted without it)")
    parser.add_argument("--spread", default=None,
                        help="LEVEL,WEIGHT: the prior's spreads when answers refit it "
                        "instead of the shipped PRIOR_SPREAD")
    args = parser.parse_args()
    folder = args.folder.absolute()
    if not folder.is_dir():
        print(f"Error: {folder} is not a folder", file=sys.stderr)
        return 2
    if args.prior:
        # Replaces the shipped prior where the ranking reads it: to score a set with
        # weights fitted without it (scripts/bench/calibrate_suggestions.py prints them).
        intercept, *weights = (float(v) for v in args.prior.split(","))
        evidence_module.PRIOR = PairOdds(intercept, tuple(weights))
        evidence_module.AGED_PRIOR = evidence_module.PRIOR  # the one used by age too
    if args.spread:
        level, weight = (float(v) for v in args.spread.split(","))
        pair_odds.PRIOR_SPREAD = (level, weight)
    if args.page:
        screens.PAIRS_PAGE = args.page
    if args.min_worth is not None:
        ranking_module.MIN_WORTH = args.min_worth
    if args.stop_when_unlikely:
        global GO_ON
        GO_ON = False
    db, settings = open_scratch(folder, args.pack, args.data,
                                None if args.no_ages else args.attribute_model)
    started = time.perf_counter()
    pack_name = Path(args.pack).name
    prepare(db, settings, pack_name, folder)
    truth = truth_of(db, pack_name, folder, args.labels)
    session = (review_best(db, pack_name, truth, args.clicks) if args.prompt == "review"
               else review_pairs(db, pack_name, truth, args.clicks) if args.prompt == "pair"
               else review_pair_pages(db, pack_name, truth, args.clicks,
                                      unknown_click=args.unknown_click)
               if args.prompt == "pairs"
               else review_grids(db, pack_name, truth, args.clicks,
                                 mixed=args.prompt == "mixed", names=args.names,
                                 ada=args.prompt == "ada", pre_tick=args.pre_tick))
    out = summary(session)
    out["ceiling"] = ceiling(persons_now(db, pack_name), truth)
    report(folder.name, len(truth), out)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"folder": str(folder), **out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
