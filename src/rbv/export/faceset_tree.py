"""Writing ``refine``'s output tree: ``OUT/faceset_NNN/face_<id>.jpg`` and the manifest."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rbv.cluster.refine_run import MANIFEST_NAME, RefineReport
from rbv.errors import ImageUnreadable
from rbv.export.pixels import PhotoSource, square_crop
from rbv.store import Database
from rbv.store.facesets import FaceFacts, first_paths

PREVIEW_SIZE = 256
PREVIEW_PAD = 0.5
_FOLDER = re.compile(r"^faceset_\d{3,}$")


def write_tree(db: Database, report: RefineReport, facts: FaceFacts, out: Path, *,
               crops: bool = True, max_pixels: int = 200_000_000,
               advance: Callable[[int], None] = lambda n: None) -> list[str]:
    """Write each faceset's folder (crops unless ``crops`` is False) and the manifest;
    folders of facesets that are no longer active are removed. Returns problems (photos
    that could not be read; their crops are missing, the manifest still lists them)."""
    out.mkdir(parents=True, exist_ok=True)
    active = {fs.folder for fs in report.facesets}
    for old in out.iterdir():
        if old.is_dir() and _FOLDER.match(old.name) and old.name not in active:
            shutil.rmtree(old)
    row_of = {int(f): i for i, f in enumerate(facts.ids.tolist())}
    problems: list[str] = []
    with db.connect() as conn:
        paths = first_paths(conn, facts.image_ids.tolist())
        source = PhotoSource(conn, max_pixels)
        sets: list[dict[str, Any]] = []
        for fs in report.facesets:
            folder = out / fs.folder
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            rows = sorted((row_of[f] for f in fs.face_ids),
                          key=lambda r: (int(facts.image_ids[r]), int(facts.ids[r])))
            faces = []
            for r in rows:
                face_id, image_id = int(facts.ids[r]), int(facts.image_ids[r])
                entry = {"id": face_id, "image_id": image_id, "path": paths.get(image_id),
                         "bbox": [round(float(v), 1) for v in facts.boxes[r]],
                         "det_score": round(float(facts.det_score[r]), 4),
                         "face_short": round(float(facts.face_short[r]), 1),
                         "blur": None if np.isnan(facts.blur[r])
                         else round(float(facts.blur[r]), 2)}
                if crops:
                    try:
                        image = source.load(image_id)
                        crop = square_crop(image, tuple(facts.boxes[r]), PREVIEW_PAD,  # type: ignore[arg-type]
                                           PREVIEW_SIZE)
                        name = f"face_{face_id}.jpg"
                        Image.fromarray(crop).save(folder / name, quality=92)
                        entry["file"] = f"{fs.folder}/{name}"
                    except ImageUnreadable as exc:
                        problems.append(str(exc))
                faces.append(entry)
                advance(1)
            sets.append({"number": fs.number, "folder": fs.folder,
                         "person_id": str(fs.person_id) if fs.person_id else None,
                         "name": fs.person_name, "images": fs.image_count,
                         "new": fs.new, "faces": faces})
    manifest = {"pack": report.pack, "run_id": report.run_id, "dry_run": report.dry_run,
                "params": report.params, "counts": report.counts,
                "retired": report.retired, "facesets": sets}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return problems
