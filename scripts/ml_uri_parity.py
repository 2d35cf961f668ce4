"""--ml-uri parity and cost on all of ../shared/data/faces.

Runs the local analyzer and the remote one (the test Immich-ML server on 127.0.0.1,
which runs the same pack through rbv's face engine) on the same decoded images in one
process, and prints: faces found by each, the largest box and embedding differences,
and the remote/local time ratio (the protocol's overhead: multipart upload, JSON
embeddings as strings, a second decode on the server).

    uv run python scripts/ml_uri_parity.py [--faces ../shared/data/faces]
        [--pack ../shared/models/scrfd_sface]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from rbv.faces.analyzer import load_analyzer
from rbv.media.decode import decode_for_detection
from rbv.media.sniff import sniff_format
from rbv.mlapi.client import RemoteFaceAnalyzer
from rbv.testing.ml_server import FakeInference

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=SHARED / "data" / "faces",
                        help="folder of photos (searched recursively; .csv files skipped)")
    parser.add_argument("--pack", type=Path, default=SHARED / "models" / "scrfd_sface",
                        help="model pack run locally and by the fake server; its folder "
                        "name is the model name the client asks for")
    args = parser.parse_args()
    local = load_analyzer(str(args.pack), device="cpu")
    server = FakeInference(args.pack, model=args.pack.name).start()
    remote = RemoteFaceAnalyzer(server.url, args.pack.name)
    paths = sorted(p for p in args.faces.rglob("*") if p.is_file() and p.suffix != ".csv")
    images = []
    for i, path in enumerate(paths):
        fmt = sniff_format(path.read_bytes()[:32])
        if fmt:
            images.append(decode_for_detection(path, fmt, image_id=i,
                                               long_edge=local.decode_long_edge,
                                               max_pixels=10**9, keep_bytes=True))
    local.analyze(images[0])  # warm both
    remote.analyze(images[0])
    t0 = time.perf_counter()
    mine = [local.analyze(im) for im in images]
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = [remote.analyze(im) for im in images]
    t_remote = time.perf_counter() - t0
    server.stop()
    box_err = emb_err = 0.0
    mismatched = 0
    for a, b in zip(mine, theirs, strict=True):
        if len(a.faces) != len(b.faces):
            mismatched += 1
            continue
        for fa, fb in zip(sorted(a.faces, key=lambda f: f.bbox),
                          sorted(b.faces, key=lambda f: f.bbox), strict=True):
            box_err = max(box_err, float(np.max(np.abs(np.subtract(fa.bbox, fb.bbox)))))
            emb_err = max(emb_err, float(np.max(np.abs(fa.embedding - fb.embedding))))
    print(f"images: {len(images)}; faces local {sum(len(r.faces) for r in mine)}, "
          f"remote {sum(len(r.faces) for r in theirs)}; images with different face counts: "
          f"{mismatched}")
    print(f"max |box diff| {box_err:.2e} px, max |embedding diff| {emb_err:.2e}")
    print(f"local {len(images) / t_local:.1f} images/s, remote {len(images) / t_remote:.1f} "
          f"images/s, remote/local time ratio {t_remote / t_local:.2f}")


if __name__ == "__main__":
    main()
