"""The per-image cost of the image-data hash (issue 29) against what `rbv index` already
pays for a new or changed file, in the same process, on real photos.

For each format (JPEG and PNG from ../shared/data, HEIC from data/misc, WebP and TIFF
made from the JPEGs in a scratch folder) it times, best of --repeat:

- `catalogue read`: today's read of a new file (streaming sha256, type sniffing, header
  and EXIF probe), the baseline;
- `image hash`: `rbv.media.image_data.image_data_hash` alone (the file in the page
  cache, as it is right after the sha256 pass);
- `embed`: decode + detect + embed with the test pack on one CPU thread (JPEG only
  unless --embed-all), the other cost a new photo brings.

An unchanged file (same size and mtime) is never read by a re-run, so the nightly
rescan itself (scripts/bench/bench_index_rescan.py) pays nothing per image; the first index
after the upgrade reads each photo once to record its hash.

    uv run python scripts/bench/bench_image_hash.py
    uv run python scripts/bench/bench_image_hash.py --photos 40 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from rbv.media.decode import decode_for_detection, probe_image
from rbv.media.hashing import digest_file
from rbv.media.image_data import image_data_hash
from rbv.media.sniff import sniff_format

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PACK = SHARED / "models" / "scrfd_sface"
MAX_PIXELS = 200_000_000


def _best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def _photos(scratch: Path, count: int) -> dict[str, list[Path]]:
    jpegs = sorted((SHARED / "data" / "faces").rglob("*.jpg"))[:count]
    pngs = sorted((SHARED / "data").rglob("*.png"))[:count]
    heics = sorted((SHARED / "data" / "misc").glob("*.heic"))[:count]
    webps, tiffs = [], []
    for i, jpeg in enumerate(jpegs[: max(1, count // 2)]):
        with Image.open(jpeg) as im:
            im.save(scratch / f"{i}.webp", quality=90)
            im.save(scratch / f"{i}.tif")
        webps.append(scratch / f"{i}.webp")
        tiffs.append(scratch / f"{i}.tif")
    return {"JPEG": jpegs, "PNG": pngs, "HEIF": heics, "WEBP": webps, "TIFF": tiffs}


def _reader(photo: Path) -> Callable[[], object]:
    """What cataloguing a new file cost before the image-data hash."""
    def read() -> object:
        digest = digest_file(photo)
        fmt = sniff_format(digest.head)
        assert fmt is not None
        return probe_image(photo, fmt, MAX_PIXELS)
    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20, help="photos per format at most")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--embed-all", action="store_true",
                        help="time embed for every format, not only JPEG")
    args = parser.parse_args()
    from rbv.faces.analyzer import load_analyzer

    analyzer = load_analyzer(str(PACK), device="cpu")
    print(f"{'format':6} {'n':>3} {'catalogue read':>15} {'image hash':>11} {'ratio':>6} "
          f"{'embed':>9} {'hash/embed':>10}")
    with tempfile.TemporaryDirectory() as scratch:
        for fmt, photos in _photos(Path(scratch), args.photos).items():
            reads, hashes, embeds = [], [], []
            for photo in photos:
                kind = sniff_format(photo.read_bytes()[:32])
                if kind is None:
                    continue
                read = _reader(photo)
                read()  # warm the page cache and the decoders
                reads.append(_best(read, args.repeat))
                hashes.append(_best(lambda p=photo, k=kind: image_data_hash(p, k, MAX_PIXELS),
                                    args.repeat))
                if fmt == "JPEG" or args.embed_all:
                    def embed(p: Path = photo, k: str = kind) -> object:
                        image = decode_for_detection(p, k, image_id=0, max_pixels=MAX_PIXELS,
                                                     long_edge=analyzer.decode_long_edge)
                        return analyzer.analyze(image)
                    embeds.append(_best(embed, 1))
            if not reads:
                continue
            read_ms = statistics.median(reads) * 1e3
            hash_ms = statistics.median(hashes) * 1e3
            embed_ms = statistics.median(embeds) * 1e3 if embeds else float("nan")
            print(f"{fmt:6} {len(reads):3d} {read_ms:12.2f} ms {hash_ms:8.2f} ms "
                  f"{hash_ms / read_ms:6.2f} {embed_ms:6.1f} ms {hash_ms / embed_ms:10.3f}")


if __name__ == "__main__":
    main()
