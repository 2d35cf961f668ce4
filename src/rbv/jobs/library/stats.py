"""``rbv stats``: the library overview, with a check of each pack's clustering setting
against the different-person pairs every library holds for free (faces that share a
photo)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rbv.cluster.calibrations import resolve_setting
from rbv.cluster.defaults import DEFAULT_BUDGET
from rbv.store import Database
from rbv.store.queries.assignments import count_faces, same_photo_similarities
from rbv.store.queries.pack_lookup import find_pack, pack_files, pack_settings
from rbv.store.queries.scans import claims_by_worker
from rbv.store.queries.stats import library_stats


def library_report(db: Database, claim_lease_s: float) -> dict[str, Any]:
    """Counts per pack and the last runs (:func:`rbv.store.queries.stats.library_stats`), plus per
    pack the clustering setting in force (``setting``: with the impostor model's
    parameters; ``in_words``: without them) and how the library's same-photo pairs sit
    against it: ``above_merge_bar`` counts pairs of different people similar enough to be
    merged if they were two lone faces in separate photos (a few are chance; many mean
    the setting is too loose for this library). ``workers``: who holds claims on the
    embed queue now, and whether each one's lease (``claim_lease_s``) has lapsed."""
    with db.connect() as conn:
        report = library_stats(conn)
        report["workers"] = [asdict(w) for w in claims_by_worker(conn, claim_lease_s)]
        for row in report["packs"]:
            pack = find_pack(conn, row["pack"])
            stored = pack_settings(conn, pack.id)
            setting = resolve_setting(stored, pack_files(conn, pack.id))
            n = count_faces(conn, pack)
            pairs = same_photo_similarities(conn, pack)
            check: dict[str, Any] = {"setting": setting.describe(n),
                                     "in_words": setting.plain(n),
                                     "same_photo_pairs": len(pairs)}
            if setting.impostor is not None and len(pairs):
                bar = setting.impostor.pair_similarity(n, setting.budget or DEFAULT_BUDGET)
                check.update(merge_bar=round(bar, 3),
                             same_photo_mean=round(float(pairs.mean()), 3),
                             above_merge_bar=int((pairs >= bar).sum()))
            row["clustering"] = check
    return report


def looks_loose(check: dict[str, Any]) -> bool:
    """More same-photo pairs pass the merge bar than chance explains (a few per
    thousand)."""
    pairs = int(check.get("same_photo_pairs") or 0)
    return pairs >= 50 and int(check.get("above_merge_bar") or 0) > max(3, 0.005 * pairs)
