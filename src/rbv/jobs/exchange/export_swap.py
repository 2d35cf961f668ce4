"""``export-swap``: per identity, ranked single-face PNG crops and ``.fsz`` bundles for
face-swap tools (roop-unleashed loads a ``.fsz``: a plain zip of ``0.png, 1.png, …``
and averages every face it finds in them, hence one face per PNG).

Per faceset of a refine manifest: the faces of its main person only (a faceset is one
person: faces ``rbv cluster``'s evidence rule puts in another are left out, as refine
leaves them out; an older or edited manifest may list them) → tight outlier gate (faces
less than ``outlier_similarity`` alike to the centroid, cosine, drop out) → faces
with short edge ≥ ``min_face`` → visual duplicates collapsed (photos whose perceptual
hashes are within ``dup_bits``; the best-scoring face stays) → rank by the composite
score → square crop (pad, out size) → re-detect: exactly one face, else a tighter crop
is tried once and the face is dropped if that still shows more or fewer than one.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from rbv.bounds import BIGINT_MAX
from rbv.cluster.centroids import centroid, nearest_centroid, recentred_members, similarities
from rbv.cluster.knn import normalize
from rbv.cluster.refine import RefineParams
from rbv.errors import ConfigError, ImageUnreadable, Remedy, printable, writing
from rbv.faces.pose import size_score
from rbv.faces.types import FaceAnalyzer
from rbv.jobs.grouping.people import library_people, one_person
from rbv.jobs.library.dedup import DedupParams, hash_new_images, near_groups
from rbv.jobs.library.enrich import run_enrich
from rbv.jobs.out_lock import write_atomically, writing_folder
from rbv.jobs.recording import recorded_run
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.pixels import PhotoSource, square_crop
from rbv.store import Database
from rbv.store.queries.facesets import (
    FaceFacts,
    first_paths,
    load_face_facts,
    person_names,
    rejected_pairs,
)
from rbv.store.queries.images import photo_files
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.quality import FaceQuality, quality_of

WEIGHTS = {"frontality": 0.30, "det_score": 0.20, "symmetry": 0.20, "size": 0.15,
           "sharpness": 0.15}
TRIM_PAD = 0.2
"""A crop that shows a second face is retried once this tight around the face."""
REDETECT_THRESHOLD = 0.5


@dataclass(frozen=True)
class SwapParams:
    """Closeness is cosine similarity to the identity's centroid."""

    top: int = 30
    outlier_similarity: float = 0.55
    pad: float = 0.5
    size: int = 512
    min_face: float = 100.0
    dup_bits: int = 10
    candidates: bool = False
    candidate_similarity: float = 0.45
    candidate_min_score: float = 0.40


def composite_score(q: FaceQuality | None, det_score: float, face_short: float
                    ) -> dict[str, float]:
    """The score's components (each in [0, 1]) and ``score`` =
    0.30·frontality + 0.20·det_score + 0.20·symmetry + 0.15·size + 0.15·sharpness.
    A face not enriched yet scores 0.5 on the pose terms."""
    parts = {
        "frontality": q.frontality if q else 0.5,
        "det_score": float(min(1.0, max(0.0, det_score))),
        "symmetry": q.symmetry if q else 0.5,
        "size": size_score(face_short),
        "sharpness": q.sharpness if q and q.sharpness is not None else 0.5,
    }
    parts = {k: round(float(v), 4) for k, v in parts.items()}
    parts["score"] = round(sum(WEIGHTS[k] * parts[k] for k in WEIGHTS), 4)
    return parts


@dataclass
class Ranked:
    face_id: int
    image_id: int
    bbox: tuple[float, float, float, float]
    parts: dict[str, float]
    similarity: float  # to the identity's centroid


