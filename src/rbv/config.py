"""One typed settings object, built once at the CLI root and passed down.

Core code never reads ``os.environ``: the CLI calls :meth:`Settings.from_env` with the
process environment and command-line overrides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from rbv.errors import ConfigError
from rbv.faces.defaults import DEFAULT_DET_SIZE, DEFAULT_DET_THRESHOLD, DEFAULT_MIN_FACE
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.path_map import PathMap

ENV_PREFIX = "RBV_"
DEFAULT_SERVER_LINGER_S = 60.0
"""Seconds the embedded PostgreSQL stays up after the last rbv process exits, so that a
burst of commands attaches to a running server instead of starting one each
(``$RBV_SERVER_LINGER``; 0 stops it at once)."""


def split_uris(values: str | Iterable[str]) -> tuple[str, ...]:
    """The URLs of ``--ml-uri`` / ``RBV_ML_URI``: each value may hold several, separated
    by commas and/or whitespace (``"http://a:3003, http://b:3003"``)."""
    texts = [values] if isinstance(values, str) else list(values)
    return tuple(url for text in texts for url in re.split(r"[,\s]+", text) if url)


def default_data_dir() -> Path:
    """Where rbv keeps its embedded database and caches (XDG data dir on Linux)."""
    return Path(platformdirs.user_data_dir("rbv", appauthor=False))


DEFAULT_MODEL_PACK = "buffalo_l"
"""The pack a run uses when none is named and the library has none yet."""


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment.

    ``database_url`` None means: use the embedded PostgreSQL under ``data_dir / "pg"``.
    """

    database_url: str | None = None
    data_dir: Path = Path()
    # None: neither --model-pack nor RBV_MODEL_PACK named one; a command that runs models
    # then takes the library's own (jobs.library.analyzer.with_library_pack)
    model_pack: str | None = None
    # An age and gender model (rbv.faces.attributes) that index and enrich run on each
    # face; None: the pack folder's own, where it has one
    attribute_model: Path | None = None
    device: str = "auto"
    connect_timeout_s: int = 10
    server_linger_s: float = DEFAULT_SERVER_LINGER_S  # embedded server: idle time before it stops
    # index / embed
    concurrency: int = 4  # decode/IO threads feeding the face analyzer
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # decompression-bomb guard (width × height)
    scan_batch_size: int = 16  # images per claimed and committed batch
    max_scan_attempts: int = 5  # a failing image is retried on later runs up to this
    # A worker renews its claims with each batch it takes; a claim not renewed for this
    # long is taken back by any worker (a process of this host that is gone: at once).
    claim_lease_s: float = 600.0
    path_map: PathMap = PathMap()  # catalogued path prefix -> where this machine has it
    # Threads running the analyzer at once, each session with cpu_count / N intra-op
    # threads (on 2 cores, 2 × 1 beat 1 × 2 by 10-50 %). 0: one per core, at most 16 on the
    # CPU, 4 on a GPU and 4 per --ml-uri server (jobs.library.analyzer.with_inference_workers).
    inference_workers: int = 0
    # Processes scanning at once in one embed run (each its own interpreter, claiming from
    # the same queue). 0: 2 on a GPU for a run of many photos, else 1
    # (jobs.library.embed_helpers.helper_count).
    embed_processes: int = 0
    det_size: int = DEFAULT_DET_SIZE  # detector input long edge (pixels)
    det_threshold: float = DEFAULT_DET_THRESHOLD  # minimum detection score
    min_face: int = DEFAULT_MIN_FACE  # minimum face short edge, original pixels
    immich_url: str | None = None
    immich_api_key: str | None = field(default=None, repr=False)  # never shown
    ml_uri: tuple[str, ...] = ()  # Immich-ML servers; a str or list is split (split_uris)
    ml_backoff_s: float = 5.0  # remote inference retries wait 5, 10, 20 s
    ml_embedding_dim: int | None = None  # if the server's probe finds no face to measure
    ml_clip_model: str | None = None  # also ask the server for CLIP image embeddings

    def __post_init__(self) -> None:
        if not isinstance(self.ml_uri, tuple):  # given as text or a list of options
            object.__setattr__(self, "ml_uri", split_uris(self.ml_uri or ()))

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
        if environ.get("IMMICH_URL"):
            values["immich_url"] = environ["IMMICH_URL"]
        if environ.get("IMMICH_API_KEY"):
            values["immich_api_key"] = environ["IMMICH_API_KEY"]
        for name in ("ml_uri", "ml_clip_model"):
            if environ.get(ENV_PREFIX + name.upper()):
                values[name] = environ[ENV_PREFIX + name.upper()]
        if environ.get(ENV_PREFIX + "ATTRIBUTE_MODEL"):
            values["attribute_model"] = Path(environ[ENV_PREFIX + "ATTRIBUTE_MODEL"]).expanduser()
        if environ.get(ENV_PREFIX + "PATH_MAP"):
            values["path_map"] = PathMap.from_env(environ[ENV_PREFIX + "PATH_MAP"])
        if environ.get(ENV_PREFIX + "STALE_CLAIM_MINUTES"):
            raise ConfigError(f"{ENV_PREFIX}STALE_CLAIM_MINUTES is now {ENV_PREFIX}CLAIM_LEASE_S "
                              "(seconds a claim lives without being renewed)")
        for name in ("model_pack", "device"):
            if environ.get(ENV_PREFIX + name.upper()):
                values[name] = environ[ENV_PREFIX + name.upper()]
        numbers: dict[str, type] = {
            "concurrency": int, "max_image_pixels": int, "scan_batch_size": int,
            "max_scan_attempts": int, "claim_lease_s": float, "det_size": int,
            "inference_workers": int, "embed_processes": int, "det_threshold": float,
            "min_face": int, "ml_embedding_dim": int, "ml_backoff_s": float, "server_linger": float}
        for name, kind in numbers.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw:
                try:
                    values[name] = kind(raw)
                except ValueError:
                    raise ConfigError(
                        f"{ENV_PREFIX + name.upper()}={raw!r} is not a "
                        f"{'whole ' if kind is int else ''}number"
                    ) from None
        if "server_linger" in values:
            values["server_linger_s"] = values.pop("server_linger")
            if not 0 <= values["server_linger_s"] <= 86400:
                raise ConfigError(f"{ENV_PREFIX}SERVER_LINGER must be 0 to 86400 seconds "
                                  f"(got {environ[ENV_PREFIX + 'SERVER_LINGER']!r})")
        if values.get("embed_processes", 0) < 0:
            raise ConfigError(f"{ENV_PREFIX}EMBED_PROCESSES must be 0 (rbv decides) or more")
        if values.get("claim_lease_s", 1) <= 0:
            raise ConfigError(f"{ENV_PREFIX}CLAIM_LEASE_S must be more than 0 seconds")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None ``overrides`` applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
