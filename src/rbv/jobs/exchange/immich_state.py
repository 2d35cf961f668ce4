"""The staging run's resumable state: a snapshot file plus an append-only journal.

Each asset that reached a final outcome (staged, deduplicated, small face) is recorded
with it, so a re-run skips it without asking the server again; failed assets are
recorded with their error and retried, and ``no_face`` ones are asked about again
(Immich may not have looked for faces yet). Every outcome is appended to a journal the
moment it happens (one flushed and fsynced JSON line holding the asset's whole record,
cheap at any library size). Only when the journal has grown to a fair share of the
snapshot (:meth:`StageState.compact_if_due`) or at the end of a run is the whole state
compacted: written to a temporary file, fsynced, renamed over the snapshot, and the
journal emptied. Compaction therefore costs O(1) amortised per outcome instead of a
full rewrite every minute.

Crash safety (even ``kill -9`` or power loss): loading reads the snapshot and replays
the journal. A torn last line is ignored and cut off, so later appends start on a clean
line. A crash mid-compaction loses nothing: before the rename the old snapshot plus the
journal still hold everything; after it, replaying the not yet emptied journal over the
new snapshot is idempotent (each line is an asset's full record, applied in order).
A state file written before the journal existed is a plain snapshot and loads as one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbv.errors import ConfigError, writing

FORMAT_VERSION = 1
STAGED = "staged"
DUP_DB = "dup_db"
DUP_RUN = "dup_run"
NO_FACE = "no_face"
SMALL_FACE = "small_face"
FAILED = "failed"
FINAL = frozenset({STAGED, DUP_DB, DUP_RUN, SMALL_FACE})
"""Not asked about again. ``no_face`` is not final: Immich answers "no faces" both when
there are none and when it has not looked yet, so such assets are re-checked (one small
request each, nothing downloaded)."""

# Compact once the journal holds this many lines and at least 1/COMPACT_RATIO as many
# as the snapshot has assets: the rewrite is then paid for by that many cheap appends.
COMPACT_MIN_ENTRIES = 10_000
COMPACT_RATIO = 4


@dataclass
class StageState:
    """Per-asset outcomes of every run into one staging folder."""

    path: Path
    server: str
    user: str
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)
    _saved_at: float = 0.0
    _journal_entries: int = 0

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
                    f"{doc.get('user')!r}); use another user label, or another staging "
                    "folder", setting="out")
        state._remove_stale_tmp()
        state._replay_journal()
        return state

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    def _tmp_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")

    def _remove_stale_tmp(self) -> None:
        """Half-written snapshots of a run that crashed mid-compaction (never renamed)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()

    def _replay_journal(self) -> None:
        """Apply the journal's complete lines in order; cut off a torn tail."""
        try:
            data = self.journal_path.read_bytes()
        except OSError:
            return
        good = 0  # bytes of intact, newline-terminated lines
        entries = 0
        while good < len(data):
            end = data.find(b"\n", good)
            if end < 0:
                break  # the torn tail of a crash: everything before it is intact
            try:
                entry = json.loads(data[good:end])
                record = dict(entry["record"])
                asset_id = str(entry["id"])
            except (ValueError, KeyError, TypeError):
                break
            self.assets[asset_id] = record
            entries += 1
            good = end + 1
        if good < len(data):  # later appends must not be glued onto the torn line
            with open(self.journal_path, "r+b") as journal:
                journal.truncate(good)
                journal.flush()
                os.fsync(journal.fileno())
        self._journal_entries = entries

    def is_final(self, asset_id: str) -> bool:
        record = self.assets.get(asset_id)
        return record is not None and record.get("status") in FINAL

    def status(self, asset_id: str) -> str | None:
        record = self.assets.get(asset_id)
        return None if record is None else record.get("status")

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
        self._journal_entries += 1
        self.compact_if_due()  # keeps the journal a bounded share of the snapshot

    @property
    def journal_entries(self) -> int:
        """Lines in the journal not yet compacted into the snapshot."""
        return self._journal_entries

    def compact_if_due(self) -> bool:
        """Compact when the journal has grown to a fair share of the snapshot (see
        ``COMPACT_RATIO``); True if it did."""
        due = max(COMPACT_MIN_ENTRIES, len(self.assets) // COMPACT_RATIO)
        if self._journal_entries < due:
            return False
        self.save()
        return True

    def save(self, *, min_interval_s: float = 0.0) -> None:
        """Compact: write the whole state atomically as the snapshot and empty the journal
        (skipped if the last write is younger than ``min_interval_s``)."""
        now = time.monotonic()
        if min_interval_s and now - self._saved_at < min_interval_s:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_path()
        doc = {"version": FORMAT_VERSION, "server": self.server, "user": self.user,
               "assets": self.assets}
        with writing(self.path), open(tmp, "w", encoding="utf-8") as out:
            json.dump(doc, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        # Only now is every journalled outcome in the state file.
        # Only now is every journalled outcome in the state file. A crash before this
        # line leaves the journal to be replayed over the new snapshot: idempotent.
        with open(self.journal_path, "w", encoding="utf-8") as journal:
            journal.flush()
            os.fsync(journal.fileno())
        self._journal_entries = 0
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
