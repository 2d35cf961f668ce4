"""A local Immich machine-learning server (127.0.0.1) for tests.

``POST /predict`` takes the multipart form Immich sends (``entries`` JSON + ``image``),
validates it, and answers with real detections and embeddings from the local model
pack, run through rbv's own face engine on the bytes it received. ``GET /ping`` answers
``pong``. No CLIP model exists offline, so a requested ``clip`` embedding is a
deterministic stand-in computed from the pixels (its storage is what tests check).
Faults: 5xx bursts, held answers, malformed JSON, outages (socket closed), and wrong
answers (well-formed JSON whose faces no recognizer gives: see :data:`WRONG_ANSWERS`).
"""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.support.loopback import LoopbackServer


def _open() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class MlFaults:
    fail_5xx: int = 0
    fail_5xx_after: int = 0  # requests answered normally before the 5xx burst (the probe)
    # Answers wait until the gate is open: cleared, the server holds every answer, as a
    # hung server does, however slow or fast the machine (a client's timeout then fires).
    gate: threading.Event = field(default_factory=_open)
    malformed: int = 0  # the next N answers are cut-off JSON
    wrong: str = ""  # one of WRONG_ANSWERS: what the wrong answers hold
    wrong_after: int = 0  # answers given right before the wrong ones (1: the probe)
    wrong_answers: int = 1 << 30  # how many answers are wrong then (default: all)


WRONG_ANSWERS = {
    "1e20": "every value of every face embedding 1e20 (its norm overflows float32)",
    "3e38": "one value of each face embedding 3e38, the others as found",
    "crowd": "20,000 faces per photo (the first face found, repeated)",
    "4096": "4,096-dimensional face embeddings (the real ones repeated 32 times)",
    "256": "256-dimensional face embeddings (the real ones twice): another model's width",
}


def _wrong(faces: list[dict[str, Any]], how: str) -> list[dict[str, Any]]:
    """The faces of a right answer turned into the wrong answer ``how``."""
    def embedding(face: dict[str, Any]) -> list[float]:
        return list(json.loads(face["embedding"]))

    if how == "1e20":
        return [{**f, "embedding": json.dumps([1e20] * len(embedding(f)))} for f in faces]
    if how == "3e38":
        return [{**f, "embedding": json.dumps([3e38, *embedding(f)[1:]])} for f in faces]
    if how == "crowd":
        return faces[:1] * 20_000
    if how.isdigit():
        return [{**f, "embedding": json.dumps(embedding(f) * (int(how) // len(embedding(f))))}
                for f in faces]
    raise ValueError(f"unknown wrong answer {how!r}")


class FakeInference(LoopbackServer):
    def __init__(self, pack: Path, model: str = "scrfd_sface") -> None:
        super().__init__()
        self.handler_class = _Handler
        from rbv.faces.analyzer import load_analyzer

        self.model = model
        self.analyzer = load_analyzer(str(pack), device="cpu")
        self.faults = MlFaults()
        self.predictions = 0
        self.requests = 0
        self.entries: list[dict[str, Any]] = []

    def predict(self, entries: dict[str, Any], data: bytes) -> dict[str, Any]:
        from rbv.media.decode import decode_for_detection
        from rbv.media.sniff import sniff_format

        fmt = sniff_format(data[:32])
        if fmt is None:
            raise ValueError("image could not be decoded")
        with tempfile.NamedTemporaryFile(suffix=".img") as tmp:
            tmp.write(data)
            tmp.flush()
            image = decode_for_detection(Path(tmp.name), fmt, image_id=0,
                                         long_edge=self.analyzer.decode_long_edge,
                                         max_pixels=200_000_000)
        answer: dict[str, Any] = {"imageWidth": image.original_size[0],
                                  "imageHeight": image.original_size[1]}
        if "facial-recognition" in entries:
            min_score = float(entries["facial-recognition"]["detection"]
                              .get("options", {}).get("minScore", 0.7))
            with self.lock:  # the threshold is per request
                self.analyzer.det_threshold = min_score
                found = self.analyzer.analyze(image)
            answer["facial-recognition"] = [
                {"boundingBox": dict(zip(("x1", "y1", "x2", "y2"), map(float, f.bbox),
                                         strict=True)),
                 "embedding": json.dumps([float(v) for v in f.embedding]),
                 "score": float(f.det_score)}
                for f in found.faces
            ]
        if "clip" in entries:
            small = Image.fromarray(image.rgb).convert("RGB").resize((16, 16))
            vector = np.asarray(small, np.float32).ravel()[:512] - 127.5
            vector /= np.linalg.norm(vector) or 1.0
            answer["clip"] = json.dumps([float(v) for v in vector])
        return answer


class _Handler(BaseHTTPRequestHandler):
    fake: FakeInference
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode())

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/ping":
            self._send(200, b'"pong"')
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        fake = self.fake
        with fake.lock:
            fake.requests += 1
            burst = fake.faults.fail_5xx > 0 and fake.faults.fail_5xx_after <= 0
            fake.faults.fail_5xx_after -= 1
            if burst:
                fake.faults.fail_5xx -= 1
            malformed = fake.faults.malformed > 0
            if malformed:
                fake.faults.malformed -= 1
            faults = fake.faults
            wrong = faults.wrong if faults.wrong_after <= 0 and faults.wrong_answers > 0 \
                else ""
            if faults.wrong and self.path == "/predict":
                faults.wrong_after -= 1
                faults.wrong_answers -= 1 if wrong else 0
        fake.faults.gate.wait()
        if self.path != "/predict":
            self._json(404, {"detail": "Not Found"})
            return
        if burst:
            self._json(503, {"detail": "Service Unavailable"})
            return
        form = _parse_form(self.headers.get("content-type", ""), raw)
        problem = self._validate(form)
        if problem:
            self._json(422, {"detail": problem})
            return
        entries = json.loads(form["entries"])
        with fake.lock:
            fake.entries.append(entries)
        try:
            answer = fake.predict(entries, form["image"])
        except Exception as exc:  # what the real server does with an undecodable image
            self._json(422, {"detail": str(exc)})
            return
        if wrong and "facial-recognition" in answer:
            answer["facial-recognition"] = _wrong(answer["facial-recognition"], wrong)
        with fake.lock:
            fake.predictions += 1
        body = json.dumps(answer).encode()
        self._send(200, body[: len(body) // 2] if malformed else body)

    def _validate(self, form: dict[str, bytes]) -> str:
        if "entries" not in form or "image" not in form:
            return "form fields 'entries' and 'image' are required"
        try:
            entries = json.loads(form["entries"])
        except ValueError:
            return "entries is not JSON"
        if not isinstance(entries, dict) or not entries:
            return "entries must be a non-empty object"
        unknown = set(entries) - {"facial-recognition", "clip"}
        if unknown:
            return f"unknown tasks {sorted(unknown)}"
        fr = entries.get("facial-recognition")
        if fr is not None:
            try:
                names = {fr["detection"]["modelName"], fr["recognition"]["modelName"]}
            except (KeyError, TypeError):
                return "facial-recognition needs detection and recognition modelName"
            if names != {self.fake.model}:
                return f"model {sorted(names)} not available (serving {self.fake.model})"
        if "clip" in entries and not entries["clip"].get("visual", {}).get("modelName"):
            return "clip needs visual.modelName"
        return ""


def _parse_form(content_type: str, body: bytes) -> dict[str, bytes]:
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=email_policy).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            fields[str(name)] = payload if isinstance(payload, bytes) else b""
    return fields
