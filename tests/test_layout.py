"""How ``src/rbv`` is laid out, checked on its source: the layers (:data:`LAYERS`) import
downwards only, and so do the rooms of ``jobs/`` (:data:`JOB_ROOMS`); no module imports
itself in a loop or another module's private (underscore) names, nor a library's;
``cluster/`` computes on arrays (no database, no files); SQL is written in ``store/``
alone and its queries are run by jobs and serve's named page reads; the CLI starts
without the heavy libraries; no module is longer than :data:`MOST_LINES`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rbv"

# Lower layers first; a module may import its own package and any lower layer.
LAYERS = {
    "errors": 0, "bounds": 0, "bounded_http": 0, "regular_files": 0, "words": 0, "face_rows": 0,
    "compiled": 0, "private_files": 0,
    "media": 1, "formats": 1, "faces": 2,
    "config": 3, "store": 4, "mlapi": 4, "immich": 4, "cluster": 5, "pictures": 5, "web": 6,
    "jobs": 7, "serve": 8, "library": 8, "cli": 9, "__main__": 10,
}
# The rooms of jobs/, lower first: a room imports its own modules, the modules of jobs/
# itself (recording, reporting) and documented functions and classes of lower rooms,
# never a higher room. What two rooms share that is pure computation lives below them,
# in cluster/.
JOB_ROOMS = {"library": 0, "grouping": 1, "persons": 2, "exchange": 3}
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b")


MOST_LINES = 450
"""Lines a module of ``src/rbv`` may hold: past it, it is probably two modules."""
LONGER: dict[str, str] = {}
"""Modules allowed past :data:`MOST_LINES` (path under ``src/rbv`` -> why); none now."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(("rbv", *parts))
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every rbv module ``path`` imports, deferred (in-function) imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rbv"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rbv"))
    return found


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_imports_run_from_higher_layers_to_lower_ones_only() -> None:
    modules = _modules()
    upward = []
    for name, path in modules.items():
        mine = _layer(name)
        if mine == "__init__":
            continue
        for target in _imports(path) & set(modules):
            theirs = _layer(target)
            if theirs not in (mine, "__init__") and LAYERS[theirs] >= LAYERS[mine]:
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_no_module_is_longer_than_most_lines() -> None:
    """Issue 63 #5: a module says what it holds by its name; one past 450 lines holds
    two things (and hides the second from its name)."""
    long = {path.relative_to(SRC).as_posix(): len(path.read_text().splitlines())
            for path in SRC.rglob("*.py")}
    over = {rel: n for rel, n in long.items() if n > MOST_LINES and rel not in LONGER}
    assert over == {}
    assert [rel for rel in LONGER if long.get(rel, 0) <= MOST_LINES] == []


