"""A small Immich REST client: version probe, metadata search paging, faces, originals.

It speaks to Immich v1.x to v3.x (tested: v1.135.3 and v3.1.0). What changed between
them is decided by the server's version (``GET /api/server/version``, asked once at
start): from v2.4.0 the job counts come from ``GET /api/queues`` (``GET /api/jobs`` is
deprecated there), from v3.0.0 updates use ``PATCH`` (the ``PUT`` updates are deprecated;
v1/v2 have no ``PATCH``). An error answer becomes one line with the server's own message,
whichever shape it has: v1/v2's ``{"message": str | [str], "error", "statusCode",
"correlationId"}`` or v3's ``{"message": …}`` / ``{"message": "Validation failed",
"errors": [{"path", "message"}, …]}`` with the ``X-Correlation-ID`` header.

Transient failures (connection errors, timeouts, truncated bodies, HTTP 5xx) are
retried with exponential backoff; what still fails becomes :class:`ImmichTransient`
(the staging run counts it toward its circuit breaker). The API key travels only in
the ``x-api-key`` header and is never part of a message, URL or ``repr``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from rbv.bounded_http import MAX_JSON_BYTES, BodyTooLarge, bounded_client, deadline, read_json
from rbv.errors import ImmichError, ImmichUnavailable, Remedy, printable
from rbv.immich.assets import FaceBox, ImmichAsset

MAX_PAGE_SIZE = 1000
MAX_ERROR_BYTES = 64 << 10
"""The most of an error answer read for its message (the rest is not read)."""
MAX_ERROR_CHARS = 400
QUEUES_SINCE = (2, 4, 0)
"""The first version with ``GET /api/queues`` (``GET /api/jobs`` deprecated from then)."""
PATCH_SINCE = (3, 0, 0)
"""The first version whose updates take ``PATCH`` (the ``PUT`` ones deprecated)."""
_VERSION_PART = re.compile(r"\d{1,6}")
_DETECTION_QUEUES = ("thumbnailGeneration", "metadataExtraction", "faceDetection")
_CHUNK = 1 << 20
MIN_DOWNLOAD_RATE = 64 << 10
"""Bytes per second an original download must keep up on average once past --timeout
(a server that drips bytes is cut off; a big original on a slow link is not)."""


class ImmichTransient(ImmichError):
    """A request that kept failing the way an unhealthy server fails (no answer, 5xx)."""


class _Retryable(Exception):
    """Internal: one attempt failed in a way worth retrying."""


@dataclass(frozen=True)
class Download:
    """An original streamed to ``path`` (a temporary file the caller renames or removes)."""

    path: Path
    sha256: str
    size: int


def error_line(status: int, body: Any, correlation_id: str | None = None) -> str:
    """One line for an Immich error answer: ``HTTP 400: Validation failed: id: Invalid
    UUID (correlation id …)``; ``body`` is the parsed JSON (None when there is none)."""
    parts = [f"HTTP {status}"]
    if isinstance(body, dict):
        message = body.get("message")
        texts = [str(m) for m in message] if isinstance(message, list) \
            else [str(message)] if message not in (None, "") else []
        errors = body.get("errors")
        if isinstance(errors, list):
            shown = [_issue(e) for e in errors[:5]]
            if len(errors) > 5:
                shown.append(f"and {len(errors) - 5} more")
            texts = [": ".join(texts + ["; ".join(shown)])] if texts else ["; ".join(shown)]
        if texts:
            parts.append("; ".join(texts))
        if correlation_id is None and isinstance(body.get("correlationId"), str):
            correlation_id = body["correlationId"]
    line = ": ".join(parts)
    if correlation_id:
        line += f" (correlation id {correlation_id[:80]})"
    line = printable(line)
    return line if len(line) <= MAX_ERROR_CHARS else line[:MAX_ERROR_CHARS - 1] + "…"


def _issue(error: Any) -> str:
    """One validation issue: v3's zod ``{"path": [...], "message"}`` as ``path: message``."""
    if not isinstance(error, dict):
        return str(error)
    path = error.get("path")
    where = ".".join(str(p) for p in path) if isinstance(path, list) else ""
    message = str(error.get("message") or error.get("code") or "invalid")
    return f"{where}: {message}" if where else message


