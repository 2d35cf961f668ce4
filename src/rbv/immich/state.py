"""The staging run's resumable state: one JSON file, replaced atomically.

Each asset that reached a final outcome (staged, deduplicated, no face, small face) is
recorded with it, so a re-run skips it without asking the server again; failed assets
are recorded with their error and retried. Every outcome is first appended to a journal
(one fsynced JSON line, cheap at any library size); from time to time the whole state is
written to a temporary file, fsynced and renamed over the old one, and the journal
emptied. A crash (even ``kill -9``) therefore loses no recorded outcome: loading reads
the last complete state and replays the journal (a torn last line is ignored).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbv.errors import ConfigError

FORMAT_VERSION = 1
STAGED = "staged"
DUP_DB = "dup_db"
DUP_RUN = "dup_run"
NO_FACE = "no_face"
SMALL_FACE = "small_face"
FAILED = "failed"
FINAL = frozenset({STAGED, DUP_DB, DUP_RUN, NO_FACE, SMALL_FACE})


@dataclass
class StageState:
    """Per-asset outcomes of every run into one staging folder."""

    path: Path
    server: str
    user: str
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    _saved_at: float = 0.0

    @classmethod
    def load(cls, path: Path, server: str, user: str) -> StageState:
        """The saved state at ``path``, or a new one; refuses a state of another server."""
        state = cls(path, server, user)
        if path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                state.assets = dict(doc["assets"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read the staging state {path} ({exc}); "
                                  "move it away to start over") from None
            if doc.get("server") != server or doc.get("user") != user:
                raise ConfigError(
                    f"{path} holds the state of another import ({doc.get('server')}, user "
                    f"{doc.get('user')!r}); use another --out or --user"
                )
        state._replay_journal()
        return state

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    def _replay_journal(self) -> None:
        try:
            lines = self.journal_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
                self.assets[str(entry["id"])] = dict(entry["record"])
            except (ValueError, KeyError, TypeError):
                break  # the torn tail of a crash: everything before it is intact

    def is_final(self, asset_id: str) -> bool:
        record = self.assets.get(asset_id)
        return record is not None and record.get("status") in FINAL

    def staged_by_sha(self) -> dict[str, str]:
        """sha256 → staged relative path, for dedup against earlier staging."""
        return {r["sha256"]: r["path"] for r in self.assets.values()
                if r.get("status") == STAGED and r.get("sha256")}

    def claimed_paths(self) -> set[str]:
        return {r["path"] for r in self.assets.values() if r.get("status") == STAGED}

    def record(self, asset_id: str, status: str, **details: Any) -> None:
        previous = self.assets.get(asset_id, {})
        attempts = int(previous.get("attempts", 0)) + (1 if status == FAILED else 0)
        record = {"status": status, "attempts": attempts,
                  **{k: v for k, v in details.items() if v is not None}}
        self.assets[asset_id] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.journal_path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps({"id": asset_id, "record": record}) + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def save(self, *, min_interval_s: float = 0.0) -> None:
        """Write the state atomically (skipped if the last write is younger than
        ``min_interval_s``)."""
        now = time.monotonic()
        if min_interval_s and now - self._saved_at < min_interval_s:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        doc = {"version": FORMAT_VERSION, "server": self.server, "user": self.user,
               "assets": self.assets}
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(doc, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        # Only now is every journalled outcome in the state file.
        with open(self.journal_path, "w", encoding="utf-8"):
            pass
        self._saved_at = now

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for record in self.assets.values():
            result[record["status"]] = result.get(record["status"], 0) + 1
        return result


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
