"""Immich's own face clustering beside `rbv cluster`, on the same labelled photos and
the same model pack.

Builds (cached) and starts the real Immich server (v1.135.3, ../shared/immich/server)
with the real Immich-ML server serving the pack as ``buffalo_l``, uploads every photo of
a labelled folder (``<folder>/<identity>/<photo>``, or the rows of
``<folder>/labels.csv``), waits until Immich's detection and clustering are done (its
defaults: minScore 0.7, maxDistance 0.5, minFaces 3), then indexes and clusters the same
photos with rbv (a fresh embedded database under a temporary data directory, `rbv
cluster` with its defaults). Each photo counts once, by its largest face in each
system: its cluster is that face's person, a photo with no face or a face without a
person is a cluster of its own. Prints pairwise and BCubed precision/recall/F of both,
and (``--offset-paging N``) what plain OFFSET paging of Immich's search lists at page
size N on the same library.

    uv run python scripts/bench/immich_peer.py ../shared/data/faces
    uv run python scripts/bench/immich_peer.py ../shared/data/lfw_many --limit 600
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rbv.cluster.metrics import bcubed, pairwise

# The stand-in servers are test helpers (tests/support/), not part of the rbv package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.immich_build import ensure_build  # noqa: E402
from tests.support.immich_ml import ImmichMl, ensure_venv  # noqa: E402
from tests.support.immich_real import RealImmich  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PACK = SHARED / "models" / "scrfd_sface"


def labelled(folder: Path, limit: int | None) -> list[tuple[Path, str]]:
    labels = folder / "labels.csv"
    if labels.is_file():
        with labels.open() as f:
            rows = [(folder / r["path"], r["identity"]) for r in csv.DictReader(f)]
    else:
        rows = [(p, d.name) for d in sorted(folder.iterdir()) if d.is_dir()
                for p in sorted(d.iterdir()) if p.is_file()]
    rows = [(p, who) for p, who in rows if p.suffix.lower() != ".heic"]  # Immich can't
    return rows[:limit] if limit else rows


def immich_clusters(immich: RealImmich, assets: dict[str, Path]) -> dict[Path, str]:
    out: dict[Path, str] = {}
    for asset, path in assets.items():
        faces = immich.faces(asset)
        if faces:
            big = max(faces, key=lambda f: (f["boundingBoxX2"] - f["boundingBoxX1"])
                      * (f["boundingBoxY2"] - f["boundingBoxY1"]))
            if big.get("person"):
                out[path] = big["person"]["id"]
    return out


def rbv_clusters(photos: list[Path], workdir: Path) -> dict[Path, str]:
    env = {**os.environ, "RBV_DATA_DIR": str(workdir / "rbv-data"), "RBV_MODEL_PACK": str(PACK),
           "DATABASE_URL": "", "RBV_DATABASE_URL": ""}
    links = workdir / "photos"
    links.mkdir()
    for n, photo in enumerate(photos):  # one folder, each photo once (names may repeat)
        (links / f"{n:05d}{photo.suffix}").symlink_to(photo)
    for args in (["migrate"], ["index", str(links)], ["cluster"]):
        done = subprocess.run(["rbv", *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"rbv {' '.join(args)} failed: {done.stderr[-1500:]}")
    sql = ("SELECT DISTINCT ON (p.path) p.path, f.person_id FROM face_detections f "
           "JOIN image_paths p ON p.image_id = f.image_id ORDER BY p.path, f.face_short DESC")
    done = subprocess.run(["rbv", "psql", "-c", f"COPY ({sql}) TO STDOUT"], env=env,
                          capture_output=True, text=True, check=True)
    out: dict[Path, str] = {}
    for line in done.stdout.splitlines():
        path, person = line.split("\t")
        if person != r"\N":
            out[photos[int(Path(path).stem)]] = person
    return out


def scores(clusters: dict[Path, str], rows: list[tuple[Path, str]]) -> str:
    predicted = [clusters.get(p, f"alone:{n}") for n, (p, _) in enumerate(rows)]
    truth = [who for _, who in rows]
    pw, bc = pairwise(predicted, truth), bcubed(predicted, truth)
    return (f"pairwise P {pw.precision:.3f} R {pw.recall:.3f} F {pw.f1:.3f} | "
            f"BCubed P {bc.precision:.3f} R {bc.recall:.3f} F {bc.f1:.3f} | "
            f"{len(set(clusters.values()))} people, {len(clusters)}/{len(rows)} photos placed")


def offset_paging(immich: RealImmich, size: int, total: int) -> str:
    seen: list[str] = []
    page: int | None = 1
    while page is not None:
        body = immich.post("/search/metadata", {"type": "IMAGE", "page": page, "size": size,
                                                "order": "asc"})["assets"]
        seen.extend(a["id"] for a in body["items"])
        page = int(body["nextPage"]) if body["nextPage"] else None
    distinct = len(set(seen))
    return (f"OFFSET paging at size {size}: {len(seen)} listed, {distinct} distinct, "
            f"{total - distinct} of {total} never listed, {len(seen) - distinct} twice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    parser.add_argument("--tied", action="store_true",
                        help="upload every photo with one fileCreatedAt (files without dates)")
    parser.add_argument("--offset-paging", type=int, default=0, metavar="N")
    args = parser.parse_args()
    rows = labelled(args.folder, args.limit)
    started = time.monotonic()
    server_dir = ensure_build(SHARED / "immich" / "server")
    ml_source = SHARED / "immich" / "machine-learning"
    recognizer = next(p for p in sorted(PACK.glob("*.onnx")) if p.name != "det_500m.onnx")
    with tempfile.TemporaryDirectory(prefix="immich-peer-") as tmp:
        work = Path(tmp)
        ml = ImmichMl(ml_source, ensure_venv(ml_source), work / "ml", PACK / "det_500m.onnx",
                      recognizer).start()
        immich = RealImmich(server_dir, work / "immich", ml.url)
        try:
            immich.start()
            print(f"servers up in {time.monotonic() - started:.0f} s", flush=True)
            t = time.monotonic()
            stamp = "2024-01-15T14:30:00.000Z" if args.tied else None
            assets = {immich.upload(p, stamp): p for p, _ in rows}
            immich.wait_for_jobs(timeout_s=7200)
            print(f"Immich: {len(rows)} photos uploaded, detected and clustered in "
                  f"{time.monotonic() - t:.0f} s", flush=True)
            ours = immich_clusters(immich, assets)
            if args.offset_paging:
                print(offset_paging(immich, args.offset_paging, immich.image_count()))
        finally:
            immich.stop()
            ml.stop()
        t = time.monotonic()
        theirs_rbv = rbv_clusters([p for p, _ in rows], work)
        print(f"rbv: indexed and clustered in {time.monotonic() - t:.0f} s")
    print(f"{args.folder} ({len(rows)} photos, {len({w for _, w in rows})} identities)")
    print(f"  Immich (defaults)  {scores(ours, rows)}")
    print(f"  rbv cluster        {scores(theirs_rbv, rows)}")


if __name__ == "__main__":
    main()
