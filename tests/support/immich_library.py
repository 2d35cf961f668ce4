"""A realistic Immich library built from the real photos in ``../shared/data``.

Face boxes come from a real detector (SCRFD from the test pack, as Immich's own ML
would find them), computed on the upright original and reported the way Immich does:
in the pixels of a smaller upright preview. Each asset also carries its *truth*
(no face / only small faces / has a big face), decided from the boxes in original
pixels, so a client that scales preview boxes wrongly gets different counts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

PREVIEW_LONG_EDGE = 720
MIN_FACE = 90.0
_BORDER = 4.0  # photos whose largest face is this close to MIN_FACE are left out


@dataclass
class FakeAsset:
    id: str
    original_path: str
    file_name: str
    data: bytes
    stored_size: tuple[int, int]  # as stored in the file (before EXIF orientation)
    orientation: int | None
    preview_size: tuple[int, int]
    preview_faces: list[tuple[int, int, int, int]]
    largest_face_original: float  # short edge in upright-original pixels
    face_ids: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha1_b64(self) -> str:
        return base64.b64encode(hashlib.sha1(self.data).digest()).decode()

    @property
    def truth(self) -> str:
        if not self.preview_faces:
            return "no_face"
        return "small_face" if self.largest_face_original < MIN_FACE else "big_face"


class Detector:
    """SCRFD from the real test pack, run as Immich would (min score 0.7)."""

    def __init__(self, pack: Path) -> None:
        import onnxruntime as ort
        from insightface.model_zoo.scrfd import SCRFD

        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = str(pack / "det_500m.onnx")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        with warnings.catch_warnings():  # insightface asks for CUDA, then falls back
            warnings.simplefilter("ignore", UserWarning)
            self._model = SCRFD(model_file=path, session=session)
            self._model.prepare(ctx_id=-1, input_size=(480, 480), det_thresh=0.7)

    def boxes(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        det, _ = self._model.detect(np.ascontiguousarray(rgb[:, :, ::-1]))
        return [(float(d[0]), float(d[1]), float(d[2]), float(d[3])) for d in det]


def _asset_id(n: int) -> str:
    return str(uuid.UUID(int=(0xA55E7 << 100) | n))


Box = tuple[int, int, int, int]
Description = tuple[tuple[int, int], int | None, tuple[int, int], list[Box], float]


def _describe(data: bytes, detector: Detector) -> Description:
    """(stored size, EXIF orientation, preview size, boxes in preview pixels, short edge
    of the largest face in upright-original pixels)."""
    with Image.open(io.BytesIO(data)) as im:
        stored = im.size
        orientation = im.getexif().get(0x0112)
        full = stored[::-1] if orientation in (5, 6, 7, 8) else stored
        im.draft("RGB", (max(1, stored[0] // 2), max(1, stored[1] // 2)))  # JPEG: cheap
        upright = ImageOps.exif_transpose(im).convert("RGB")
    w, h = full
    scale = min(1.0, PREVIEW_LONG_EDGE / max(w, h))
    preview = (max(1, round(w * scale)), max(1, round(h * scale)))
    k = w / upright.width  # detection ran on a reduced decode: back to full pixels
    boxes = [(x1 * k, y1 * k, x2 * k, y2 * k)
             for x1, y1, x2, y2 in detector.boxes(np.asarray(upright))]
    shorts = [min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes]
    sx, sy = preview[0] / w, preview[1] / h
    preview_faces = [(round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy))
                     for x1, y1, x2, y2 in boxes]
    return stored, orientation if orientation in range(1, 9) else None, preview, \
        preview_faces, max(shorts, default=0.0)


def build_library(shared: Path, pack: Path, *, duplicates: int = 6,
                  small_copies: int = 12) -> list[FakeAsset]:
    """~220 assets: the 200 labelled photos, a few misc ones (EXIF rotation, no faces),
    small-face copies (real photos shrunk) and byte-duplicates under other paths."""
    detector = Detector(pack)
    sources = sorted((shared / "data" / "faces").rglob("*.*"))
    sources = [p for p in sources if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    misc = shared / "data" / "misc"
    sources += [misc / n for n in (
        "immich_portrait-orientation-6.jpg", "insightface_bulk_image_T1.jpeg",
        "immich_thompson-springs.jpg", "insightface_crop_no_face.png",
        "insightface_bulk_view.jpg", "immich_prairie_falcon.jpg")]
    assets: list[FakeAsset] = []

    def add(data: bytes, rel: str) -> FakeAsset | None:
        stored, orientation, preview, faces, largest = _describe(data, detector)
        if faces and abs(largest - MIN_FACE) < _BORDER:
            return None
        asset = FakeAsset(
            id=_asset_id(len(assets) + 1),
            original_path=f"/usr/src/app/upload/library/admin/{rel}",
            file_name=rel.rsplit("/", 1)[-1], data=data, stored_size=stored,
            orientation=orientation, preview_size=preview, preview_faces=faces,
            largest_face_original=largest,
        )
        asset.face_ids = [str(uuid.uuid5(uuid.UUID(asset.id), str(i)))
                          for i in range(len(faces))]
        assets.append(asset)
        return asset

    for path in sources:
        add(path.read_bytes(), f"{path.parent.name}/{path.name}")
    big = [a for a in assets if a.truth == "big_face"]
    for i, asset in enumerate(big[:small_copies]):
        add(_shrunk(asset, factor=max(2.0, asset.largest_face_original / 40.0)),
            f"small/{i:02d}_{asset.file_name.rsplit('.', 1)[0]}.jpg")
    for i, asset in enumerate(big[-duplicates:]):
        add(asset.data, f"copies/{i:02d}/{asset.file_name}")
    return assets


def _shrunk(asset: FakeAsset, factor: float) -> bytes:
    with Image.open(io.BytesIO(asset.data)) as im:
        upright = ImageOps.exif_transpose(im).convert("RGB")
    small = upright.resize((max(8, round(upright.width / factor)),
                            max(8, round(upright.height / factor))), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=90)
    return out.getvalue()