def test_job_rooms_import_their_own_and_lower_rooms_only() -> None:
    modules = _modules()
    assert {p.name for p in (SRC / "jobs").iterdir() if p.is_dir()
            and p.name != "__pycache__"} == set(JOB_ROOMS)

    def room(module: str) -> str | None:
        parts = module.split(".")
        return parts[2] if len(parts) > 3 and parts[1] == "jobs" else None

    upward, undocumented = [], []
    for name, path in modules.items():
        mine = room(name)
        if mine is None:
            continue
        for target in _imports(path) & set(modules):
            theirs = room(target)
            if theirs is not None and JOB_ROOMS[theirs] > JOB_ROOMS[mine]:
                upward.append(f"{name} -> {target}")
            elif theirs not in (None, mine):
                # What a room lends another is a documented function or class of it.
                tree = ast.parse(modules[target].read_text())
                lent = {n.name: n for n in tree.body if isinstance(
                    n, (ast.FunctionDef, ast.ClassDef))}
                undocumented += [f"{name} -> {target}.{a.name}" for node in ast.walk(
                    ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
                    and node.module == target for a in node.names
                    if a.name not in lent or ast.get_docstring(lent[a.name]) is None]
    assert upward == []
    assert undocumented == []


def test_no_module_imports_another_modules_private_names() -> None:
    """``from rbv.x import _name`` reaches into another module's insides: what two
    modules share is public (and documented) in the lower one."""
    private = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rbv"):
                private += [f"{path.relative_to(SRC)}: {node.module}.{a.name}"
                            for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Import):
                private += [f"{path.relative_to(SRC)}: {a.name}" for a in node.names
                            if any(p.startswith("_") and not p.startswith("__")
                                   for p in a.name.split("."))]
    assert private == []


def test_no_module_imports_a_librarys_private_modules_or_names() -> None:
    """Issue 63: ``typer._click``, ``hdbscan._hdbscan_linkage`` and the like change or go
    with any release of their library; rbv uses what a library documents."""
    private = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    not (node.module or "").startswith("rbv"):
                private += [f"{path.relative_to(SRC)}: {node.module}.{a.name}"
                            for a in node.names
                            if any(p.startswith("_") and not p.startswith("__")
                                   for p in [*(node.module or "").split("."), a.name])]
    assert private == []


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}
    # A package's __init__ re-exporting its modules is not a loop.
    graph = {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


# What reading or writing a file looks like in Python source.
FILE_USE = re.compile(r"\bopen\(|\.r?glob\(|\.(read|write)_(text|bytes)\(|\bPath\(|"
                      r"\.resolve\(|\.(is_file|is_dir|exists|iterdir|stat)\(|"
                      r"\bos\.(path|listdir|scandir|walk|open|remove|unlink|mkdir|makedirs|"
                      r"rename|replace)\b|^\s*(import|from) (pathlib|csv|shutil|glob)\b")


def test_cluster_is_pure() -> None:
    """cluster/ takes arrays and returns arrays: no database (no query, no psycopg), no
    files (no path, no open, no glob), no progress."""
    for path in (SRC / "cluster").rglob("*.py"):
        for target in _imports(path):
            assert not target.startswith("rbv.store"), f"{path.name} imports {target}"
            assert not target.startswith("rbv.jobs."), f"{path.name} imports {target}"
        text = path.read_text()
        assert "psycopg" not in text, path.name
        assert [line for line in text.splitlines() if FILE_USE.search(line)] == [], path.name


# What rbv serve's pages read, by name; everything else they do goes through jobs/.
SERVE_READS = {"review_pages", "persons", "person_lookup", "person_covers", "review", "edits",
               "images", "birthdays"}


def test_only_jobs_and_serves_page_reads_run_the_stores_queries() -> None:
    """store/queries/ is imported by jobs/ (and the store itself) and by serve/ through
    the named read modules; cli/ and every lower layer reach the database through a job
    (they may open it: ``rbv.store``, ``rbv.store.server``)."""
    outside = []
    for name, path in _modules().items():
        for target in _imports(path):
            if not target.startswith("rbv.store.queries."):
                continue
            query_module = target.split(".")[3]
            mine = _layer(name)
            if mine in ("store", "jobs") or (mine == "serve" and query_module in SERVE_READS):
                continue
            outside.append(f"{name} -> {target}")
    assert outside == []


def test_the_store_is_the_server_and_the_queries() -> None:
    """store/ holds two rooms: server/ (running and reaching PostgreSQL) and queries/
    (the SQL); the server never reads a table of rbv's."""
    top = {p.name for p in (SRC / "store").iterdir() if p.name != "__pycache__"}
    assert top == {"__init__.py", "server", "queries"}
    for path in (SRC / "store" / "server").rglob("*.py"):
        assert not [t for t in _imports(path) if t.startswith("rbv.store.queries")], path.name


def test_sql_lives_in_the_store_only() -> None:
    outside = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "store" or rel == Path("cli/psql.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SQL.search(line):
                outside.append(f"{rel}:{number}: {line.strip()}")
    assert outside == []


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    """`import rbv.cli.app` (what `rbv --help` runs) loads no model, array or database
    library: each command imports what it needs when it runs."""
    import subprocess
    import sys

    heavy = ("onnxruntime", "faiss", "hdbscan", "sklearn", "cv2", "insightface", "numpy",
             "scipy", "psycopg", "PIL")
    code = ("import sys, rbv.cli.app; print(' '.join(m for m in " + repr(heavy)
            + " if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    assert loaded == []


def test_every_command_builds_and_lists_its_own_summary() -> None:
    """The lazy command table names real commands, and `rbv --help` shows the first
    paragraph of each command's own docstring."""
    from rbv.cli.app import COMMANDS, LazyCommands

    commands = LazyCommands(dict(COMMANDS))
    for name in COMMANDS:
        stub = commands.stub(name)
        real = commands[name]
        assert real.name == name
        summary = " ".join((real.help or "").split("\n\n")[0].split())
        assert stub is not None and stub.help == summary, name
        assert stub.short_help == real.short_help == summary, name


ADMIN_COMMANDS = {"migrate", "psql", "serve"}
"""Command modules that open the database themselves: they administer the server and
the schema (or run a front end of their own), not a library's contents."""
NOT_THROUGH_THE_LIBRARY = {"eval"}
"""Command modules not through the library: eval indexes and clusters labelled photos
in a scratch database of its own (with ``--store``, it writes the calibration it found
into the library's packs table); not converted yet."""


def test_commands_reach_the_database_through_the_library() -> None:
    """Issue 63: a command is options, one call of :class:`rbv.Library` (``library_of``)
    and printing; only the admin commands and those not converted yet open the
    database themselves."""
    opening = {name.removeprefix("rbv.cli.") for name, path in _modules().items()
               if name.startswith("rbv.cli.")
               and "rbv.store.open_database" in _imports(path)}
    assert opening == ADMIN_COMMANDS | NOT_THROUGH_THE_LIBRARY
