"""HTML of ``rbv serve``'s pages, rendered on the server. Every name, path and message
is escaped here (names are typed by users and read from sidecars: hostile input);
links are built from uuids and integer ids only."""

from __future__ import annotations

import html
import uuid
from collections.abc import Sequence
from urllib.parse import urlencode

from rbv.errors import printable
from rbv.jobs.review import ReviewReport
from rbv.serve.queue import Pair
from rbv.store.edits import EditRow
from rbv.store.people import PeopleFilter, PersonTile, Photo


def e(text: object) -> str:
    return html.escape(printable(str(text)), quote=True)


def label(person: uuid.UUID | None, name: str | None) -> str:
    if person is None:
        return "no person"
    return name or f"unnamed {str(person)[:8]}"


def layout(title: str, body: str, token: str, *, notice: str = "") -> str:
    banner = f'<div class="notice">{e(notice)}</div>' if notice else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="rbv-token" content="{e(token)}">'
        f"<title>{e(title)} · rbv</title>"
        '<link rel="stylesheet" href="/static/app.css"></head><body>'
        '<nav><a href="/">People</a> <a href="/suggestions">Same person?</a> '
        '<a href="/history">History</a></nav>'
        f'{banner}<main>{body}</main><div id="toast" hidden></div>'
        '<script src="/static/app.js"></script></body></html>\n')


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def face_img(face: int, size: int = 120) -> str:
    return (f'<img src="/face/{int(face)}.jpg" alt="face {int(face)}" loading="lazy" '
            f'width="{size}" height="{size}">')


