"""``rbv eval``: index labelled photos (into a scratch database unless one is given),
then score every method and the Immich-style baseline on the same embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbv.cluster.evaluation import (
    ALL_METHODS,
    DEFAULT_GRID,
    Evaluation,
    MethodScores,
    best_of,
    label_main_faces,
    read_labels,
)
from rbv.cluster.methods import Method, resolve_threshold
from rbv.config import Settings
from rbv.errors import ConfigError
from rbv.faces.types import FaceAnalyzer, PackInfo
from rbv.jobs.index import run_index
from rbv.jobs.reporting import Reporter
from rbv.store import Database, open_database
from rbv.store.assignments import faces_with_paths, load_faces
from rbv.store.migrations import apply_pending
from rbv.store.pack_lookup import find_pack, pack_settings, update_pack_settings
from rbv.store.packs import register_pack


@dataclass
class EvalReport:
    pack: str
    database: str
    images: int
    labelled_faces: int
    identities: int
    photos_without_face: int
    scores: list[MethodScores] = field(default_factory=list)
    calibration: dict[str, list[MethodScores]] = field(default_factory=dict)
    recommended: dict[str, float] = field(default_factory=dict)
    stored: bool = False

    def best(self, method: str) -> MethodScores:
        return best_of(self.calibration[method])

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack, "database": self.database, "images": self.images,
            "labelled_faces": self.labelled_faces, "identities": self.identities,
            "photos_without_face": self.photos_without_face,
            "scores": [s.as_dict() for s in self.scores],
            "calibration": {m: [s.as_dict() for s in v] for m, v in self.calibration.items()},
            "recommended_thresholds": self.recommended, "stored": self.stored,
        }


def scratch_settings(settings: Settings) -> Settings:
    """Settings for eval's own embedded database under the data directory (kept, so a
    second eval of the same photos re-uses their embeddings)."""
    return settings.with_overrides(data_dir=Path(settings.data_dir) / "eval")


def run_eval(
    settings: Settings,
    folder: Path,
    analyzer: FaceAnalyzer,
    *,
    labels_csv: Path | None = None,
    threshold: float | None = None,
    calibrate: bool = False,
    reporter: Reporter | None = None,
) -> EvalReport:
    """Index ``folder`` with ``analyzer``, cluster with every method, score."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    labels = read_labels(folder, labels_csv)
    db: Database = open_database(settings, require_schema=False)
    apply_pending(db)
    run_index(db, settings, [folder], analyzer=analyzer, reporter=reporter)
    with db.connect() as conn:
        pack = find_pack(conn, analyzer.pack.name)
        faces = load_faces(conn, pack)
        truth, missing = label_main_faces(faces, faces_with_paths(conn, pack), labels)
        stored_settings = pack_settings(conn, pack.id)
    evaluation = Evaluation(faces, truth)
    report = EvalReport(pack.name, db.display, len(labels), len(evaluation.labelled),
                        len(set(evaluation.truth.tolist())), missing)
    for method in ALL_METHODS:
        as_method = Method(method) if method in Method.__members__ else Method.connected
        t, _ = resolve_threshold(stored_settings, as_method, threshold)
        report.scores.append(evaluation.score(method, t))
    if calibrate:
        for method in ALL_METHODS:
            report.calibration[method] = evaluation.sweep(method, DEFAULT_GRID)
            report.recommended[method] = report.best(method).threshold
    return report


def store_thresholds(db: Database, pack: PackInfo, report: EvalReport, folder: Path) -> None:
    """Save the recommended thresholds as the pack's calibrated defaults in ``db``
    (registering the pack there if it has no faces yet)."""
    with db.transaction() as conn:
        row = register_pack(conn, pack.name, pack.files, pack.embedding_dim)
        update_pack_settings(conn, row.id, {
            "thresholds": {m.value: report.recommended[m.value] for m in Method},
            "calibration": {"folder": str(folder), "identities": report.identities,
                            "labelled_faces": report.labelled_faces},
        })
    report.stored = True