@dataclass
class SetResult:
    folder: str
    name: str | None
    faces_in: int
    person_id: uuid.UUID | None = None
    rejected: int = 0  # faces the user said are not this person
    other_person: int = 0  # faces of another person than most of the set's
    outliers: int = 0
    too_small: int = 0
    duplicates: int = 0
    dropped: list[dict[str, Any]] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"faceset": self.folder, "name": self.name, "faces_in": self.faces_in,
                "rejected": self.rejected, "other_person": self.other_person,
                "outliers": self.outliers, "too_small": self.too_small,
                "duplicates": self.duplicates, "dropped": len(self.dropped),
                "written": len(self.written), "candidates": len(self.candidates)}


def read_manifest(path: Path) -> dict[str, Any]:
    """A refine manifest, checked; :class:`ConfigError` for one that is not (or lists
    no faceset: there is nothing to export)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the refine manifest {path}: {exc}",
                          remedies=_REFINE) from None
    if not isinstance(manifest, dict) or "facesets" not in manifest:
        raise ConfigError(f"{path} is not a refine manifest (no 'facesets')", remedies=_REFINE)
    if not isinstance(manifest["facesets"], list):
        raise ConfigError(f"{path}: 'facesets' must be a list", remedies=_REFINE_AGAIN)
    if manifest.get("pack") is not None and not isinstance(manifest["pack"], str):
        raise ConfigError(f"{path}: 'pack' must be a model pack name")
    if not manifest["facesets"]:  # said before any model is loaded or folder written
        raise ConfigError(f"{path} lists no faceset (the refine that wrote it made none: "
                          "its output says why); nothing to export")
    manifest["facesets"] = [_checked_faceset(path, i, fs)
                            for i, fs in enumerate(manifest["facesets"])]
    return manifest


_REFINE = (Remedy("refine_manifest", {}, "make one"),)
_REFINE_AGAIN = (Remedy("refine_again", {}, "make it again"),)
_SAFE_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _checked_faceset(path: Path, index: int, fs: Any) -> dict[str, Any]:
    """One faceset entry, checked: the manifest is outside data, and its ``folder`` names
    where files are written and deleted, so it must be one plain folder name."""
    where = f"{path}: faceset #{index + 1}"
    if not isinstance(fs, dict):
        raise ConfigError(f"{where} is not an object", remedies=_REFINE_AGAIN)
    folder = fs.get("folder")
    if not isinstance(folder, str) or not _SAFE_FOLDER.fullmatch(folder) or ".." in folder:
        raise ConfigError(f"{where}: folder {printable(repr(folder))} is not a plain folder "
                          "name (letters, digits, _ . -); nothing was written")
    faces = fs.get("faces")
    if not isinstance(faces, list):
        raise ConfigError(f"{where} ({folder}) has no 'faces' list")
    ids = []
    for face in faces:
        face_id = face.get("id") if isinstance(face, dict) else None
        if isinstance(face_id, bool) or not isinstance(face_id, int) or \
                not 0 < face_id <= BIGINT_MAX:
            raise ConfigError(f"{where} ({folder}): face id {printable(repr(face_id))} is "
                              "not a positive integer")
        ids.append(face_id)
    name = fs.get("name")
    person = fs.get("person_id")
    if person is not None:
        try:
            person = uuid.UUID(str(person))
        except ValueError:
            raise ConfigError(f"{where} ({folder}): person_id {printable(repr(person))} is "
                              "not a person id", remedies=_REFINE_AGAIN) from None
    return {"folder": folder, "name": name if isinstance(name, str) else None,
            "person_id": person, "faces": [{"id": i} for i in ids]}



def near_duplicate_groups(db: Database, pack_name: str, dup_bits: int,
                          max_pixels: int) -> dict[int, int]:
    """image id → its near-duplicate group (as ``rbv dedup`` finds them), for images
    that have near-duplicates."""
    hash_new_images(db, max_pixels)
    _, groups = near_groups(db, pack_name, DedupParams(strong_bits=dup_bits), max_pixels)
    return {image: g for g, (members, _, _) in enumerate(groups) for image in members}


def rank_faces(facts: FaceFacts, quality: dict[int, FaceQuality], params: SwapParams,
               duplicate_of: dict[int, int]) -> tuple[list[Ranked], dict[str, int]]:
    """Gate, collapse duplicates and rank one identity's faces (best first)."""
    counts = {"outliers": 0, "too_small": 0, "duplicates": 0}
    if len(facts) == 0:
        return [], counts
    x = normalize(facts.embeddings)
    (_, keep), centre = recentred_members(
        x, [params.outlier_similarity, params.outlier_similarity], nested=False)
    counts["outliers"] = int((~keep).sum())
    ranked = []
    for i in np.flatnonzero(keep).tolist():
        if facts.face_short[i] < params.min_face:
            counts["too_small"] += 1
            continue
        fid = int(facts.ids[i])
        ranked.append(Ranked(fid, int(facts.image_ids[i]),
                             tuple(float(v) for v in facts.boxes[i]),  # type: ignore[arg-type]
                             composite_score(quality.get(fid), float(facts.det_score[i]),
                                             float(facts.face_short[i])),
                             round(float(similarities(x[i:i + 1], centre)[0]), 4)))
    ranked.sort(key=lambda r: (-r.parts["score"], r.face_id))
    unique: list[Ranked] = []
    seen: set[int] = set()
    for r in ranked:  # best first, so the kept face of a duplicate group is its best
        group = duplicate_of.get(r.image_id)
        if group is not None and group in seen:
            counts["duplicates"] += 1
            continue
        if group is not None:
            seen.add(group)
        unique.append(r)
    return unique, counts


