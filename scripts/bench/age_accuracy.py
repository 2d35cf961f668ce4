"""How right the attribute model's ages and genders are on a labelled set (issue 64),
as ``rbv index --attribute-model`` stores them, and how fast the model runs.

    uv run python scripts/bench/age_accuracy.py                       # the family set
    uv run python scripts/bench/age_accuracy.py ../shared/data/family --json
    uv run python scripts/bench/age_accuracy.py --data /tmp/rbv-review-effort-family-974bccfaa3

FOLDER (default ``../shared/data/family``) holds the photos and ``labels.csv`` (``path``
relative to FOLDER, ``identity``, ``age_group`` young/adult, ``role``
father/mother/son/daughter). Without ``--data`` the folder is indexed with ``--pack``
and ``--model`` into a scratch data folder under /tmp (kept: a second run only reads
it); with ``--data DIR`` (a library indexed already) the faces without an estimate are
estimated first, as ``rbv enrich`` does. Each labelled photo is taken by its largest
face. Printed:

- young vs adult: over every pair of a ``young`` and an ``adult`` photo of one
  identity, the share whose young photo is estimated younger (the issue's target:
  at least 90 %); the same per identity, averaged;
- the median estimated age of each age group, and of each role;
- gender: the share of photos with a role whose face reads as the role's gender
  (father/son male, mother/daughter female), per role;
- speed: faces/s of the attribute model on the labelled faces' crops (224²), against
  the pack's recognizer on the same faces' aligned crops (the ratio: how much an
  estimate costs beside the embedding every face has), best of three runs each.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from rbv.config import Settings
from rbv.faces.alignment import align_face
from rbv.faces.analyzer import DECODE_FACTOR, load_analyzer
from rbv.faces.attributes import tight_crop
from rbv.jobs.library.analyzer import (
    load_attribute_model,
    load_face_analyzer,
    with_inference_workers,
)
from rbv.jobs.library.estimates import fill_estimates
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.server.migrations import apply_pending

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
MALE_ROLES = {"father": "male", "son": "male", "mother": "female", "daughter": "female"}


def scratch(folder: Path, pack: str, model: Path) -> Path:
    key = hashlib.sha256(f"{folder.resolve()}|{pack}|{model}".encode()).hexdigest()[:10]
    return Path("/tmp") / f"rbv-age-accuracy-{folder.name}-{key}"


def index_or_fill(folder: Path, data: Path | None, pack: str, model: Path) -> Settings:
    """The library's settings, after indexing FOLDER (no ``data``) or estimating the
    faces of ``data`` that have no estimate."""
    settings = Settings(data_dir=data or scratch(folder, pack, model), model_pack=pack,
                        attribute_model=model, device="cpu")
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    attributes = load_attribute_model(settings)
    assert attributes is not None
    if data is None:
        run_index(db, settings, [folder], analyzer=load_face_analyzer(
            with_inference_workers(settings)), attributes=attributes)
    with db.connect() as conn:
        pack_id = find_pack(conn, None, sole_fallback=True).id
    failed: list[str] = []
    fill_estimates(db, pack_id, attributes, max_pixels=settings.max_image_pixels,
                   long_edge=DECODE_FACTOR * settings.det_size, failed=failed)
    for line in failed:
        print(f"unreadable: {line}", file=sys.stderr)
    return settings


def largest_faces(settings: Settings) -> dict[str, tuple]:  # type: ignore[type-arg]
    """Resolved photo path -> (age, gender, box, landmarks) of its largest face."""
    db = open_database(settings)
    with db.connect() as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT ON (f.image_id) p.path, a.age, a.gender,
                   ARRAY[f.x1, f.y1, f.x2, f.y2], f.landmarks
            FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id
            JOIN face_attributes a ON a.face_id = f.id
            ORDER BY f.image_id, (f.x2 - f.x1) * (f.y2 - f.y1) DESC
            """).fetchall()
    return {str(Path(r[0]).resolve()): (float(r[1]), r[2], tuple(r[3]), r[4]) for r in rows}


