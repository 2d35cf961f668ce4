"""``enrich``: per-face quality inputs (pose, frontality, symmetry, sharpness, size),
and with an attribute model each face's estimated age and gender
(:mod:`rbv.jobs.library.estimates`).

Incremental like ``index``: only faces without a ``face_quality`` row are scored. With
only the detector's 5 landmarks (any pack) the scores are computed from stored columns,
without decoding photos (method ``5pt``). Where the pack folder holds InsightFace's
``2d106det.onnx`` / ``1k3d68.onnx``, photos are decoded, the 106/68 landmarks stored
and the pose taken from the 3-D model (method ``3d68``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rbv.errors import ImageUnreadable
from rbv.faces.attributes import AttributeModel
from rbv.faces.landmarks import LandmarkModel, pose_from_68
from rbv.faces.packs import ModelRole
from rbv.faces.pose import pose_from_5_points, pose_from_angles, sharpness
from rbv.jobs.library.estimates import fill_estimates
from rbv.jobs.recording import recorded_run
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.pixels import PhotoSource
from rbv.store import Database
from rbv.store.queries.images import photo_files
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.quality import FaceGeometry, FaceQuality, faces_to_enrich, save_quality

BATCH = 2_000
Progress = Callable[[int, int], None]


@dataclass
class EnrichSummary:
    pack: str
    faces: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    dense_models: list[str] = field(default_factory=list)
    attribute_model: str | None = None  # the age and gender model's file name
    estimated: int = 0  # faces given an age and gender by this run

    def as_dict(self) -> dict[str, object]:
        return {"pack": self.pack, "faces": self.faces, "methods": self.methods,
                "failed": self.failed, "dense_models": self.dense_models,
                "attribute_model": self.attribute_model, "estimated": self.estimated}


def score_5pt(face: FaceGeometry, pack_id: int) -> FaceQuality:
    """Quality of a face from its stored box, 5 landmarks and blur."""
    x1, y1, x2, y2 = face.bbox
    short = float(min(x2 - x1, y2 - y1))
    if face.landmarks is not None and len(face.landmarks) >= 10:
        pose = pose_from_5_points(np.asarray(face.landmarks[:10]))
        angles: tuple[float | None, float | None, float | None] = (pose.yaw, pose.pitch,
                                                                   pose.roll)
        front, sym = pose.frontality, pose.symmetry
    else:  # a face from a server that sent no landmarks: nothing to judge pose by
        angles, front, sym = (None, None, None), 0.5, 0.5
    return FaceQuality(face.id, pack_id, "5pt", *angles, front, sym, sharpness(face.blur),
                       short)


def run_enrich(db: Database, pack_name: str | None, *, redo: bool = False,
               models: dict[ModelRole, LandmarkModel] | None = None,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               progress: Progress = lambda done, total: None,
               sole_fallback: bool = False, attributes: AttributeModel | None = None,
               long_edge: int = 0) -> EnrichSummary:
    """Score every face of the pack that has no quality row yet (all with ``redo``);
    with ``attributes``, estimate the age and gender of every face that has none (its
    photos decoded at ``long_edge``, 0: whole)."""
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        todo = faces_to_enrich(conn, pack.id, redo=redo)
    summary = EnrichSummary(pack.name, dense_models=sorted(m.value for m in models or {}),
                            attribute_model=attributes.name if attributes else None)
    total = len(todo)
    with recorded_run(db, "enrich", {"pack": pack.name, "redo": redo,
                                     "dense_models": summary.dense_models,
                                     "attribute_model": summary.attribute_model}) as run:
        for start in range(0, total, BATCH):
            batch = todo[start:start + BATCH]
            with db.transaction() as conn:
                rows = [score_5pt(f, pack.id) for f in batch]
                if models:
                    source = PhotoSource(photo_files(conn), max_pixels)
                    rows = _with_dense(source, batch, rows, models, summary.failed)
                save_quality(conn, rows)
            for r in rows:
                summary.methods[r.method] = summary.methods.get(r.method, 0) + 1
            summary.faces += len(rows)
            run.counts = {"faces": summary.faces, "failed": len(summary.failed)}
            progress(summary.faces, total)
        if attributes is not None:
            summary.estimated = fill_estimates(db, pack.id, attributes,
                                               max_pixels=max_pixels, long_edge=long_edge,
                                               failed=summary.failed, progress=progress)
            run.counts = {"faces": summary.faces, "estimated": summary.estimated,
                          "failed": len(summary.failed)}
        if summary.failed:
            run.status = "partial"
    return summary


def _with_dense(source: PhotoSource, faces: Sequence[FaceGeometry], rows: list[FaceQuality],
                models: dict[ModelRole, LandmarkModel], failed: list[str]) -> list[FaceQuality]:
    out = []
    for face, row in zip(faces, rows, strict=True):
        try:
            image = source.load(face.image_id)
        except ImageUnreadable as exc:
            failed.append(str(exc))
            out.append(row)
            continue
        box = tuple(v / image.scale for v in face.bbox)
        lm106 = lm68 = None
        method, pose = row.method, None
        if ModelRole.LANDMARK_2D106 in models:
            pts = models[ModelRole.LANDMARK_2D106].predict(image.rgb, box)  # type: ignore[arg-type]
            lm106 = (pts * image.scale).ravel().tolist()
        if ModelRole.LANDMARK_3D68 in models:
            pts = models[ModelRole.LANDMARK_3D68].predict(image.rgb, box)  # type: ignore[arg-type]
            lm68 = (pts * image.scale).ravel().tolist()
            pitch, yaw, roll = pose_from_68(pts)
            pose = pose_from_angles(pitch, yaw, roll, np.asarray(face.landmarks or [0.0] * 10))
            method = "3d68"
        out.append(FaceQuality(
            row.face_id, row.pack_id, method,
            pose.yaw if pose else row.yaw, pose.pitch if pose else row.pitch,
            pose.roll if pose else row.roll, pose.frontality if pose else row.frontality,
            row.symmetry, row.sharpness, row.face_short, lm106, lm68))
    return out
