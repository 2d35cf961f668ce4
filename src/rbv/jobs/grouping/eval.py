"""``rbv eval``: index labelled photos (into a scratch database unless one is given),
then score every method and the Immich-style baseline on the same embeddings.

Labels name the main face of each photo (:func:`rbv.cluster.evaluation.subject_face`):
either ``<identity>/<image>`` folders or a ``labels.csv`` with ``path`` and ``identity``
columns (paths relative to the CSV).

Only the faces of photos under the evaluated folder count, so a result never depends on
what was evaluated before in the same scratch database. Each method runs with the
setting ``rbv cluster`` would use (the library's stored calibration, else rbv's built-in
one for the recognizer, else the fallback); the baseline with its own (Immich's 0.5).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.calibrations import BASELINE_THRESHOLD, known_recognizer, resolve_setting
from rbv.cluster.evaluation import (
    ALL_METHODS,
    BASELINE,
    Evaluation,
    MethodScores,
    best_of,
    plateau,
    subject_face,
)
from rbv.cluster.evidence import ImpostorModel, random_pair_similarities
from rbv.cluster.methods import Method
from rbv.config import Settings
from rbv.errors import ConfigError, RbvError
from rbv.face_rows import FacePlace, PackFaces
from rbv.faces.types import FaceAnalyzer, PackInfo
from rbv.jobs.library.index import run_index
from rbv.jobs.reporting import Reporter
from rbv.media.sniff import IMAGE_SUFFIXES
from rbv.store import Database, open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.pack_lookup import find_pack, pack_settings, update_pack_settings
from rbv.store.queries.packs import register_pack
from rbv.store.server.migrations import apply_pending


@dataclass
class EvalReport:
    pack: str
    database: str
    images: int
    labelled_faces: int
    identities: int
    photos_without_face: int
    impostor: dict[str, float]  # measured on the labelled faces
    scores: list[MethodScores] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # method → setting in words
    calibration: dict[str, list[MethodScores]] = field(default_factory=dict)
    recommended: dict[str, float] = field(default_factory=dict)
    plateaus: dict[str, tuple[float, float]] = field(default_factory=dict)
    stored: bool = False

    def best(self, method: str) -> MethodScores:
        return best_of(self.calibration[method])

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack, "database": self.database, "images": self.images,
            "labelled_faces": self.labelled_faces, "identities": self.identities,
            "photos_without_face": self.photos_without_face, "impostor": self.impostor,
            "scores": [s.as_dict() for s in self.scores], "settings": self.settings,
            "calibration": {m: [s.as_dict() for s in v] for m, v in self.calibration.items()},
            "recommended_thresholds": self.recommended,
            "plateaus": {m: list(v) for m, v in self.plateaus.items()}, "stored": self.stored,
        }


def scratch_settings(settings: Settings) -> Settings:
    """Settings for eval's own embedded database under the data directory (kept, so a
    second eval of the same photos re-uses their embeddings)."""
    return settings.with_overrides(data_dir=Path(settings.data_dir) / "eval")


def library_settings(settings: Settings, pack_name: str, *, required: bool
                     ) -> tuple[Database | None, dict[str, Any]]:
    """The library database and its stored settings for the pack (what `rbv cluster`
    reads). With ``required`` a library that is not ready is an error (before any work
    is done); without, it just means nothing is stored."""
    try:
        db = open_database(settings)
    except RbvError:
        if required:
            raise
        return None, {}
    try:
        with db.connect() as conn:
            return db, pack_settings(conn, find_pack(conn, pack_name).id)
    except RbvError:  # the library has no faces of this pack yet
        return db, {}


def run_eval(
    settings: Settings,
    folder: Path,
    analyzer: FaceAnalyzer,
    *,
    stored: dict[str, Any] | None = None,
    labels_csv: Path | None = None,
    threshold: float | None = None,
    budget: float | None = None,
    calibrate: bool = False,
    reporter: Reporter | None = None,
) -> EvalReport:
    """Index ``folder`` with ``analyzer``, cluster its faces with every method, score.

    ``stored``: the library's settings for this pack (what ``rbv cluster`` would use);
    ``threshold``/``budget`` override them for the threshold methods / evidence."""
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    labels = read_labels(folder, labels_csv)
    db: Database = open_database(settings, require_schema=False)
    apply_pending(db)
    run_index(db, settings, [folder], analyzer=analyzer, reporter=reporter)
    with db.connect() as conn:
        pack = find_pack(conn, analyzer.pack.name)
        every = load_faces(conn, pack)
        paths = faces_with_paths(conn, pack)
    inside = faces_under(paths, folder)
    faces = every.take(np.flatnonzero(np.isin(every.ids, sorted(inside))))
    truth, missing = label_main_faces(faces, [p for p in paths if p.face_id in inside], labels)
    evaluation = Evaluation(faces, truth)
    report = EvalReport(pack.name, db.display, len(labels), len(evaluation.labelled),
                        len(set(evaluation.truth.tolist())), missing,
                        evaluation.impostor.as_dict())
    stored = stored or {}
    for method in ALL_METHODS:
        value, words, model = _configured(method, stored, analyzer.pack, threshold, budget,
                                          faces)
        report.settings[method] = words
        report.scores.append(evaluation.score(method, value, model))
    if calibrate:  # the sweeps use what this library's labels say (the measured model)
        for method in ALL_METHODS:
            report.calibration[method] = evaluation.sweep(method)
            report.recommended[method] = report.best(method).threshold
            report.plateaus[method] = plateau(report.calibration[method])
    return report


def _configured(method: str, stored: dict[str, Any], pack: PackInfo, threshold: float | None,
                budget: float | None, faces: PackFaces
                ) -> tuple[float, str, ImpostorModel | None]:
    """The parameter ``rbv cluster`` would use for ``method`` here, it in words, and (for
    ``evidence``) the impostor model it would use."""
    if method == BASELINE:
        saved = (stored.get("thresholds") or {}).get(BASELINE)
        known = known_recognizer(pack.files)
        value = (threshold if threshold is not None else float(saved) if saved is not None
                 else known.thresholds.get(BASELINE, BASELINE_THRESHOLD) if known
                 else BASELINE_THRESHOLD)
        return value, f"similarity {value:.2f}", None
    as_method = Method(method)
    setting = resolve_setting(stored, pack.files, as_method,
                              threshold=threshold if as_method is not Method.evidence else None,
                              budget=budget if as_method is Method.evidence else None)
    if as_method is not Method.evidence:
        assert setting.threshold is not None
        return setting.threshold, setting.describe(), None
    if setting.impostor is None:  # unknown recognizer: estimate as `rbv cluster` would
        pairs = random_pair_similarities(faces.embeddings, faces.image_ids)
        setting = setting.with_impostor(ImpostorModel.from_library_pairs(pairs),
                                        "estimated from the evaluated faces")
    return float(setting.budget or 0.0), setting.describe(len(faces)), setting.impostor


def read_labels(folder: Path, labels_csv: Path | None = None) -> dict[Path, str]:
    """Resolved image path → identity."""
    if labels_csv is None and (folder / "labels.csv").is_file():
        labels_csv = folder / "labels.csv"
    labels: dict[Path, str] = {}
    if labels_csv is not None:
        with labels_csv.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"path", "identity"} <= set(reader.fieldnames):
                raise ConfigError(f"{labels_csv} needs the columns path and identity")
            for row in reader:
                if row["identity"].strip():
                    labels[(labels_csv.parent / row["path"]).resolve()] = row["identity"].strip()
    else:
        for path in sorted(folder.glob("*/*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                labels[path.resolve()] = path.parent.name
    if not labels:
        raise ConfigError(f"no labelled images in {folder}: expected <identity>/<image> "
                          "folders or a labels.csv with path,identity")
    return labels


def label_main_faces(faces: PackFaces, places: Iterable[FacePlace],
                     labels: Mapping[Path, str]) -> tuple[NDArray[np.object_], int]:
    """Per face row: the identity of its photo if it is the photo's subject
    (:func:`subject_face`), else None. Also returns how many labelled photos had no face
    at all."""
    of_photo: dict[Path, list[FacePlace]] = {}
    for place in places:
        p = Path(place.path).resolve()
        if p in labels:
            of_photo.setdefault(p, []).append(place)
    row_of = {f: i for i, f in enumerate(faces.ids.tolist())}
    out = np.full(len(faces), None, dtype=object)
    for p, found in of_photo.items():
        face_id = subject_face(found)
        if face_id in row_of:
            out[row_of[face_id]] = labels[p]
    return out, len(set(labels) - set(of_photo))


def faces_under(paths: list[FacePlace], folder: Path) -> set[int]:
    """Faces of photos with a path under ``folder`` (paths compared as given, and as
    resolved, so a symlinked folder or library matches either way)."""
    given = os.path.join(os.path.abspath(folder), "")
    real = os.path.join(os.path.realpath(folder), "")
    out: set[int] = set()
    for place in paths:
        absolute = os.path.abspath(place.path)
        if absolute.startswith((given, real)) or os.path.realpath(place.path).startswith(real):
            out.add(place.face_id)
    return out


def store_calibration(db: Database, pack: PackInfo, report: EvalReport, folder: Path) -> None:
    """Save what the labels measured as the pack's calibration in ``db`` (registering the
    pack there if it has no faces yet): the recognizer's impostor model (used by the
    evidence method; it transfers between libraries) and each threshold method's best
    threshold on these photos (which does not transfer: see docs/clustering.md)."""
    with db.transaction() as conn:
        row = register_pack(conn, pack.name, pack.files, pack.embedding_dim,
                            pack.folder)
        update_pack_settings(conn, row.id, {
            "impostor": {**report.impostor, "estimated": False,
                         "source": f"labelled different-person pairs of {folder}"},
            "thresholds": {m: report.recommended[m] for m in ALL_METHODS
                           if m != Method.evidence.value},
            "calibration": {"folder": str(folder), "identities": report.identities,
                            "labelled_faces": report.labelled_faces},
        })
    report.stored = True
