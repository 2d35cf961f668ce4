"""The media layer on real photos: type by content, EXIF, orientation, decoding,
discovery of galleries/chunks/roots."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from rbv.errors import ImageTooLarge, ImageUnreadable
from rbv.media.decode import decode_for_detection, probe_image, to_rgb
from rbv.media.discovery import FoundFile, PathFilter, WalkProblem, discover
from rbv.media.hashing import digest_file
from rbv.media.sniff import sniff_format
from tests.conftest import FACES, MISC, SHARED

MANIFEST = {row["path"]: row for row in
            csv.DictReader((SHARED / "data" / "manifest.csv").read_text().splitlines())}


def _format_of(path: Path) -> str:
    fmt = sniff_format(digest_file(path).head)
    assert fmt is not None, path
    return fmt


@pytest.mark.parametrize("rel", [
    "misc/insightface_rotate_rot_90.jpg",  # PNG named .jpg
    "misc/immich_IMG_2682.heic",
    "misc/fr_32bit.png",
    "misc/immich_portrait-orientation-6.jpg",
    "faces/Alex_Lacamoire/fr_alex-lacamoire.png",
])
def test_type_and_oriented_size_come_from_content_and_match_the_manifest(rel: str) -> None:
    path = SHARED / "data" / rel
    expected = MANIFEST[rel]
    probe = probe_image(path, _format_of(path), max_pixels=10**9)
    assert probe.format == expected["format"]
    assert (probe.width, probe.height) == (int(expected["width"]), int(expected["height"]))
    if expected["exif_orientation"]:
        assert probe.exif.orientation == int(expected["exif_orientation"])


def test_every_photo_in_the_manifest_sniffs_as_its_real_format() -> None:
    for rel, row in MANIFEST.items():
        assert _format_of(SHARED / "data" / rel) == row["format"], rel


def test_exif_gps_capture_time_and_camera_on_real_files() -> None:
    springs = probe_image(MISC / "immich_thompson-springs.jpg", "JPEG", 10**9).exif
    # 39° 6' 54" N, 108° 24' 3.486" W, 1483.9 m
    assert springs.gps_lat == pytest.approx(39.115, abs=1e-6)
    assert springs.gps_lon == pytest.approx(-(108 + 24 / 60 + 3.486 / 3600), abs=1e-6)
    assert springs.gps_alt == pytest.approx(1483.9)
    iphone = probe_image(MISC / "immich_IMG_2682.heic", "HEIF", 10**9).exif
    assert iphone.taken_at is not None and iphone.taken_at.isoformat() == "2019-03-21T11:04:22"
    assert (iphone.camera_make, iphone.camera_model) == ("Apple", "iPhone 7")
    assert iphone.gps_lat == pytest.approx(41 + 13 / 60 + 13.08 / 3600, abs=1e-6)
    assert iphone.gps_lon is not None and iphone.gps_lon < 0  # West
    assert iphone.raw["0th"]["Model"] == "iPhone 7"
    canon = probe_image(MISC / "immich_prairie_falcon.jpg", "JPEG", 10**9).exif
    assert canon.camera_model == "Canon EOS R5"
    import json
    json.dumps(canon.raw, allow_nan=False)  # stored as jsonb: must be plain JSON


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data))


def _small_png(path: Path, **save: object) -> Path:
    """One photo as a 120×90 PNG."""
    photo = FACES / "Barack_Obama" / sorted(os.listdir(FACES / "Barack_Obama"))[0]
    with Image.open(photo) as im:
        im.convert("RGB").resize((120, 90)).save(path, **save)
    return path


def _png_with_metadata_after_pixels(path: Path, kind: bytes, data: bytes) -> Path:
    """A PNG of one photo with a metadata chunk put after its pixel data (before IEND),
    where some writers put it."""
    body = _small_png(path).read_bytes()
    assert body.endswith(_png_chunk(b"IEND", b""))
    path.write_bytes(body[:-12] + _png_chunk(kind, data) + body[-12:])
    return path


def test_a_pngs_exif_is_read_before_or_after_its_pixels_and_they_are_decoded_only_if_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow finds a PNG's metadata after its pixels only by decoding them; rbv reads the
    chunk headers first and decodes only where something is there: what it reads is what
    Pillow reads after decoding."""
    from PIL import PngImagePlugin

    exif = Image.Exif()
    exif[0x0112] = 6  # turned: stored 120×90, shown 90×120
    exif[0x0132] = "2011:06:05 10:11:12"
    tiff = exif.tobytes()  # "II*\0…", as an eXIf chunk holds it
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
           '1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/'
           'tiff/1.0/" tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    before = _small_png(tmp_path / "before.png", exif=exif)
    after = _png_with_metadata_after_pixels(tmp_path / "after.png", b"eXIf", tiff)
    text = _png_with_metadata_after_pixels(tmp_path / "xmp.png", b"iTXt",
                                           b"XML:com.adobe.xmp\0\0\0\0\0" + xmp.encode())
    plain = tmp_path / "plain.png"
    Image.open(after).save(plain)
    loads: list[str] = []
    real_load = PngImagePlugin.PngImageFile.load

    def counted(self: PngImagePlugin.PngImageFile):  # type: ignore[no-untyped-def]
        loads.append(Path(self.filename).name)
        return real_load(self)

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", counted)
    got = {p.name: probe_image(p, "PNG", 10**9) for p in (before, after, text, plain)}

    for name in ("before.png", "after.png"):
        assert (got[name].width, got[name].height) == (90, 120)
        assert got[name].exif.orientation == 6
        assert got[name].exif.taken_at is not None
        assert got[name].exif.taken_at.isoformat() == "2011-06-05T10:11:12"
    assert got["xmp.png"].exif.orientation == 8
    assert (got["plain.png"].width, got["plain.png"].height) == (120, 90)
    assert got["plain.png"].exif.orientation is None and got["plain.png"].exif.raw == {}
    assert sorted(loads) == ["after.png", "xmp.png"]  # the pixels, to reach what follows
    with Image.open(after) as pillow:  # what Pillow itself reads, having decoded them
        assert pillow.getexif()[0x0112] == 6


