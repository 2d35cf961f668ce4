"""Push rbv's names to Immich: for each photo that came from Immich (recorded by
``immich-stage``), put the Immich faces that match rbv's named faces into the Immich
person of that name, found by name or created.

Which Immich face gets which name, and which whole unnamed Immich person is named, is
decided per photo by :mod:`rbv.jobs.exchange.immich_push_plan`.

Nothing is ever deleted or merged in Immich, and no named person is renamed. Each
finished asset is recorded with a signature of what was pushed, so a re-run (after an
interruption, say) skips it without asking the server; ``recheck`` asks again anyway.
Workers do one asset each; after ``breaker_threshold`` consecutive failed assets the
server is probed, and if it is down the run stops with :class:`ImmichUnavailable` (exit
code 2); what was finished is already recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field

import psycopg

from rbv.errors import ConfigError, ImmichError, ImmichUnavailable
from rbv.formats.names import name_key
from rbv.formats.regions import same_name
from rbv.immich.client import ImmichAuthError, ImmichTransient
from rbv.immich.people import ImmichPeopleClient, ImmichPerson
from rbv.jobs.exchange.immich_push_plan import AssetPlan, Conflict, plan_asset
from rbv.jobs.exchange.immich_stage import BREAKER_THRESHOLD
from rbv.store import Database
from rbv.store.queries.immich_assets import (
    AssetFaces,
    named_faces_of_assets,
    pushed_signatures,
    record_person,
    record_push,
    recorded_people,
)
from rbv.store.queries.pack_lookup import find_pack

DEFAULT_PUSH_WORKERS = 4
PUSH_MIN_IOU = 0.5
"""Immich itself takes a re-detected face for the same face from IoU 0.5 on."""


@dataclass(frozen=True)
class PushOptions:
    user: str | None = None  # only assets staged with this --user label
    min_iou: float = PUSH_MIN_IOU
    workers: int = DEFAULT_PUSH_WORKERS
    breaker_threshold: int = BREAKER_THRESHOLD
    dry_run: bool = False
    recheck: bool = False  # ask the server about assets finished by earlier runs too


def signature(asset: AssetFaces, min_iou: float) -> str:
    """What pushing this asset depends on in rbv: its named faces and the setting."""
    doc = [min_iou, [(f.face_id, f.name) for f in asset.faces]]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:32]


@dataclass
class PushSummary:
    """Counts of one run. ``assigned`` counts faces put in a person (or that would be,
    in a dry run)."""

    server: str
    pack: str
    dry_run: bool
    assets: int = 0  # assets whose photo has named faces in rbv
    resumed: int = 0  # finished by an earlier run, nothing changed in rbv since
    checked: int = 0
    assigned: int = 0
    unchanged: int = 0
    unmatched: int = 0
    created: int = 0  # faces drawn by hand in rbv, created in Immich
    failed: int = 0
    named_faces: int = 0  # matched faces that got the name with their whole person
    people_found: list[str] = field(default_factory=list)
    people_created: list[str] = field(default_factory=list)
    people_named: list[str] = field(default_factory=list)  # unnamed Immich people named
    people_split: int = 0  # unnamed Immich people whose matched faces disagreed
    conflicts: list[Conflict] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (asset id, message)

    def as_dict(self) -> dict[str, object]:
        plain = {k: v for k, v in self.__dict__.items()
                 if k not in ("conflicts", "errors")}
        return {**plain, "conflicts": [asdict(c) for c in self.conflicts],
                "errors": [{"asset": a, "error": e} for a, e in self.errors]}


class _People:
    """Name → Immich person id, creating a person the first time a name needs one."""

    def __init__(self, client: ImmichPeopleClient, conn: psycopg.Connection | None,
                 summary: PushSummary, dry_run: bool) -> None:
        self.client = client
        self.conn = conn
        self.summary = summary
        self.dry_run = dry_run
        self.lock = threading.Lock()
        self.by_name: dict[str, list[ImmichPerson]] = {}
        self.resolved: dict[str, str] = {}
        self.recorded: dict[str, str] = {}

    def load(self) -> None:
        for person in self.client.people():
            if person.name:
                self.by_name.setdefault(person.name, []).append(person)
        if self.conn is not None:
            self.recorded = recorded_people(self.conn, self.client.url)

    def resolve(self, name: str) -> str:
        with self.lock:
            if name in self.resolved:
                return self.resolved[name]
            person_id, created = self._find(name), False
            if person_id is None:
                if self.dry_run:
                    person_id = f"(new person {name})"
                else:
                    person_id = self.client.create_person(name).id
                self.summary.people_created.append(name)
                created = True
            else:
                self.summary.people_found.append(name)
            if self.conn is not None and not self.dry_run:
                record_person(self.conn, self.client.url, name, person_id, created)
            self.resolved[name] = person_id
            return person_id

    def known(self, name: str) -> bool:
        """Whether an Immich person already has ``name`` (or this run made one)."""
        with self.lock:
            return name in self.resolved or self._find(name) is not None

    def adopt(self, name: str, person_id: str, dry_run: bool) -> None:
        """``person_id`` (an unnamed person just named) is the person of ``name``."""
        with self.lock:
            self.resolved[name] = person_id
            if self.conn is not None and not dry_run:
                record_person(self.conn, self.client.url, name, person_id, False)

    def _find(self, name: str) -> str | None:
        exact = self.by_name.get(name, [])
        if not exact:  # "ada" in Immich for rbv's "Ada": the same person, not renamed
            exact = [p for n, people in self.by_name.items() if same_name(n, name)
                     for p in people]
        recorded = self.recorded.get(name)
        if recorded and (not exact or any(p.id == recorded for p in exact)):
            # Ours from an earlier run: Immich does not list a person without faces,
            # so one created just before an interruption is only known from here.
            return recorded
        return exact[0].id if exact else None


def push_names(client: ImmichPeopleClient, db: Database, pack_name: str | None,
               options: PushOptions, *, sole_fallback: bool = False,
               on_progress: Callable[[PushSummary, int], None] | None = None) -> PushSummary:
    """Push the pack's names to the Immich server; see the module docstring."""
    if options.workers < 1:
        raise ConfigError("the number of workers must be at least 1", setting="workers")
    if not 0.0 < options.min_iou <= 1.0:
        raise ConfigError("the overlap a face must reach (intersection over union) must be "
                          "in (0, 1]", setting="min_iou")
    client.server_version()  # startup probe: ImmichUnavailable (exit 2) if down
    client.check_key()  # /server/version takes any key: a wrong one stops here
    with db.connect(autocommit=True) as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        work = named_faces_of_assets(conn, client.url, pack.id, options.user)
        done = {} if options.recheck else pushed_signatures(conn, client.url)
        summary = PushSummary(client.url, pack.name, options.dry_run, assets=len(work))
        todo = []
        for asset in work:
            sig = signature(asset, options.min_iou)
            if done.get(asset.asset_id) == sig:
                summary.resumed += 1
            else:
                todo.append((asset, sig))
        if not todo:
            return summary
        people = _People(client, conn, summary, options.dry_run)
        try:
            people.load()
        except ImmichTransient as exc:
            _probe_or_stop(client, summary, f"listing people failed: {exc}")
            raise ImmichError(f"listing people on {client.url} failed ({exc}); "
                              "re-run to resume") from None
        return _Run(client, conn, people, options, summary, on_progress).run(todo)


