"""The README walked as a newcomer walks it (issue 62: "the README's commands, walked at
80 columns, print nothing wider"): every line of its ```bash blocks, in order, typed
into one bash shell with COLUMNS=80 and HOME a fresh home whose ~/Pictures is a small
real library, running the installed `rbv`; then the README's `rbv refine ~/facesets` on
this library, too small for a faceset. The README's placeholders (its own server's URL,
the person ids, face ids and photo of "Fixing persons") become what a newcomer reads off
this library (:data:`INSTEAD`, :func:`_ids`); the lines that cannot run here are
:data:`SKIPPED`, each with its reason."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from PIL import Image

from tests.conftest import FACES
from tests.test_docs import ROOT, shell_lines

WIDTH = 80
README = ROOT / "README.md"
# 3 photos of each of 4 people: too few for any faceset (refine keeps sets of 15 photos).
PEOPLE = ("Barack_Obama", "Angelina_Jolie", "Katy_Perry", "Matt_Damon")
PHOTOS_EACH = 3

SKIPPED = {
    "pip install uv && uv sync --extra cpu --compile-bytecode":
        "installs from the network; the tests run in the synced checkout",
    'rbv index --target /mnt/galleries --database "$DATABASE_URL" --ml-uri http://ml:3003':
        "needs an Immich machine-learning server (tests/test_seed_lines.py runs it against "
        "the real one); here its pack would be the library's second",
    "uv run pytest -n 2": "runs the whole suite, this test included",
    "scripts/tools/install_test_packages.sh   # for the tests only: Debian's exiftool, "
    "chromium, …": "installs Debian packages (apt-get); .ci/run runs it before the tests",
}
# Your own server is the tests' password-protected PostgreSQL (a fresh database); the
# seed's lines go on with it ("or your own server's URL").
INSTEAD = {
    "export DATABASE_URL=postgresql://me:secret@dbhost/photos   # needs the pgvector "
    "extension": "export DATABASE_URL={url}",
    "export DATABASE_URL=$(rbv db start)   # or your own server's URL":
        "export DATABASE_URL={url}",
}
PLACEHOLDERS = re.compile(r"(?<![\w.])(3f2a|77c1|1201|1207|4711|beach\.jpg|412,188,96,110)\b")


@dataclass
class Said:
    line: str
    returncode: int
    stdout: str
    stderr: str

    def too_wide(self) -> list[str]:
        return [out for out in (self.stdout + self.stderr).splitlines() if len(out) > WIDTH]


@dataclass
class Shell:
    """One bash session: each line runs in a new bash that starts from the environment
    the line before it left (its `export`s kept), in the newcomer's home."""

    home: Path
    env: dict[str, str]
    saved: Path  # where each line's bash leaves its environment for the next
    said: list[Said] = field(default_factory=list)

    def type(self, line: str) -> Said:
        saved = self.saved
        script = f"{line}\nrc=$?; env -0 > {saved}; exit $rc\n"
        done = subprocess.run(["bash", "-c", script], env=self.env, cwd=self.home, text=True,
                              capture_output=True, timeout=300, check=False)
        self.env = dict(entry.split("=", 1) for entry in saved.read_text().split("\0")
                        if "=" in entry)
        said = Said(line, done.returncode, done.stdout, done.stderr)
        self.said.append(said)
        return said


def _library(home: Path) -> Path:
    pictures = home / "Pictures"
    for person in PEOPLE:
        (pictures / person).mkdir(parents=True)
        for photo in sorted(p for p in (FACES / person).iterdir() if p.suffix == ".jpg")[
                :PHOTOS_EACH]:
            shutil.copy(photo, pictures / person / photo.name)
    return pictures