def accuracy(labels: list[dict[str, str]], faces: dict[str, tuple]) -> dict[str, object]:  # type: ignore[type-arg]
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_group: dict[str, list[float]] = defaultdict(list)
    by_role: dict[str, list[float]] = defaultdict(list)
    gender: dict[str, list[bool]] = defaultdict(list)
    for row in labels:
        face = faces.get(row["resolved"])
        if face is None:
            continue
        age, said = face[0], face[1]
        if row["age_group"] in ("young", "adult"):
            groups[row["identity"]][row["age_group"]].append(age)
            by_group[row["age_group"]].append(age)
        if row["role"] in MALE_ROLES:
            by_role[row["role"]].append(age)
            gender[row["role"]].append(said == MALE_ROLES[row["role"]])
    right = total = 0
    per_identity = []
    for ages in groups.values():
        pairs = [(y, a) for y in ages["young"] for a in ages["adult"]]
        if pairs:
            ok = sum(y < a for y, a in pairs)
            right, total = right + ok, total + len(pairs)
            per_identity.append(ok / len(pairs))
    every = [v for values in gender.values() for v in values]
    return {
        "labelled_photos_with_a_face": sum(r["resolved"] in faces for r in labels),
        "young_adult_pairs": total, "ordered_right": right / total if total else None,
        "identities": len(per_identity),
        "per_identity_mean": statistics.fmean(per_identity) if per_identity else None,
        "median_age": {g: statistics.median(v) for g, v in {**by_group, **by_role}.items()},
        "gender_right": sum(every) / len(every) if every else None,
        "gender_right_by_role": {r: f"{sum(v)}/{len(v)}" for r, v in gender.items()},
    }


def speed(settings: Settings, faces: dict[str, tuple], pack: str) -> dict[str, float]:  # type: ignore[type-arg]
    """Faces/s of the attribute model and of the pack's recognizer on the same faces."""
    attributes = load_attribute_model(settings)
    analyzer = load_analyzer(pack, device="cpu")
    assert attributes is not None
    crops, aligned = [], []
    for path, (_, _, box, landmarks) in faces.items():
        rgb = np.asarray(Image.open(path).convert("RGB"))
        crop = tight_crop(rgb, box)
        if crop is None or landmarks is None:
            continue
        crops.append(crop)
        aligned.append(align_face(rgb, np.asarray(landmarks, np.float32).reshape(5, 2),
                                  analyzer.recognizer.input_size))

    def best(run: object) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()  # type: ignore[operator]
            times.append(time.perf_counter() - start)
        return len(crops) / min(times)

    model = best(lambda: attributes.estimate_crops(crops))
    recognizer = best(lambda: analyzer.recognizer.embed(aligned))
    return {"faces": len(crops), "attribute_faces_per_s": model,
            "recognizer_faces_per_s": recognizer, "ratio": model / recognizer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=SHARED / "data" / "family")
    parser.add_argument("--data", type=Path, help="a data folder indexed already")
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--model", type=Path,
                        default=SHARED / "models" / "extra" / "faceres_age_gender.onnx")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with (args.folder / "labels.csv").open() as stream:
        labels = list(csv.DictReader(stream))
    for row in labels:
        row["resolved"] = str((args.folder / row["path"]).resolve())
    started = time.perf_counter()
    settings = index_or_fill(args.folder, args.data, args.pack, args.model)
    seconds = time.perf_counter() - started
    faces = largest_faces(settings)
    report = {"data": str(settings.data_dir), "index_s": round(seconds, 1),
              **accuracy(labels, faces), **speed(settings, faces, args.pack)}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"library {report['data']} ({report['index_s']} s to index / estimate)")
    print(f"labelled photos with a face: {report['labelled_photos_with_a_face']} of "
          f"{len(labels)}")
    if report["ordered_right"] is not None:
        print(f"young vs adult of one identity: {report['ordered_right']:.1%} of "
              f"{report['young_adult_pairs']} pairs ordered right; per identity "
              f"{report['per_identity_mean']:.1%} ({report['identities']} identities)")
    medians = report["median_age"]
    assert isinstance(medians, dict)
    print("median estimated age: " + ", ".join(f"{g} {a:.1f}" for g, a in medians.items()))
    if report["gender_right"] is not None:
        print(f"gender right: {report['gender_right']:.1%} "
              f"({', '.join(f'{r} {v}' for r, v in report['gender_right_by_role'].items())})")  # type: ignore[union-attr]
    print(f"speed on {report['faces']} faces: attribute model "
          f"{report['attribute_faces_per_s']:.0f} faces/s, recognizer "
          f"{report['recognizer_faces_per_s']:.0f} faces/s (ratio {report['ratio']:.2f})")


if __name__ == "__main__":
    main()
