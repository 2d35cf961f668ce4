"""Errors users see. Each message says what went wrong and what to do about it.

Core code raises these and never prints or exits; the CLI turns them into one
``Error: …`` line on stderr and the exit code below.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

EXIT_ERROR = 1
"""A user-fixable problem (bad option, unreachable database, missing schema)."""
EXIT_UNAVAILABLE = 2
"""A server needed for the run is down; state was saved, re-run later to resume."""
EXIT_PARTIAL = 3
"""The run finished, but some items failed; they are retried on the next run."""


def printable(text: str) -> str:
    """``text`` safe to show on one line: bytes of a non-UTF-8 file name as ``\\xNN`` and
    control characters (a newline in a file name) escaped, so one error stays one line."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte (JSON's "\ud800")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


@dataclass(frozen=True)
class Remedy:
    """What would resolve a refusal, as data for a front end to offer: ``action`` names
    an edit ("merge", "name", "move", "not_this_person", "cover", "override", "show",
    "index"), ``args`` its arguments (person ids as :class:`uuid.UUID`, face ids as
    ``int``, names and dates as text), ``label`` what it does in a few words, without a
    command ("keep the name 'Ada'"). The CLI words it as a command line
    (:mod:`rbv.cli.remedies`), serve as a button that does it."""

    action: str
    args: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


class RbvError(Exception):
    """Base of every error shown to users as one line: what went wrong, in words that
    name no command or option, and what would put it right (``remedies``, as data: the
    CLI words them as commands and options, serve as buttons)."""

    exit_code = EXIT_ERROR

    def __init__(self, *args: object, remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(*args)
        self.remedies = tuple(remedies)


class ConfigError(RbvError):
    """An option or environment variable has a value rbv cannot use. ``setting`` names
    the setting it is about by its keyword (``det_size``, ``model_pack``: the Library's
    and the options' name with ``_``); the message names it in words, and the CLI adds
    the option (``--det-size``)."""

    def __init__(self, *args: object, setting: str | None = None,
                 remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(*args, remedies=remedies)
        self.setting = setting


class DatabaseUnavailable(RbvError):
    """The PostgreSQL server cannot be reached, or stopped in the middle of a command;
    work committed before is kept, re-run when it is up."""

    exit_code = EXIT_UNAVAILABLE


class PgvectorMissing(RbvError):
    """The PostgreSQL server has no pgvector extension."""


class SchemaNotReady(RbvError):
    """The database schema is missing or older than this rbv; run `rbv migrate`."""


class SchemaTooNew(RbvError):
    """The database was migrated by a newer rbv."""


class MigrationError(RbvError):
    """A migration file failed to apply; nothing of it was kept."""


class EmbeddedServerError(RbvError):
    """The embedded PostgreSQL server could not be started."""


class UnsafeFolder(RbvError):
    """A folder rbv would keep its data in (or one on the way to it) is another user's,
    or another user can write to it: refused, and left as it is."""


class ImageUnreadable(RbvError):
    """One file cannot be catalogued or decoded (recorded, retried on the next run)."""


class ImageTooLarge(ImageUnreadable):
    """An image has more pixels than the decompression-bomb guard allows."""


class EditConflict(RbvError):
    """An edit cannot be undone: rows it changed were changed again since."""


ANY_PERSON = "PERSON"
"""A remedy's person the user picks (``Remedy("move", {"faces": [7], "to": ANY_PERSON})``):
the CLI shows it as a placeholder; serve offers no button for it."""


class Refused(RbvError):
    """An edit refused, changing nothing, for a reason the user can act on: ``kind``
    names the reason ("duplicate_name", "names_differ", "births_differ", "photo_clash",
    "decisions_contradict", "not_its_face", …), ``persons`` and ``faces`` what it
    involves, ``remedies`` what would resolve it. The message says why in plain words
    and names no command or option: the front ends word the remedies."""

    def __init__(self, message: str, *, kind: str, persons: Sequence[uuid.UUID] = (),
                 faces: Sequence[int] = (), remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(message, remedies=remedies)
        self.kind = kind
        self.persons = tuple(persons)
        self.faces = tuple(faces)


class PersonNotFound(Refused):
    """A person reference (uuid, uuid prefix or name) matches no person, or several; or
    a face id no face has."""

    def __init__(self, message: str, remedies: Sequence[Remedy] = ()) -> None:
        super().__init__(message, kind="not_found", remedies=remedies)


class ShownChanged(RbvError):
    """An answer made on a page that is out of date: what the page showed of a person or
    a face was changed since (by a command, another page, a clustering run). Refused,
    changing nothing; reloading the page shows it as it is."""


class ClusterBusy(RbvError):
    """Another clustering run or person edit holds the pack's lock."""


class PackNotFound(RbvError):
    """No faces were stored for the model pack named."""




class ModelPackError(RbvError):
    """A model pack is missing, incomplete or unreadable; the message says where to put it."""


class DeviceUnavailable(RbvError):
    """The requested inference device is not offered by the installed ONNX Runtime."""


class ImmichUnavailable(RbvError):
    """The Immich server does not answer; staging state was saved, re-run to resume."""

    exit_code = EXIT_UNAVAILABLE


class ImmichError(RbvError):
    """The Immich server refused a request or answered something rbv cannot use."""


class InferenceUnavailable(RbvError):
    """The remote inference server did not answer after its retries; the image is left
    not-done and retried on the next run."""

    exit_code = EXIT_UNAVAILABLE


class InferenceServerDown(InferenceUnavailable):
    """Several images in a row exhausted their retries: the run stops (exit code 2) and
    leaves the images it did not finish for the next run."""


class InferenceServerWrong(InferenceUnavailable):
    """The inference server answered its start-up check with what no face recognizer
    gives: it is not used, as one that does not answer (exit code 2 when it is the only
    one); its message names the server and what it sent."""


class InferenceError(RbvError):
    """The remote inference server answered something rbv cannot use."""


class InferenceWrongAnswer(InferenceError):
    """The inference server's answer is well-formed but holds what no face recognizer
    gives (an embedding's norm or width, a count of faces out of bounds): the server is
    wrong, not the image. Its message says what the server sent."""


@contextmanager
def writing(path: os.PathLike[str] | str) -> Iterator[None]:
    """Name ``path`` in an ``OSError`` raised while writing it: a write that fills the
    disk raises one without a file name, and "no space left on the device" alone does not
    say which disk (the CLI shows ``PATH: …``)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = os.fspath(path)
        raise
