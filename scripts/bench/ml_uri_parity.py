"""--ml-uri parity and cost against the real Immich machine-learning server.

Installs (cached) and starts the real server from ../shared/immich/machine-learning,
serving the SFace pack as ``buffalo_l``, and runs the local analyzer and rbv's remote
one on the same decoded images in one process: all of ../shared/data/faces and
../shared/data/misc plus EXIF-3/6/8 copies of one photo. Prints faces found by each,
images whose counts differ (and whether the face lies where the local detector's input
is not padded like the server's square 640×640 input), box differences, cosine
similarity of matched faces, the embeddings' norms, the remote/local time ratio, and
the cosine cost of sending re-encoded images as JPEG q95 instead of lossless PNG.

    uv run python scripts/bench/ml_uri_parity.py [--folders ../shared/data/faces ...]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from rbv.faces.analyzer import load_analyzer
from rbv.faces.types import ImageFaces
from rbv.media.decode import decode_for_detection
from rbv.media.sniff import sniff_format
from rbv.media.types import DecodedImage
from rbv.mlapi.client import RemoteFaceAnalyzer, upright_payload
from rbv.mlapi.pool import ServerPool

# The stand-in servers are test helpers (tests/support/), not part of the rbv package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.immich_ml import (  # noqa: E402
    SERVED_NAME,
    ImmichMl,
    ensure_venv,
    match_faces,
    write_oriented_copies,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PACK = SHARED / "models" / "scrfd_sface"


def compare(mine: list[ImageFaces], theirs: list[ImageFaces], images: list[DecodedImage],
            worst: list[tuple[float, str]] | None = None
            ) -> tuple[list[float], float, list[str]]:
    """Cosines of matched faces, the largest box difference, and the images whose face
    counts differ (with the unmatched faces' scores)."""
    cosines: list[float] = []
    box_err = 0.0
    differ = []
    for image, a, b in zip(images, mine, theirs, strict=True):
        pairs = match_faces([f.bbox for f in a.faces], [f.bbox for f in b.faces])
        for i, j in pairs:
            fa, fb = a.faces[i], b.faces[j]
            box_err = max(box_err, float(np.max(np.abs(np.subtract(fa.bbox, fb.bbox)))))
            cosines.append(float(np.dot(fa.embedding, fb.embedding)))
            if worst is not None and cosines[-1] < 0.999:
                worst.append((cosines[-1], f"{image.path.name} {image.original_size} "
                              f"scale {image.scale:.2f} face {np.round(fa.bbox)} "
                              f"box diff {np.max(np.abs(np.subtract(fa.bbox, fb.bbox))):.1f}"))
        if len(pairs) != len(a.faces) or len(pairs) != len(b.faces):
            only_l = [round(f.det_score, 2) for k, f in enumerate(a.faces)
                      if k not in {i for i, _ in pairs}]
            only_r = [round(f.det_score, 2) for k, f in enumerate(b.faces)
                      if k not in {j for _, j in pairs}]
            differ.append(f"{image.path.name}: local only {only_l}, remote only {only_r}")
    return cosines, box_err, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folders", type=Path, nargs="+",
                        default=[SHARED / "data" / "faces", SHARED / "data" / "misc"],
                        help="folders of photos (searched recursively; .csv files skipped)")
    parser.add_argument("--server-source", type=Path,
                        default=SHARED / "immich" / "machine-learning")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = sorted(p for folder in args.folders for p in folder.rglob("*")
                       if p.is_file() and p.suffix != ".csv")
        paths += write_oriented_copies(SHARED / "data" / "misc" / "fr_two_people.jpg", work)
        local = load_analyzer(str(PACK), device="cpu")
        images = []
        for i, path in enumerate(paths):
            fmt = sniff_format(path.read_bytes()[:32])
            if fmt:
                images.append(decode_for_detection(path, fmt, image_id=i,
                                                   long_edge=local.decode_long_edge,
                                                   max_pixels=10**9, keep_bytes=True))
        server = ImmichMl(args.server_source, ensure_venv(args.server_source), work,
                          PACK / "det_500m.onnx",
                          PACK / "face_recognition_sface_2021dec_int8bq_ort.onnx").start()
        try:
            remote = ServerPool([RemoteFaceAnalyzer(server.url, SERVED_NAME,
                                                    min_face=local.min_face)]).start()
            local.analyze(images[0])  # warm both
            remote.analyze(images[0])
            t0 = time.perf_counter()
            mine = [local.analyze(im) for im in images]
            t_local = time.perf_counter() - t0
            local.detector.fixed_size = (640, 640)  # the server's square input
            square = [local.analyze(im) for im in images]
            local.detector.fixed_size = None
            t0 = time.perf_counter()
            theirs = [remote.analyze(im) for im in images]
            t_remote = time.perf_counter() - t0
            # The re-encoded ones again, as JPEG q95 (sent as is: no EXIF, upright).
            sent_png = [k for k, im in enumerate(images)
                        if upright_payload(im)[2] == "image/png"]
            as_jpeg = [replace(images[k], data=_jpeg(images[k].rgb)) for k in sent_png]
            jpeg_answers = [remote.analyze(im) for im in as_jpeg]
        finally:
            server.stop()
    below: list[tuple[float, str]] = []
    cosines, box_err, differ = compare(mine, theirs, images, below)
    c = np.array(cosines)
    norms = [float(np.linalg.norm(f.embedding)) for r in theirs for f in r.faces]
    print(f"server: real Immich ML ({SERVED_NAME} = {PACK.name}), embedding width "
          f"{remote.pack.embedding_dim}")
    print(f"images: {len(images)} ({len(sent_png)} sent as PNG: rotated, HEIF, PNG); "
          f"faces local {sum(len(r.faces) for r in mine)}, remote "
          f"{sum(len(r.faces) for r in theirs)}, matched {len(c)}")
    print(f"images with different face counts: {len(differ)}")
    for line in differ:
        print("   ", line)
    print(f"max |box diff| {box_err:.2f} px; cosine: min {c.min():.5f}, "
          f"{np.mean(c >= 0.999):.1%} >= 0.999, {np.mean(c >= 0.99):.1%} >= 0.99")
    for cos, what in sorted(below)[:8]:
        print(f"    cosine {cos:.4f}: {what}")
    print(f"remote embedding norms: {min(norms):.6f} .. {max(norms):.6f}")
    worst: list[tuple[float, str]] = []
    sc, sbox, sdiffer = compare(square, theirs, images, worst)
    for cos, what in sorted(worst)[:12]:
        print(f"    cosine {cos:.4f}: {what}")
    print(f"local with the server's square 640x640 detector input: {len(sdiffer)} images "
          f"with different counts, max |box diff| {sbox:.2f} px, cosine min "
          f"{min(sc):.5f}, {np.mean(np.array(sc) >= 0.999):.1%} >= 0.999")
    for line in sdiffer:
        print("   ", line)
    jc, _, jdiffer = compare([mine[k] for k in sent_png], jpeg_answers,
                             [images[k] for k in sent_png])
    pc, _, _ = compare([mine[k] for k in sent_png], [theirs[k] for k in sent_png],
                       [images[k] for k in sent_png])
    print(f"re-encoded images: PNG cosine min {min(pc):.5f} mean {np.mean(pc):.5f}; "
          f"JPEG q95 cosine min {min(jc):.5f} mean {np.mean(jc):.5f} "
          f"({len(jdiffer)} images with different counts)")
    print(f"local {len(images) / t_local:.1f} images/s, remote {len(images) / t_remote:.1f} "
          f"images/s, remote/local time ratio {t_remote / t_local:.2f}")


def _jpeg(rgb: np.ndarray) -> bytes:  # type: ignore[type-arg]
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=95)
    return out.getvalue()


if __name__ == "__main__":
    main()