def test_decoding_turns_exif_rotated_photos_upright() -> None:
    rotated = decode_for_detection(MISC / "immich_portrait-orientation-6.jpg", "JPEG",
                                   image_id=1, long_edge=2000, max_pixels=10**9)
    upright = decode_for_detection(MISC / "immich_portrait.jpg", "JPEG", image_id=2,
                                   long_edge=2000, max_pixels=10**9)
    assert rotated.rgb.shape == upright.rgb.shape == (700, 840, 3)
    assert rotated.original_size == (840, 700)
    # Same photo: the EXIF-rotated one decodes to (nearly) the same pixels.
    diff = np.abs(rotated.rgb.astype(int) - upright.rgb.astype(int)).mean()
    assert diff < 20


def test_big_jpegs_decode_at_reduced_size_with_a_scale_back_to_the_original() -> None:
    shop = MISC / "immich_japanese-shop.jpg"  # 4217 × 2817
    image = decode_for_detection(shop, "JPEG", image_id=1, long_edge=1000, max_pixels=10**9,
                                 keep_bytes=True)
    h, w, _ = image.rgb.shape
    assert 1000 <= max(w, h) < 2 * 1000 + 8
    assert image.original_size == (4217, 2817)
    assert image.scale == pytest.approx(4217 / w, rel=1e-6)
    assert image.data == shop.read_bytes()
    assert image.rgb.dtype == np.uint8 and image.rgb.flags["C_CONTIGUOUS"]


