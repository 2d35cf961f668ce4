"""A stateful model of the user's decisions, for hypothesis' RuleBasedStateMachine.

Random sequences of what a user does (name, a birthday, merge, move, move to a new person,
not-this-person, faces same/different, hide/unhide, hiding every unnamed person with at
most N faces, a cover face, split, a face drawn by hand (in a
person or not), a person's faces confirmed (one, all, or a confirm screen answered) and a
face's box moved (tests/support/decisions_confirm.py), undo of one or several edits,
the web page's answers to merge suggestions (yes, no; pages of pairs and grids, with
random ticks),
import-folders and import-xmp (each an edit: undone whole, its dry run the run), the
README's SQL resets, indexing more photos past the growth trigger,
``cluster``, ``cluster --full`` (and full runs of every method), and the dry run of
each; and, in tests/support/decisions_photos.py, pixel edits then ``index`` (the carry),
a photo re-encoded under another name then ``prune``) run against a real database of
real faces (cloned from a template per sequence), and after every step the database is
checked against what the user decided:

- every hand-placed face is in the person it was placed in (no automatic step moves it),
  a confirmed face too (confirming places it by hand);
- a face's box set by hand (drawn, or moved) is kept by every cluster run and index;
- every face drawn by hand is kept by every automatic run but an index that changed its
  photo's pixels or a prune (which draw it again, or say it is gone);
- no automatic face is in a person it was rejected from, beside a face it is linked
  ``different`` with, or beside another face of its photo;
- after a full run, faces linked ``same`` are together (unless one is placed by hand
  elsewhere);
- every name is on the person holding most of the faces it named before an automatic run
  (less the faces the user's links place elsewhere: linked ``same`` with a face rejected
  from it, or with faces placed by hand);
- a hidden person's faces stay where they are through every cluster run and method
  (hidden one by one, or every unnamed person with at most N faces at once);
- a person is shown by its chosen cover face while that is one of its faces, by its
  best detection otherwise; a cover stays with its person's faces through every cluster
  run (a person a run empties leaves it to the person that holds the face);
- a birthday stays on its person through every automatic run, and that person keeps
  most of its faces, as a named one does;
- no decision an ``index`` (the carry) or a ``prune`` deletes goes unsaid;
- a second ``cluster --full`` with nothing changed changes nothing;
- every dry run reports what the run then does;
- a merge keeps the named side, and merges two named persons only when told which
  name stays; a face a sidecar names is in the person of that name, or the import said
  why not;
- a refused edit changes nothing; undoing the last k edits (with nothing automatic in
  between) restores the state before them exactly;
- each person's cached embedding sum, brought up to date with its log of faces that
  joined and left (what an incremental run reads), is the exact sum of its faces.

Used by tests/test_decision_machine.py (a few sequences) and scripts/tools/decision_fuzz.py
(thousands).
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from numpy.typing import NDArray

from rbv.cluster.centroids import group_sums
from rbv.cluster.defaults import Method
from rbv.cluster.union_find import roots
from rbv.config import Settings
from rbv.errors import RbvError
from rbv.faces.types import FaceAnalyzer
from rbv.jobs.exchange.export_xmp import mirrored
from rbv.jobs.exchange.import_folders import import_folders
from rbv.jobs.exchange.import_xmp import import_xmp
from rbv.jobs.exchange.import_xmp_report import ImportXmpOptions
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.jobs.grouping.cluster_update import current_sums
from rbv.jobs.library.index import run_index
from rbv.jobs.persons import (
    edit_log,
    face_moves,
    merges,
    not_faces,
    person_details,
    person_edit,
    splits,
)
from rbv.jobs.persons.birthdays import set_born
from rbv.jobs.persons.drawn import add_face
from rbv.jobs.persons.faces import link
from rbv.serve.queue import Grid, SuggestionQueue
from rbv.store import Database, open_database
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_lookup import name_of, names_of, resolve_person
from rbv.store.queries.review_pages import PeopleFilter, people_page
from tests.support.decisions_confirm import ConfirmRules
from tests.support.decisions_pages import PageRules
from tests.support.decisions_photos import PhotoRules
from tests.support.sidecars import mwg_sidecar

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FACES = SHARED / "data" / "faces"
FAMILY = SHARED / "data" / "family" / "faces"
NAMES = ("Ada", "Ben", "Cy", "Di", "Eve")
PACK_NAME = "scrfd_sface"

_numbers = itertools.count(1)


def base_photos() -> list[Path]:
    """What the template database holds: a few identities of data/faces (many photos
    each) and of data/family (a parent and a child, young and adult)."""
    out: list[Path] = []
    for identity in ("Ben_Affleck", "Mindy_Kaling", "Jerry_Seinfeld"):
        out += sorted((FACES / identity).iterdir())[:6]
    for identity in sorted(os.listdir(FAMILY))[:6]:
        out += sorted((FAMILY / identity).iterdir())[:3]
    return out


def later_photos() -> list[Path]:
    """Photos indexed by the `index more` step: enough to pass the 1.25× growth trigger."""
    out: list[Path] = []
    for identity in ("Ben_Affleck", "Mindy_Kaling", "Jerry_Seinfeld"):
        out += sorted((FACES / identity).iterdir())[6:11]
    return out


@dataclass
class Environment:
    """What every sequence shares: the server, the indexed template, the analyzer."""

    url: Callable[[str], str]  # database name -> URL
    template: str
    analyzer: FaceAnalyzer
    data_dir: Path
    log: list[str] = field(default_factory=list)  # steps of the sequence running
    sequences: int = 0
    steps: int = 0


def make_template(url: Callable[[str], str], analyzer: FaceAnalyzer, data_dir: Path) -> str:
    """A database with base_photos() indexed, once per session."""
    from rbv.store.server.migrations import apply_pending

    name = f"rbv_decisions_template_{os.getpid()}"
    with psycopg.connect(url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = Settings(database_url=url(name), data_dir=data_dir, model_pack=PACK_NAME)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    run_index(db, settings, base_photos(), analyzer=analyzer)
    return name


State = dict[str, list[tuple[Any, ...]]]


def dump(conn: psycopg.Connection) -> State:
    """Everything a decision or an assignment lives in."""
    queries = {
        "faces": "SELECT id, person_id, assigned_by FROM face_detections ORDER BY id",
        "persons": "SELECT id, hidden, merged_into FROM persons ORDER BY id",
        "names": "SELECT person_id, name FROM person_names ORDER BY person_id",
        "rejections": "SELECT face_id, person_id FROM person_rejections ORDER BY 1, 2",
        "same": "SELECT face_a, face_b FROM must_links ORDER BY 1, 2",
        "different": "SELECT face_a, face_b FROM cannot_links ORDER BY 1, 2",
        "covers": "SELECT id, cover_face_id FROM persons WHERE cover_face_id IS NOT NULL "
                  "ORDER BY id",
        "not_faces": "SELECT face_id FROM not_faces ORDER BY 1",
        "born": "SELECT id, born FROM persons WHERE born IS NOT NULL ORDER BY id",
        # the faces' drawn column: faces drawn by hand (issue 51), and how
        "drawn": "SELECT id, drawn FROM face_detections WHERE drawn IS NOT NULL ORDER BY id",
        # each face's box and embedding (a box moved by hand, issue 64: undo restores both)
        "boxes": "SELECT id, x1, y1, x2, y2 FROM face_detections ORDER BY id",
        "embeddings": "SELECT face_id, md5(embedding::text) FROM face_embeddings ORDER BY 1",
    }
    return {k: [tuple(r) for r in conn.execute(q)] for k, q in queries.items()}


def comparable(report: Any) -> dict[str, Any]:
    """A cluster report less what differs between a dry run and the run by nature."""
    out = dict(report.as_dict())
    for key in ("dry_run", "seconds", "run_id", "notes"):
        out.pop(key, None)
    out["named"] = sorted((c["name"], c["before"], c["after"], c["gained"],
                           sum(c["moved_to"].values())) for c in out["named"])
    return out


class DecisionMachine(ConfirmRules, PhotoRules, PageRules, RuleBasedStateMachine):
    """One sequence of a user's actions on a fresh copy of the template."""

    env: Environment  # set on the class by whoever runs it (a fixture, the fuzz script)
    faces = Bundle("faces")  # face ids the sequence has seen made (some since deleted)
    persons = Bundle("persons")  # person ids likewise (some since merged or deleted)

    def __init__(self) -> None:
        super().__init__()
        self.dbname = f"rbv_decisions_{os.getpid()}_{next(_numbers)}"
        with psycopg.connect(self.env.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}" TEMPLATE "{self.env.template}"')
        self.settings = Settings(database_url=self.env.url(self.dbname),
                                 data_dir=self.env.data_dir, model_pack=PACK_NAME)
        self.db: Database = open_database(self.settings)
        # New persons' ids from a seeded generator: a sequence replays exactly (ties
        # between persons go by id), so hypothesis can shrink what it finds
        ids = random.Random(0)
        self._uuid4 = uuid.uuid4
        uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)
        self.undoable: list[State] = []  # the state before each edit since the last auto
        self.indexed_more = False
        self.handed: set[Any] = set()  # the faces and persons handed to the bundles
        self._ranking: tuple[int, SuggestionQueue, Any] | None = None
        self.env.log.clear()
        self.env.sequences += 1

    def teardown(self) -> None:
        uuid.uuid4 = self._uuid4
        with psycopg.connect(self.env.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')

    # -- reading -------------------------------------------------------------------
    def state(self) -> State:
        with self.db.connect() as conn:
            return dump(conn)

    def logged(self) -> int:
        with self.db.connect() as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM person_edits").fetchone()
        return int(row[0]) if row else 0

    def live_persons(self) -> list[str]:
        with self.db.connect() as conn:
            return [str(p) for (p,) in conn.execute(
                "SELECT id FROM persons WHERE merged_into IS NULL ORDER BY id")]

    def all_faces(self) -> list[int]:
        with self.db.connect() as conn:
            return [int(f) for (f,) in conn.execute("SELECT id FROM face_detections ORDER BY id")]

    def held_faces(self) -> list[tuple[str, int]]:
        """(person, face) for every face in a person."""
        with self.db.connect() as conn:
            return [(str(p), int(f)) for f, p in conn.execute(
                "SELECT id, person_id FROM face_detections WHERE person_id IS NOT NULL "
                "ORDER BY person_id, id")]

    def new_persons(self) -> MultipleResults[str]:
        """The persons that exist now and were not handed to the bundle before."""
        new = [p for p in self.live_persons() if p not in self.handed]
        self.handed.update(new)
        return multiple(*new)

    def new_faces(self) -> MultipleResults[int]:
        new = [f for f in self.all_faces() if f not in self.handed]
        self.handed.update(new)
        return multiple(*new)

    def ranking(self) -> tuple[SuggestionQueue, Any]:
        """The merge suggestions as the web page has them now (kept for this step: the
        preconditions and the rule that answers read the same ranking)."""
        if self._ranking is None or self._ranking[0] != self.env.steps:
            queue = SuggestionQueue(self.db, PACK_NAME, min_score=0.01)
            ranking, _fresh = queue._current(wait=True)
            self._ranking = (self.env.steps, queue, ranking)
        return self._ranking[1], self._ranking[2]

    def suggested(self) -> bool:
        ranking = self.ranking()[1]
        return bool(ranking and ranking.suggestions)

    # -- edits ---------------------------------------------------------------------
    def edit(self, what: str, action: Callable[[], Any]) -> None:
        """Run one logged edit: refused, it changes nothing; done, undo can revert it."""
        self.env.log.append(what)
        self.env.steps += 1
        before, logged = self.state(), self.logged()
        try:
            action()
        except RbvError:
            assert self.state() == before, f"a refused edit changed something: {what}"
            return
        if self.logged() != logged:  # undo reverts logged edits, whatever they changed
            self.undoable.append(before)

    def automatic(self, what: str) -> None:
        self.env.log.append(what)
        self.env.steps += 1
        self.undoable.clear()

    @initialize(target=faces)
    def template_faces(self) -> MultipleResults[int]:
        return self.new_faces()

    @initialize(target=persons)
    def first_cluster(self) -> MultipleResults[str]:
        self.cluster_run(full=True)
        return self.new_persons()

    @rule(person=persons, n=st.sampled_from(NAMES))
    def name(self, person: str, n: str) -> None:
        self.edit(f"name {person[:8]} {n}",
                  lambda: person_details.name(self.db, uuid.UUID(person), n))

    @rule(into=persons, source=persons, told=st.booleans(), data=st.data())
    def merge(self, into: str, source: str, told: bool = False,
              data: st.DataObject | None = None) -> None:
        """Merge, as `rbv persons merge INTO SOURCE` (``told``: with --keep-name, one of
        their names). The named side is kept, whichever it is; two names only when
        told which stays (issue 51)."""
        with self.db.connect() as conn:
            try:
                sides = [resolve_person(conn, into), resolve_person(conn, source)]
            except RbvError:
                sides = []
            names = names_of(conn, sides)
        keep_name = None
        if told and names:
            keep_name = (data.draw(st.sampled_from(sorted(names.values())), label="keep name")
                         if data is not None else sorted(names.values())[0])
        done: list[person_edit.Edited] = []
        self.edit(f"merge {into[:8]} {source[:8]}"
                  + (f" --keep-name {keep_name}" if keep_name else ""),
                  lambda: done.append(merges.merge(self.db, uuid.UUID(into), [uuid.UUID(source)],
                                                   keep_name=keep_name)))
        distinct = {n.strip().replace("_", " ").casefold() for n in names.values()}
        if not done:
            return
        kept = done[0].person
        assert len(distinct) < 2 or keep_name is not None, \
            f"persons named {sorted(names.values())} merged without being told which name stays"
        if names:
            assert kept in names, f"the merge kept {kept}, which had no name, not {names}"
            want = keep_name or next(iter(names.values()))
            with self.db.connect() as conn:
                assert (name_of(conn, kept) or "").casefold() == want.casefold(), \
                    f"the merge's person is not named {want!r}"
        else:
            assert kept == sides[0], "with no name, the merge keeps its target"

    @rule(target=persons, chosen=st.lists(faces, min_size=1, max_size=3),
          person=st.none() | persons)
    def move(self, chosen: list[int], person: str | None) -> MultipleResults[str]:
        """``person`` None: to a new person."""
        chosen = sorted(set(chosen))
        self.edit(f"move {chosen} --to {person and person[:8]}",
                  lambda: face_moves.move(self.db, chosen, _id(person), PACK_NAME))
        return self.new_persons()

    @precondition(lambda self: self.held_faces())
    @rule(data=st.data())
    def not_this_person(self, data: st.DataObject) -> None:
        person, face = data.draw(st.sampled_from(self.held_faces()), label="person, face")
        self.reject(person, face)

    def reject(self, person: str, face: int) -> None:
        self.edit(f"not-this-person {person[:8]} {face}",
                  lambda: face_moves.reject(self.db, uuid.UUID(person), [face]))

    @rule(a=faces, b=faces, same=st.booleans())
    def faces_link(self, a: int, b: int, same: bool) -> None:
        self.edit(f"faces {'same' if same else 'different'} {a} {b}",
                  lambda: link(self.db, [a, b], same=same))

    @rule(person=persons, hidden=st.booleans())
    def hide(self, person: str, hidden: bool) -> None:
        self.edit(f"{'hide' if hidden else 'unhide'} {person[:8]}",
                  lambda: person_details.hide(self.db, [uuid.UUID(person)], hidden))

    @rule(target=persons, person=persons)
    def split(self, person: str) -> MultipleResults[str]:
        self.edit(f"split {person[:8]}", lambda: splits.split(self.db, uuid.UUID(person), 0.6))
        return self.new_persons()

    @precondition(lambda self: self.suggested())
    @rule(data=st.data(), accept=st.booleans())
    def suggestion(self, data: st.DataObject, accept: bool) -> None:
        """Answer a merge suggestion as the web page does (yes: merge; no: different)."""
        self.answer(data.draw(st.sampled_from(self.ranking()[1].suggestions)), accept)

    def answer(self, s: Any, accept: bool) -> None:
        queue = self.ranking()[0]
        answer = queue.accept if accept else queue.dismiss
        self.edit(f"suggestion {s.keep.id.hex[:8]} {s.other.id.hex[:8]} "
                  f"{'yes' if accept else 'no'}", lambda: answer(s.keep.id, s.other.id))

    @precondition(lambda self: self.suggested())
    @rule(data=st.data(), ticks=st.lists(st.booleans(), min_size=1, max_size=6))
    def pairs_page(self, data: st.DataObject, ticks: list[bool]) -> None:
        """Answer a page of "which of these pairs are one person?" as the web page does:
        the pairs ticked join their persons, the others are marked different (ticks
        that contradict each other are refused)."""
        queue, ranking = self.ranking()
        start = data.draw(st.integers(0, len(ranking.suggestions) - 1), label="first pair")
        shown = [(s.keep.id, s.other.id) for s in ranking.suggestions[start:][:len(ticks)]]
        same = [pair for pair, tick in zip(shown, ticks, strict=False) if tick]
        self.edit("pairs " + " ".join(f"{a.hex[:8]}+{b.hex[:8]}{'✓' if pair in same else ''}"
                                      for pair in shown for a, b in [pair]),
                  lambda: queue.answer_pairs(shown, same))

    @precondition(lambda self: self.suggested())
    @rule(data=st.data(), ticks=st.lists(st.booleans(), min_size=1, max_size=6))
    def grid(self, data: st.DataObject, ticks: list[bool]) -> None:
        """Answer "which of these are X?" as the web page does (X either side of a
        suggestion: a grid may be of the smaller person): X and the persons ticked are
        merged into the named one, else the largest; the others marked different."""
        queue, ranking = self.ranking()
        s = data.draw(st.sampled_from(ranking.suggestions), label="suggestion")
        keep = s.other.id if data.draw(st.booleans(), label="of the other") else s.keep.id
        shown = [t.other.id if t.keep.id == keep else t.keep.id
                 for t in ranking.pairs.of(keep.int)][:len(ticks)]
        same = [p for p, tick in zip(shown, ticks, strict=False) if tick]
        self.edit(f"grid {keep.hex[:8]}: " + " ".join(
            f"{p.hex[:8]}{'✓' if p in same else ''}" for p in shown),
            lambda: queue.answer_grid(keep, same, shown))

    @precondition(lambda self: self.suggested())
    @rule(data=st.data(), kind=st.sampled_from(["review", "grid", "pairs"]),
          unlikely=st.booleans())
    def screen(self, data: st.DataObject, kind: str, unlikely: bool) -> None:
        """Answer the screen a review page shows next (what :mod:`rbv.serve.screens`
        chose: the likely alone, or the unlikely too; ``/review``: a grid or a page of
        pairs), each shown one ticked or not."""
        queue = self.ranking()[0]
        shown_next = (queue.next_screen(unlikely=unlikely)[0] if kind == "review"
                      else queue.next_grid(unlikely=unlikely)[0] if kind == "grid"
                      else queue.next_pairs(unlikely=unlikely)[0])
        if shown_next is None:
            return
        if isinstance(shown_next, Grid):
            grid = shown_next
            shown = [c.person.id for c in grid.candidates]
            same = [p for p in shown if data.draw(st.booleans(), label=f"tick {p.hex[:8]}")]
            self.edit(f"grid screen {grid.keep.id.hex[:8]}: " + " ".join(
                f"{p.hex[:8]}{'✓' if p in same else ''}" for p in shown),
                lambda: queue.answer_grid(grid.keep.id, same, shown))
            return
        pairs = [(t.keep.id, t.other.id) for t in shown_next.pairs]
        ticked = [pair for pair in pairs if data.draw(st.booleans(), label="tick")]
        self.edit("pairs screen " + " ".join(
            f"{a.hex[:8]}+{b.hex[:8]}{'✓' if (a, b) in ticked else ''}" for a, b in pairs),
            lambda: queue.answer_pairs(pairs, ticked))

    @rule(k=st.integers(1, 3))
    def undo(self, k: int) -> None:
        self.env.log.append(f"undo {k}")
        self.env.steps += 1
        clean = len(self.undoable) >= k
        expected = self.undoable[-k] if clean else None
        before = self.state()
        try:
            edit_log.undo(self.db, k)
        except RbvError:
            assert not clean, "undo refused although only edits happened since"
            assert self.state() == before, "a refused undo changed something"
            return
        if expected is not None:
            now = self.state()
            assert now == expected, f"undo {k} did not restore the state: " + "; ".join(
                f"{t}: expected {sorted(set(expected[t]) - set(now[t]))[:5]}, "
                f"found {sorted(set(now[t]) - set(expected[t]))[:5]}"
                for t in now if now[t] != expected[t]) + f" (steps: {self.env.log})"
            del self.undoable[-k:]
        else:
            self.undoable.clear()

    # -- issue 51: hiding strangers in bulk, a cover face ------------------------------
    @rule(n=st.integers(1, 6))
    def hide_bulk(self, n: int) -> None:
        """`rbv persons hide --unnamed --max-faces N`: one edit (one undo)."""
        self.edit(f"hide --unnamed --max-faces {n}",
                  lambda: person_details.hide_unnamed(self.db, n, PACK_NAME))

    @precondition(lambda self: self.held_faces())
    @rule(data=st.data(), person=persons, face=faces, how=st.sampled_from(
        ["its own face", "any face", "auto"]))
    def cover(self, data: st.DataObject, person: str, face: int, how: str) -> None:
        """`rbv persons cover P F`: a face of the person (drawn from those held), any
        face of the sequence (refused unless it is the person's), or `--auto`."""
        if how == "its own face":
            person, face = data.draw(st.sampled_from(self.held_faces()), label="person, face")
        chosen = None if how == "auto" else face
        self.edit(f"cover {person[:8]} {chosen if chosen is not None else '--auto'}",
                  lambda: person_details.cover(self.db, uuid.UUID(person), chosen))

    # -- issue 51: not a face --------------------------------------------------------
    def marked(self) -> list[int]:
        with self.db.connect() as conn:
            return [int(f) for (f,) in conn.execute(
                "SELECT face_id FROM not_faces ORDER BY face_id")]

    @rule(face=faces)
    def not_a_face(self, face: int) -> None:
        """A random face (perhaps deleted since: refused, nothing changed) is no face."""
        self.edit(f"not-a-face {face}", lambda: not_faces.not_a_face(self.db, [face]))

    @precondition(lambda self: self.marked())
    @rule(data=st.data())
    def is_a_face(self, data: st.DataObject) -> None:
        face = data.draw(st.sampled_from(self.marked()), label="marked face")
        self.edit(f"is-a-face {face}", lambda: not_faces.is_a_face(self.db, [face]))

    # -- issue 51: birthdays --
    @rule(person=persons,
          day=st.none() | st.dates(date(1950, 1, 1), date.today() + timedelta(3)))
    def born(self, person: str, day: date | None) -> None:
        """A birthday on a person: a random day (now and then one in the future, refused),
        or cleared (None)."""
        self.edit(f"born {person[:8]} {day}", lambda: set_born(self.db, uuid.UUID(person), day))

    # -- issue 51: a face drawn by hand --------------------------------------------
    def photos_scanned(self) -> list[tuple[int, int, int, list[tuple[float, ...]]]]:
        """(image, width, height, its faces' boxes) of each photo the pack scanned."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT i.id, i.width, i.height, coalesce(array_agg(ARRAY[f.x1, f.y1, f.x2, "
                "f.y2]) FILTER (WHERE f.id IS NOT NULL), '{}') FROM images i "
                "JOIN face_scans s ON s.image_id = i.id AND s.status = 'done' "
                "LEFT JOIN face_detections f ON f.image_id = i.id "
                "GROUP BY i.id ORDER BY i.id").fetchall()
        return [(int(i), int(w), int(h), [tuple(map(float, b)) for b in boxes])
                for i, w, h, boxes in rows]

    @rule(target=faces, data=st.data(), where=st.sampled_from(["shifted", "corner"]),
          person=st.none() | persons)
    def add_face(self, data: st.DataObject, where: str,
                 person: str | None) -> MultipleResults[int]:
        """A box drawn on one of the photos: a face's box shifted by 40 % of its width
        (not mostly that face: a face the detector placed badly), or a corner of the
        photo with no face; in a person by hand, or left to the next cluster."""
        image, width, height, boxes = data.draw(st.sampled_from(self.photos_scanned()),
                                                label="photo")
        if where == "shifted" and boxes:
            x1, y1, x2, y2 = data.draw(st.sampled_from(boxes), label="face")
            shift = 0.4 * (x2 - x1) * data.draw(st.sampled_from([-1, 1]), label="side")
            x = min(max(0, round(x1 + shift)), width - 16)
            box = (x, max(0, round(y1)), min(round(x2 - x1), width - x),
                   min(round(y2 - y1), height - max(0, round(y1))))
        else:
            side = max(16, min(width, height) // 6)
            box = (data.draw(st.sampled_from([0, width - side]), label="left"),
                   data.draw(st.sampled_from([0, height - side]), label="top"), side, side)
        return self.draw_face(image, box, person)

    def draw_face(self, image: int, box: tuple[int, int, int, int],
                  person: str | None) -> MultipleResults[int]:
        self.edit(f"faces add image {image} --box {box} --person {person and person[:8]}",
                  lambda: add_face(self.db, self.settings, image_id=image, box=box,
                                   person=None if person is None else uuid.UUID(person),
                                   analyzer=self.env.analyzer))
        return self.new_faces()

    # -- issue 51: imports are edits, a merge keeps the named side --
    @rule(target=persons,
          identity=st.sampled_from(["Ben_Affleck", "Mindy_Kaling", "Jerry_Seinfeld"]))
    def import_folder(self, identity: str) -> MultipleResults[str]:
        """`rbv import-folders FOLDER`: an edit (undo takes it back whole), its dry run
        the run, no hand-placed face moved."""
        before = self.state()

        def run() -> None:
            preview = import_folders(self.db, PACK_NAME, [FACES / identity], dry_run=True)
            assert self.state() == before, "import-folders --dry-run wrote something"
            done = import_folders(self.db, PACK_NAME, [FACES / identity])
            said = [(i.name, i.assigned, i.kept, i.created) for i in preview.identities]
            assert said == [(i.name, i.assigned, i.kept, i.created)
                            for i in done.identities], "import-folders --dry-run is not the run"
            assert [(k.face_id, k.reason) for k in preview.skipped] == \
                [(k.face_id, k.reason) for k in done.skipped]

        self.edit(f"import-folders {identity}", run)
        self.check_hand_placed(before, self.state())
        self.check_births(before, self.state())
        return self.new_persons()

    @rule(target=persons, data=st.data())
    def import_xmp(self, data: st.DataObject) -> MultipleResults[str]:
        """Sidecars (mirrored, as `export-xmp --out` writes them) naming a few faces of
        the template's photos, as a person draws regions (a little larger than the
        detector's box), then `rbv import-xmp --from DIR`: an edit, its dry run the run,
        no hand-placed face moved, each face named landed in the person of its name or
        said why not."""
        candidates = self.template_faces_drawn()
        chosen = data.draw(st.lists(st.tuples(st.sampled_from(candidates),
                                              st.sampled_from(NAMES)),
                                    min_size=1, max_size=5, unique_by=lambda t: t[0][0]),
                           label="faces named")
        return self.xmp_step(chosen)

    def xmp_step(self, chosen: list[tuple[tuple[int, str, tuple[float, ...]], str]]
                 ) -> MultipleResults[str]:
        """Sidecars naming the ``chosen`` faces ((face, path, area), name), imported."""
        mirror = self.env.data_dir / f"xmp-{self.dbname}-{self.env.steps}"
        by_photo: dict[str, list[tuple[str, tuple[float, ...]]]] = defaultdict(list)
        for (_face, path, area), name in chosen:
            by_photo[path].append((name, area))
        for path, regions in by_photo.items():
            sidecar = mirrored(path, [], mirror)
            sidecar = sidecar.with_name(sidecar.name + ".xmp")
            sidecar.parent.mkdir(parents=True, exist_ok=True)
            sidecar.write_bytes(mwg_regions(regions))
        before = self.state()
        options = ImportXmpOptions(sidecars_from=mirror)

        def run() -> None:
            preview = import_xmp(self.db, PACK_NAME, replace(options, dry_run=True))
            assert self.state() == before, "import-xmp --dry-run wrote something"
            done = import_xmp(self.db, PACK_NAME, options)
            said, did = preview.as_dict(), done.as_dict()
            for d in (said, did):
                d.pop("dry_run"), d.pop("edit_id")
            assert said == did, "import-xmp --dry-run is not the run"
            refused = {c.face for c in done.conflicts}
            with self.db.connect() as conn:
                for (face, _path, _area), name in chosen:
                    person = conn.execute(
                        "SELECT n.name FROM face_detections f LEFT JOIN person_names n "
                        "ON n.person_id = f.person_id WHERE f.id = %s", (face,)).fetchone()
                    assert face in refused or (person and person[0] == name), \
                        f"face {face} named {name!r} in a sidecar is in {person}, unsaid"

        self.edit("import-xmp " + " ".join(f"{f[0]}={n}" for f, n in chosen), run)
        self.check_hand_placed(before, self.state())
        return self.new_persons()

    def template_faces_drawn(self) -> list[tuple[int, str, tuple[float, ...]]]:
        """(face, a path of its photo, its normalised MWG area as a person draws it: 20 %
        larger than the detector's box) of every face of the template's photos."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (f.id) f.id, p.path, f.x1, f.y1, f.x2, f.y2, i.width, "
                "i.height FROM face_detections f JOIN images i ON i.id = f.image_id "
                "JOIN image_paths p ON p.image_id = f.image_id WHERE p.path = ANY(%s) "
                "ORDER BY f.id, p.path", ([str(p) for p in base_photos()],)).fetchall()
        return [(int(f), str(path), ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h,
                                     (x2 - x1) / w * 1.2, (y2 - y1) / h * 1.2))
                for f, path, x1, y1, x2, y2, w, h in rows]

    # -- automatic runs and what users do outside rbv -------------------------------
    def cluster_run(self, *, full: bool, method: Method | None = None,
                    threshold: float | None = None) -> None:
        how = f" --method {method} --threshold {threshold}" if method else ""
        self.automatic(f"cluster{' --full' if full else ''}{how}")
        before = self.state()
        options = ClusterOptions(full=full, method=method, threshold=threshold)
        preview = cluster_pack(self.db, PACK_NAME, replace(options, dry_run=True))
        assert self.state() == before, "a dry run wrote something"
        report = cluster_pack(self.db, PACK_NAME, options)
        assert comparable(preview) == comparable(report), "the dry run is not the run"
        self.check_automatic(before, self.state(), full=report.full)
        if report.full:
            settled = self.state()
            again = cluster_pack(self.db, PACK_NAME, replace(options, full=True))
            assert self.state() == settled, "a second cluster --full changed something"
            assert again.reassigned == 0

    @rule(target=persons)
    def cluster(self) -> MultipleResults[str]:
        self.cluster_run(full=False)
        return self.new_persons()

    @rule(target=persons)
    def cluster_full(self) -> MultipleResults[str]:
        self.cluster_run(full=True)
        return self.new_persons()

    @rule(which=st.sampled_from(["full", "first line"]))
    def sql_reset(self, which: str) -> None:
        """The README's resets: every person deleted, or every face taken out of its."""
        self.automatic(f"SQL reset: {which}")
        with psycopg.connect(self.env.url(self.dbname)) as conn:
            conn.execute("UPDATE face_detections SET person_id = NULL")
            if which == "full":
                conn.execute("DELETE FROM persons")

    @rule(person=persons)
    def sql_reset_person(self, person: str) -> None:
        """The README's reset of one person."""
        self.automatic(f"SQL reset: one person {person[:8]}")
        with psycopg.connect(self.env.url(self.dbname)) as conn:
            conn.execute("UPDATE face_detections SET person_id = NULL "
                         "WHERE person_id = %s", (person,))
            conn.execute("DELETE FROM persons WHERE id = %s", (person,))

    @precondition(lambda self: not self.indexed_more)
    @rule(target=faces)
    def index_more(self) -> MultipleResults[int]:
        self.automatic("index more photos")
        self.indexed_more = True
        before = self.state()
        run_index(self.db, self.settings, later_photos(), analyzer=self.env.analyzer)
        self.check_hand_placed(before, self.state())
        return self.new_faces()

    # -- what must hold ---------------------------------------------------------------
    def check_hand_placed(self, before: State, after: State) -> None:
        placed = {f: p for f, p, by in before["faces"] if by == "manual" and p is not None}
        now = {f: p for f, p, _by in after["faces"]}
        moved = {f: (p, now.get(f)) for f, p in placed.items() if f in now and now[f] != p}
        assert not moved, f"hand-placed faces moved: {moved}"
        # a face drawn by hand is kept by every automatic run (as it was drawn)
        lost = set(before["drawn"]) - set(after["drawn"])
        assert not lost, f"faces drawn by hand gone: {sorted(lost)}"
        # and keeps the box the user set (drawn, or a box moved: issue 64)
        boxes = {f: b for f, *b in after["boxes"]}
        drawn = {f for f, _how in before["drawn"]}
        changed = {f: (b, boxes[f]) for f, *b in before["boxes"]
                   if f in drawn and f in boxes and boxes[f] != b}
        assert not changed, f"boxes set by hand changed: {changed}"

    def check_births(self, before: State, after: State) -> None:
        """A birthday stays on its person: no automatic run deletes or changes it."""
        born_now: dict[Any, Any] = dict(after["born"])
        lost = {p: b for p, b in before["born"] if born_now.get(p) != b}
        assert not lost, f"birthdays lost or changed by an automatic run: {lost}"

    def check_covers_stay(self, before: State, after: State) -> None:
        """A cover stays with its person's faces through an automatic run: a person
        keeps its cover while the face is still its own; a person the run deleted (all
        its faces now in others) leaves it to the person holding the face, unless that
        one has a cover of its own."""
        was = {f: p for f, p, _by in before["faces"]}
        now = {f: p for f, p, _by in after["faces"]}
        chosen_before = {p: f for p, f in before["covers"]}
        chosen_after = {p: f for p, f in after["covers"]}
        persons_now = {p for p, _h, _m in after["persons"]}
        handed: dict[Any, set[int]] = defaultdict(set)
        for p, f in chosen_before.items():
            if was.get(f) != p:
                continue  # not in effect before the run
            if p in persons_now:
                assert chosen_after.get(p) == f, f"person {p} lost its cover {f}"
            elif now.get(f) is not None:
                handed[now[f]].add(f)
        for q, given in handed.items():
            if q not in chosen_before:
                assert chosen_after.get(q) in given, \
                    f"the cover of a deleted person did not stay with face(s) {given}"

    def check_automatic(self, before: State, after: State, *, full: bool) -> None:
        self.check_hand_placed(before, after)
        self.check_covers_stay(before, after)
        self.check_births(before, after)
        dropped = set(before["not_faces"]) - set(after["not_faces"])
        assert not dropped, f"an automatic run took the 'not a face' mark of {dropped}"
        # a person with a birthday keeps most of the faces it had, as a named person does
        named = {p for p, _n in before["names"]} | {p for p, _b in before["born"]}
        persons_now = {p for p, _h, _m in after["persons"]}
        formerly: dict[uuid.UUID, list[int]] = defaultdict(list)
        for f, p, _by in before["faces"]:
            if p in named:
                formerly[p].append(f)
        now = {f: p for f, p, _by in after["faces"]}
        # except the faces the user's links place: a face linked `same` with a face
        # rejected from a person is not that person either, one linked with faces placed
        # by hand in another person is that one's, and faces of two named persons linked
        # `same` can keep only one of the names
        component = _components(before["same"])
        not_theirs = {(component.get(f, f), p) for f, p in before["rejections"]}
        placed = {component.get(f, f): p for f, p, by in before["faces"]
                  if by == "manual" and p is not None}
        names_in: dict[int, set[uuid.UUID]] = defaultdict(set)
        for person, faces in formerly.items():
            for f in faces:
                names_in[component.get(f, f)].add(person)
        for person, faces in formerly.items():
            if person not in persons_now:
                continue
            held = Counter(now.get(f) for f in faces
                           if (component.get(f, f), person) not in not_theirs
                           and placed.get(component.get(f, f), person) == person
                           and len(names_in[component.get(f, f)]) == 1)
            if not held:
                continue
            assert held[person] == max(held.values()), \
                f"name of {person} left most of its faces: {held}"
        # a hidden person's faces stay where they are: never scattered, never emptied
        hidden = {p for p, h, _m in before["persons"] if h}
        left = {f: (p, now.get(f)) for f, p, _by in before["faces"]
                if p in hidden and f in now and now[f] != p}
        assert not left, f"faces of a hidden person moved: {left}"
        if full:  # links are kept by clustering; an edit that links moves no face
            # (but a hidden person's faces stay put: a `same` link with one binds no face)
            hand = {f for f, _p, by in after["faces"] if by == "manual"} | set(left) | {
                f for f, p, _by in after["faces"] if p in hidden}
            for a, b in after["same"]:
                if a not in hand and b not in hand:
                    assert now.get(a) == now.get(b), f"faces {a} and {b} linked same, apart"
            for a, b in after["different"]:
                if now.get(a) is not None and not (a in hand and b in hand):
                    assert now.get(a) != now.get(b), f"faces {a}, {b} linked different"

    @invariant()
    def decisions_hold(self) -> None:
        state = self.state()
        person = {f: p for f, p, _by in state["faces"]}
        placed = {f: person[f] for (f,) in state["not_faces"] if person.get(f) is not None}
        assert not placed, f"faces marked not a face are in persons: {placed}"
        manual = {f for f, _p, by in state["faces"] if by == "manual"}
        for face, rejected in state["rejections"]:
            if face not in manual:
                assert person.get(face) != rejected, f"face {face} back in {rejected}"
        with self.db.connect() as conn:
            mixed = conn.execute(
                "SELECT a.id, b.id FROM face_detections a JOIN face_detections b "
                "ON a.image_id = b.image_id AND a.person_id = b.person_id AND a.id < b.id "
                "WHERE a.assigned_by IS DISTINCT FROM 'manual' "
                "OR b.assigned_by IS DISTINCT FROM 'manual'").fetchall()
        assert not mixed, f"two faces of one photo in one person: {mixed}"

    @invariant()
    def covers_shown(self) -> None:
        """A person is shown by its chosen cover while that is one of its faces, by its
        best detection otherwise (the people page, `rbv site`, the contact sheets)."""
        with self.db.connect() as conn:
            pages = [people_page(conn, which=which, limit=100_000)[0]
                     for which in (PeopleFilter.all, PeopleFilter.hidden)]
            faces = {int(f): (p, float(s)) for f, p, s in conn.execute(
                "SELECT id, person_id, det_score FROM face_detections "
                "WHERE person_id IS NOT NULL")}
            chosen = {p: int(f) for p, f in conn.execute(
                "SELECT id, cover_face_id FROM persons WHERE cover_face_id IS NOT NULL")}
        best: dict[Any, tuple[float, int]] = {}  # the best detection, ties by id
        for f, (p, score) in faces.items():
            if p not in best or (-score, f) < best[p]:
                best[p] = (-score, f)
        for tile in (t for page in pages for t in page):
            if tile.faces == 0:
                continue
            mine = chosen.get(tile.id)
            expected = mine if mine is not None and faces.get(mine, (None,))[0] == tile.id \
                else best[tile.id][1]
            assert tile.cover == expected, \
                f"person {tile.id} shown by face {tile.cover}, not {expected}"

    @invariant()
    def sums_exact(self) -> None:
        with self.db.connect() as conn:
            pack = find_pack(conn, PACK_NAME)
            exact = exact_sums(conn, pack)
            cached = current_sums(conn, pack, [p for (p,) in conn.execute(
                "SELECT person_id FROM person_sums")])
            conn.rollback()  # reading stores the rows it brought up to date: not here
        for person, (count, total) in cached.items():
            # a person with no face: a sum of zero
            exact_count, exact_total = exact.get(person, (0, 0.0))
            assert count == exact_count, f"person {person}'s cached face count"
            assert np.allclose(total, exact_total, rtol=0, atol=1e-9), \
                f"person {person}'s cached sum"


