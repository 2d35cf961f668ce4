"""One typed settings object, built once at the CLI root and passed down.

Core code never reads ``os.environ``: the CLI calls :meth:`Settings.from_env` with the
process environment and command-line overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import platformdirs

from rbv.errors import ConfigError

ENV_PREFIX = "RBV_"


def default_data_dir() -> Path:
    """Where rbv keeps its embedded database and caches (XDG data dir on Linux)."""
    return Path(platformdirs.user_data_dir("rbv", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment.

    ``database_url`` None means: use the embedded PostgreSQL under ``data_dir / "pg"``.
    """

    database_url: str | None = None
    data_dir: Path = Path()
    model_pack: str = "buffalo_l"
    device: str = "auto"
    connect_timeout_s: int = 10
    # index / embed
    concurrency: int = 4  # decode/IO threads feeding the face analyzer
    max_image_pixels: int = 200_000_000  # decompression-bomb guard (width × height)
    scan_batch_size: int = 16  # images per claimed and committed batch
    max_scan_attempts: int = 5  # a failing image is retried on later runs up to this
    stale_claim_minutes: int = 30  # a claim older than this is presumed dead

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``RBV_*`` / ``DATABASE_URL`` variables, then apply
        non-None ``overrides`` (command-line options win over the environment)."""
        values: dict[str, Any] = {
            "database_url": environ.get(ENV_PREFIX + "DATABASE_URL")
            or environ.get("DATABASE_URL")
            or None,
            "data_dir": Path(environ[ENV_PREFIX + "DATA_DIR"]).expanduser()
            if environ.get(ENV_PREFIX + "DATA_DIR")
            else default_data_dir(),
        }
        for name in ("model_pack", "device"):
            if environ.get(ENV_PREFIX + name.upper()):
                values[name] = environ[ENV_PREFIX + name.upper()]
        for name in ("concurrency", "max_image_pixels", "scan_batch_size", "max_scan_attempts",
                     "stale_claim_minutes"):
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ConfigError(
                        f"{ENV_PREFIX + name.upper()}={raw!r} is not a whole number"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None ``overrides`` applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
