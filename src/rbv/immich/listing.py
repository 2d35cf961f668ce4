"""List every image asset of an Immich server, and know whether the list is complete.

Immich's ``POST /search/metadata`` orders only by ``fileCreatedAt`` and pages with OFFSET,
so assets that share a time (files without EXIF dates, copies, bursts) can show up on two
pages or on none, differently for each page size, the same way on every run. A single
page that holds a whole result is one query and so is exact. The listing therefore asks
for time *windows* that fit on one page:

1. the whole library, if it fits on a page;
2. else windows of ``fileCreatedAt`` (``takenAfter``/``takenBefore``, both inclusive),
   halved until each fits; neighbouring windows share their boundary millisecond (no
   gap at any precision), and assets seen twice are kept once;
3. a group that shares one ``fileCreatedAt`` and is larger than a page is split the same
   way by upload time (``createdAfter``/``createdBefore``), which differs per upload;
4. only a group that shares both times to the millisecond and is larger than a page is
   paged (best effort).

:class:`Listing` keeps each asset once and counts them; the caller compares that count
with the server's own (``GET /api/assets/statistics``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rbv.errors import ImmichError
from rbv.immich.assets import ImmichAsset
from rbv.immich.client import MAX_PAGE_SIZE, ImmichClient

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KEYS = (("takenAfter", "takenBefore"), ("createdAfter", "createdBefore"))
_DAY_MS = 86_400_000


def to_ms(stamp: str) -> int | None:
    """Milliseconds since 1970 of an ISO time as Immich writes it (None if not one)."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def to_iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class _Window:
    """Inclusive millisecond ranges: ``taken`` always, ``created`` once taken is one
    instant."""

    taken: tuple[int, int] | None = None
    created: tuple[int, int] | None = None

    def filters(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for (after, before), span in zip(_KEYS, (self.taken, self.created), strict=True):
            if span is not None:
                out[after], out[before] = to_iso(span[0]), to_iso(span[1])
        return out

    def halves(self) -> list[_Window] | None:
        """Two smaller windows covering this one, or None when it cannot be split."""
        if self.taken is None:
            return None
        if self.taken[1] > self.taken[0]:
            return [_Window(t, self.created) for t in _split(self.taken)]
        if self.created is None:
            return [_Window(self.taken, (0, _now_ms() + _DAY_MS))]
        if self.created[1] > self.created[0]:
            return [_Window(self.taken, c) for c in _split(self.created)]
        return None


def _split(span: tuple[int, int]) -> list[tuple[int, int]]:
    lo, hi = span
    if hi - lo == 1:
        return [(lo, lo), (hi, hi)]
    mid = (lo + hi) // 2
    return [(lo, mid), (mid, hi)]  # sharing ``mid``: nothing between them is missed


def _now_ms() -> int:
    return (datetime.now(UTC) - _EPOCH) // timedelta(milliseconds=1)


class Listing:
    """Every image asset once: iterate :meth:`pages`; then ``count``, ``problems``
    (malformed assets) and ``exact`` (False if a tie group had to be paged)."""

    def __init__(self, client: ImmichClient, page_size: int = MAX_PAGE_SIZE) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ImmichError(f"page size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        self.client = client
        self.page_size = page_size
        self.ids: set[str] = set()
        self.problems: list[str] = []
        self.exact = True
        self.queries = 0

    @property
    def count(self) -> int:
        return len(self.ids) + len(self.problems)

    def pages(self) -> Iterator[list[ImmichAsset]]:
        assets, problems, more = self._search(_Window())
        if not more:
            yield self._new(assets, problems)
            return
        first, _, _ = self._search(_Window(), size=1, order="asc")
        last, _, _ = self._search(_Window(), size=1, order="desc")
        lo = to_ms(first[0].file_created_at) if first else None
        hi = to_ms(last[0].file_created_at) if last else None
        if lo is None or hi is None:  # no usable times: page, and say so
            yield from self._paged(_Window())
            return
        stack = [_Window((lo, hi + 1))]
        while stack:
            window = stack.pop()
            assets, problems, more = self._search(window)
            if not more:
                yield self._new(assets, problems)
                continue
            halves = window.halves()
            if halves is None:
                yield from self._paged(window)
            else:
                stack.extend(reversed(halves))

    def _search(self, window: _Window, size: int | None = None,
                order: str = "asc", page: int = 1) -> tuple[list[ImmichAsset], list[str], bool]:
        self.queries += 1
        return self.client.search_images(page, size or self.page_size, order,
                                         **window.filters())

    def _paged(self, window: _Window) -> Iterator[list[ImmichAsset]]:
        """OFFSET paging (ties may be missed): only for what cannot be split."""
        self.exact = False
        page, more = 1, True
        while more:
            assets, problems, more = self._search(window, page=page)
            yield self._new(assets, problems)
            page += 1

    def _new(self, assets: list[ImmichAsset], problems: list[str]) -> list[ImmichAsset]:
        self.problems.extend(problems)
        fresh = [a for a in assets if a.id not in self.ids]
        self.ids.update(a.id for a in fresh)
        return fresh
