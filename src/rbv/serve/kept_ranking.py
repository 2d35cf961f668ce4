"""The ranking ``rbv serve`` keeps on disk for its next start (in the cache folder, its
user's alone: it names every person), and reading it back."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from rbv.errors import printable
from rbv.jobs.persons.evidence import Suggestion
from rbv.private_files import private_file
from rbv.serve.ranking import OpenPairs, Ranking
from rbv.store.queries.persons import PersonRow

CACHE_VERSION = 4


def library_of(url: str, pack_name: str | None) -> str:
    """Whose ranking a kept one is: this database and pack (never another's)."""
    return hashlib.sha256(f"{url}|{pack_name}".encode()).hexdigest()


def keep(path: Path, library: str, ranking: Ranking) -> bool:
    """Write ``ranking``'s open pairs to ``path`` for ``library`` (whole or not at all);
    whether it was kept. A file that cannot be written (the disk full, the cache folder
    removed while the server runs) is said on one line: the ranking in memory is whole,
    and the next start ranks again."""
    try:
        _write_json(path, _as_kept(library, ranking, list(ranking.pairs)))
    except OSError as exc:
        sys.stderr.write(f"rbv serve: the ranking was not kept for the next start "
                         f"({printable(str(path))}: {printable(exc.strerror or str(exc))}); "
                         "that start ranks again\n")
        return False
    return True


def _as_kept(library: str, ranking: Ranking, suggestions: list[Suggestion]
             ) -> dict[str, object]:
    """A ranking as the cache keeps it: each person once, each pair a row of plain values
    (70,000 pairs at 100,000 faces: a third of the size, and quick to read back)."""
    persons, rows = as_rows(suggestions)
    return {"version": CACHE_VERSION, "library": library, "pack": ranking.pack,
            "stamp": list(ranking.stamp), "persons": persons, "suggestions": rows}


def as_rows(suggestions: list[Suggestion]) -> tuple[list[list[object]], list[list[object]]]:
    """``suggestions`` as plain values: each person once, and a row per pair naming its
    persons by their place in that list (read back with :func:`from_rows`)."""
    persons: dict[uuid.UUID, int] = {}
    rows = []
    for s in suggestions:
        sides = [persons.setdefault(p.id, len(persons)) for p in (s.keep, s.other)]
        rows.append([s.rank, *sides, s.probability, s.log10_chance, s.why, *s.best_faces,
                     list(s.features), s.worth])
    every = {p.id: p for s in suggestions for p in (s.keep, s.other)}
    return ([[str(p), every[p].pack, every[p].name, every[p].faces, every[p].images,
              every[p].hidden, every[p].source] for p in persons], rows)


def person_rows(persons: list[list[Any]]) -> list[PersonRow]:
    """The persons of :func:`as_rows`, as rows again."""
    return [PersonRow(uuid.UUID(p[0]), str(p[1]), p[2], int(p[3]), int(p[4]), bool(p[5]),
                      str(p[6])) for p in persons]


def from_rows(persons: list[PersonRow], rows: list[list[Any]]) -> list[Suggestion]:
    """The suggestions of :func:`as_rows`' ``rows`` (``persons``: :func:`person_rows`)."""
    return [Suggestion(int(rank), persons[keep], persons[other], float(probability),
                       float(log10_chance), str(why), (int(fa), int(fb)),
                       tuple(float(v) for v in features), float(worth))
            for rank, keep, other, probability, log10_chance, why, fa, fb, features, worth
            in rows]


def _write_json(path: Path, kept: dict[str, object], piece: int = 1_000) -> None:
    """``kept`` as JSON (whole or not at all, its user's alone: it names every person),
    its lists dumped a piece at a time: one ``json.dumps`` of 70,000 pairs holds the
    interpreter for a second or more, and the page's requests wait on it (answer -> next
    prompt p95 1.4 s at 100,000 faces)."""
    with private_file(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
        f.write("{")
        for n, (key, value) in enumerate(kept.items()):
            f.write(("," if n else "") + json.dumps(key) + ":")
            if not isinstance(value, list):
                f.write(json.dumps(value))
                continue
            f.write("[")
            for at in range(0, len(value), piece):
                f.write(("," if at else "") + json.dumps(value[at:at + piece])[1:-1])
            f.write("]")
        f.write("}")


def load(cache: Path, library: str) -> Ranking | None:
    """The ranking a previous server kept, or None (missing, unreadable, older format:
    ranked again)."""
    try:
        data = json.loads(cache.read_text())
        if data.get("version") != CACHE_VERSION or data.get("library") != library:
            return None
        suggestions = from_rows(person_rows(data["persons"]), data["suggestions"])
        return Ranking(int(data["pack"]), (int(data["stamp"][0]), int(data["stamp"][1])),
                       OpenPairs(suggestions))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
