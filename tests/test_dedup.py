"""`rbv dedup` on a generated set of real photos: byte copies, re-encodes, resizes and
small crops must group with their source; different photos of one person must not."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rbv.config import Settings
from rbv.jobs.library.dedup import group_pairs
from rbv.jobs.library.index import run_index
from rbv.media.phash import hamming, pairwise_within, phash
from rbv.store import open_database
from tests.conftest import FACES, SHARED, run_cli

pytestmark = pytest.mark.slow  # ~11 s: indexes near-duplicate photos

FAMILY = SHARED / "data" / "family" / "faces"

SOURCES = [FACES / "Mindy_Kaling", FACES / "Jerry_Seinfeld", FACES / "Madonna"]


def _generate(folder: Path) -> dict[str, str]:
    """Variants of 2 photos per person plus 2 more photos per person left alone;
    returns file name → the source it came from."""
    truth: dict[str, str] = {}
    for person in SOURCES:
        photos = sorted(person.iterdir())
        for src in photos[:2]:
            key = f"{person.name}_{src.stem}"
            im = Image.open(src).convert("RGB")
            w, h = im.size
            shutil.copy(src, folder / f"{key}_orig.jpg")
            im.save(folder / f"{key}_q35.jpg", quality=35)
            im.resize((w // 2, h // 2)).save(folder / f"{key}_half.jpg", quality=90)
            im.crop((int(0.06 * w), int(0.06 * h), int(0.94 * w), int(0.94 * h))).save(
                folder / f"{key}_crop6.jpg", quality=90)
            im.crop((int(0.1 * w), int(0.1 * h), w, h)).save(folder / f"{key}_crop10.png")
            for suffix in ("orig.jpg", "q35.jpg", "half.jpg", "crop6.jpg", "crop10.png"):
                truth[f"{key}_{suffix}"] = key
        for src in photos[2:4]:  # other photos of the same person: no duplicates
            name = f"{person.name}_{src.stem}_other.jpg"
            shutil.copy(src, folder / name)
            truth[name] = name
    (folder / "copies").mkdir()
    first = next(iter(truth))
    shutil.copy(folder / first, folder / "copies" / first)  # byte-identical copy
    return truth


def test_dedup_precision_and_recall_on_generated_set(cli, settings: Settings, tmp_path: Path,
                                                     sface_analyzer) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    truth = _generate(folder)
    run_index(open_database(settings), settings, [folder], analyzer=sface_analyzer)

    result = run_cli(cli, "-d", str(settings.database_url), "dedup", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    assert len(report["exact"]) == 1
    assert sorted(Path(p).name for p in report["exact"][0]["paths"]) == [next(iter(truth))] * 2

    predicted = set()
    for group in report["near"]:
        names = sorted(Path(p).name for p in group["paths"])
        predicted |= set(itertools.combinations(names, 2))
    expected = {(a, b) for a, b in itertools.combinations(sorted(truth), 2)
                if truth[a] == truth[b]}
    true_positive = len(predicted & expected)
    precision = true_positive / max(1, len(predicted))
    recall = true_positive / len(expected)
    print(f"dedup on {len(truth)} generated photos: precision {precision:.3f}, "
          f"recall {recall:.3f} ({true_positive}/{len(expected)} pairs)")
    assert precision == 1.0  # different photos of one person never group
    assert recall >= 0.9

    again = json.loads(run_cli(cli, "-d", str(settings.database_url), "dedup",
                               "--json").stdout)
    assert again["hashed"] == 0 and again["near"] == report["near"]  # hashes are stored


def test_phash_and_pairwise_scan_agree() -> None:
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(5)]
    hashes = np.array([phash(im) for im in images] + [phash(images[0][2:, 2:])], np.int64)
    found = {(i, j): d for i, j, d in pairwise_within(hashes, 64, block=2)}
    for i, j in itertools.combinations(range(len(hashes)), 2):
        assert found[(i, j)] == hamming(int(hashes[i]), int(hashes[j]))
    assert hamming(int(hashes[0]), int(hashes[5])) < 16 < hamming(int(hashes[0]),
                                                                 int(hashes[1]))


def test_photos_on_a_plain_border_group_only_with_their_own_copies(
        cli, settings: Settings, tmp_path: Path) -> None:
    """data/family's photos are small faces on one grey: their hashes describe the
    grey, and 79 photos of different people made one group. Now a group holds one
    person's photos only, and a resized or recompressed copy still joins its source."""
    copies = tmp_path / "copies"
    copies.mkdir()
    person = {str(p): p.parent.name for p in FAMILY.glob("*/*.png")}
    sources = sorted(FAMILY.glob("lag_*/young__*"))[::40][:3]
    for src in sources:
        im = Image.open(src).convert("RGB")
        w, h = im.size
        for name, copy in ((f"{src.stem}_small.jpg", im.resize((w * 3 // 4, h * 3 // 4))),
                           (f"{src.stem}_q60.jpg", im)):
            copy.save(copies / name, quality=60)
            person[str(copies / name)] = src.parent.name
    run_index(open_database(settings), settings, [FAMILY, copies])  # catalogue only

    report = json.loads(run_cli(cli, "-d", str(settings.database_url), "dedup",
                                "--json").stdout)
    assert report["images"] == len(person)
    for group in report["near"]:  # never two people in one group
        assert len({person[p] for p in group["paths"]}) == 1, group["paths"]
    for src in sources:
        mine = {str(src), str(copies / f"{src.stem}_small.jpg"),
                str(copies / f"{src.stem}_q60.jpg")}
        assert any(mine <= set(g["paths"]) for g in report["near"]), src.name


def test_a_group_is_confirmed_pair_by_pair_never_chained() -> None:
    """1~2 and 2~3 are confirmed pairs but 1 and 3 fail the second check: 3 is not
    dragged into 1's group through 2; a candidate pair that fails is no link at all."""
    confirmed = {(1, 2), (2, 3), (4, 5), (4, 6), (5, 6)}
    groups = group_pairs([(1, 2, False), (2, 3, False), (3, 7, False), (4, 5, True),
                          (5, 6, False)],
                         lambda a, b: (min(a, b), max(a, b)) in confirmed,
                         lambda a, b: abs(a - b))
    assert groups == [([1, 2], 1, False), ([4, 5, 6], 2, True)]
