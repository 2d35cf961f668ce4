"""An incremental `rbv cluster` on a big kept library, this checkout against a baseline
source tree on the same new faces: time, stages, and whether both give the same persons.

The library is one that ``bench_cluster_db.py --keep DIR`` left (its newest pack). Each
round stores ``--new`` faces drawn around the benchmark's own identities (as
``bench_cluster.synthetic`` draws faces; most join known persons), then runs
``rbv cluster --dry-run`` (all the work, rolled back) once with the baseline's code and
once with this checkout's, in alternating order, each in a child process, and compares
what each run wrote: the known person of every face that joined one, the grouping of
the rest. Then this checkout's run is made for real (timed: the run as a nightly one
makes it, the face lists taking the new faces meanwhile), so the next round meets a
library as a nightly run leaves it. Last line: ``baseline / this checkout = X`` (medians).

The baseline is a source tree of rbv, e.g. main in a worktree:

    git worktree add ../rbv-main main
    uv run python scripts/bench/bench_cluster_db.py --faces 1M --dim 512 --no-baseline \
        --keep /tmp/b1m
    uv run python scripts/bench/bench_incremental.py /tmp/b1m --baseline ../rbv-main/src --rounds 4

``--setting NAME=A,B`` runs this checkout alone, on the server restarted with the
server setting NAME at A (the baseline) and at B, each right after the restart and again
warm; the setting is put back as it was. Huge pages, for instance (the machine must have
them reserved: ``sudo sysctl -w vm.nr_hugepages=N``, N as the server reports it in
``shared_memory_size_in_huge_pages``), or the cache's size:

    uv run python scripts/bench/bench_incremental.py /tmp/b1m --setting huge_pages=off,try
    uv run python scripts/bench/bench_incremental.py /tmp/b1m --setting shared_buffers=3GB,6GB
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_cluster import _size
from bench_cluster_db import restart_server
from rbv.config import Settings
from rbv.store import open_database
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.server.connection import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/support
from tests.support.synthetic_faces import faces_around, identities  # noqa: E402

_CHILD = r"""
import json, os, sys, time, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import rbv.jobs.grouping.cluster_update as update
from rbv.cluster.methods import Method
from rbv.config import Settings
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.store import open_database

written = []
write = update.write_assignments
def recorded(conn, faces, persons, how):
    written.append((list(faces), [str(p) for p in persons], how))
    return write(conn, faces, persons, how)
update.write_assignments = recorded
smallest = int(os.environ.get("BENCH_CACHED_FROM", "0"))
if smallest:  # the rows the baseline's own runs would have cached
    name = "current_sums" if hasattr(update, "current_sums") else "cached_sums"
    cached = getattr(update, name)
    def fewer(conn, pack, persons):
        return {p: v for p, v in cached(conn, pack, persons).items() if v[0] >= smallest}
    setattr(update, name, fewer)
if os.environ.get("BENCH_DROP_MOVED"):  # as schema 14 left the rows: deleted
    current = update.current_sums
    def dropped(conn, pack, persons):
        conn.execute("DELETE FROM person_sums WHERE person_id IN "
                     "(SELECT person_id FROM person_sum_moves)")
        return current(conn, pack, persons)
    update.current_sums = dropped
stages, since = [], [time.perf_counter(), ""]
def stage(text):
    now = time.perf_counter()
    if since[1]:
        stages.append((since[1], now - since[0]))
    since[0], since[1] = now, text
db = open_database(Settings(data_dir=Path(sys.argv[1])))
report = cluster_pack(db, sys.argv[2], ClusterOptions(method=Method.evidence,
                      dry_run=sys.argv[3] == "dry"), stage)
stage("")
print(json.dumps({"seconds": report.seconds, "matched": report.matched,
                  "new_persons": report.new_persons, "stages": stages, "written": written}))
"""


def draw(sizes: np.ndarray, centres: np.ndarray, count: int,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` new faces of the identities, each as likely as its share of faces, and
    the identity of each."""
    who = rng.choice(len(sizes), size=count, p=sizes / sizes.sum())
    return faces_around(centres, who, rng), who