def test_alpha_palette_and_16_bit_images_become_8_bit_rgb(tmp_path: Path) -> None:
    rgba = decode_for_detection(MISC / "fr_32bit.png", "PNG", image_id=1, long_edge=2000,
                                max_pixels=10**9)
    assert rgba.rgb.shape == (1200, 626, 3)
    deep = Image.fromarray(np.full((8, 8), 65535 // 2, dtype=np.uint16))
    grey = to_rgb(deep)
    assert grey.shape == (8, 8, 3) and 120 <= int(grey[0, 0, 0]) <= 135
    palette = Image.new("P", (4, 4), 3)
    assert to_rgb(palette).shape == (4, 4, 3)


def test_pixel_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 400 MP, a few KB on disk
    with pytest.raises(ImageTooLarge, match="400 megapixels.*RBV_MAX_IMAGE_PIXELS"):
        probe_image(bomb, "PNG", max_pixels=200_000_000)


def test_truncated_jpeg_fails_to_decode_with_a_clear_reason(tmp_path: Path) -> None:
    cut = tmp_path / "cut.jpg"
    data = (MISC / "fr_two_people.jpg").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageUnreadable, match="truncated"):
        decode_for_detection(cut, "JPEG", image_id=1, long_edge=640, max_pixels=10**9)


def _pillow_reference(path: Path, long_edge: int) -> np.ndarray:
    """Upright RGB as rbv decoded every JPEG before OpenCV: Pillow draft mode, EXIF
    transpose, integer reduction."""
    with Image.open(path) as im:
        w, h = im.size
        if max(w, h) > long_edge:
            r = long_edge / max(w, h)
            im.draft("RGB", (int(np.ceil(w * r)), int(np.ceil(h * r))))
        im.load()
        up = ImageOps.exif_transpose(im)
        factor = max(up.size) // long_edge
        return np.asarray((up.reduce(factor) if factor >= 2 else up).convert("RGB"))


def test_jpegs_are_decoded_by_opencv_with_exactly_pillows_pixels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The faster decoder of `rbv embed` changes no pixel: big photos (DCT-scaled), every
    EXIF orientation, greyscale; a file cut short still fails as truncated."""
    import cv2

    calls: list[int] = []
    imdecode = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda *a: calls.append(1) or imdecode(*a))
    photo = Image.open(MISC / "fr_two_people.jpg").convert("RGB")
    paths = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        size = (4100, 2900) if orientation % 2 else photo.size  # big ones: 1/2 scale
        photo.resize(size).save(path, exif=exif, quality=90)
        paths.append(path)
    photo.convert("L").save(tmp_path / "grey.jpg")
    paths += [tmp_path / "grey.jpg", FACES / "Barack_Obama" / "fr_obama.jpg"]
    for path in paths:
        for long_edge in (1920, 640):
            got = decode_for_detection(path, "JPEG", image_id=1, long_edge=long_edge,
                                       max_pixels=10**9)
            assert np.array_equal(got.rgb, _pillow_reference(path, long_edge)), path
    assert len(calls) == 2 * len(paths)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(paths[0].read_bytes()[:-5000])
    with pytest.raises(ImageUnreadable, match="truncated"):
        decode_for_detection(cut, "JPEG", image_id=1, long_edge=640, max_pixels=10**9)


def _tree(root: Path) -> None:
    """root/chunk/{gallery with tn/, loose folder}, plus a loop and a gallery at top."""
    photo = (FACES / "Barack_Obama" / "fr_obama.jpg").read_bytes()
    gallery = root / "chunk1" / "g1"
    (gallery / "tn").mkdir(parents=True)
    (gallery / "index.json").write_text("{}")
    (gallery / "a.jpg").write_bytes(photo)
    (gallery / "tn" / "a.jpg").write_bytes(photo)
    (gallery / "sub").mkdir()
    (gallery / "sub" / "b.jpg").write_bytes(photo)
    loose = root / "chunk1" / "loose"
    loose.mkdir()
    (loose / "c.jpg").write_bytes(photo)
    (loose / "notes.txt").write_text("x")
    os.symlink(root, loose / "back_to_root")  # a symlink loop


def test_discovery_finds_galleries_skips_thumbnails_and_reports_loops(tmp_path: Path) -> None:
    _tree(tmp_path)
    items = list(discover([tmp_path]))
    files = {f.path.relative_to(tmp_path).as_posix(): f for f in items
             if isinstance(f, FoundFile)}
    problems = [p for p in items if isinstance(p, WalkProblem)]
    assert set(files) == {"chunk1/g1/a.jpg", "chunk1/g1/sub/b.jpg", "chunk1/loose/c.jpg",
                          "chunk1/g1/index.json", "chunk1/loose/notes.txt"}
    assert files["chunk1/g1/a.jpg"].gallery == tmp_path / "chunk1" / "g1"
    assert files["chunk1/g1/sub/b.jpg"].gallery == tmp_path / "chunk1" / "g1"
    assert files["chunk1/loose/c.jpg"].gallery is None
    assert len(problems) == 1 and "symlink loop" in problems[0].reason
    # The same tree named as a gallery, a chunk or a root gives the same photos.
    for target in (tmp_path / "chunk1" / "g1", tmp_path / "chunk1"):
        found = {f.path for f in discover([target]) if isinstance(f, FoundFile)}
        assert all("/tn/" not in str(p) for p in found)
        assert tmp_path / "chunk1" / "g1" / "a.jpg" in found


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    _tree(tmp_path)
    only_jpg = PathFilter(include=["*.jpg"], exclude=["*/loose"])
    names = {f.path.name for f in discover([tmp_path], only_jpg) if isinstance(f, FoundFile)}
    assert names == {"a.jpg", "b.jpg"}


def test_missing_target_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    items = list(discover([tmp_path / "nope", MISC / "fr_two_people.jpg"]))
    assert isinstance(items[0], WalkProblem) and "No such file" in items[0].reason
    assert isinstance(items[1], FoundFile)


@pytest.mark.parametrize("fmt,mode,suffix", [
    ("WEBP", "RGB", ".jpg"), ("TIFF", "RGB", ".tif"), ("BMP", "RGB", ".bmp"),
    ("GIF", "P", ".gif"), ("PNG", "I;16", ".png"), ("PNG", "LA", ".png"),
    ("JPEG", "CMYK", ".jpeg"),
])
def test_every_supported_format_and_mode_decodes_to_8_bit_rgb(
    tmp_path: Path, fmt: str, mode: str, suffix: str
) -> None:
    source = Image.open(FACES / "Barack_Obama" / "fr_obama.jpg").convert("RGB")
    source = source.resize((120, 90))
    if mode == "I;16":  # 16-bit grey, full range
        image = Image.fromarray(np.asarray(source.convert("L"), np.uint16) * 257)
    else:
        image = source.convert("L").convert(mode) if mode == "LA" else source.convert(mode)
    path = tmp_path / f"photo{suffix}"
    image.save(path, format=fmt)
    assert _format_of(path) == fmt
    probe = probe_image(path, fmt, max_pixels=10**9)
    assert (probe.width, probe.height) == (120, 90)
    decoded = decode_for_detection(path, fmt, image_id=1, long_edge=640, max_pixels=10**9)
    assert decoded.rgb.shape == (90, 120, 3) and decoded.rgb.dtype == np.uint8
    # The picture survives the conversion (not blank, not saturated).
    assert 40 < decoded.rgb.mean() < 215
