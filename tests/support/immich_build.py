"""Build the real Immich server (``../shared/immich/server``, v1.135.3) for tests.

The source is third-party code outside the project (AGPL-3.0); it is never copied into the
repository or written to. :func:`ensure_build` follows that folder's ``RECIPE.md``: copy
``server/`` and ``open-api/`` to a scratch folder under the test cache, put
``prepared/package.json`` + ``prepared/package-lock.json`` in (the upstream lock names
test-only packages that are gone from the registry), ``npm@10 ci`` and ``npm run build``,
each run under ``nice``; the result is cached as ``<cache>/immich-server-<lock sha256[:16]>``
and renamed into place only when complete, so a half-built tree is never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.immich_ml import default_cache_root

BUILD_TIMEOUT_S = 2400  # npm ci + nest build: ~6 min on a free 2-core machine, ~20 shared


class ImmichBuildError(RuntimeError):
    """The server could not be built (the message says why)."""


def build_key(source: Path) -> str:
    lock = source / "prepared" / "package-lock.json"
    if not lock.is_file():
        raise ImmichBuildError(f"{lock} not found: is {source} the Immich server folder?")
    return hashlib.sha256(lock.read_bytes()).hexdigest()[:16]


def ensure_build(source: Path, cache_root: Path | None = None,
                 timeout_s: float = BUILD_TIMEOUT_S, log: Path | None = None) -> Path:
    """The built ``server/`` folder (holding ``dist/main.js``) for ``source``, built if
    missing. ``source`` holds ``server/``, ``open-api/`` and ``prepared/``."""
    key = build_key(source)
    root = cache_root or default_cache_root()
    built = root / f"immich-server-{key}"
    if (built / ".complete").is_file():
        return built / "server"
    npx = shutil.which("npx")
    if npx is None:
        raise ImmichBuildError("Node.js (npx) is needed to build the Immich server and is "
                               "not on PATH (apt-get install -y nodejs npm)")
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f".immich-server-{key}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    for part in ("server", "open-api"):
        shutil.copytree(source / part, scratch / part, symlinks=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(source / "prepared" / name, scratch / "server" / name)
    log = log or root / f"immich-server-{key}.log"
    deadline = time.monotonic() + timeout_s
    env = {**os.environ, "npm_config_update_notifier": "false", "CI": "1"}
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    for command in ([*nice, npx, "-y", "npm@10", "ci", "--no-audit", "--no-fund"],
                    [*nice, npx, "-y", "npm@10", "run", "build"]):
        _run(command, scratch / "server", env, deadline, timeout_s, log, scratch)
    if not (scratch / "server" / "dist" / "main.js").is_file():
        shutil.rmtree(scratch, ignore_errors=True)
        raise ImmichBuildError(f"the Immich server build made no dist/main.js (log: {log})")
    (scratch / ".complete").write_text(f"built from {source}\n")
    try:
        scratch.rename(built)
    except OSError:  # another process finished first: use its tree
        shutil.rmtree(scratch, ignore_errors=True)
    return built / "server"


def _run(command: list[str], cwd: Path, env: dict[str, str], deadline: float,
         timeout_s: float, log: Path, scratch: Path) -> None:
    left = deadline - time.monotonic()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(command, cwd=cwd, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=max(left, 1.0))
        except subprocess.TimeoutExpired:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ImmichBuildError(f"building the Immich server took over {timeout_s:.0f} s "
                                   f"({' '.join(command)}; log: {log})") from None
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        tail = log.read_text(errors="replace")[-1500:]
        raise ImmichBuildError(f"building the Immich server failed ({' '.join(command)}, "
                               f"exit {done.returncode}): {tail}")


if __name__ == "__main__":  # python -m tests.support.immich_build SOURCE
    started = time.monotonic()
    print(ensure_build(Path(sys.argv[1])), f"{time.monotonic() - started:.0f} s")