def single_face_crop(image: Any, bbox: tuple[float, float, float, float], params: SwapParams,
                     analyzer: FaceAnalyzer) -> tuple[NDArray[np.uint8] | None, str]:
    """The crop if the analyzer finds exactly one face in it (trying a tighter crop
    once when it finds more), with what happened: ok | trimmed | no face | N faces."""
    for pad, outcome in ((params.pad, "ok"), (min(params.pad, TRIM_PAD), "trimmed")):
        crop = square_crop(image, bbox, pad, params.size)
        found = analyzer.count_faces(crop, REDETECT_THRESHOLD)
        if found == 1:
            return crop, outcome
        if found == 0:
            return None, "no face"
        if pad <= TRIM_PAD:
            break
    return None, f"{found} faces"


def export_swap(db: Database, manifest_path: Path, out: Path, analyzer: FaceAnalyzer,
                params: SwapParams, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                advance: Callable[[int], None] = lambda n: None) -> list[SetResult]:
    """Write every faceset of the manifest under ``out`` (see the module doc)."""
    manifest = read_manifest(manifest_path)
    with writing_folder(out, "export-swap"), recorded_run(db, "export-swap", {
            "manifest": str(manifest_path), "out": str(out), **asdict(params)}) as run:
        results = export_sets(db, manifest, str(manifest_path), out, analyzer, params,
                              max_pixels=max_pixels, advance=advance)
        run.counts = {"facesets": len(results),
                      "written": sum(len(r.written) for r in results)}
        return results


