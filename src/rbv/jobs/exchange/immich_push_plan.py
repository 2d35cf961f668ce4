"""What pushing rbv's names changes on one Immich photo: rbv's named faces paired with
Immich's faces of the asset, and what becomes of each pair.

Boxes are compared in one frame: rbv's are in upright original pixels, Immich's in the
upright pixels of the image it detected on (``imageWidth`` × ``imageHeight``), so
Immich's are scaled to the original before the IoU. A matched Immich face is

- left alone when its person already has the name (any Immich person of that name);
- when it is in an unnamed person (Immich's own clustering) and every face rbv matched
  in that person has the same rbv name, and no Immich person has that name yet: the
  whole person is *named* (``PATCH /api/people/{id}``; ``PUT`` before v3), so the faces
  rbv never saw (too small to stage, say) keep their cluster and get the name too. Of
  several unnamed people agreeing on one name, the one with most matched faces is named;
- otherwise put in the named person (found by name or created) when it has no person,
  or an unnamed one whose matched faces disagree on the name;
- left alone and reported as a *conflict* when its person has another name (a user
  gave it), or when the photo already shows the name on another Immich face.

A face drawn by hand in rbv (``rbv faces add``) that no Immich face matches is one
Immich's detector missed too: it is *created* in Immich, in the named person, at its
box (``POST /api/faces``, Immich's own "tag a face"; a manual face there, which Immich's
re-detection keeps). A re-run matches it like any face. Other unmatched faces are only
counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rbv.formats.names import name_key
from rbv.formats.regions import iou, same_name
from rbv.immich.people import ImmichFace
from rbv.store.queries.immich_assets import AssetFaces


@dataclass(frozen=True)
class Assignment:
    face_id: int  # rbv's
    immich_face_id: str
    name: str
    iou: float
    unnamed_person: str | None = None  # the Immich face's unnamed person, if any


@dataclass(frozen=True)
class Conflict:
    asset_id: str
    face_id: int
    immich_face_id: str
    name: str  # rbv's
    immich_name: str  # what Immich shows
    reason: str


@dataclass(frozen=True)
class Creation:
    face_id: int  # rbv's, drawn by hand
    name: str
    box: tuple[int, int, int, int]  # x, y, width, height in upright original pixels


@dataclass
class AssetPlan:
    """What pushing one asset changes."""

    assign: list[Assignment] = field(default_factory=list)
    create: list[Creation] = field(default_factory=list)  # drawn faces Immich lacks
    unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    unmatched: list[int] = field(default_factory=list)  # rbv face ids with no Immich face


def scaled_box(face: ImmichFace, width: int, height: int) -> tuple[float, float, float, float]:
    """An Immich face box in pixels of the upright original (``width`` × ``height``)."""
    iw, ih = face.image_size
    sx = width / iw if iw > 0 else 1.0
    sy = height / ih if ih > 0 else 1.0
    x1, y1, x2, y2 = face.box
    return x1 * sx, y1 * sy, x2 * sx, y2 * sy


def plan_asset(asset: AssetFaces, faces: Sequence[ImmichFace], min_iou: float) -> AssetPlan:
    """Pair rbv's named faces with Immich's faces of the asset (best IoU first, one to
    one) and decide, per pair, as this module's docstring says."""
    plan = AssetPlan()
    boxes = [scaled_box(f, asset.width, asset.height) for f in faces]
    pairs = sorted(((iou(ours.box, theirs), i, j) for i, ours in enumerate(asset.faces)
                    for j, theirs in enumerate(boxes)), reverse=True)
    matched: dict[int, tuple[int, float]] = {}
    used: set[int] = set()
    for score, i, j in pairs:
        if score < min_iou:
            break
        if i not in matched and j not in used:
            matched[i] = (j, score)
            used.add(j)
    shown = {name_key(f.person.name): f.id for f in faces if f.person and f.person.name}
    for i, ours in enumerate(asset.faces):
        key = name_key(ours.name)
        if i not in matched:
            if not ours.drawn:
                plan.unmatched.append(ours.face_id)
            elif key in shown:
                plan.conflicts.append(Conflict(
                    asset.asset_id, ours.face_id, "", ours.name, ours.name,
                    "Immich shows the name on another face of this photo"))
            else:  # drawn by hand, and Immich missed it too: made there
                x1, y1, x2, y2 = (round(v) for v in ours.box)
                plan.create.append(Creation(ours.face_id, ours.name,
                                            (x1, y1, x2 - x1, y2 - y1)))
                shown[key] = ""
            continue
        j, score = matched[i]
        theirs = faces[j]
        current = theirs.person.name if theirs.person else ""
        if same_name(current, ours.name):
            plan.unchanged += 1
        elif current:
            plan.conflicts.append(Conflict(asset.asset_id, ours.face_id, theirs.id, ours.name,
                                           current, "the Immich face is named differently"))
        elif shown.get(key, theirs.id) != theirs.id:
            plan.conflicts.append(Conflict(
                asset.asset_id, ours.face_id, theirs.id, ours.name, ours.name,
                "Immich shows the name on another face of this photo"))
        else:
            plan.assign.append(Assignment(ours.face_id, theirs.id, ours.name, round(score, 3),
                                          theirs.person.id if theirs.person else None))
            shown[key] = theirs.id
    return plan
