"""The default clustering (evidence linkage): its rule on small synthetic cases, and on
real faces through the database: a plain `rbv cluster` with nothing calibrated,
incremental runs that let a new fragment join its known person, a changed setting that
is reported, and `rbv eval`'s own behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest

from rbv.cluster.calibrations import KNOWN_RECOGNIZERS, resolve_setting
from rbv.cluster.constraints import NO_ANCHOR, Constraints
from rbv.cluster.defaults import DEFAULT_THRESHOLD
from rbv.cluster.evidence import ImpostorModel, evidence_linkage, random_pair_similarities
from rbv.cluster.evidence_heap import HeapMerger, heap_merger_roots
from rbv.cluster.evidence_merge import merge_greedily
from rbv.cluster.evidence_nodes import Nodes
from rbv.cluster.knn import build_knn_graph, normalize
from rbv.cluster.methods import Method
from rbv.config import Settings
from rbv.errors import ConfigError, Remedy
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import FACES, PACK, cluster_photos, run_cli
from tests.support.evidence_reference import partition, plain_greedy

pytestmark = pytest.mark.slow  # ~34 s: evidence linkage against its reference, many sets

MODEL = ImpostorModel(mu=0.1, sigma=0.087, tau=0.02)


def _people(rng: np.random.Generator, sizes: list[int], spread: float, dim: int = 256
            ) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one random centre per person; returns (x, person labels)."""
    centres = rng.normal(size=(len(sizes), dim))
    rows, labels = [], []
    for person, (centre, n) in enumerate(zip(centres, sizes, strict=True)):
        centre /= np.linalg.norm(centre)
        pts = centre + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
        rows.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        labels += [person] * n
    return np.vstack(rows).astype(np.float32), np.array(labels)


def test_more_faces_in_the_library_ask_more_of_a_single_pair() -> None:
    small, big = MODEL.pair_similarity(200, 10), MODEL.pair_similarity(100_000, 10)
    assert 0.35 < small < big < 0.75
    assert MODEL.z_threshold(1_000_000, 10) > MODEL.z_threshold(1_000, 10) >= 1.0


def test_people_are_found_and_same_photo_faces_never_join() -> None:
    rng = np.random.default_rng(1)
    x, truth = _people(rng, [12, 9, 5, 2, 1, 1], spread=0.8)
    images = np.arange(len(x))
    images[1] = images[0]  # faces 0 and 1 (one person) share a photo: cannot-link
    constraints = Constraints.build(len(x), image_ids=images)
    labels = evidence_linkage(x, build_knn_graph(x, 10), MODEL, 10.0, constraints)
    assert labels[0] != labels[1]
    rest = np.arange(2, len(x))
    pure = {int(lab): set(truth[rest][labels[rest] == lab].tolist()) for lab in labels[rest]}
    assert all(len(people) == 1 for people in pure.values())  # no wrong merge
    assert len(set(labels[truth == 1].tolist())) == 1  # a person of 9 is one cluster