def export_sets(db: Database, manifest: dict[str, Any], origin: str, out: Path,
                analyzer: FaceAnalyzer, params: SwapParams, *, max_pixels: int,
                advance: Callable[[int], None], keep_others: bool = False
                ) -> list[SetResult]:
    """Write the facesets of a checked ``manifest`` (from ``origin``) under ``out``.
    With ``keep_others`` the folders and manifest entries of facesets not in it stay as
    they are (new facesets are added beside earlier ones); without, ``out`` then holds
    exactly these. The caller holds ``out``'s lock and records the run."""
    if keep_others:
        for fs in manifest["facesets"]:
            shutil.rmtree(out / "_candidates" / fs["folder"], ignore_errors=True)
    else:
        shutil.rmtree(out / "_candidates", ignore_errors=True)  # a re-run replaces them
    with db.connect() as conn:
        pack = find_pack(conn, manifest.get("pack"), sole_fallback=True)
    run_enrich(db, pack.name)  # quality of faces indexed since the last `rbv enrich`
    results: list[SetResult] = []
    centroids: list[tuple[SetResult, NDArray[np.float32]]] = []
    listed: set[int] = set()
    duplicate_of = near_duplicate_groups(db, pack.name, params.dup_bits, max_pixels)
    split_named = RefineParams.recorded(manifest.get("params")).split_named
    with db.connect() as conn:
        person_of = library_people(conn, pack, split_named=split_named)
        source = PhotoSource(photo_files(conn), max_pixels)
        rejected = rejected_pairs(conn, pack.id)
        names = person_names(conn, [fs["person_id"] for fs in manifest["facesets"]
                                    if fs["person_id"]])
        for fs in manifest["facesets"]:
            person = fs["person_id"]
            ids = [int(f["id"]) for f in fs["faces"]]
            listed.update(ids)
            # "not this person" said since refine wrote the manifest still counts, and
            # the person's name now (renamed since, say) names the set
            kept = [f for f in ids if (f, person) not in rejected]
            alike = one_person(kept, person_of)
            facts = load_face_facts(conn, pack, face_ids=alike, skip_hidden=False)
            result = SetResult(fs["folder"], names.get(person, fs.get("name")),
                               len(facts) + len(ids) - len(alike), person,
                               rejected=len(ids) - len(kept),
                               other_person=len(kept) - len(alike))
            ranked, counts = rank_faces(facts, quality_of(conn, ids), params, duplicate_of)
            result.outliers, result.too_small = counts["outliers"], counts["too_small"]
            result.duplicates = counts["duplicates"]
            _write_set(out / fs["folder"], ranked, result, source, analyzer, params, advance)
            if len(facts):
                centroids.append((result, centroid(normalize(facts.embeddings))))
            results.append(result)
        if params.candidates and centroids:
            _rescue(conn, pack, out, listed, centroids, source, analyzer, params, rejected)
        paths = first_paths(conn, [int(w["image_id"]) for r in results
                                   for w in r.written + r.candidates])
    for r in results:
        for w in r.written + r.candidates:
            w["path"] = paths.get(int(w["image_id"]))
        folder = out / r.folder
        folder.mkdir(parents=True, exist_ok=True)
        with writing(folder / "manifest.json"):
            (folder / "manifest.json").write_text(json.dumps(
                {**r.summary(), "faces": r.written, "dropped_faces": r.dropped,
                 "candidates": r.candidates, "weights": WEIGHTS}, indent=2) + "\n")
    entries = [r.summary() | {name: f"{r.folder}/{bundle.name}" if r.written else None
                              for name, bundle in _bundles(out / r.folder, params).items()}
               for r in results]
    mine = {r.folder for r in results}
    earlier = [e for e in _earlier_entries(out / "manifest.json")
               if e.get("faceset") not in mine]
    if not keep_others:  # a refine manifest's run keeps only what `rbv discover` added
        earlier = [e for e in earlier if _discovered(out, e.get("faceset"))]
    entries = earlier + entries
    write_atomically(out / "manifest.json", json.dumps(
        {"pack": pack.name, "refine_manifest": origin,
         "params": params.__dict__, "weights": WEIGHTS, "facesets": entries},
        indent=2) + "\n")
    return results


def _discovered(out: Path, folder: Any) -> bool:
    """Whether ``folder`` (a listing's entry: checked, not trusted) is a faceset folder
    of ``out`` that `rbv discover` wrote (it leaves a provenance marker there)."""
    return isinstance(folder, str) and re.fullmatch(r"faceset_\d+", folder) is not None \
        and (out / folder / "provenance.json").is_file()


