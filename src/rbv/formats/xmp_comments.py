"""The XML comments of a sidecar, kept when exiv2 writes it again.

exiv2 parses a packet into tags and serialises the tags: whatever is not a tag, a
comment a person or another program left in the file, is gone from what it writes. The
comments of the file as read are put back into exiv2's text, each before the element it
preceded (found by name, in document order), so a note above ``dc:title`` is still
above it; one whose element exiv2 no longer writes goes after the comments placed
before it, and comments after the last element go after ``x:xmpmeta``. Only whole
comments are inserted between elements, so the packet parses as before.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(rb"<!\[CDATA\[.*?\]\]>|(<!--.*?-->)|<([A-Za-z_][\w.:-]*)", re.S)
_PACKET_START = re.compile(rb"<\?xpacket begin[^>]*\?>")
_META_END = re.compile(rb"</x:xmpmeta\s*>|</rdf:RDF\s*>")


def comments_kept(old: bytes, new: bytes) -> bytes:
    """``new`` (exiv2's serialisation of ``old`` with some tags changed) with the
    comments of ``old`` put back."""
    placed: list[tuple[bytes, list[bytes]]] = []  # element name, the comments before it
    pending: list[bytes] = []
    for token in _TOKEN.finditer(old):
        if token[1] is not None:
            pending.append(token[1])
        elif token[2] is not None and pending:
            placed.append((token[2], pending))
            pending = []
    if not placed and not pending:
        return new
    start = _PACKET_START.match(new.lstrip())
    cursor = start.end() + len(new) - len(new.lstrip()) if start else 0
    out = new
    for name, comments in placed:
        found = re.compile(rb"<" + re.escape(name) + rb"[\s/>]").search(out, cursor)
        at = found.start() if found else cursor
        text = _before(out, at, comments)
        out = out[:at] + text + out[at:]
        cursor = at + len(text)
    if pending:
        ends = list(_META_END.finditer(out, cursor))
        at = ends[-1].end() if ends else len(out)
        out = out[:at] + b"".join(b"\n" + c for c in pending) + out[at:]
    return out


def _before(text: bytes, at: int, comments: list[bytes]) -> bytes:
    """``comments`` to insert at ``at``, each on a line of its own with the indent of the
    element that follows them."""
    line = text.rfind(b"\n", 0, at) + 1
    indent = text[line:at]
    if indent.strip():  # the element is not at the start of its line
        return b"".join(comments)
    return b"".join(c + b"\n" + indent for c in comments)
