"""The decision machine's rules about the photos themselves and the automatic runs they
start (issue 54): a photo's pixels edited and the library indexed (the carry), a photo
re-encoded under another name and the original deleted, then ``prune``, and full runs
of every clustering method with hidden persons. What must hold, besides the machine's
invariants:

- every decision on a face that an index or a prune deletes is said (its face id is in
  a line the run prints) or is on a face found since (the same face of the new content
  or of the copy);
- ``prune --dry-run`` says what ``prune`` then does;
- a hidden person's faces never move (DecisionMachine.check_automatic).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, consumes, multiple, precondition, rule
from PIL import Image, ImageEnhance

from rbv.cluster.defaults import Method
from rbv.jobs.library.carry import forget_said
from rbv.jobs.library.index import run_index
from rbv.jobs.library.prune import run_prune

FACES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces"
# One photo of each identity of the template, beyond those it holds (base_photos()).
EDITABLE = [sorted((FACES_DIR / who).iterdir())[12]
            for who in ("Ben_Affleck", "Mindy_Kaling", "Jerry_Seinfeld")]
EDITS = {
    "brighten": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "crop": lambda im: im.crop((im.width // 10, 0, im.width, im.height)),
}
METHODS = [(Method.connected, 0.46), (Method.connected, 0.25), (Method.agglomerative, None),
           (Method.hdbscan, None), (Method.evidence, None)]

Decision = tuple[Any, ...]


def decisions(state: dict[str, list[tuple[Any, ...]]]) -> set[Decision]:
    """Every decision held by a face: (kind, face, what)."""
    out: set[Decision] = {("placed", f, p) for f, p, by in state["faces"]
                          if by == "manual" and p is not None}
    out |= {("rejected", f, p) for f, p in state["rejections"]}
    out |= {("not a face", f, None) for (f,) in state["not_faces"]}
    out |= {("drawn", f, None) for f, _how in state["drawn"]}
    for kind in ("same", "different"):
        out |= {(kind, a, b) for a, b in state[kind]} | {(kind, b, a) for a, b in state[kind]}
    person_of = {f: p for f, p, _by in state["faces"]}  # a cover in effect: its person's
    out |= {("cover", f, p) for p, f in state.get("covers", []) if person_of.get(f) == p}
    return out


class PhotoRules:
    """Mixed into DecisionMachine: rules on a library of copies the sequence may edit."""

    photos = Bundle("photos")
    faces = Bundle("faces")  # DecisionMachine's bundles (a bundle is its name)
    persons = Bundle("persons")
    lib: Path | None = None

    def check_said(self, before: dict[str, list[tuple[Any, ...]]],
                   after: dict[str, list[tuple[Any, ...]]], lines: list[str],
                   what: str) -> None:
        """Every decision of a face ``what`` deleted is said, or held by a new face."""
        faces_before = {f for f, _p, _by in before["faces"]}
        faces_after = {f for f, _p, _by in after["faces"]}
        gone, new = faces_before - faces_after, faces_after - faces_before
        said = {int(f) for line in lines for f in re.findall(r"\bface (\d+)\b", line)}
        held = decisions(after)
        for kind, face, other in sorted(decisions(before), key=str):
            if face not in gone or face in said:
                continue
            if kind == "drawn":  # drawn again, or the same face found by the scan now
                kept = bool(new)
            elif kind in ("placed", "rejected", "cover"):
                kept = any((kind, g, other) in held for g in new)
            else:
                ends = {other} if other in faces_after else new
                kept = any((kind, g, o) in held for g in new for o in ends)
            assert kept, f"{what} lost unsaid: face {face} {kind} {other} (said: {lines})"

    @precondition(lambda self: self.lib is None)
    @rule(target=photos)
    def add_photos(self) -> Any:
        """Copies of EDITABLE in a folder of the user's (indexed by index_library)."""
        self.automatic("copy editable photos")  # type: ignore[attr-defined]
        self.lib = self.env.data_dir / f"lib-{self.dbname}"  # type: ignore[attr-defined]
        self.lib.mkdir(parents=True)
        copies = []
        for photo in EDITABLE:
            shutil.copyfile(photo, self.lib / photo.name)
            copies.append(self.lib / photo.name)
        return multiple(*copies)

    @rule(photo=photos, how=st.sampled_from(sorted(EDITS)))
    def edit_pixels(self, photo: Path, how: str) -> None:
        self.automatic(f"{how} {photo.name}")  # type: ignore[attr-defined]
        with Image.open(photo) as im:
            edited = EDITS[how](im.convert("RGB"))
        edited.save(photo, format="PNG" if photo.suffix == ".png" else "JPEG", quality=92)

    @rule(target=photos, photo=consumes(photos))
    def reencode(self, photo: Path) -> Path:
        """The user converts a photo to PNG under a new name and deletes the original."""
        self.automatic(f"re-encode {photo.name} as PNG")  # type: ignore[attr-defined]
        copy = photo.with_name(f"{photo.stem}-{len(photo.name)}.png")
        with Image.open(photo) as im:
            im.save(copy)
        photo.unlink()
        return copy

    @precondition(lambda self: self.lib is not None)
    @rule(target=faces)
    def index_library(self) -> Any:
        self.automatic("index the copies")  # type: ignore[attr-defined]
        assert self.lib is not None
        before = self.state()  # type: ignore[attr-defined]
        summary = run_index(self.db, self.settings, [self.lib],  # type: ignore[attr-defined]
                            analyzer=self.env.analyzer)  # type: ignore[attr-defined]
        assert summary.embed is not None
        lines = list(summary.embed.carry.dropped)
        forget_said(self.db, summary.embed.carry)  # type: ignore[attr-defined]
        self.check_said(before, self.state(), lines, "index")  # type: ignore[attr-defined]
        self.check_births(before, self.state())  # type: ignore[attr-defined]
        return self.new_faces()  # type: ignore[attr-defined]

    @precondition(lambda self: self.lib is not None)
    @rule()
    def prune(self) -> None:
        self.automatic("prune")  # type: ignore[attr-defined]
        before = self.state()  # type: ignore[attr-defined]
        preview = run_prune(self.db, dry_run=True)  # type: ignore[attr-defined]
        assert self.state() == before, "prune --dry-run wrote something"  # type: ignore[attr-defined]
        report = run_prune(self.db)  # type: ignore[attr-defined]
        assert (preview.kept, preview.lost, preview.counts) == \
            (report.kept, report.lost, report.counts), "prune --dry-run is not the run"
        self.check_said(before, self.state(),  # type: ignore[attr-defined]
                        report.kept + report.lost, "prune")
        self.check_births(before, self.state())  # type: ignore[attr-defined]

    @rule(target=persons, how=st.sampled_from(METHODS))
    def cluster_method(self, how: tuple[Method, float | None]) -> Any:
        self.cluster_run(full=True, method=how[0], threshold=how[1])  # type: ignore[attr-defined]
        return self.new_persons()  # type: ignore[attr-defined]
