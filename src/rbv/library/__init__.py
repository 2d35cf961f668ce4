"""rbv as a Python library: ``from rbv import Library``.

A front end, as the CLI and ``rbv serve`` are: each method is a thin call into the job
the matching command runs (:mod:`rbv.jobs`), and returns the object that job returns,
the one the command prints (and ``--json`` writes with ``as_dict()``). It takes resolved
values, a person's ``uuid.UUID`` and a face's ``int`` id, never text to look up (turn
text into a person with :meth:`Library.find`, once, as the CLI does), and it reads no
environment variable: what it uses is what :meth:`Library.open` is given. The jobs' own
errors (:mod:`rbv.errors`) come through as they are; docs/api.md lists them.

The class is assembled from a room per kind of work (:mod:`rbv.library.runs`,
:mod:`~rbv.library.persons`, :mod:`~rbv.library.person_edits`,
:mod:`~rbv.library.face_marks`, :mod:`~rbv.library.review`, :mod:`~rbv.library.exchange`,
:mod:`~rbv.library.upkeep`) in :mod:`rbv.library.opened`.
"""

from rbv.library.opened import Library
from rbv.library.room import StrPath

__all__ = ["Library", "StrPath"]