def parse_version(body: Any) -> tuple[int, int, int]:
    """(major, minor, patch) of a ``GET /api/server/version`` answer; ``ValueError`` if
    it is not one."""
    if not isinstance(body, dict):
        raise ValueError("not an object")
    parts = []
    for key in ("major", "minor", "patch"):
        value = body[key]
        if isinstance(value, bool) or not _VERSION_PART.fullmatch(str(value)):
            raise ValueError(f"{key} is not a version number")
        parts.append(int(value))
    return parts[0], parts[1], parts[2]


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part."""
    return re.sub(r"^([A-Za-z][\w+.-]*://)[^/]*@", r"\1***@", url)


class ImmichClient:
    """Talks to one Immich server with one API key."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        retries: int = 3,
        retry_wait_s: float = 2.0,
        max_download_bytes: int = 4 << 30,
        max_json_bytes: int = MAX_JSON_BYTES,
    ) -> None:
        full_url = url.rstrip("/")
        # Shown in messages and saved in the state file: never with its user:password.
        self.url = redact_url(full_url)
        if not full_url.startswith(("http://", "https://")):
            raise ImmichError(f"Immich URL must start with http:// or https://, got {self.url!r}")
        self._http = bounded_client(
            base_url=full_url + "/api",
            headers={"x-api-key": api_key, "accept": "application/json"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )
        self.timeout_s = timeout_s
        self.max_json_bytes = max_json_bytes
        self._retries = retries
        self._retry_wait_s = retry_wait_s
        self.max_download_bytes = max_download_bytes
        self._version: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"ImmichClient({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ImmichClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------

    def server_version(self, *, retry: bool = True) -> str:
        """``major.minor.patch`` from ``GET /api/server/version``; raises
        :class:`ImmichUnavailable` if the server does not answer."""
        try:
            body = self._json("GET", "/server/version", retry=retry)
            self._version = parse_version(body)
        except (ImmichTransient, KeyError, ValueError) as exc:
            raise ImmichUnavailable(
                f"the Immich server at {self.url} does not answer ({exc})",
                remedies=[Remedy("check_server", {"setting": "url"})]) from None
        return ".".join(map(str, self._version))

    @property
    def version(self) -> tuple[int, int, int]:
        """The server's (major, minor, patch), asked once."""
        if self._version is None:
            self.server_version()
        assert self._version is not None
        return self._version

    @property
    def update_method(self) -> str:
        """``PATCH`` where the server takes it (v3 on), else ``PUT``: decided by the
        version the server reports (already asked at start) rather than by trying, since
        a PATCH refused by a reverse proxy or an older server would read as a failed
        write, and trying would cost a request per client."""
        return "PATCH" if self.version >= PATCH_SINCE else "PUT"

    def check_key(self) -> str:
        """The key's user (``GET /api/users/me``): ``/server/version`` answers any key,
        this one refuses a wrong one (:class:`ImmichAuthError`)."""
        body = self._json("GET", "/users/me")
        if not isinstance(body, dict):
            raise ImmichError(f"unexpected answer from {self.url} to GET /users/me")
        return printable(str(body.get("email") or body.get("name") or "?"))[:200]

    def image_count(self) -> int | None:
        """How many image assets the key's user has on the timeline, by the server's own
        count (``GET /api/assets/statistics``); None if it does not say."""
        body = self._json("GET", "/assets/statistics", params={"visibility": "timeline"})
        try:
            return int(body["images"])
        except (KeyError, TypeError, ValueError):
            return None

    def queued_detection_jobs(self) -> int:
        """Jobs queued or running in Immich's thumbnail, metadata and face-detection
        queues (``GET /api/queues`` from v2.4.0, ``GET /api/jobs`` before; admin keys
        only): until they are done, an asset without faces may just not have been looked
        at yet."""
        kinds = ("active", "waiting", "delayed", "paused")
        try:
            if self.version >= QUEUES_SINCE:
                body = self._json("GET", "/queues")
                counts = {q["name"]: q["statistics"] for q in body}
            else:
                body = self._json("GET", "/jobs")
                counts = {queue: body[queue]["jobCounts"] for queue in _DETECTION_QUEUES}
            return sum(_count(counts[queue][kind]) for queue in _DETECTION_QUEUES
                       for kind in kinds)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ImmichError(f"unexpected job counts from {self.url}") from None

    def search_images(self, page: int, size: int, order: str = "asc",
                      **filters: str) -> tuple[list[ImmichAsset], list[str], bool]:
        """One page of ``POST /search/metadata`` for images: (assets, problems with
        malformed ones, whether a next page exists). ``filters`` are search fields
        (``takenAfter``, ``createdBefore``, …)."""
        body = self._json("POST", "/search/metadata", json={
            "type": "IMAGE", "page": page, "size": size, "withExif": True, "order": order,
            **filters})
        try:
            items = body["assets"]["items"]
            next_page = body["assets"]["nextPage"]
            if not isinstance(items, list):
                raise TypeError("items is not a list")
            if next_page is not None and int(next_page) <= page:  # never loop forever
                raise ImmichError(f"{self.url} returned nextPage {next_page} after {page}")
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError):
            raise ImmichError(f"unexpected asset list from {self.url} (page {page})") from None
        assets, problems = [], []
        for item in items:
            try:
                if item.get("type", "IMAGE") == "IMAGE":
                    assets.append(ImmichAsset.from_json(item))
            except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
                # One malformed asset is reported; the others are still staged.
                problems.append(f"malformed asset ({exc})")
        return assets, problems, next_page is not None

    def faces(self, asset_id: str) -> list[FaceBox]:
        """Immich's own face boxes for one asset (in preview pixels)."""
        body = self._json("GET", "/faces", params={"id": asset_id})
        if not isinstance(body, list):
            raise ImmichError(f"unexpected faces response for asset {asset_id}")
        try:
            return [FaceBox.from_json(f) for f in body]
        except KeyError as exc:
            raise ImmichError(f"malformed face box for asset {asset_id} (no {exc})") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ImmichError(f"malformed face box for asset {asset_id} ({exc})") from None

    def download_original(self, asset_id: str, dest: Path) -> Download:
        """Stream the original to ``dest`` (overwritten), hashing it on the way."""

        def attempt() -> Download:
            digest = hashlib.sha256()
            size = 0
            try:
                with deadline(self.timeout_s) as limit, \
                        self._http.stream("GET", f"/assets/{asset_id}/original",
                                          headers={"accept": "application/octet-stream"}) as resp:
                    self._check_status(resp, f"original of asset {asset_id}")
                    expected = resp.headers.get("content-length")
                    if expected is not None and int(expected) > self.max_download_bytes:
                        raise ImmichError(self._too_big(asset_id))
                    with open(dest, "wb") as out:
                        try:
                            for chunk in resp.iter_bytes(_CHUNK):
                                # A big original may take longer than --timeout: each
                                # byte received buys time at MIN_DOWNLOAD_RATE.
                                limit.extend(len(chunk) / MIN_DOWNLOAD_RATE)
                                size += len(chunk)
                                if size > self.max_download_bytes:
                                    raise ImmichError(self._too_big(asset_id))
                                digest.update(chunk)
                                out.write(chunk)
                        except httpx.TransportError as exc:
                            raise _Retryable(f"truncated download ({size} of {expected or '?'} "
                                             f"bytes; {self._describe(exc)})") from None
                        out.flush()
                        os.fsync(out.fileno())
                    if expected is not None and int(expected) != size:
                        raise _Retryable(f"truncated download ({size} of {expected} bytes)")
            except httpx.TransportError as exc:
                raise _Retryable(self._describe(exc)) from None
            return Download(dest, digest.hexdigest(), size)

        try:
            return self._retrying(attempt)
        except BaseException:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise

    # -- plumbing ----------------------------------------------------------------------

    def _too_big(self, asset_id: str) -> str:
        return (f"original of asset {asset_id} is larger than the download limit "
                f"({self.max_download_bytes:,} bytes)")

    def _json(self, method: str, path: str, *, retry: bool = True, answer: bool = True,
              **kwargs: Any) -> Any:
        """The JSON answer of one call (``answer=False``: a call whose success has no
        body, such as ``POST /api/faces``: None)."""
        def attempt() -> Any:
            try:
                with deadline(self.timeout_s), \
                        self._http.stream(method, path, **kwargs) as resp:
                    self._check_status(resp, f"{method} {path}")
                    return read_json(resp, self.max_json_bytes) if answer else None
            except httpx.TransportError as exc:
                raise _Retryable(self._describe(exc)) from None
            except BodyTooLarge as exc:
                raise ImmichError(f"{method} {path}: {exc}") from None
            except ValueError:
                raise ImmichError(f"{method} {path}: the server sent malformed JSON") from None

        return self._retrying(attempt) if retry else self._once(attempt)

    def _check_status(self, resp: httpx.Response, what: str) -> None:
        if 300 <= resp.status_code < 400:
            # A reverse proxy's login page, or a URL that is not the Immich server.
            where = redact_url(resp.headers.get("location") or "")[:200]
            raise ImmichError(printable(
                f"{what}: {self.url} answered with a redirect (HTTP {resp.status_code}"
                + (f" to {where}" if where else "") + "): the address must be the Immich "
                "server's own"), remedies=[Remedy("check", {"setting": "url"})])
        if resp.status_code < 400:
            return
        line = self._error_line(resp)
        if resp.status_code >= 500:
            raise _Retryable(line)
        if resp.status_code in (401, 403):
            raise ImmichAuthError(
                f"the Immich server at {self.url} refused the API key: {line}; check "
                "IMMICH_API_KEY"
            )
        raise ImmichError(f"{what}: {line}")

    @staticmethod
    def _error_line(resp: httpx.Response) -> str:
        """:func:`error_line` of a streamed error answer, its body read only up to
        :data:`MAX_ERROR_BYTES` (a body that is too big, cut off or not JSON is left out)."""
        try:
            body = read_json(resp, MAX_ERROR_BYTES)
        except (BodyTooLarge, ValueError, httpx.HTTPError):
            body = None
        return error_line(resp.status_code, body, resp.headers.get("x-correlation-id"))

    def _describe(self, exc: httpx.TransportError) -> str:
        kind = type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return "connection refused or host unreachable"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out: no complete answer within {self.timeout_s:g} s (the timeout)"
        return f"connection failed ({kind})"

    def _once(self, attempt: Any) -> Any:
        try:
            return attempt()
        except _Retryable as exc:
            raise ImmichTransient(str(exc)) from None

    def _retrying(self, attempt: Any) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._retry_wait_s, min=self._retry_wait_s),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise ImmichTransient(f"{exc} (after {self._retries} retries)") from None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
        raise ValueError("not a count")
    return value


class ImmichAuthError(ImmichError):
    """The server refused the API key: no point in going on."""


