"""The static review site (``rbv site OUT``): plain HTML pages that open from disk, with
small JPEG face crops, and for every fix the exact rbv command.

Layout under OUT, every link relative inside it::

    index.html              persons: face thumbnail, name, face count
    suggestions.html        merge suggestions, side by side, with their merge command
    persons/<uuid>.html     a person's faces, least typical first, face ids shown
    thumbs/<face>_<key>.jpg face crops; ``key`` hashes what the crop is cut from, so a
                            crop is rendered only when missing or stale

File names are built from uuids and integer ids only, never from names or paths, and
every name, path and command on a page is HTML-escaped.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from PIL import Image

from rbv.errors import ConfigError, ImageUnreadable, printable
from rbv.export.atomic import TEMP_NAME, remove_stale_temps, write_atomically
from rbv.export.pixels import Box, PhotoSource, square_crop

THUMB = 96
PAD = 0.3
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

    @property
    def thumb(self) -> str:
        """The crop's file name: changes when the photo or the box does."""
        box = ",".join(f"{v:.1f}" for v in self.bbox)
        key = hashlib.sha1(f"{self.image_id}|{box}|{THUMB}|{PAD}".encode()).hexdigest()
        return f"{int(self.id)}_{key[:10]}.jpg"


@dataclass(frozen=True)
class SitePerson:
    id: uuid.UUID
    name: str | None
    faces: int
    images: int
    shown: list[SiteFace]  # least typical first
    doubtful: list[int]
    reject_command: str | None
    two_people: tuple[int, int] | None = None  # its halves' sizes, when it looks like two
    split_command: str | None = None  # the command that separates them

    @property
    def page(self) -> str:
        return f"{uuid.UUID(str(self.id))}.html"

    @property
    def label(self) -> str:
        return self.name or f"unnamed {str(self.id)[:8]}"

    @property
    def cover(self) -> SiteFace | None:
        """The most typical face shown."""
        return self.shown[-1] if self.shown else None


