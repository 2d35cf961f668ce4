"""The static review site (``rbv site OUT``): plain HTML pages that open from disk, with
small JPEG face crops, and for every fix the exact rbv command (its remedy, as the
front end that writes the site words it).

Layout under OUT, every link relative inside it::

    index.html              persons: face thumbnail, name, face count
    suggestions.html        merge suggestions, side by side, with their merge command
    persons/<uuid>.html     a person's faces, least typical first, face ids shown
    thumbs/<face>_<key>.jpg face tiles (:func:`rbv.pictures.pixels.face_tile`); ``key``
                            hashes what the tile is cut from and the tile rule, so a
                            tile is rendered only when missing or stale
    thumbs/unreadable.jpg   the "photo missing" tile, for faces whose photo is gone

File names are built from uuids and integer ids only, never from names or paths, and
every name, path and command on a page is HTML-escaped.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from PIL import Image

from rbv.errors import ConfigError, ImageUnreadable, Remedy
from rbv.formats.atomic import TEMP_NAME, remove_stale_temps, write_atomically
from rbv.pictures.pixels import FACE_PAD, Box, PhotoSource, face_tile, missing_tile, tile_key
from rbv.web.templating import label, render

THUMB = 96
JPEG_QUALITY = 82
UNREADABLE = "unreadable.jpg"
_THUMB_NAME = re.compile(r"^\d+_[0-9a-f]{10}\.jpg$")
_PAGE_NAME = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.html$")
_OLD_TEMP_NAME = re.compile(r"^\..+\.(?:html|jpg)\.tmp(?P<pid>\d+)$")
"""Temporary files as earlier rbv versions named them (``.NAME.tmpPID``), removed only
from the site's own folders."""


@dataclass(frozen=True)
class SiteFace:
    id: int
    image_id: int
    bbox: Box
    path: str | None
    similarity: float | None = None  # average similarity to its person's other faces
    doubtful: bool = False
    others: tuple[Box, ...] = ()  # the boxes of the photo's other faces (same pack)

    @property
    def thumb(self) -> str:
        """The tile's file name: changes when the photo, the box, the boxes beside it or
        the tile rule do."""
        key = tile_key(self.image_id, self.bbox, self.others, THUMB, FACE_PAD)
        return f"{int(self.id)}_{key[:10]}.jpg"


@dataclass(frozen=True)
class SitePerson:
    id: uuid.UUID
    name: str | None
    faces: int
    images: int
    shown: list[SiteFace]  # least typical first
    doubtful: list[int]
    reject: Remedy | None  # takes the doubtful faces out
    two_people: tuple[int, int] | None = None  # its halves' sizes, when it looks like two
    split: Remedy | None = None  # separates them
    chosen: SiteFace | None = None  # the cover chosen with `rbv persons cover`, if any

    @property
    def page(self) -> str:
        return f"{uuid.UUID(str(self.id))}.html"

    def name_it(self) -> Remedy:
        return Remedy("name", {"person": self.id, "name": "NAME"})

    def stricter(self) -> Remedy:
        """Its faces re-clustered more strictly, as a dry run."""
        return Remedy("split", {"person": self.id, "threshold": 0.5, "dry_run": True})

    def not_this(self, face: SiteFace) -> Remedy:
        return Remedy("not_this_person", {"person": self.id, "faces": [face.id]})

    def review_all(self) -> Remedy:
        return Remedy("review", {"person": self.id, "limit": self.faces})

    @property
    def label(self) -> str:
        return label(self.id, self.name)

    @property
    def cover(self) -> SiteFace | None:
        """The face chosen with `rbv persons cover` (while it is one of the person's),
        else the most typical face shown."""
        if self.chosen is not None:
            return self.chosen
        return self.shown[-1] if self.shown else None


@dataclass(frozen=True)
class SiteSuggestion:
    rank: int
    keep: uuid.UUID
    other: uuid.UUID
    probability: float
    why: str
    merge: Remedy  # accepts it
    keep_faces: list[SiteFace]
    other_faces: list[SiteFace]


@dataclass
class SiteReport:
    out: Path
    pages: int = 0
    thumbs_written: int = 0
    thumbs_kept: int = 0
    thumbs_removed: int = 0
    pages_removed: int = 0
    temps_removed: int = 0  # temporary files a killed or failed earlier run left
    unreadable: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"out": str(self.out), "index": str(self.out / "index.html"),
                "pages": self.pages, "thumbs_written": self.thumbs_written,
                "thumbs_kept": self.thumbs_kept, "thumbs_removed": self.thumbs_removed,
                "pages_removed": self.pages_removed, "temps_removed": self.temps_removed,
                "unreadable_faces": self.unreadable}


