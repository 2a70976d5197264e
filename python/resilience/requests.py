"""Circuit breakers and retries for ``requests`` sessions, as a transport adapter.

::

    import requests
    from resilience.requests import ResilientAdapter

    session = requests.Session()
    adapter = ResilientAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)

It behaves like ``resilience.httpx.ResilientTransport``: a breaker per ``host:port`` (key
configurable) from a ``BreakerRegistry``; 5xx, 408 and 429 responses count as failures and are
still returned, other responses count as successes; connection errors and timeouts count through
the breaker's classifier; a rejection raises ``CircuitBreakerOpenError``. Retries follow a
``RetryConfig``, only for ``retry_methods`` (GET, HEAD, OPTIONS, PUT, DELETE by default), honour
``Retry-After`` capped by ``max_delay``, and end by returning the last response or raising the last
``requests`` exception unchanged.

Request bodies: bytes and str replay as they are; a seekable file is rewound to where it started;
a generator or other iterable is not sent again once it was read, nor is an unseekable file.
Leave the inner adapter's own ``max_retries`` at its default (0) so attempts are not multiplied.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ._http import (
    IDEMPOTENT_METHODS,
    RetryPolicy,
    check_adapter_args,
    host_key,
    missing_extra,
    send_with_retries,
)
from .registry import BreakerRegistry
from .retry import RetryConfig

try:
    import requests as _requests  # the library: absolute imports never find this module
    from requests.adapters import BaseAdapter as _BaseAdapter
    from requests.adapters import HTTPAdapter as _HTTPAdapter
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra("resilience.requests", "requests", "requests") from _error

__all__ = ["ResilientAdapter", "per_host"]

KeyFunction = Callable[[_requests.PreparedRequest], str]
"""Maps a prepared request to the key of its breaker in the registry."""

_Timeout = float | tuple[float, float] | tuple[float, None] | None
_Cert = bytes | str | tuple[bytes | str, bytes | str] | None


def per_host(request: _requests.PreparedRequest) -> str:
    """The default key: ``"host:port"`` of the request URL (``"api.example.com:443"``)."""
    parts = urllib.parse.urlsplit(request.url or "")
    return host_key(parts.scheme, parts.hostname or "", parts.port)


class _TrackedIterable:
    """Passes an iterable body through, remembering whether anyone started reading it."""

    __slots__ = ("_body", "started")

    def __init__(self, body: Iterable[Any]) -> None:
        self._body = body
        self.started = False

    def __iter__(self) -> Iterator[Any]:
        self.started = True
        return iter(self._body)


class _Exchange:
    __slots__ = (
        "_args",
        "_position",
        "_sent",
        "_tracked",
        "inner",
        "method",
        "original",
        "request",
    )

    def __init__(
        self, inner: _BaseAdapter, request: _requests.PreparedRequest, args: dict[str, Any]
    ) -> None:
        self.inner = inner
        self.request = request
        self.method = request.method or "GET"
        self._args = args
        self._sent = False
        self._position: int | None = None
        self._tracked: _TrackedIterable | None = None
        self.original = body = request.body
        if body is None or isinstance(body, (bytes, str)):
            return
        if hasattr(body, "read"):
            position = getattr(request, "_body_position", None)
            if isinstance(position, int) and callable(getattr(body, "seek", None)):
                self._position = position  # requests recorded where the body started
            return
        self._tracked = _TrackedIterable(body)
        request.body = self._tracked

    def send(self) -> _requests.Response:
        if self._sent and self._position is not None:
            self.original.seek(self._position)  # type: ignore[union-attr]
        self._sent = True
        return self.inner.send(self.request, **self._args)

    def status(self, response: _requests.Response) -> int:
        return response.status_code

    def header(self, response: _requests.Response, name: str) -> str | None:
        return response.headers.get(name)

    def discard(self, response: _requests.Response) -> None:
        response.close()

    def replayable(self) -> bool:
        body = self.original
        if body is None or isinstance(body, (bytes, str)):
            return True
        if self._tracked is not None:
            return not self._tracked.started
        return self._position is not None

    def restore(self) -> None:
        self.request.body = self.original


class ResilientAdapter(_BaseAdapter):
    """A ``requests`` transport adapter that runs every request through a breaker, with retries.

    Args:
        inner: the adapter that does the I/O; None uses ``requests.adapters.HTTPAdapter()``.
        registry: where the breakers live; None makes a private ``BreakerRegistry()``.
        retry: how to retry; None uses ``RetryConfig()`` (3 attempts). Pass
            ``RetryConfig(max_attempts=1)`` for no retries.
        key: ``(prepared_request) -> str``, the breaker key of a request; default ``per_host``.
        retry_methods: the methods that may be retried (case-insensitive).

    Raises:
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        inner: _BaseAdapter | None = None,
        *,
        registry: BreakerRegistry | None = None,
        retry: RetryConfig | None = None,
        key: KeyFunction = per_host,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
    ) -> None:
        super().__init__()
        if inner is not None and not isinstance(inner, _BaseAdapter):
            raise TypeError(f"inner must be a requests.adapters.BaseAdapter, got {inner!r}")
        self._registry = check_adapter_args(registry, key)
        self._policy = RetryPolicy(retry, retry_methods)
        self._key = key
        self._inner: _BaseAdapter = _HTTPAdapter() if inner is None else inner

    @property
    def registry(self) -> BreakerRegistry:
        """The breakers, one per key."""
        return self._registry

    @property
    def inner(self) -> _BaseAdapter:
        """The adapter that does the I/O."""
        return self._inner

    def send(
        self,
        request: _requests.PreparedRequest,
        stream: bool = False,
        timeout: _Timeout = None,
        verify: bool | str = True,
        cert: _Cert = None,
        proxies: Mapping[str, str] | None = None,
    ) -> _requests.Response:
        """Sends ``request`` through its breaker, retrying as configured.

        Raises:
            CircuitBreakerOpenError: the request's breaker rejected it.
            requests.RequestException: the last attempt's error, unchanged.
        """
        key = self._key(request)
        breaker = self._registry.get(key)
        args: dict[str, Any] = {
            "stream": stream,
            "timeout": timeout,
            "verify": verify,
            "cert": cert,
            "proxies": proxies,
        }
        exchange = _Exchange(self._inner, request, args)
        try:
            return send_with_retries(self._policy, breaker, key, exchange)
        finally:
            exchange.restore()

    def close(self) -> None:
        """Closes the inner adapter."""
        self._inner.close()
