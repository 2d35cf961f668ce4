"""HTTP with limits a hostile or broken server cannot stretch: a time limit on each whole
request (not per read: a server sending one byte every few seconds never trips a read
timeout) and a size limit on each JSON answer, checked while it streams in.

httpx's timeouts apply to each socket operation. The whole-request limit lives one layer
down: every socket read, write and connect of a :func:`bounded_client` is given at most
the time left before the deadline of the request running in that thread (see
:func:`deadline`), so the request fails with httpx's own ``ReadTimeout`` (a transport
error, retried like any timeout) once its time is spent, wherever it is stuck: the
headers, the body, or a TLS handshake.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import ssl
import time
import typing
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

MAX_JSON_BYTES = 64 << 20
"""The largest JSON answer read (an Immich page of 1,000 assets is ~2 MB; an inference
answer with 100 faces ~1 MB)."""


class BodyTooLarge(Exception):
    """An answer over its size limit (not read further)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than the {_mib(limit)} rbv reads from a "
                         "JSON answer")
        self.limit = limit


class _Deadline:
    """When the running request must be done; ``extend`` gives it more time (a download
    earns time with each byte it receives)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def extend(self, seconds: float) -> None:
        self.end += seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout(f"no complete answer within {self.seconds:g} s")
        return left


_current: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "rbv_http_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[_Deadline]:
    """Every socket operation of a :func:`bounded_client` inside this block (in this
    thread) ends by ``seconds`` from now."""
    limit = _Deadline(seconds)
    token = _current.set(limit)
    try:
        yield limit
    finally:
        _current.reset(token)


def _bounded(timeout: float | None) -> float | None:
    limit = _current.get()
    if limit is None:
        return timeout
    left = limit.left()
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[Any] | None = None
                    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_tcp(host, port, _bounded(timeout), local_address,
                                               socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _bounded(timeout),
                                                       socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_client(*, limits: httpx.Limits | None = None, **kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose socket operations obey :func:`deadline`."""
    limits = limits or httpx.Limits()
    return httpx.Client(transport=_Transport(limits), limits=limits, **kwargs)


# httpx builds its own connection pool with no way to pass it a network backend, so rbv
# has its own transport (httpx's public BaseTransport) over httpcore's pool with the
# deadline-aware backend. What it does with a request, an answer and httpcore's errors
# follows httpx's HTTPTransport (httpx/_transports/default.py, httpx 0.28; BSD-3-Clause,
# Copyright (c) 2019, Encode OSS Ltd.; the licence: LICENSES/httpx.md).
_ERRORS: list[tuple[type[Exception], type[httpx.HTTPError]]] = [
    # the most specific first: the first that matches is raised
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
]


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's errors raised as httpx's (callers catch ``httpx.TransportError``)."""
    try:
        yield
    except Exception as exc:
        mapped = next((theirs for ours, theirs in _ERRORS if isinstance(exc, ours)), None)
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class _Body(httpx.SyncByteStream):
    """The body of httpcore's ``answer`` as httpx reads it."""

    def __init__(self, answer: httpcore.Response) -> None:
        self._answer = answer

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._answer.iter_stream()

    def close(self) -> None:
        self._answer.close()


class _Transport(httpx.BaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw,
            content=typing.cast(typing.Iterable[bytes], request.stream),
            extensions=request.extensions,
        )
        with _httpx_errors():
            answer = self._pool.handle_request(sent)
        return httpx.Response(status_code=answer.status, headers=answer.headers,
                              stream=_Body(answer),
                              extensions=answer.extensions)

    def close(self) -> None:
        self._pool.close()


def read_json(resp: httpx.Response, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON body of a streamed response, read only up to ``limit`` bytes (decoded:
    a compressed answer cannot expand past it); :class:`BodyTooLarge` beyond it,
    ``ValueError`` for JSON that does not parse."""
    declared = resp.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    data = bytearray()
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(limit)
    return json.loads(bytes(data))


def _mib(size: int) -> str:
    return f"{size / (1 << 20):g} MiB"