def mwg_regions(regions: list[tuple[str, tuple[float, ...]]]) -> bytes:
    """An XMP sidecar of MWG face regions (name, normalised centre x, y, width, height),
    as digiKam writes one (no AppliedToDimensions)."""
    return mwg_sidecar(None, [(name, tuple(f"{v:.6f}" for v in area))
                              for name, area in regions])


def exact_sums(conn: psycopg.Connection, pack: PackRow
               ) -> dict[uuid.UUID, tuple[int, NDArray[np.float64]]]:
    """Each person's face count and sum of unit embeddings, from its faces (what a cached
    sum must equal)."""
    faces = load_faces(conn, pack)
    persons = sorted({p for p in faces.person_ids if p is not None}, key=str)
    index = {p: i for i, p in enumerate(persons)}
    sums, counts = group_sums(faces.embeddings, np.array(
        [index[p] if p is not None else -1 for p in faces.person_ids], np.int64),
        len(persons))
    return {p: (int(counts[i]), sums[i]) for p, i in index.items()}


def _components(pairs: list[tuple[Any, ...]]) -> dict[int, int]:
    """Each linked face's component of ``same`` links (a face in it)."""
    return roots((a, b) for a, b in pairs)


def _id(person: str | None) -> uuid.UUID | None:
    """The machine's person (text, as its state keeps it) as an edit takes it."""
    return None if person is None else uuid.UUID(person)
