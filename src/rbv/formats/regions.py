"""Face regions as other photo programs store them, and how rbv's faces fit among them.

Pure geometry and bookkeeping, no files: a region is a named rectangle normalised to the
image *as displayed* (after EXIF orientation), its centre and size in 0..1, as the
Metadata Working Group's region schema (``mwg-rs``) has it. Microsoft Photo's regions
(``MP``) give the top-left corner instead; :func:`from_top_left` converts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rbv.formats.names import name_key

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

MATCH_IOU = 0.5
"""An rbv face and an existing region are the same face from this overlap on."""


@dataclass(frozen=True)
class Region:
    """One region: centre ``x``, ``y`` and size ``w``, ``h``, normalised to the displayed
    image; ``name`` None when the region names nobody."""

    name: str | None
    x: float
    y: float
    w: float
    h: float
    kind: str = "Face"

    def box(self, width: int, height: int) -> Box:
        """The region in pixels of an image of this displayed size."""
        return ((self.x - self.w / 2) * width, (self.y - self.h / 2) * height,
                (self.x + self.w / 2) * width, (self.y + self.h / 2) * height)

    @property
    def is_face(self) -> bool:
        return self.kind.casefold() == "face"


def from_box(name: str | None, box: Box, width: int, height: int) -> Region:
    """The region of a pixel box (clipped to the image) in an image of this size."""
    x1, y1, x2, y2 = (min(max(box[0], 0.0), width), min(max(box[1], 0.0), height),
                      min(max(box[2], 0.0), width), min(max(box[3], 0.0), height))
    return Region(name, (x1 + x2) / 2 / width, (y1 + y2) / 2 / height,
                  (x2 - x1) / width, (y2 - y1) / height)


def from_top_left(name: str | None, left: float, top: float, w: float, h: float) -> Region:
    """A region given by its top-left corner and size (Microsoft Photo's Rectangle)."""
    return Region(name, left + w / 2, top + h / 2, w, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def region_iou(a: Region, b: Region) -> float:
    """IoU of two regions in normalised space (a unit square)."""
    return iou(a.box(1, 1), b.box(1, 1))


def same_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and name_key(a) == name_key(b)


@dataclass(frozen=True)
class Conflict:
    """An rbv face that a region already covers under another name (theirs is kept), or a
    name the photo already shows on another face."""

    name: str
    other: str
    reason: str


@dataclass
class RegionPlan:
    """What merging rbv's named faces into a file's existing regions changes."""

    add: list[Region] = field(default_factory=list)
    name: dict[int, str] = field(default_factory=dict)  # existing region index -> name
    unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return len(self.add) + len(self.name)


def plan_regions(existing: Sequence[Region], ours: Sequence[Region],
                 min_iou: float = MATCH_IOU) -> RegionPlan:
    """Merge ``ours`` (named faces) into ``existing`` without touching what is there.

    An rbv face that an existing face region covers (IoU ≥ ``min_iou``) is already shown
    when the names agree; an unnamed region gets rbv's name; a region named otherwise
    keeps its name (a conflict). A name the file shows on another face is not added
    twice (two faces of one photo are never one person). Every other face is added.
    """
    plan = RegionPlan()
    taken: set[int] = set()
    shown = {name_key(r.name) for r in existing if r.name and r.is_face}
    for region in sorted(ours, key=lambda r: (r.x, r.y, r.name or "")):
        scored = [(region_iou(region, e), i) for i, e in enumerate(existing)
                  if e.is_face and i not in taken]
        best_iou, best = max(scored, default=(0.0, -1))
        if best_iou >= min_iou:
            taken.add(best)
            theirs = existing[best].name
            if same_name(theirs, region.name):
                plan.unchanged += 1
            elif not theirs:
                if region.name and name_key(region.name) in shown:
                    plan.conflicts.append(Conflict(region.name, "", "already on another face"))
                    continue
                plan.name[best] = region.name or ""
                shown.add(name_key(region.name or ""))
            else:
                plan.conflicts.append(Conflict(region.name or "", theirs,
                                               "the region is named differently"))
            continue
        key = name_key(region.name or "")
        if key in shown:
            plan.conflicts.append(Conflict(region.name or "", region.name or "",
                                           "already on another face"))
            continue
        shown.add(key)
        plan.add.append(region)
    return plan


def match_regions(regions: Sequence[Region], faces: Sequence[Box], width: int, height: int,
                  min_iou: float) -> list[tuple[int, int, float]]:
    """Pairs (region index, face index, IoU) that overlap most, one face per region and
    one region per face, best overlaps first."""
    pairs = sorted(((iou(r.box(width, height), f), i, j)
                    for i, r in enumerate(regions) for j, f in enumerate(faces)), reverse=True)
    used_r: set[int] = set()
    used_f: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score < min_iou:
            break
        if i in used_r or j in used_f:
            continue
        used_r.add(i)
        used_f.add(j)
        out.append((i, j, score))
    return out