def write_site(source: PhotoSource, out: Path, title: str, persons: Sequence[SitePerson],
               suggestions: Sequence[SiteSuggestion],
               command: Callable[[Remedy], str]) -> SiteReport:
    """Write (or bring up to date) the site under ``out``; each remedy (a merge, a split,
    faces taken out) shown as ``command`` words it."""
    thumbs, pages = _folder(out, "thumbs"), _folder(out, "persons")
    report = SiteReport(out)
    report.temps_removed = sum(len(remove_stale_temps(folder, pattern))
                               for folder in (out, thumbs, pages)
                               for pattern in (TEMP_NAME, _OLD_TEMP_NAME))
    faces = {f.id: f for p in persons for f in p.shown}
    faces.update({p.chosen.id: p.chosen for p in persons if p.chosen is not None})
    faces.update({f.id: f for s in suggestions for f in [*s.keep_faces, *s.other_faces]})
    broken = _write_thumbs(source, thumbs, faces.values(), report)
    by_id = {p.id: p for p in persons}
    page = _Page(broken, command)
    _write(out / "index.html", page.index(title, persons, len(suggestions)))
    _write(out / "suggestions.html", page.suggestions(title, suggestions, by_id))
    for person in persons:
        mine = [s for s in suggestions if person.id in (s.keep, s.other)]
        _write(pages / person.page, page.person(title, person, mine, by_id))
    report.pages = 2 + len(persons)
    report.pages_removed = _remove_stale(pages, _PAGE_NAME, {p.page for p in persons})
    report.thumbs_removed = _remove_stale(thumbs, _THUMB_NAME,
                                          {f.thumb for f in faces.values()})
    return report


def _folder(out: Path, name: str) -> Path:
    """OUT/name as a real folder: a link there could lead writes outside OUT."""
    folder = out / name
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"{folder} is not a plain folder; move it away, or pick another OUT")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write(path: Path, data: str | bytes) -> bool:
    """Replace ``path`` atomically, unless it already holds ``data`` (a re-run leaves
    unchanged pages as they are). Returns whether it wrote."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.is_file() and not path.is_symlink():
        try:
            if path.read_bytes() == raw:
                return False
        except OSError:
            pass
    write_atomically(path, raw, durable=False)  # pages and crops can be made again
    return True


def _write_thumbs(source: PhotoSource, folder: Path, faces: Iterable[SiteFace],
                  report: SiteReport) -> set[int]:
    """Tiles of ``faces`` that are missing (photo by photo, so each is decoded once);
    returns the faces whose photo cannot be read (they show the "photo missing" tile)."""
    broken: set[int] = set()
    for face in sorted(faces, key=lambda f: (f.image_id, f.id)):
        target = folder / face.thumb
        if target.is_file() and not target.is_symlink():
            report.thumbs_kept += 1
            continue
        try:
            crop = Image.fromarray(face_tile(source.load(face.image_id), face.bbox, FACE_PAD,
                                             THUMB, face.others))
        except ImageUnreadable:
            broken.add(face.id)
            report.unreadable.append(face.id)
            continue
        _write(target, _jpeg(crop))
        report.thumbs_written += 1
    if broken:
        _write(folder / UNREADABLE, _jpeg(Image.fromarray(missing_tile(THUMB))))
    return broken


def _jpeg(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _remove_stale(folder: Path, pattern: re.Pattern[str], wanted: set[str]) -> int:
    """Remove files rbv wrote earlier (by their name pattern) that nothing shows now."""
    removed = 0
    for entry in os.scandir(folder):
        if pattern.match(entry.name) and entry.name not in wanted and entry.is_file(
                follow_symlinks=False):
            os.unlink(entry.path)
            removed += 1
    return removed


class _Page:
    """Renders the pages from the templates under ``templates/site/`` (which share their
    skeleton and pieces with ``rbv serve``'s); ``broken``: faces whose crop could not be
    made; ``command``: a remedy as the command line a page shows."""

    def __init__(self, broken: set[int], command: Callable[[Remedy], str]) -> None:
        self.broken = broken
        self.command = command

    def index(self, title: str, persons: Sequence[SitePerson], n_suggestions: int) -> str:
        doubts = ["; ".join(
            ([f"two people? ({p.two_people[0]} + {p.two_people[1]})"] if p.two_people else [])
            + ([f"{len(p.doubtful)} doubtful"] if p.doubtful else [])) for p in persons]
        return render("site/index.html", title=title, persons=persons, doubts=doubts,
                      suggestions=n_suggestions, broken=self.broken)

    def suggestions(self, title: str, suggestions: Sequence[SiteSuggestion],
                    by_id: dict[uuid.UUID, SitePerson]) -> str:
        return render("site/suggestions.html", title=f"{title}: merge suggestions",
                      suggestions=suggestions, by_id=by_id, broken=self.broken,
                      command=self.command)

    def person(self, title: str, p: SitePerson, suggestions: Sequence[SiteSuggestion],
               by_id: dict[uuid.UUID, SitePerson]) -> str:
        return render("site/person.html", title=f"{title}: {p.label}", p=p,
                      suggestions=suggestions, by_id=by_id, broken=self.broken,
                      command=self.command)