def wrong_joins(db: Database, made: dict[str, tuple[dict[int, str], list[list[int]]]],
                truth: dict[int, int], centres: np.ndarray) -> dict[str, int]:
    """Per run, the new faces that joined a known person of another identity. A person's
    identity is the centre nearest its mean face among the new faces' identities (none
    when no such centre is near: cosine under 0.5)."""
    persons = sorted({p for joined, _ in made.values() for p in joined.values()})
    with db.connect() as conn:
        means = dict(conn.execute(
            "SELECT f.person_id::text, avg(e.embedding) FROM face_detections f JOIN "
            "face_embeddings e ON e.face_id = f.id WHERE f.person_id = ANY(%s::uuid[]) "
            "GROUP BY f.person_id", (persons,)).fetchall())
    ids = np.array(sorted(set(truth.values())), np.int64)
    x = np.array([np.asarray(means[p].to_numpy(), np.float32) for p in persons])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ centres[ids].T
    best = sims.argmax(axis=1)
    identity = {p: int(ids[b]) if sims[i, b] >= 0.5 else -1
                for i, (p, b) in enumerate(zip(persons, best.tolist(), strict=True))}
    return {name: sum(identity[p] != truth[f] for f, p in joined.items() if f in truth)
            for name, (joined, _) in made.items()}


def child(data: Path, pack: str, source: str | None, mode: str,
          cached_from: int = 0, drop_moved: bool = False) -> dict[str, Any]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = source
    if cached_from:
        env["BENCH_CACHED_FROM"] = str(cached_from)
    if drop_moved:
        env["BENCH_DROP_MOVED"] = "1"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(data), pack, mode], env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{source or 'this checkout'}: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def persons_made(written: list[Any]) -> tuple[dict[int, str], list[list[int]]]:
    """Faces that joined a known person (face → person), and the new persons' faces."""
    joined: dict[int, str] = {}
    groups: dict[str, list[int]] = {}
    for faces, persons, how in written:
        for face, person in zip(faces, persons, strict=True):
            if how == "match":
                joined[face] = person
            else:
                groups.setdefault(person, []).append(face)
    return joined, sorted(sorted(g) for g in groups.values())


def same_persons(a: tuple[dict[int, str], list[list[int]]],
                 b: tuple[dict[int, str], list[list[int]]]) -> str:
    """``yes``, or how many faces two runs placed differently: joined another known
    person (or joined in one run only), or grouped with other new faces."""
    if a == b:
        return "yes"
    (joined_a, groups_a), (joined_b, groups_b) = a, b
    moved = sum(joined_a.get(f) != joined_b.get(f) for f in set(joined_a) | set(joined_b))
    group_of = [{f: tuple(g) for g in groups for f in g} for groups in (groups_a, groups_b)]
    regrouped = sum(group_of[0][f] != group_of[1][f]
                    for f in set(group_of[0]) & set(group_of[1]))
    return (f"NO ({moved:,} faces joined another known person or none, {regrouped:,} "
            f"new faces grouped otherwise)")


def show(title: str, r: dict[str, Any]) -> None:
    stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in r["stages"])
    print(f"  {title}: {r['seconds']:.2f} s ({r['matched']:,} joined known persons, "
          f"{r['new_persons']:,} new persons) — {stages}", flush=True)


def _ab(data: Path, pack: str, baseline: str | None, extra: dict[str, Any], round_: int,
        times: dict[str, list[float]], title: str,
        truth: tuple[Database, dict[int, int], np.ndarray] | None = None) -> None:
    """The baseline's dry run (source tree ``baseline``, None: this checkout; ``extra``:
    its child's options) and this checkout's, in alternating order; with ``truth`` (the
    database, each new face's identity, the identities' centres) how many joined a
    person of another identity."""
    runs = [("baseline", baseline, extra), ("this checkout", None, {})]
    made: dict[str, tuple[dict[int, str], list[list[int]]]] = {}
    for name, source, options in runs if round_ % 2 == 0 else runs[::-1]:
        r = child(data, pack, source, "dry", **options)
        times[name].append(r["seconds"])
        made[name] = persons_made(r["written"])
        show(title if name == "baseline" else name, r)
    print(f"  same persons: {same_persons(made['baseline'], made['this checkout'])}",
          flush=True)
    if truth is not None:
        wrong = wrong_joins(truth[0], made, truth[1], truth[2])
        print("  joined a person of another identity: " + ", ".join(
            f"{name} {wrong[name]:,} of {len(made[name][0]):,}" for name in made), flush=True)


