"""A whole rbv session on the embedded server, then what of it other users could reach.

    uv run python scripts/tools/private_session.py DATA_DIR [--photos DIR] [--limit N]

Runs ``rbv migrate``, ``index`` (the test pack, on the CPU), ``cluster`` and a ``serve``
session that a browser signed in to (people, pairs, a person's page, every face crop and
photo those pages show) with ``RBV_DATA_DIR=DATA_DIR`` and ``XDG_RUNTIME_DIR`` unset (as
under cron), then prints every path under DATA_DIR (and the server's socket folder, when
the data folder's path is too long for a socket there) that other users may read,
write or enter (``find DATA_DIR -perm /o=rwx``), and exits 1 when there is one. Run it
as the user to check, e.g. an unprivileged one (the venv's Python may live under /root:
use the system's):

    setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp/h \\
      PYTHONPATH=src:.venv/lib/python3.11/site-packages \\
      /usr/bin/python3 scripts/tools/private_session.py /tmp/h/data
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
PACK = SHARED / "models" / "scrfd_sface"


def _rbv(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "rbv", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _serve_session(env: dict[str, str]) -> None:
    """Start ``rbv serve``, sign in with the printed URL, open pages and their images."""
    proc = subprocess.Popen([sys.executable, "-m", "rbv", "serve", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:  # the printed URL is the event waited on
            found = re.search(r"http://127\.0\.0\.1:\d+/\S*token=\S+", line)
            if found:
                url = found.group(0)
                break
        if not url:
            raise SystemExit("rbv serve printed no URL")
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url, timeout=120) as first:
            base = first.geturl().split("?")[0].rstrip("/")
            home = first.read().decode()
        pages = [home]
        for path in ("/pairs", "/suggestions"):
            with opener.open(base + path, timeout=300) as r:
                pages.append(r.read().decode())
        person = re.search(r'/person/([0-9a-f-]{36})', "".join(pages))
        if person:
            with opener.open(f"{base}/person/{person.group(1)}", timeout=300) as r:
                pages.append(r.read().decode())
        images = set(re.findall(r'(?:src|href)="[^"]*?/((?:face|photo)/\d+\.jpg)"',
                                "".join(pages)))
        for image in sorted(images):
            with opener.open(f"{base}/{image}", timeout=300) as r:
                r.read()
        print(f"serve: signed in, {len(pages)} pages and {len(images)} images opened")
    finally:
        proc.terminate()
        proc.wait(60)


def _open_to_others(top: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(top):
        for name in [".", *dirs, *files]:
            path = Path(folder) / name
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o007:
                found.append(f"{stat.filemode(mode)} {path}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "faces" / "Madonna")
    parser.add_argument("--limit", type=int, default=12, help="photos to index")
    args = parser.parse_args()
    data = args.data_dir.absolute()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "RBV_DATABASE_URL", "XDG_RUNTIME_DIR")}
    env |= {"RBV_DATA_DIR": str(data), "RBV_SERVER_LINGER": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])}
    library = data.parent / f"{data.name}-photos"
    library.mkdir(parents=True, exist_ok=True)
    for photo in sorted(args.photos.iterdir())[:args.limit]:
        shutil.copyfile(photo, library / photo.name)
    _rbv(env, "migrate")
    _rbv(env, "index", str(library), "--model-pack", str(PACK), "--device", "cpu")
    _rbv(env, "cluster")
    _serve_session(env)
    open_paths = _open_to_others(data)
    sockets = Path("/tmp")
    for mine in sockets.glob(f"rbv-{os.geteuid()}-*"):
        open_paths += _open_to_others(mine)
    print(f"{data}: {len(open_paths)} path(s) other users may reach (mode o=rwx)")
    for line in open_paths:
        print("  " + line)
    sys.exit(1 if open_paths else 0)


if __name__ == "__main__":
    main()
