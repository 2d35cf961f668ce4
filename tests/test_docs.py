"""The docs are tested like code (as sqlite-utils' test_docs.py): the command reference
is generated from the commands and current, every command and option is in it, and
every shell example in the README and docs/ names a real command and real options."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rbv.cli.app import COMMANDS, LazyCommands

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ROOT_OPTIONS = {"--database", "-d", "--data-dir", "--help", "-h", "--version",
                "--install-completion", "--show-completion"}


def _commands() -> dict[str, Any]:
    commands = LazyCommands(dict(COMMANDS))
    return {name: commands[name] for name in COMMANDS}


def _leaves(name: str, command: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    path = (*prefix, name)
    subs = getattr(command, "commands", None)
    if subs:
        for sub_name, sub in subs.items():
            yield from _leaves(sub_name, sub, path)
    else:
        yield " ".join(path), command


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)
            if o.startswith("-")}


def test_the_command_reference_is_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "tools" / "command_docs.py"),
                           "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_command_and_option_is_in_the_docs() -> None:
    reference = (ROOT / "docs" / "commands.md").read_text()
    headings = set(re.findall(r"^## rbv (.+)$", reference, re.M))
    sections = dict(zip(re.findall(r"^## rbv (.+)$", reference, re.M),
                        re.split(r"^## rbv .+$", reference, flags=re.M)[1:], strict=True))
    readme = (ROOT / "README.md").read_text()
    for name, command in _commands().items():
        assert f"`{name}`" in readme, f"{name} is missing from the README's command table"
        for full, leaf in _leaves(name, command):
            assert full in headings, full
            for option in _options(leaf) - {"--help"}:
                assert f"`{option}`" in sections[full], f"rbv {full} {option}"


def shell_lines(doc: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for every line of ```bash and ```sh blocks of ``doc``."""
    inside = False
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.startswith("```"):
            inside = line.strip() in ("```bash", "```sh")
        elif inside and line.strip():
            yield number, line


def _examples() -> Iterator[tuple[str, str]]:
    """(where, command line) for every `rbv …` line of a ```bash or ```sh block."""
    for doc in DOCS:
        for number, line in shell_lines(doc):
            for part in re.split(r"\s(?:&&|\|\|?|;)\s", line.split(" #")[0]):
                words = part.strip().split()
                while words and ("=" in words[0] or words[0] in ("uv", "run", "sudo")):
                    words.pop(0)
                if words[:1] == ["rbv"]:
                    yield f"{doc.relative_to(ROOT)}:{number}", " ".join(words)


EXAMPLES = list(_examples())


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) > 50


@pytest.mark.parametrize(("where", "line"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_every_shell_example_names_a_real_command_and_options(where: str, line: str) -> None:
    try:
        words = shlex.split(line)[1:]
    except ValueError:  # an example cut short by a pipe inside quotes
        words = line.split()[1:]
    command: Any = None
    options: set[str] = set(ROOT_OPTIONS)
    commands = _commands()
    while words and words[0].startswith("-"):  # root options: -d URL, --data-dir PATH
        flag = words.pop(0)
        assert flag.split("=")[0] in ROOT_OPTIONS, f"{where}: {flag}"
        if flag in ("-d", "--database", "--data-dir") and words:
            words.pop(0)
    if not words:
        return  # `rbv --help`, `rbv --install-completion`
    name = words.pop(0)
    assert name in commands, f"{where}: no command {name!r} in {line!r}"
    command = commands[name]
    while getattr(command, "commands", None) and words and not words[0].startswith("-"):
        sub = words.pop(0)
        assert sub in command.commands, f"{where}: no command {name} {sub!r} in {line!r}"
        command = command.commands[sub]
    options |= _options(command)
    for word in words:
        if word.startswith("--") or re.fullmatch(r"-[a-zA-Z]", word):
            assert word.split("=")[0] in options, f"{where}: {line!r}: no option {word}"


SCRIPTS_README = ROOT / "scripts" / "README.md"


def test_every_script_is_a_row_of_the_scripts_readme() -> None:
    """Issue 52 #10: scripts/README.md's table left out command_docs.py (and four more).
    A row names the script by its path under scripts/ (bench/…, tools/…)."""
    rows = set(re.findall(r"^\| `([\w./]+\.py)` \|", SCRIPTS_README.read_text(), re.M))
    scripts = {p.relative_to(ROOT / "scripts").as_posix()
               for p in (ROOT / "scripts").rglob("*.py")}
    assert sorted(scripts - rows) == []
    assert sorted(rows - scripts) == []


def test_scripts_are_benchmarks_or_tools() -> None:
    """Issue 63 #5: scripts/ holds two folders, bench/ (benchmarks: a ratio against a
    baseline) and tools/ (the rest), and no script beside them."""
    assert {p.name for p in (ROOT / "scripts").iterdir()} == {"README.md", "bench", "tools"}


def _script_commands(text: str) -> Iterator[str]:
    """The command lines of a Markdown text that run something of the checkout: code
    spans (across line breaks) and indented lines with `uv run`, `python` or `scripts/`."""
    spans = re.findall(r"`([^`]+)`", text)
    indented = [line for line in text.splitlines() if line.startswith("    ")]
    for command in [*spans, *indented]:
        if re.search(r"\buv run\b|\bpython\b|scripts/", command):
            yield " ".join(command.split())


def test_no_scripts_readme_command_holds_a_path_of_the_machine_it_ran_on() -> None:
    """Issue 52 #10: a measured command held `/work/notes/s18/heavy.lock`, a lock of the
    machine it was measured on. A command's absolute paths are scratch folders (/tmp,
    written by the scripts or a command before it) or the system's (/proc, /dev);
    everything else is relative to the checkout (`../shared` beside it)."""
    commands = list(_script_commands(SCRIPTS_README.read_text()))
    assert len(commands) > 50
    for command in commands:
        for path in re.findall(r"(?:^|[\s=])(/[^\s`'\")]+)", command):
            assert path.startswith(("/tmp/", "/proc/", "/dev/")), (path, command)


@pytest.mark.parametrize("script", sorted(p.relative_to(ROOT).as_posix()
                                          for p in (ROOT / "scripts").rglob("*.py")))
def test_every_script_still_imports(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 63: ``bench_xmp.py`` failed on import for sessions (a function it used had
    moved) and nothing said so. Importing a script runs its imports, not its work; its
    folder is on the path, as when it is run."""
    path = ROOT / script
    monkeypatch.syspath_prepend(str(path.parent))
    name = f"script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