def _ids(url: str, home: Path) -> dict[str, str]:
    """What a newcomer reads off `rbv persons list` and `rbv persons show` for the
    placeholders of "Fixing persons": the two largest persons (3f2a becomes Ada, 77c1 is
    merged into her), a face of each (1201, and 1207 that `not-this-person` takes out of
    Ada), a third face (4711, not a face); and for the face the detector "missed", a box
    in the corner of 1207's photo (beach.jpg), where Ada has no face then."""
    with psycopg.connect(url) as conn:
        persons = conn.execute(
            "SELECT p.id::text, array_agg(f.id ORDER BY f.id) FROM persons p"
            " JOIN face_detections f ON f.person_id = p.id"
            " WHERE p.merged_into IS NULL AND NOT p.hidden"
            " GROUP BY p.id ORDER BY count(*) DESC, min(f.id)").fetchall()
        assert len(persons) >= 2, persons
        (ada, ada_faces), (other, other_faces) = persons[:2]
        third = persons[2][1][0] if len(persons) > 2 else ada_faces[-1]
        [path] = conn.execute(
            "SELECT ip.path FROM face_detections f JOIN image_paths ip"
            " ON ip.image_id = f.image_id WHERE f.id = %s", (other_faces[-1],)).fetchone()
    with Image.open(path) as image:
        side = min(image.size) // 5
    return {"3f2a": ada[:8], "77c1": other[:8], "1201": str(ada_faces[0]),
            "1207": str(other_faces[-1]), "4711": str(third),
            "beach.jpg": str(Path(path).relative_to(home)),
            "412,188,96,110": f"0,0,{side},{side}"}


@pytest.mark.slow  # some forty rbv processes, two PostgreSQL servers, real faces
def test_the_readme_walked_at_80_columns_prints_nothing_wider(
        empty_db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    # A home as long as /home/alice-smith, whatever the length of pytest's folder: the
    # paths rbv prints are never shortened.
    home = Path(tempfile.mkdtemp(prefix="rbv-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    _library(home)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "RBV_DATABASE_URL", "RBV_MODEL_PACK", "RBV_DATA_DIR")}
    env.update(HOME=str(home), COLUMNS=str(WIDTH), RBV_SERVER_LINGER="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
               RBV_MODEL_PACK=str(ROOT.parent / "shared" / "models" / "scrfd_sface"))
    shell = Shell(home, env, tmp_path / "env")
    ids: dict[str, str] = {}
    for _, line in shell_lines(README):
        if line.strip() in SKIPPED:
            continue
        typed = INSTEAD.get(line.strip(), line).format(url=empty_db_url)
        if PLACEHOLDERS.search(typed):  # after `rbv cluster`: Fixing persons
            ids = ids or _ids(empty_db_url, home)
            for placeholder, word in ids.items():
                typed = re.sub(rf"(?<![\w.]){re.escape(placeholder)}\b", word, typed)
        shell.type(typed)

    # The README's refine example on a library too small for a faceset says why.
    refined = shell.type("rbv refine ~/facesets")

    failed = [(said.line, said.returncode, said.stderr) for said in shell.said
              if said.returncode != 0]
    assert failed == []
    wide = [(said.line, out) for said in shell.said for out in said.too_wide()]
    assert wide == [], "\n".join(f"{line}\n    {out}" for line, out in wide)
    assert len(shell.said) > 25
    # Issue 62 #14: "refine made 0 facesets without saying why".
    told = " ".join(refined.stdout.split())
    assert re.search(r"No faceset: \d+ clusters? had faces of fewer than 15 different photos "
                     r"\(--min-images lowers that\); \d+ of 12 faces failed the quality gate "
                     r"\(--min-face 90, --min-blur 40, --min-det 0\.6 lower it\)\. Wrote 0 "
                     r"facesets to /tmp/rbv-\w+/facesets\.$", told), refined.stdout


def test_the_lines_the_walk_skips_or_types_otherwise_are_still_in_the_readme() -> None:
    lines = {line.strip() for _, line in shell_lines(README)}
    assert len(lines) > 25
    for line in [*SKIPPED, *INSTEAD]:
        assert line in lines, f"{line!r} is no longer in the README: drop it from the walk"
    text = "\n".join(lines)
    assert {m[1] for m in PLACEHOLDERS.finditer(text)} == {
        "3f2a", "77c1", "1201", "1207", "4711", "beach.jpg", "412,188,96,110"}
