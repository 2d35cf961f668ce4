"""What a person's name may be: one rule for every way a name comes in (``rbv persons
name``, ``rbv serve``'s name box, ``import-xmp``'s face regions, ``import-folders``'
folder names, Immich's people), checked once where it comes in.

A name is one line of visible Unicode text of at most :data:`MAX_NAME_LENGTH`
characters:

- Invisible format characters (Unicode category Cf: the bidi controls U+202A–202E,
  U+2066–2069, U+200E/200F and U+061C, the zero-width characters U+200B–200D, U+2060 and
  U+FEFF, the soft hyphen, ...) are removed, and the user is told which. They make a
  name show other than it reads (``Obama\\u202eevil`` shows as "Obamalive") or two names
  that look alike differ (``Katy_Perry\\u200b``), and no name needs them.
- Control characters (NUL, newline, tab, escape, DEL, C1), line and paragraph separators
  and lone surrogates (what bytes that are not UTF-8 become on a command line, and
  ``"\\ud800"`` in JSON) are refused: a name holding them is not one line of text.
- A name longer than :data:`MAX_NAME_LENGTH` characters, or with nothing left once
  stripped, is refused.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from rbv.errors import ConfigError

MAX_NAME_LENGTH = 200
"""The most characters a name may have. The longest real names (several given names and
surnames, a title, a particle) stay under 100; twice that leaves room and keeps a name
one line of a list, a page and an error message."""

_REMOVED = {"Cf"}  # invisible format characters: bidi controls, zero-width, BOM, ...
_NOT_TEXT = {"Cc", "Cs", "Zl", "Zp"}  # control characters, surrogates, line breaks
_SHOWN = 60  # characters of a refused name an error shows


@dataclass(frozen=True)
class PersonName:
    """A name as rbv keeps it, and the invisible characters taken out of what came in."""

    text: str
    removed: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """What was taken out, in words ("" when nothing was)."""
        if not self.removed:
            return ""
        kinds = ", ".join(dict.fromkeys(_code(c) for c in self.removed))
        many = len(self.removed)
        return (f"removed {many} invisible character{'s' if many > 1 else ''} "
                f"({kinds}) from the name")


def person_name(text: str, what: str = "a name") -> PersonName:
    """``text`` as a person's name: stripped of its surrounding spaces and of invisible
    format characters (said in :attr:`PersonName.note`); :class:`ConfigError` (one line,
    ``what`` first) when it is no name (see the module)."""
    removed = tuple(c for c in text if unicodedata.category(c) in _REMOVED)
    kept = "".join(c for c in text if unicodedata.category(c) not in _REMOVED)
    problem = unfit_text(kept)  # before stripping: strip() takes a trailing NEL, \n
    if problem is not None:
        raise ConfigError(f"{what} {problem}: {shown_name(kept)}")
    if not kept.strip():
        raise ConfigError(f"{what} cannot be empty")
    return PersonName(kept.strip(), removed)


def name_key(name: str) -> str:
    """A name as names compare, the one rule everywhere (a merge's names, a name given
    twice, a person looked up by name, a sidecar's or Immich's name for ours): its
    surrounding spaces ignored, ``_`` as a space ("Jerry_Seinfeld" is the folder of
    "Jerry Seinfeld"), any case, by Unicode case folding ("STRASSE" is "Straße"), and
    any one of Unicode's spellings of a letter (NFKC: "é" as one character or as "e"
    and an accent, as macOS names folders; "ǅ" as "dž")."""
    spaced = name.strip().replace("_", " ")
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", spaced).casefold())


def unfit_text(text: str) -> str | None:
    """Why ``text`` cannot be a person's name (nor a word that finds one), in words; None
    when it can: too long, or holding what is not one line of text (see the module)."""
    if len(text) > MAX_NAME_LENGTH:
        return (f"has {len(text):,} characters; a name has at most "
                f"{MAX_NAME_LENGTH:,}")
    bad = next((c for c in text if unicodedata.category(c) in _NOT_TEXT), None)
    if bad is None:
        return None
    if "\udc80" <= bad <= "\udcff":  # how Python keeps a byte that is not UTF-8
        return f"holds bytes that are not UTF-8 (\\x{ord(bad) - 0xDC00:02x}); give UTF-8 text"
    if unicodedata.category(bad) == "Cs":
        return f"holds a lone UTF-16 surrogate ({bad!r}), which is not text"
    return f"holds a control character ({bad!r}); use plain text"


def shown_name(text: str) -> str:
    """``text`` quoted for a one-line message: its start only when it is long, and
    anything invisible or not text escaped (``repr``)."""
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}… ({len(text):,} characters)"


def _code(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'format character').lower()}"