def _earlier_entries(path: Path) -> list[dict[str, Any]]:
    """The faceset entries of an earlier top-level manifest (none if there is none or
    it cannot be read: it is only a listing, the folders are what counts)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    entries = earlier.get("facesets") if isinstance(earlier, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _write_set(folder: Path, ranked: Sequence[Ranked], result: SetResult, source: PhotoSource,
               analyzer: FaceAnalyzer, params: SwapParams,
               advance: Callable[[int], None]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    files: list[Path] = []
    for r in ranked:
        advance(1)
        try:
            image = source.load(r.image_id)
        except ImageUnreadable as exc:
            result.dropped.append({"face_id": r.face_id, "reason": str(exc)})
            continue
        crop, outcome = single_face_crop(image, r.bbox, params, analyzer)
        if crop is None:
            result.dropped.append({"face_id": r.face_id, "reason": outcome})
            continue
        path = folder / f"{len(files)}.png"
        with writing(path):
            Image.fromarray(crop).save(path)
        files.append(path)
        result.written.append({"rank": len(files) - 1, "file": path.name, "face_id": r.face_id,
                               "image_id": r.image_id, "similarity": r.similarity,
                               "crop": outcome, **r.parts})
    bundles = _bundles(folder, params)
    if not files:  # an empty zip is no faceset: none, and none left from a run before
        for bundle in bundles.values():
            bundle.unlink(missing_ok=True)
        return
    _zip(bundles["top"], files[:params.top])
    _zip(bundles["all"], files)


def _bundles(folder: Path, params: SwapParams) -> dict[str, Path]:
    """The .fsz bundles of a faceset's folder: its best ``params.top`` faces, all."""
    return {"top": folder / f"{folder.name}_top{params.top}.fsz",
            "all": folder / f"{folder.name}_all.fsz"}


def _zip(path: Path, files: Sequence[Path]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # a killed run leaves no half bundle
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for i, f in enumerate(files):
            z.write(f, f"{i}.png")
    tmp.replace(path)


def _rescue(conn: Any, pack: Any, out: Path, listed: set[int],
            centroids: list[tuple[SetResult, NDArray[np.float32]]], source: PhotoSource,
            analyzer: FaceAnalyzer, params: SwapParams,
            rejected: set[tuple[int, uuid.UUID]]) -> None:
    """Faces in no faceset at least ``candidate_similarity`` alike to an identity that score
    at least ``candidate_min_score`` → ``out/_candidates/<faceset>/`` for review (never
    a face rejected from the faceset's person)."""
    others = load_face_facts(conn, pack)
    rows = np.array([i for i, f in enumerate(others.ids.tolist()) if f not in listed], np.int64)
    if len(rows) == 0:
        return
    others = others.take(rows)
    best, sim = nearest_centroid(normalize(others.embeddings),
                                 np.stack([c for _, c in centroids]))
    quality = quality_of(conn, others.ids.tolist())
    for i in range(len(others)):
        j = int(best[i])
        if sim[i] < params.candidate_similarity or others.face_short[i] < params.min_face:
            continue
        fid = int(others.ids[i])
        parts = composite_score(quality.get(fid), float(others.det_score[i]),
                                float(others.face_short[i]))
        if parts["score"] < params.candidate_min_score:
            continue
        result = centroids[j][0]
        if (fid, result.person_id) in rejected:
            continue
        try:
            image = source.load(int(others.image_ids[i]))
        except ImageUnreadable:
            continue
        crop, outcome = single_face_crop(image, tuple(float(v) for v in others.boxes[i]),  # type: ignore[arg-type]
                                         params, analyzer)
        if crop is None:
            continue
        folder = out / "_candidates" / result.folder
        folder.mkdir(parents=True, exist_ok=True)
        with writing(folder / f"face_{fid}.png"):
            Image.fromarray(crop).save(folder / f"face_{fid}.png")
        result.candidates.append({"file": f"_candidates/{result.folder}/face_{fid}.png",
                                  "face_id": fid, "image_id": int(others.image_ids[i]),
                                  "similarity": round(float(sim[i]), 4), "crop": outcome,
                                  **parts})