@dataclass(frozen=True)
class SiteSuggestion:
    rank: int
    keep: uuid.UUID
    other: uuid.UUID
    probability: float
    why: str
    command: str
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
               suggestions: Sequence[SiteSuggestion]) -> SiteReport:
    """Write (or bring up to date) the site under ``out``."""
    thumbs, pages = _folder(out, "thumbs"), _folder(out, "persons")
    report = SiteReport(out)
    report.temps_removed = sum(len(remove_stale_temps(folder, pattern))
                               for folder in (out, thumbs, pages)
                               for pattern in (TEMP_NAME, _OLD_TEMP_NAME))
    faces = {f.id: f for p in persons for f in p.shown}
    faces.update({f.id: f for s in suggestions for f in [*s.keep_faces, *s.other_faces]})
    broken = _write_thumbs(source, thumbs, faces.values(), report)
    by_id = {p.id: p for p in persons}
    page = _Page(broken)
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
    """Crops of ``faces`` that are missing (photo by photo, so each is decoded once);
    returns the faces whose photo cannot be read (they show a grey tile)."""
    broken: set[int] = set()
    for face in sorted(faces, key=lambda f: (f.image_id, f.id)):
        target = folder / face.thumb
        if target.is_file() and not target.is_symlink():
            report.thumbs_kept += 1
            continue
        try:
            crop = Image.fromarray(square_crop(source.load(face.image_id), face.bbox, PAD,
                                               THUMB))
        except ImageUnreadable:
            broken.add(face.id)
            report.unreadable.append(face.id)
            continue
        _write(target, _jpeg(crop))
        report.thumbs_written += 1
    if broken:
        _write(folder / UNREADABLE, _jpeg(Image.new("RGB", (THUMB, THUMB), (90, 90, 90))))
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


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:middle}
.grid{display:flex;flex-wrap:wrap;gap:10px}.face{width:120px;font-size:12px}
.face img,td img{width:96px;height:96px;display:block;border-radius:4px}
.doubtful img{outline:3px solid #d93025}.doubtful .tag{color:#d93025;font-weight:bold}
code{background:#eee;padding:2px 4px;border-radius:3px;font-size:12px;word-break:break-all}
.pair{display:flex;gap:24px;margin:8px 0 20px}.muted{color:#666}
"""


def _e(text: object) -> str:
    return html.escape(printable(str(text)), quote=True)


class _Page:
    """Renders the pages; ``broken``: faces whose crop could not be made."""

    def __init__(self, broken: set[int]) -> None:
        self.broken = broken

    def _doc(self, title: str, body: str) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n"
                f"<body>\n{body}\n</body></html>\n")

    def img(self, face: SiteFace, up: str) -> str:
        name = UNREADABLE if face.id in self.broken else face.thumb
        return (f'<img src="{up}thumbs/{_e(name)}" alt="face {face.id}" '
                f'title="face {face.id}: {_e(face.path or "")}" width="{THUMB}" '
                f'height="{THUMB}">')

    def index(self, title: str, persons: Sequence[SitePerson], n_suggestions: int) -> str:
        rows = []
        for p in persons:
            cover = self.img(p.cover, "") if p.cover else ""
            doubt = "; ".join(
                ([f"two people? ({p.two_people[0]} + {p.two_people[1]})"]
                 if p.two_people else [])
                + ([f"{len(p.doubtful)} doubtful"] if p.doubtful else []))
            rows.append(f'<tr><td><a href="persons/{p.page}">{cover}</a></td>'
                        f'<td><a href="persons/{p.page}">{_e(p.label)}</a></td>'
                        f"<td>{p.faces:,}</td><td>{p.images:,}</td>"
                        f'<td class="muted">{doubt}</td>'
                        f'<td class="muted"><code>{_e(p.id)}</code></td></tr>')
        body = (f"<h1>{_e(title)}</h1>"
                f"<p>{len(persons):,} persons. "
                f'<a href="suggestions.html">{n_suggestions} merge suggestion(s)</a>.</p>'
                "<table><tr><th></th><th>name</th><th>faces</th><th>photos</th><th></th>"
                "<th>id</th></tr>\n" + "\n".join(rows) + "</table>")
        return self._doc(title, body)

    def _suggestion(self, s: SiteSuggestion, by_id: dict[uuid.UUID, SitePerson],
                    up: str) -> str:
        sides = []
        for who, faces, verb in ((s.keep, s.keep_faces, "keep"),
                                 (s.other, s.other_faces, "merge")):
            person = by_id.get(who)
            label = _e(person.label) if person else _e(who)
            link = f'<a href="{up}persons/{person.page}">{label}</a>' if person else label
            count = f" ({person.faces:,} face{'s' if person.faces != 1 else ''})" if person else ""
            tiles = "".join(f'<div class="face">{self.img(f, up)}face {f.id}</div>'
                            for f in faces)
            sides.append(f"<div><div>{verb}: {link}{count}</div>"
                         f'<div class="grid">{tiles}</div></div>')
        return (f'<h3 id="s{s.rank}">{s.rank}. score {s.probability:.2f}</h3>'
                f'<p class="muted">{_e(s.why)}</p><div class="pair">{"".join(sides)}</div>'
                f"<p>Accept: <code>{_e(s.command)}</code></p>")

    def suggestions(self, title: str, suggestions: Sequence[SiteSuggestion],
                    by_id: dict[uuid.UUID, SitePerson]) -> str:
        items = "\n".join(self._suggestion(s, by_id, "") for s in suggestions)
        body = ('<p><a href="index.html">All persons</a></p><h1>Merge suggestions</h1>'
                "<p>Pairs of persons that are probably one person, strongest evidence first. "
                "Run a pair's command to merge them (<code>rbv persons undo</code> takes it "
                "back).</p>" + (items or "<p>None.</p>"))
        return self._doc(f"{title}: merge suggestions", body)

    def person(self, title: str, p: SitePerson, suggestions: Sequence[SiteSuggestion],
               by_id: dict[uuid.UUID, SitePerson]) -> str:
        tiles = []
        for f in p.shown:
            similarity = "" if f.similarity is None else f" · {f.similarity:.2f}"
            tag = ' <span class="tag">doubtful</span>' if f.doubtful else ""
            tiles.append(f'<div class="face{" doubtful" if f.doubtful else ""}">'
                         f"{self.img(f, '../')}face {f.id}{similarity}{tag}<br>"
                         f"<code>rbv persons not-this-person {_e(p.id)} {f.id}</code></div>")
        fixes = [f"Name it: <code>rbv persons name {_e(p.id)} &quot;NAME&quot;</code>"]
        if p.reject_command:
            fixes.insert(0, f"Take the {len(p.doubtful)} doubtful face(s) out: "
                         f"<code>{_e(p.reject_command)}</code>")
        if p.two_people and p.split_command:
            fixes.insert(0, f"<strong>Looks like two people ({p.two_people[0]} + "
                         f"{p.two_people[1]} faces)</strong>: its two halves are nearer "
                         "strangers than one person's faces. Move the smaller half into a "
                         f"new person: <code>{_e(p.split_command)}</code>")
        fixes.append(f"Split it more strictly: <code>rbv persons split {_e(p.id)} "
                     "--dry-run</code>")
        more = (f'<p class="muted">{p.faces - len(p.shown):,} more faces not shown: '
                f"<code>rbv persons review {_e(p.id)} --limit {p.faces}</code></p>"
                if p.faces > len(p.shown) else "")
        merges = "\n".join(self._suggestion(s, by_id, "../") for s in suggestions)
        body = (f'<p><a href="../index.html">All persons</a> · '
                f'<a href="../suggestions.html">Merge suggestions</a></p>'
                f"<h1>{_e(p.label)}</h1><p>{p.faces:,} faces in {p.images:,} photos · "
                f"<code>{_e(p.id)}</code></p>"
                "<ul>" + "".join(f"<li>{x}</li>" for x in fixes) + "</ul>"
                "<h2>Faces, least typical first</h2><p class=\"muted\">Each face with its "
                "average similarity to the person's other faces.</p>"
                f'<div class="grid">{"".join(tiles)}</div>{more}'
                + (f"<h2>Probably the same person</h2>{merges}" if merges else ""))
        return self._doc(f"{title}: {p.label}", body)