def test_known_persons_take_in_new_faces_but_never_merge_with_each_other() -> None:
    rng = np.random.default_rng(2)
    x, truth = _people(rng, [10, 10], spread=0.8)
    anchors = np.full(len(x), NO_ANCHOR, np.int64)
    anchors[:6] = 0  # person 0's first six faces are one known person...
    anchors[10:13] = 1  # ...person 1's first three another
    anchors[13:16] = 2  # ...and three more of person 1 a third: never merged with 1
    labels = evidence_linkage(x, build_knn_graph(x, 10), MODEL, 10.0,
                              Constraints.build(len(x), anchors=anchors))
    assert len({labels[0], labels[10], labels[13]}) == 3
    assert set(labels[6:10].tolist()) == {labels[0]}  # new faces joined their person


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("crowded", [False, True])
@pytest.mark.parametrize("partial_from", [None, 1, 3])
def test_compiled_merge_loop_gives_the_partitions_of_the_plain_greedy_rule(
    seed: int, crowded: bool, partial_from: int | None
) -> None:
    """Random cluster nodes (single faces and pre-merged groups), candidate pairs,
    cannot-links, anchored nodes and (``crowded``) crowding: the compiled loop (single
    faces read from their float32 rows, or every node given by its sum), the
    interpreted one and the rule written plainly (score every pair, merge the best)
    agree. ``partial_from``: every cluster with 1 (3) neighbours or more keeps its single
    faces in a heap (by default only lists of hundreds of clusters do, which these cases
    never reach)."""
    rng = np.random.default_rng(seed)
    x, _ = _people(rng, list(rng.integers(1, 25, size=14)), spread=rng.uniform(0.7, 1.3),
                   dim=64)
    # most faces alone, the rest in groups (as must-links and hand placements start)
    node = np.where(rng.random(len(x)) < 0.6, np.arange(len(x)) + len(x),
                    rng.integers(0, len(x) // 4, size=len(x)))
    node = np.unique(node, return_inverse=True)[1]
    m = int(node.max()) + 1
    sums = np.zeros((m, x.shape[1]))
    np.add.at(sums, node, x.astype(np.float64))
    count = np.bincount(node, minlength=m).astype(np.float64)
    sim = (sums / np.linalg.norm(sums, axis=1, keepdims=True)) @ (
        sums / np.linalg.norm(sums, axis=1, keepdims=True)).T
    near = np.argsort(-sim, axis=1)[:, 1:9]  # each node's 8 nearest: the candidates
    a, b = np.repeat(np.arange(m), 8), near.ravel()
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    cannot = rng.integers(0, m, size=(m // 6, 2))
    cannot = cannot[cannot[:, 0] != cannot[:, 1]]
    anchored = rng.random(m) < 0.08
    crowd = rng.uniform(0, 0.1, m) * count if crowded else None
    z_min = MODEL.z_threshold(len(x), 10.0)
    model = (MODEL.mu, MODEL.sigma, MODEL.tau, z_min, crowd)
    alone = count[node] == 1
    ref = np.empty(m, np.int64)
    ref[node[alone]] = np.flatnonzero(alone)
    groups = np.flatnonzero(count > 1)
    ref[groups] = -np.arange(len(groups)) - 1
    split = {} if partial_from is None else {"partial_from": partial_from}
    from_rows = merge_greedily(Nodes(x, sums[groups], ref, count, pairs), anchored, cannot,
                               *model, **split)
    from_sums = merge_greedily(Nodes.of_sums(sums, count, pairs), anchored, cannot, *model,
                               **split)
    plain = plain_greedy(sums, count, anchored, cannot, pairs, *model)
    assert partition(from_rows) == partition(from_sums) == partition(plain)
    assert partition(heap_merger_roots(sums, count, anchored, cannot, pairs, *model)) \
        == partition(plain)
    assert 1 < len(partition(plain)) < m - 5  # merges happened, and some were refused
    for u, v in cannot:
        assert from_rows[u] != from_rows[v]
    roots_with_anchor = from_rows[anchored]
    assert len(set(roots_with_anchor.tolist())) == len(roots_with_anchor)


@pytest.mark.parametrize("seed", range(4))
def test_the_interpreted_loop_starts_from_each_clusters_best_allowed_partner(seed: int
                                                                             ) -> None:
    """The heap the interpreted loop starts from, scored for every pair at once, holds
    what scoring each cluster's neighbours in turn gives: its best partner that passes
    z_min, never one it is kept apart from or an anchored one of an anchored cluster.
    Clusters of several faces, crowding, cannot-links and anchors, at 512-d with more
    pairs than one block of rows."""
    rng = np.random.default_rng(300 + seed)
    x, _ = _people(rng, list(rng.integers(1, 30, size=40)), spread=1.0, dim=512)
    node = np.unique(rng.integers(0, len(x) * 2 // 3, size=len(x)), return_inverse=True)[1]
    m = int(node.max()) + 1
    sums = np.zeros((m, x.shape[1]))
    np.add.at(sums, node, x.astype(np.float64))
    count = np.bincount(node, minlength=m).astype(np.float64)
    unit = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    near = np.argsort(-(unit @ unit.T), axis=1)[:, 1:13]
    a, b = np.repeat(np.arange(m), 12), near.ravel()
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    assert len(pairs) > 512  # more than one block of the first scoring
    cannot = pairs[rng.random(len(pairs)) < 0.1]
    anchored = rng.random(m) < 0.15
    merger = HeapMerger(sums, count, anchored, cannot, pairs, MODEL,
                        MODEL.z_threshold(len(x), 10.0), rng.uniform(0, 0.05, m) * count)
    merger.adjacent = [set() for _ in range(m)]
    for u, w in pairs.tolist():
        merger.adjacent[u].add(w)
        merger.adjacent[w].add(u)
    entries = {(u, w): -z for z, u, w, _, _ in merger._first_entries()}
    blocked = {(int(u), int(w)) for u, w in cannot} | {(int(w), int(u)) for u, w in cannot}
    for u in range(m):
        ws = np.array([w for w in sorted(merger.adjacent[u]) if (u, w) not in blocked
                       and not (anchored[u] and anchored[w])], np.int64)
        z = merger._z(u, ws) if len(ws) else np.empty(0)
        mine = [(w, v) for (v_u, w), v in entries.items() if v_u == u]
        if not len(z) or z.max() < merger.z_min:
            assert mine == [] and merger.best_w[u] == -1
            continue
        [(w, value)] = mine
        assert w == merger.best_w[u] and value == pytest.approx(z.max(), abs=1e-12)
        assert z[list(ws).index(w)] == pytest.approx(z.max(), abs=1e-12)
    assert m // 4 < len(entries) < m  # many clusters start with a partner, not all


@pytest.mark.parametrize("seed", range(24))
def test_large_clusters_keeping_their_single_faces_in_heaps_merge_as_before(seed: int) -> None:
    """People with many photos, all single faces, joined by their faces' nearest
    neighbours (as a library's k-NN graph joins them), with crowding and cannot-links:
    the compiled loop with heaps of single faces (every cluster from 1 or 8 neighbours
    on; by default from 256, which these never reach) makes the merges of the loop
    without them, in the same order (a merge out of order can leave the partition as it
    was), and for the first seeds those of the plain rule. Measured: with the large
    clusters left untold of their faces' merges, 8 of 40 seeds merge out of order."""
    rng = np.random.default_rng(100 + seed)
    x, _ = _people(rng, list(rng.integers(20, 90, size=6)) + [1] * 30,
                   spread=rng.uniform(0.9, 1.5), dim=64)
    m = len(x)
    sim = x.astype(np.float64) @ x.astype(np.float64).T
    near = np.argsort(-sim, axis=1)[:, 1:13]
    a, b = np.repeat(np.arange(m), 12), near.ravel()
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    cannot = rng.integers(0, m, size=(m // 10, 2))
    cannot = cannot[cannot[:, 0] != cannot[:, 1]]
    anchored = rng.random(m) < 0.01
    crowd = rng.uniform(0, 0.05, m)
    model = (MODEL.mu, MODEL.sigma, MODEL.tau, MODEL.z_threshold(m, 10.0), crowd)

    def merges(partial_from: int) -> tuple[set[frozenset[int]], np.ndarray]:
        order = np.full(m, np.nan)
        nodes = Nodes(x, np.empty((0, x.shape[1])), np.arange(m, dtype=np.int64),
                      np.ones(m), pairs)
        roots = merge_greedily(nodes, anchored, cannot, *model, partial_from=partial_from,
                               order=order)
        return partition(roots), order

    plain, plain_order = merges(10**9)
    assert max(len(group) for group in plain) >= 20  # large clusters formed
    if seed < 3:
        order: list[float] = []
        assert partition(plain_greedy(x.astype(np.float64), np.ones(m), anchored, cannot,
                                      pairs, *model, order=order)) == plain
        np.testing.assert_allclose(plain_order[:len(order)], order, rtol=0, atol=1e-9)
    for partial_from in (1, 8):
        groups, order_seen = merges(partial_from)
        assert groups == plain
        # the same z, up to the order of a dot product's additions
        np.testing.assert_allclose(order_seen, plain_order, rtol=0, atol=1e-12)


def test_setting_resolution_prefers_user_then_stored_then_built_in() -> None:
    sface = {"r.onnx": next(iter(KNOWN_RECOGNIZERS))}
    assert resolve_setting({}, sface).method is Method.evidence
    assert resolve_setting({}, sface).impostor == KNOWN_RECOGNIZERS[sface["r.onnx"]].impostor
    assert resolve_setting({}, {}).needs_estimate  # unknown recognizer: estimate it
    stored = {"impostor": {"mu": 0.2, "sigma": 0.1, "tau": 0.02, "source": "x"}}
    assert resolve_setting(stored, sface).impostor == ImpostorModel(0.2, 0.1, 0.02)
    assert resolve_setting({}, sface, threshold=0.5).method is Method.connected
    with pytest.raises(ConfigError, match="evidence linkage takes a budget") as err:
        resolve_setting({}, sface, Method.evidence, threshold=0.5)
    assert err.value.setting == "threshold" and "--" not in str(err.value)
    with pytest.raises(ConfigError, match="the budget must be above 0") as err:
        resolve_setting({}, sface, budget=-1)
    assert err.value.setting == "budget" and "--" not in str(err.value)
    with pytest.raises(ConfigError, match="a budget is for the evidence method") as err:
        resolve_setting({}, sface, Method.connected, budget=3)
    assert err.value.setting == "budget" and "--" not in str(err.value)
    # no calibration for this recognizer: a fallback, and calibrating is the remedy
    fallback = resolve_setting({}, {}, Method.connected)
    assert fallback.source == "buffalo_l's customary value"
    assert fallback.remedies == (Remedy("calibrate"),)
    assert resolve_setting({}, sface, Method.connected).remedies == ()


def test_a_setting_the_method_does_not_take_names_its_option(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    threshold = run_cli(cli, "-d", url, "cluster", "--method", "evidence", "--threshold", "0.5")
    assert threshold.exit_code == 1
    assert threshold.stderr == (
        "Error: a similarity threshold is for the connected, agglomerative and hdbscan "
        "methods; evidence linkage takes a budget (--threshold)\n")
    budget = run_cli(cli, "-d", url, "cluster", "--method", "connected", "--budget", "3")
    assert budget.exit_code == 1
    assert budget.stderr == ("Error: a budget is for the evidence method; the others take a "
                             "similarity threshold (--budget)\n")


def test_a_fallback_setting_says_how_to_calibrate(cli, faces_settings: Settings) -> None:
    """A recognizer rbv has no calibration for clusters with buffalo_l's customary value,
    and the report says how to do better: as data (``remedies``), worded by the CLI."""
    url = str(faces_settings.database_url)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE model_packs SET files = '{}'::jsonb")
    done = run_cli(cli, "-d", url, "cluster", "--method", "connected", "--dry-run")
    assert done.exit_code == 0, done.output
    said = " ".join(done.stdout.split())
    assert f"connected at similarity {DEFAULT_THRESHOLD:g} (buffalo_l's customary value)" \
        in said
    assert ("The setting is a fallback: calibrate this pack with "
            "`rbv eval --calibrate --store`.") in said
    report = json.loads(run_cli(cli, "-d", url, "cluster", "--method", "connected",
                                "--dry-run", "--json").stdout)
    assert report["remedies"] == [{"action": "calibrate", "args": {}, "label": ""}]
    assert "rbv " not in report["setting"] and "--" not in report["setting"]


# --- through the database, real faces -------------------------------------------------

def _cluster(cli, settings: Settings, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = run_cli(cli, "-d", str(settings.database_url), "cluster", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _persons_of(settings: Settings) -> dict[int, tuple[str | None, str]]:
    """face id → (person, identity folder of its photo, or '' for group photos)."""
    with open_database(settings).connect() as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (f.id) f.id, f.person_id, p.path FROM face_detections f "
            "JOIN image_paths p ON p.image_id = f.image_id ORDER BY f.id").fetchall()
    return {f: (str(p) if p else None,
                Path(path).parent.name if Path(path).is_relative_to(FACES) else "")
            for f, p, path in rows}


def test_plain_cluster_with_nothing_calibrated_groups_real_faces_right(
    cli, faces_settings: Settings
) -> None:
    report = _cluster(cli, faces_settings)
    assert report["method"] == "evidence" and "built in for SFace" in report["setting"]
    faces = _persons_of(faces_settings)
    identities_of: dict[str, set[str]] = {}
    for person, identity in faces.values():
        if identity:
            identities_of.setdefault(str(person), set()).add(identity)
    assert all(len(ids) == 1 for ids in identities_of.values())  # no wrong merge
    persons_per_identity = {i: {p for p, ii in faces.values() if ii == i}
                            for i in {ii for _, ii in faces.values() if ii}}
    # Six identities, 20 odd photos each: nearly all of each in one person.
    assert sum(len(p) for p in persons_per_identity.values()) <= len(persons_per_identity) + 3


def test_incremental_run_lets_new_faces_join_known_persons_and_keeps_ids(
    cli, faces_settings: Settings, sface_analyzer
) -> None:
    _cluster(cli, faces_settings)
    before = {f: p for f, (p, _) in _persons_of(faces_settings).items()}
    run_index(open_database(faces_settings), faces_settings, cluster_photos(later=True),
              analyzer=sface_analyzer)
    second = _cluster(cli, faces_settings)
    after = _persons_of(faces_settings)
    assert {f: after[f][0] for f in before} == before  # earlier faces kept their person
    new = [f for f in after if f not in before and after[f][1]]
    assert second["considered"] >= len(new) > 0
    home = {}
    for f, (p, identity) in after.items():
        if f in before and identity:
            home.setdefault(identity, []).append(p)
    person_of = {i: max(set(ps), key=ps.count) for i, ps in home.items()}
    joined = [f for f in new if after[f][0] == person_of[after[f][1]]]
    wrong = [f for f in new if after[f][0] in set(before.values())
             and after[f][0] != person_of[after[f][1]]]
    assert wrong == []
    assert len(joined) >= 0.75 * len(new), (len(joined), len(new))


def test_a_new_fragment_of_a_known_person_joins_it(cli, faces_settings: Settings,
                                                   sface_analyzer) -> None:
    """Two new photos of a known person arrive together: as a pair they could form a new
    person of their own, but the evidence puts them in the known one."""
    _cluster(cli, faces_settings)
    before = {f: p for f, (p, _) in _persons_of(faces_settings).items()}
    later = [p for p in cluster_photos(later=True) if p.parent.name == "Angelina_Jolie"]
    run_index(open_database(faces_settings), faces_settings, later, analyzer=sface_analyzer)
    report = _cluster(cli, faces_settings)
    after = _persons_of(faces_settings)
    angelina = {after[f][0] for f in before if after[f][1] == "Angelina_Jolie"}
    new = [f for f in after if f not in before]
    assert report["new_persons"] == 0 and report["matched"] == len(new) == len(later)
    assert {after[f][0] for f in new} <= angelina


def test_a_changed_setting_is_reported_with_what_to_run(cli, faces_settings: Settings,
                                                        sface_analyzer) -> None:
    first = run_cli(cli, "-d", str(faces_settings.database_url), "cluster")
    assert first.exit_code == 0 and "another setting" not in first.output
    run_index(open_database(faces_settings), faces_settings, cluster_photos(later=True),
              analyzer=sface_analyzer)
    changed = run_cli(cli, "-d", str(faces_settings.database_url), "cluster", "--budget", "3")
    assert changed.exit_code == 0, changed.output
    said = " ".join(changed.output.split())  # notes wrap at the terminal's width
    assert "made with another setting (evidence, budget 10)" in said
    assert "Run `rbv cluster --full` to re-cluster every face with it" in said
    report = json.loads(run_cli(cli, "-d", str(faces_settings.database_url), "cluster",
                                "--budget", "3", "--dry-run", "--json").stdout)
    assert report["remedies"] == [{"action": "cluster_full", "args": {}, "label": ""}]
    assert not any("rbv " in note or "--" in note for note in report["notes"])
    full = run_cli(cli, "-d", str(faces_settings.database_url), "cluster", "--full",
                   "--budget", "3")
    again = run_cli(cli, "-d", str(faces_settings.database_url), "cluster", "--budget", "3")
    assert "another setting" not in full.output + again.output


# --- rbv eval ------------------------------------------------------------------------

def _labelled(root: Path, identities: tuple[str, ...]) -> Path:
    for name in identities:
        (root / name).mkdir(parents=True)
        for photo in sorted((FACES / name).iterdir()):
            (root / name / photo.name).symlink_to(photo)
    return root


def _eval(cli, settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    env = {"RBV_DATA_DIR": str(settings.data_dir)}
    return run_cli(cli, "eval", "--model-pack", str(PACK), *args, env=env)


def test_eval_store_needs_calibrate_and_a_migrated_library(cli, tmp_path: Path) -> None:
    folder = _labelled(tmp_path / "a", ("Matt_Damon", "Jack_Dorsey"))
    settings = Settings(data_dir=tmp_path / "data", server_linger_s=0)
    alone = _eval(cli, settings, str(folder), "--store")
    assert alone.exit_code == 1
    assert alone.output.startswith("Error: --store saves what --calibrate measures")
    unmigrated = _eval(cli, settings, str(folder), "--calibrate", "--store")
    assert unmigrated.exit_code == 1
    assert "rbv migrate" in unmigrated.output
    assert not (tmp_path / "data" / "eval").exists()  # failed before indexing anything


def test_eval_scores_only_its_folder_and_uses_the_stored_calibration(
    cli, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", server_linger_s=0)
    env = {"RBV_DATA_DIR": str(settings.data_dir)}
    assert run_cli(cli, "migrate", env=env).exit_code == 0
    a = _labelled(tmp_path / "a", ("Matt_Damon", "Jack_Dorsey"))
    b = _labelled(tmp_path / "b", ("Barack_Obama", "Mark_Zuckerberg"))
    first_b = json.loads(_eval(cli, settings, str(b), "--json").stdout)
    stored = _eval(cli, settings, str(a), "--calibrate", "--store", "--json")
    assert stored.exit_code == 0, stored.output
    report_a = json.loads(stored.stdout)
    assert report_a["stored"] and report_a["identities"] == 2
    again_b = json.loads(_eval(cli, settings, str(b), "--json").stdout)
    # Only b's photos count, however many folders the scratch database has seen.
    assert again_b["labelled_faces"] == first_b["labelled_faces"]
    assert again_b["identities"] == 2
    # The library's stored calibration is what eval (like `rbv cluster`) uses now.
    assert "labelled different-person pairs of" in again_b["settings"]["evidence"]
    assert "built in for SFace" in first_b["settings"]["evidence"]
    assert again_b["settings"]["connected"].startswith(
        f"connected at similarity {report_a['recommended_thresholds']['connected']:.2f} "
        "(the pack's calibrated value)")
    # The Immich-style baseline runs at its own setting, not at connected's.
    assert first_b["settings"]["immich-baseline"] == "similarity 0.50"


def test_stats_checks_the_setting_against_faces_that_share_a_photo(
    cli, faces_settings: Settings
) -> None:
    _cluster(cli, faces_settings)
    result = run_cli(cli, "-d", str(faces_settings.database_url), "stats", "--json")
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["packs"][0]["clustering"]
    assert check["setting"].startswith("evidence, budget 10")
    assert check["same_photo_pairs"] >= 10  # the group photos' faces are different people
    assert 0.3 < check["merge_bar"] < 0.6
    assert check["above_merge_bar"] <= 1
    text = run_cli(cli, "-d", str(faces_settings.database_url), "stats")
    assert "Faces sharing a photo (different people)" in " ".join(text.output.split())


def test_random_pair_similarities_hold_a_block_of_rows_not_every_pair() -> None:
    """Issue 33: the impostor estimate of a first full run gathered both rows of all
    200k random pairs at once (2 × 400 MB at 512-d: that run's peak memory). In blocks
    it holds a few MB, and every similarity is the one the whole gather gave."""
    import tracemalloc

    rng = np.random.default_rng(3)
    x = normalize(rng.normal(size=(20_000, 512)))
    images = np.arange(len(x)) // 2  # pairs of faces share a photo: never a pair
    tracemalloc.start()
    got = random_pair_similarities(x, images)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    pick = np.random.default_rng(0)
    i, j = pick.integers(0, len(x), 200_000), pick.integers(0, len(x), 200_000)
    keep = (i != j) & (images[i] != images[j])
    u = normalize(x)  # as the function does
    want = np.einsum("ij,ij->i", u[i[keep]], u[j[keep]])
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MB"


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2])
def test_a_library_estimate_finds_the_strangers_under_its_one_person_pairs(share: float
                                                                           ) -> None:
    """Random pairs of a library where a few people hold most faces are often one
    person (data/faces: 8 %; a family's library more). The plain median and quartile
    then put strangers higher and wider than they are; the library estimate finds
    them where they are, and with no such pairs reads as the plain one."""
    rng = np.random.default_rng(5)
    n = 200_000
    mu, sigma = 0.02, 0.095
    genuine = rng.random(n) < share
    pairs = np.where(genuine, rng.normal(0.6, 0.12, n), rng.normal(mu, sigma, n))
    plain = ImpostorModel.from_pairs(pairs, robust=True)
    found = ImpostorModel.from_library_pairs(pairs)
    assert abs(found.mu - mu) < 0.03 * sigma and abs(found.sigma - sigma) < 0.03 * sigma
    assert found.tau == pytest.approx(0.23 * found.sigma, abs=1e-4)
    if share == 0.0:
        assert found == plain
    else:
        assert plain.mu - mu > 0.05 * sigma * share / 0.05  # the bias the estimate removes