def people(tiles: Sequence[PersonTile], total: int, search: str, which: PeopleFilter,
           page: int, per_page: int) -> str:
    filters = "".join(
        f'<option value="{f.value}"{" selected" if f is which else ""}>{f.value}</option>'
        for f in PeopleFilter)
    form = ('<form class="bar" method="get" action="/">'
            f'<input type="search" name="q" value="{e(search)}" placeholder="Search names">'
            f'<select name="filter">{filters}</select><button>Show</button></form>')
    cards = []
    for t in tiles:
        cover = face_img(t.cover) if t.cover is not None else '<div class="blank"></div>'
        hidden = ' <span class="tag">hidden</span>' if t.hidden else ""
        cards.append(
            f'<a class="card" href="/person/{t.id}">{cover}'
            f'<span class="name{"" if t.name else " unnamed"}">{e(label(t.id, t.name))}</span>'
            f'<span class="muted">{count(t.faces, "face")} · {count(t.photos, "photo")}</span>'
            f"{hidden}</a>")
    pages = max(1, -(-total // per_page))
    nav = []
    for target, text in ((page - 1, "‹ previous"), (page + 1, "next ›")):
        if 1 <= target <= pages:
            query = urlencode({"q": search, "filter": which.value, "page": target})
            nav.append(f'<a href="/?{query}">{text}</a>')
    return (f"<h1>People</h1>{form}<p class=\"muted\">{total:,} persons · page {page} of "
            f"{pages}</p><div class=\"grid\">{''.join(cards) or '<p>None.</p>'}</div>"
            f'<p class="pager">{" ".join(nav)}</p>')


def person(report: ReviewReport, limit: int) -> str:
    p = report.person
    pid = str(p.id)
    tiles = []
    for f in report.faces:
        doubt = " doubtful" if f.doubtful else ""
        tiles.append(
            f'<div class="face{doubt}" data-face="{f.id}">{face_img(f.id)}'
            f'<span class="muted">{f.similarity:.2f}{" · doubtful" if f.doubtful else ""}'
            f'</span> <a href="/photo-of/{f.id}" title="see in its photo">photo</a></div>')
    more = ""
    if p.faces > len(report.faces):
        more = (f'<p><a href="/person/{pid}?limit={limit * 2}">Show more faces</a> '
                f'({p.faces - len(report.faces):,} not shown)</p>')
    hide = "unhide" if p.hidden else "hide"
    doubtful = (f'<button data-select-doubtful>Select the {len(report.doubtful)} doubtful'
                "</button>" if report.doubtful else "")
    return f"""
<div class="head" data-person="{e(pid)}">
 <h1>{e(label(p.id, p.name))}{' <span class="tag">hidden</span>' if p.hidden else ''}</h1>
 <p class="muted">{count(p.faces, "face")} in {count(p.images, "photo")} ·
  <code>{e(pid)}</code> · <a href="/photos?person={e(pid)}">photos</a></p>
 <div class="bar">
  <input id="rename" list="names" value="{e(p.name or '')}" placeholder="Name">
  <button data-act="name">{'Rename' if p.name else 'Name'}</button>
  <input id="merge-in" list="names" placeholder="Person to merge into this one">
  <button data-act="merge">Merge in</button>
  <button data-act="{hide}">{hide.capitalize()}</button>
 </div>
 <form class="bar" method="get" action="/photos">
  <input type="hidden" name="person" value="{e(pid)}">
  <input name="person" list="names" placeholder="Photos together with…">
  <button>Photos together</button>
 </form>
</div>
<div class="bar sticky">
 <span id="selected">0 selected</span> {doubtful}
 <button data-select-all>Select all</button> <button data-select-none>Clear</button>
 <button data-act="reject">Not this person</button>
 <input id="move-to" list="names" placeholder="Move to person">
 <button data-act="move">Move</button>
 <button data-act="new">New person</button>
 <button data-act="same">Same person</button>
</div>
<p class="muted">Faces least typical first (average similarity to the others); red:
 doubtful. Click to select, shift-click for a range.</p>
<div class="grid" id="faces">{''.join(tiles)}</div>{more}
<datalist id="names"></datalist>
"""


def suggestion(pair: Pair | None) -> str:
    if pair is None:
        return ("<h1>Is this the same person?</h1><p>No more suggestions. "
                '<a href="/">Back to people</a></p>')
    s = pair.suggestion
    sides = []
    for who, faces, verb in ((s.keep, pair.keep_faces, "keep"),
                             (s.other, pair.other_faces, "merge")):
        tiles = "".join(face_img(f) for f in faces)
        sides.append(f'<div class="side"><h2><a href="/person/{who.id}">'
                     f"{e(label(who.id, who.name))}</a></h2>"
                     f'<p class="muted">{verb} · {count(who.faces, "face")}</p>'
                     f'<div class="grid">{tiles}</div></div>')
    return f"""
<h1>Is this the same person?</h1>
<p class="muted">score {s.probability:.2f} · {e(s.why)} · {pair.left:,} suggestion(s) left</p>
<div class="pair" data-keep="{s.keep.id}" data-other="{s.other.id}">{''.join(sides)}</div>
<div class="bar">
 <button data-act="accept">Same person (y)</button>
 <button data-act="dismiss">Not the same (n)</button>
 <button data-act="skip">Skip (s)</button>
</div>
<p class="muted">Keys: y accept · n not the same · s skip · u undo the last edit.</p>
"""


def history(rows: Sequence[EditRow]) -> str:
    undoable = [r.id for r in rows if r.undone_by is None and not r.undoes]
    lines = []
    for r in rows:
        state = (f"undone by #{r.undone_by}" if r.undone_by is not None
                 else "undo of " + ", ".join(f"#{u}" for u in r.undoes) if r.undoes else "")
        button = ""
        if r.id in undoable:
            count = undoable.index(r.id) + 1
            words = "Undo" if count == 1 else f"Undo this and {count - 1} newer"
            button = f'<button data-undo="{count}" data-edit="{r.id}">{words}</button>'
        lines.append(f"<tr><td>#{r.id}</td><td>{r.created_at:%Y-%m-%d %H:%M:%S}</td>"
                     f"<td>{e(r.command)}</td><td>{e(r.summary)}</td>"
                     f'<td class="muted">{e(state)}</td><td>{button}</td></tr>')
    return ("<h1>Edit history</h1><p class=\"muted\">Every edit, newest first; undo "
            "reverts the newest edits still in effect.</p><table><tr><th>edit</th>"
            "<th>when</th><th>command</th><th>what</th><th></th><th></th></tr>"
            + "".join(lines) + "</table>")


def photo(p: Photo, focus: int | None) -> str:
    boxes = []
    w, h = p.width or 1, p.height or 1
    for f in p.faces:
        x1, y1, x2, y2 = f.bbox
        # Placed by the script (the page's policy allows no inline style).
        place = (f"{100 * x1 / w:.3f} {100 * y1 / h:.3f} {100 * (x2 - x1) / w:.3f} "
                 f"{100 * (y2 - y1) / h:.3f}")
        who = label(f.person, f.name)
        href = f"/person/{f.person}" if f.person is not None else "#"
        boxes.append(f'<a class="box{" focus" if f.id == focus else ""}" data-place="{place}" '
                     f'href="{href}" data-face="{f.id}"><span>{e(who)}</span></a>')
    rows = []
    for f in p.faces:
        who = label(f.person, f.name)
        link = f'<a href="/person/{f.person}">{e(who)}</a>' if f.person else e(who)
        reject = (f'<button data-face-act="reject" data-face="{f.id}" data-person='
                  f'"{f.person}">Not {e(who)}</button>' if f.person else "")
        rows.append(f'<tr><td>{face_img(f.id, 64)}</td><td>face {f.id}</td><td>{link}</td>'
                    f"<td>{reject}</td><td><input list=\"names\" id=\"to-{f.id}\" "
                    f'placeholder="Person"> <button data-face-act="move" data-face="{f.id}">'
                    "Assign</button></td></tr>")
    return (f"<h1>Photo {p.id}</h1><p class=\"muted\">{e(p.path or '')}</p>"
            f'<div class="photo"><img src="/photo/{p.id}.jpg" alt="photo {p.id}">'
            f"{''.join(boxes)}</div><h2>Faces</h2><table>{''.join(rows)}</table>"
            '<datalist id="names"></datalist>')


def photos(names: Sequence[str], hits: Sequence[int]) -> str:
    items = "".join(f'<a href="/photo/{i}"><img src="/photo/{i}.jpg" loading="lazy" '
                    f'height="160" alt="photo {i}"></a>' for i in hits)
    return (f"<h1>Photos of {e(' and '.join(names))}</h1><p class=\"muted\">{len(hits):,} "
            f'photo(s)</p><div class="grid">{items}</div>')
