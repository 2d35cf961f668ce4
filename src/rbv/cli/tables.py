"""Tables that fit the terminal without cutting what users need to read or copy."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from rbv.errors import printable


def print_table(table: Table, *, optional: Sequence[str] = (), whole: Sequence[str] = (),
                wants: tuple[str, int] | None = None, console: Console | None = None) -> None:
    """Print ``table`` so that no cell is cut short with "…" (Rich's default, which turns
    ids, names and pack names into ``facese…`` at 80 columns). While the table cannot fit
    the terminal with every word whole, or ``wants`` a column (header, characters) wider
    than it would get, the ``optional`` columns are left out, in that order. Then every
    column gets its longest word where there is room (the column ``wants`` names its
    characters next: a sentence read across, not down), and cells wrap between words;
    where there is not, the widest columns not named in ``whole`` (ids
    users copy) are narrowed and their long words folded onto the next line, never
    shortened; when even that is not enough, the ``whole`` columns after the first are
    too (the first ``whole`` column, an id, is never folded).

    Every cell and the title are shown as plain text with control characters escaped
    (names and paths come from users and folders: an escape sequence in a folder's
    name must not clear the screen, nor ``[red]`` in a name be read as a style)."""
    console = console or Console()
    table = _plain(table)
    table.box = box.SIMPLE_HEAD  # no vertical rules: more room for the cells
    for column in table.columns:
        column.overflow = "fold"
    for header in optional:
        if narrowest(table) <= console.width and _roomy(table, wants, console.width):
            break
        table = _plain(table, leave_out=header)
    room = console.width - (narrowest(table) - sum(_widths(c)[0] for c in table.columns))
    widths = [_widths(c)[0] for c in table.columns]
    narrowable = [i for i, c in enumerate(table.columns) if c.header not in whole]
    # then, for a word wider than the terminal (a long path, a 20,000-character name),
    # the ``whole`` columns but the first: that one (the id) is never folded; headers
    # fold ("simi / lari / ty") only when nothing else is left
    kept = [i for i, c in enumerate(table.columns) if c.header in whole[1:]]
    headed = [max(4, *(cell_len(w) for w in str(c.header).split())) for c in table.columns]
    for some, floor in ((narrowable, headed), (kept, headed), (narrowable, [4] * len(widths))):
        while sum(widths) > room:
            wide = [i for i in some if widths[i] > floor[i]]
            if not wide:
                break
            widths[max(wide, key=lambda i: widths[i])] -= 1
    spare = room - sum(widths)
    for i, column in enumerate(table.columns):
        if wants and column.header == wants[0]:
            first = max(0, min(spare, wants[1] - widths[i], _widths(column)[1] - widths[i]))
            widths[i] += first
            spare -= first
    for column, width in zip(table.columns, widths, strict=True):
        extra = max(0, min(spare, _widths(column)[1] - width))
        spare -= extra
        # fixed widths: Rich itself narrows the widest columns first, splitting words
        # (a 36-character id) that would have fitted
        column.width = width + extra
    console.print(table)


def _roomy(table: Table, wants: tuple[str, int] | None, width: int) -> bool:
    """Whether the column ``wants`` names would get its characters (or its longest
    cell, if shorter) with every other column at its longest word."""
    column = next((c for c in table.columns if wants and c.header == wants[0]), None)
    if column is None or wants is None:
        return True
    word, cell = _widths(column)
    return width - narrowest(table) + word >= min(wants[1], cell)


def _plain(table: Table, *, leave_out: str | None = None) -> Table:
    """A copy of ``table`` with every cell, the title and the caption as plain text,
    without the column headed ``leave_out``: rebuilt column by column and row by row,
    as Rich has no public way to change a cell nor to take a column out."""
    kept = [c for c in table.columns if leave_out is None or c.header != leave_out]
    plain = copy.copy(table)
    plain.columns, plain.rows = [], []
    for c in kept:
        plain.add_column(c.header, c.footer, header_style=c.header_style,
                         highlight=c.highlight, footer_style=c.footer_style, style=c.style,
                         justify=c.justify, vertical=c.vertical, overflow=c.overflow,
                         width=c.width, min_width=c.min_width, max_width=c.max_width,
                         ratio=c.ratio, no_wrap=c.no_wrap)
    for row, cells in zip(table.rows, zip(*(c.cells for c in kept), strict=True),
                          strict=True):
        plain.add_row(*(_text(cell) if isinstance(cell, str) else cell for cell in cells),
                      style=row.style, end_section=row.end_section)
    for part in ("title", "caption"):
        value = getattr(table, part)
        if isinstance(value, str):
            setattr(plain, part, _text(value))
    return plain


def _text(cell: str) -> Text:
    """``cell`` as plain text, each line made printable (a cell may list paths, one a
    line)."""
    return Text("\n".join(printable(line) for line in cell.split("\n")))


def narrowest(table: Table) -> int:
    """The table's width with every column as narrow as its longest word (header
    included), plus padding and rules."""
    return sum(_widths(c)[0] + 2 for c in table.columns) + len(table.columns) + 1


def _widths(column: Column) -> tuple[int, int]:
    """(longest word, longest cell) of the column, header included."""
    cells = [str(cell) for cell in [column.header, *column.cells]]
    words = [cell_len(w) for cell in cells for w in cell.split()]
    return max(words, default=1), max((cell_len(c) for c in cells), default=1)