def _setting_ab(db: Database, data: Path, pack: str, round_: int, name: str,
                values: tuple[str, str], times: dict[str, list[float]]) -> None:
    """This checkout's dry run right after a restart of the server and again, with the
    server setting ``name`` at each of ``values``, in alternating order."""
    made: dict[str, tuple[dict[int, str], list[list[int]]]] = {}
    for value in values if round_ % 2 == 0 else values[::-1]:
        restart_server(db, data, **{name: value})
        with db.connect() as conn:
            row = conn.execute("SELECT current_setting('shared_buffers'), "
                               "current_setting('huge_pages_status', true)").fetchone()
        where = f"shared_buffers {row[0]}, huge pages {row[1]}" if row else "?"
        for when in ("right after a restart", "warm"):
            r = child(data, pack, None, "dry")
            times.setdefault(f"{value} {when}", []).append(r["seconds"])
            made.setdefault(value, persons_made(r["written"]))
            show(f"{name} = {value} ({where}), {when}", r)
    print(f"  same persons: {same_persons(made[values[0]], made[values[1]])}", flush=True)


def _baseline(setting: str | None, value: str) -> str:
    if setting is not None:
        return f"this checkout on the server with {setting} = {value}"
    return "this checkout, the rows of reset persons dropped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the folder bench_cluster_db.py --keep kept")
    parser.add_argument("--baseline", default=None,
                        help="a source tree of rbv (its src folder) to run against")
    parser.add_argument("--reset", action="store_true", help="each round takes the "
                        "persons of --new random faces away by SQL, as a user's reset "
                        "would, instead of storing new faces; the baseline is this "
                        "checkout with the cached sums of the persons they left dropped, "
                        "as schema 14 did (the run sums those persons from their faces)")
    parser.add_argument("--setting", default=None, metavar="NAME=A,B", help="this "
                        "checkout on the server with setting NAME at A (the baseline) and "
                        "at B, each run right after a restart of the server and again "
                        "warm, on the same new faces (e.g. huge_pages=off,try)")
    parser.add_argument("--baseline-cached-from", type=int, default=0, help="the baseline "
                        "reads only the cached sums of persons of this many faces or more "
                        "(the rows its own runs would have cached; default: all)")
    parser.add_argument("--faces", type=_size, default=1_000_000,
                        help="the --faces the library was made with")
    parser.add_argument("--bench-new", type=_size, default=1_000,
                        help="the --new the library was made with")
    parser.add_argument("--new", type=_size, default=1_000, help="new faces a round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if sum((args.baseline is not None, args.reset, args.setting is not None)) != 1:
        parser.error("give one of --baseline, --reset and --setting")
    setting, values = None, ("", "")
    if args.setting is not None:
        setting, _, pair = args.setting.partition("=")
        values = tuple(pair.split(","))  # type: ignore[assignment]
        if not setting or len(values) != 2 or not all(values):
            parser.error("--setting takes NAME=A,B")
    db = open_database(Settings(data_dir=args.data))
    with db.connect() as conn:
        row = conn.execute("SELECT id, name, embedding_dim FROM model_packs "
                           "WHERE name LIKE 'bench%%' ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise SystemExit(f"no bench_cluster_db.py library in {args.data}")
        pack_id, pack, dim = row
        faces = conn.execute("SELECT count(*) FROM face_detections WHERE pack_id = %s",
                             (pack_id,)).fetchone()
        huge = conn.execute("SELECT current_setting('huge_pages_status', true)").fetchone()
        before = None if setting is None else conn.execute(
            "SELECT CASE WHEN sourcefile LIKE '%%postgresql.auto.conf' "
            "THEN current_setting(name) END FROM pg_settings WHERE name = %s",
            (setting,)).fetchone()
    n = int(faces[0]) if faces else 0
    # bench_cluster_db.py drew its --faces and 2 × --new more (stored later as new faces)
    sizes, centres = identities(args.faces + 2 * args.bench_new, dim,
                                np.random.default_rng(0))  # synthetic's seed
    rng = np.random.default_rng(args.seed)
    print(f"{n:,} faces × {dim}-d in {args.data}; {args.new:,} "
          f"{'faces reset' if args.reset else 'new faces'} a round; baseline "
          f"{args.baseline or _baseline(setting, values[0])}; the server's huge pages "
          f"{huge[0] if huge else '?'}", flush=True)
    times: dict[str, list[float]] = {"baseline": [], "this checkout": [], "for real": []}
    for round_ in range(args.rounds):
        if args.reset:
            with db.transaction() as conn:
                conn.execute("SELECT setseed(%s)", (args.seed / (round_ + 2),))
                conn.execute(
                    "UPDATE face_detections SET person_id = NULL WHERE id IN (SELECT id "
                    "FROM face_detections WHERE pack_id = %s AND person_id IS NOT NULL "
                    "ORDER BY random() LIMIT %s)", (pack_id, args.new))
                moves = conn.execute("SELECT count(*), count(DISTINCT person_id) "
                                     "FROM person_sum_moves").fetchone()
            print(f"round {round_ + 1}: {args.new:,} random faces without their person "
                  f"({moves[0] if moves else 0:,} moves logged against "
                  f"{moves[1] if moves else 0:,} cached sums)", flush=True)
            _ab(args.data, pack, None, {"drop_moved": True}, round_, times,
                "baseline (the rows dropped)")
            child(args.data, pack, None, "run")
            continue
        x, who = draw(sizes, centres, args.new, rng)
        with db.transaction() as conn:
            tag = f"bench-incremental-{time.time_ns()}"
            images = [int(r[0]) for r in conn.execute(
                "INSERT INTO images (sha256, size_bytes, status) SELECT md5(%s || g::text) "
                "|| md5(g::text || %s), 1, 'ok' FROM generate_series(1, %s) g RETURNING id",
                (tag, tag, args.new))]
            insert_faces(conn, [NewFace(i, pack_id, (0, 0, 100, 100), None, 0.9, None, e)
                                for i, e in zip(images, x, strict=True)])
        print(f"round {round_ + 1}: {args.new:,} new faces stored", flush=True)
        if setting is not None:
            _setting_ab(db, args.data, pack, round_, setting, values, times)
            child(args.data, pack, None, "run")
            continue
        identity_of = dict(zip(images, who.tolist(), strict=True))
        with db.connect() as conn:
            truth = {f: identity_of[i] for f, i in conn.execute(
                "SELECT id, image_id FROM face_detections WHERE image_id = ANY(%s)",
                (images,))}
        _ab(args.data, pack, args.baseline, {"cached_from": args.baseline_cached_from},
            round_, times, "baseline", (db, truth, centres))
        real = child(args.data, pack, None, "run")["seconds"]
        times["for real"].append(real)
        print(f"  this checkout, for real: {real:.2f} s", flush=True)
    if setting is not None:
        restart_server(db, args.data, **{setting: before[0] if before else None})  # as it was
        for when in ("right after a restart", "warm"):
            base, mine = (statistics.median(times[f"{v} {when}"]) for v in values)
            print(f"{when}: median {setting} = {values[0]} {base:.2f} s, {values[1]} "
                  f"{mine:.2f} s; {values[0]} / {values[1]} = {base / mine:.2f}")
        return
    base, mine = (statistics.median(times[k]) for k in ("baseline", "this checkout"))
    print(f"median baseline {base:.2f} s, this checkout {mine:.2f} s (for real "
          f"{statistics.median(times['for real']):.2f} s)")
    print(f"baseline / this checkout = {base / mine:.2f}")


if __name__ == "__main__":
    main()