def _probe_or_stop(client: ImmichPeopleClient, s: PushSummary, why: str) -> None:
    try:
        client.server_version(retry=False)
    except ImmichUnavailable:
        raise ImmichUnavailable(
            f"{why}, and the Immich server at {client.url} does not answer; stopped after "
            f"{s.checked} of {s.assets - s.resumed} assets ({s.assigned} faces assigned this "
            "run, each recorded); re-run the same command to resume"
        ) from None


@dataclass(frozen=True)
class _Outcome:
    plan: AssetPlan | None = None
    error: str | None = None


class _Run:
    """Read every asset's faces and plan (workers), decide which unnamed Immich people
    to name (here: it needs every plan), then write (workers) and record each asset."""

    def __init__(self, client: ImmichPeopleClient, conn: psycopg.Connection, people: _People,
                 options: PushOptions, summary: PushSummary,
                 on_progress: Callable[[PushSummary, int], None] | None) -> None:
        self.client = client
        self.conn = conn
        self.people = people
        self.options = options
        self.summary = summary
        self.on_progress = on_progress
        self.consecutive_errors = 0
        self.total = 0
        self.named: set[str] = set()  # Immich person ids named by this run

    def run(self, todo: list[tuple[AssetFaces, str]]) -> PushSummary:
        self.total = len(todo)
        plans = [(asset, sig, outcome.plan) for (asset, sig), outcome
                 in self._each(todo, self._plan) if outcome.plan is not None]
        self._name_people([plan for _, _, plan in plans])
        for (asset, sig, plan), outcome in self._each(
                [(a, s) for a, s, _ in plans], self._write,
                {a.asset_id: p for a, _, p in plans}):
            self._finish(asset, sig, plan, outcome)
        return self.summary

    def _each(self, items: list[tuple[AssetFaces, str]], work: Callable[..., _Outcome],
              plans: dict[str, AssetPlan] | None = None):  # type: ignore[no-untyped-def]
        """(item, outcome) per item, ``work`` run on the pool; failed items are counted
        here (and trip the breaker) and not yielded."""
        pending: dict[Future[_Outcome], tuple[AssetFaces, str]] = {}
        pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="immich-push")

        def submit(item: tuple[AssetFaces, str]) -> None:
            args = (item[0],) if plans is None else (item[0], plans[item[0].asset_id])
            pending[pool.submit(work, *args)] = item

        try:
            queue = iter(items)
            for item in queue:
                submit(item)
                if len(pending) >= 2 * self.options.workers:
                    break
            while pending:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    outcome = future.result()  # re-raises ImmichAuthError
                    if outcome.error is not None:
                        self._failed(item[0], outcome.error)
                    else:
                        self.consecutive_errors = 0
                        yield ((item[0], item[1], plans[item[0].asset_id]) if plans
                               else item), outcome
                    nxt = next(queue, None)
                    if nxt is not None:
                        submit(nxt)
        finally:
            for future in list(pending):
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _plan(self, asset: AssetFaces) -> _Outcome:
        """One asset's faces read and planned, on a worker thread."""
        try:
            return _Outcome(plan_asset(asset, self.client.asset_faces(asset.asset_id),
                                       self.options.min_iou))
        except ImmichAuthError:
            raise
        except ImmichError as exc:
            return _Outcome(error=str(exc))

    def _name_people(self, plans: list[AssetPlan]) -> None:
        """Name each unnamed Immich person whose matched faces all agree (see
        :mod:`rbv.jobs.exchange.immich_push_plan`); a failure leaves its faces to be moved
        one by one instead."""
        names: dict[str, set[str]] = {}
        matched: dict[str, int] = {}
        for plan in plans:
            for step in plan.assign:
                if step.unnamed_person:
                    names.setdefault(step.unnamed_person, set()).add(step.name)
                    matched[step.unnamed_person] = matched.get(step.unnamed_person, 0) + 1
        candidates: dict[str, list[str]] = {}
        for person, these in names.items():
            if len({name_key(n) for n in these}) == 1:
                candidates.setdefault(next(iter(these)), []).append(person)
            else:
                self.summary.people_split += 1
        for name, persons in sorted(candidates.items()):
            if self.people.known(name):
                continue  # an Immich person has the name: faces are moved into it
            best = max(persons, key=lambda p: (matched[p], p))
            self.summary.people_split += len(persons) - 1
            try:
                if not self.options.dry_run:
                    self.client.name_person(best, name)
            except ImmichAuthError:
                raise
            except ImmichError as exc:
                self.summary.errors.append((best, f"naming person {name!r}: {exc}"))
                continue
            self.people.adopt(name, best, self.options.dry_run)
            self.named.add(best)
            self.summary.people_named.append(name)

    def _write(self, asset: AssetFaces, plan: AssetPlan) -> _Outcome:
        """One asset's remaining assignments, on a worker thread."""
        try:
            for step in plan.assign:
                if step.unnamed_person in self.named:
                    continue  # named with its whole person
                person_id = self.people.resolve(step.name)
                if not self.options.dry_run:
                    self.client.assign_face(step.immich_face_id, person_id)
            for new in plan.create:
                person_id = self.people.resolve(new.name)
                if not self.options.dry_run:
                    self.client.create_face(asset.asset_id, person_id, new.box,
                                            (asset.width, asset.height))
            return _Outcome(plan)
        except ImmichAuthError:
            raise
        except ImmichError as exc:
            return _Outcome(error=str(exc))

    def _failed(self, asset: AssetFaces, error: str) -> None:
        s = self.summary
        s.checked += 1
        s.failed += 1
        s.errors.append((asset.asset_id, error))
        self.consecutive_errors += 1
        if self.consecutive_errors >= self.options.breaker_threshold:
            _probe_or_stop(self.client, s, f"{self.consecutive_errors} consecutive errors")
            self.consecutive_errors = 0
        if self.on_progress:
            self.on_progress(s, self.total)

    def _finish(self, asset: AssetFaces, sig: str, plan: AssetPlan, outcome: _Outcome) -> None:
        s = self.summary
        s.checked += 1
        by_naming = sum(step.unnamed_person in self.named for step in plan.assign)
        s.named_faces += by_naming
        s.assigned += len(plan.assign) - by_naming
        s.unchanged += plan.unchanged
        s.unmatched += len(plan.unmatched)
        s.created += len(plan.create)
        s.conflicts.extend(plan.conflicts)
        if not self.options.dry_run:
            record_push(self.conn, self.client.url, asset.asset_id, sig,
                        len(plan.assign) + len(plan.create), len(plan.conflicts))
        if self.on_progress:
            self.on_progress(s, self.total)
