"""Circuit breakers and retries for ``httpx`` clients, as transports.

::

    import httpx
    from resilience.httpx import ResilientTransport

    client = httpx.Client(transport=ResilientTransport())
    async_client = httpx.AsyncClient(transport=AsyncResilientTransport())

Each request goes through the breaker for its key (by default one per ``host:port``, from a
``BreakerRegistry``). A response with status 5xx, 408 or 429 counts as a failure and is still
returned; other responses (4xx included) count as successes: the host answered. Transport errors
(connection refused, timeouts) go through the breaker's classifier and count by default. A breaker
that rejects a request raises ``CircuitBreakerOpenError``; what to do then is the caller's call.

Retries follow a ``RetryConfig``: only for methods in ``retry_methods`` (GET, HEAD, OPTIONS, PUT,
DELETE by default), after a failure status or an exception ``retry_on`` accepts, waiting the
server's ``Retry-After`` (seconds or HTTP-date, capped by ``max_delay``) when it sent one and the
backoff delay otherwise. A request whose body is a stream (a generator, a file) is not retried
once the stream was read. After the last attempt the transport returns the last response or raises
the last exception unchanged (never ``RetryError``), so ``response.raise_for_status()`` and
``except httpx.ConnectError`` work as without it.

A transport given to ``httpx.Client(transport=...)`` replaces the client's own, so settings such
as ``verify``, ``http2`` or ``limits`` belong on the inner transport:
``ResilientTransport(httpx.HTTPTransport(http2=True))``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from ._http import (
    IDEMPOTENT_METHODS,
    RetryPolicy,
    check_adapter_args,
    host_key,
    missing_extra,
    send_with_retries,
    send_with_retries_async,
)
from .registry import BreakerRegistry
from .retry import RetryConfig

try:
    import httpx as _httpx  # the library: absolute imports never find this module
except ImportError as _error:  # pragma: no cover - exercised in a subprocess
    raise missing_extra("resilience.httpx", "httpx", "httpx") from _error

__all__ = ["AsyncResilientTransport", "ResilientTransport", "per_host"]

KeyFunction = Callable[[_httpx.Request], str]
"""Maps a request to the key of its breaker in the registry."""


def per_host(request: _httpx.Request) -> str:
    """The default key: ``"host:port"`` of the request URL (``"api.example.com:443"``)."""
    url = request.url
    return host_key(url.scheme, url.host, url.port)


class _TrackedSyncStream(_httpx.SyncByteStream):
    """Passes a request body through, remembering whether anyone started reading it."""

    def __init__(self, stream: _httpx.SyncByteStream) -> None:
        self._stream = stream
        self.started = False

    def __iter__(self) -> Iterator[bytes]:
        self.started = True
        yield from self._stream

    def close(self) -> None:
        self._stream.close()


class _TrackedAsyncStream(_httpx.AsyncByteStream):
    """The async twin of ``_TrackedSyncStream``."""

    def __init__(self, stream: _httpx.AsyncByteStream) -> None:
        self._stream = stream
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Body:
    """Wraps a streaming request body for the duration of one ``handle_request``.

    A ``ByteStream`` (bytes, str, JSON, form data: anything httpx holds in memory) replays as it
    is. Any other stream is wrapped so the attempt loop can tell whether it was read.
    """

    __slots__ = ("original", "request", "tracked")

    def __init__(self, request: _httpx.Request, *, asynchronous: bool) -> None:
        self.request = request
        self.original = stream = request.stream
        self.tracked: _TrackedSyncStream | _TrackedAsyncStream | None = None
        if isinstance(stream, _httpx.ByteStream):
            return
        if asynchronous and isinstance(stream, _httpx.AsyncByteStream):
            self.tracked = _TrackedAsyncStream(stream)
        elif not asynchronous and isinstance(stream, _httpx.SyncByteStream):
            self.tracked = _TrackedSyncStream(stream)
        else:
            return  # the wrong kind for this transport: the inner one will say so
        request.stream = self.tracked

    def replayable(self) -> bool:
        return self.tracked is None or not self.tracked.started

    def restore(self) -> None:
        self.request.stream = self.original


class _SyncExchange:
    __slots__ = ("body", "inner", "method", "request")

    def __init__(self, inner: _httpx.BaseTransport, request: _httpx.Request) -> None:
        self.inner = inner
        self.request = request
        self.method = request.method
        self.body = _Body(request, asynchronous=False)

    def send(self) -> _httpx.Response:
        return self.inner.handle_request(self.request)

    def status(self, response: _httpx.Response) -> int:
        return response.status_code

    def header(self, response: _httpx.Response, name: str) -> str | None:
        value = response.headers.get(name)
        return value if isinstance(value, str) else None

    def discard(self, response: _httpx.Response) -> None:
        response.close()

    def replayable(self) -> bool:
        return self.body.replayable()


class _AsyncExchange:
    __slots__ = ("body", "inner", "method", "request")

    def __init__(self, inner: _httpx.AsyncBaseTransport, request: _httpx.Request) -> None:
        self.inner = inner
        self.request = request
        self.method = request.method
        self.body = _Body(request, asynchronous=True)

    async def send(self) -> _httpx.Response:
        return await self.inner.handle_async_request(self.request)

    def status(self, response: _httpx.Response) -> int:
        return response.status_code

    def header(self, response: _httpx.Response, name: str) -> str | None:
        value = response.headers.get(name)
        return value if isinstance(value, str) else None

    async def discard(self, response: _httpx.Response) -> None:
        await response.aclose()

    def replayable(self) -> bool:
        return self.body.replayable()


class ResilientTransport(_httpx.BaseTransport):
    """An ``httpx`` transport that runs every request through a breaker, with retries.

    Args:
        inner: the transport that does the I/O; None uses ``httpx.HTTPTransport()``.
        registry: where the breakers live; None makes a private ``BreakerRegistry()``. Share one
            registry between transports (and with other code) to share breakers.
        retry: how to retry; None uses ``RetryConfig()`` (3 attempts). Pass
            ``RetryConfig(max_attempts=1)`` for no retries.
        key: ``(request) -> str``, the breaker key of a request; default ``per_host``.
        retry_methods: the methods that may be retried (case-insensitive).

    Raises:
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        inner: _httpx.BaseTransport | None = None,
        *,
        registry: BreakerRegistry | None = None,
        retry: RetryConfig | None = None,
        key: KeyFunction = per_host,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
    ) -> None:
        if inner is not None and not callable(getattr(inner, "handle_request", None)):
            raise TypeError(f"inner must be an httpx.BaseTransport, got {inner!r}")
        self._registry = check_adapter_args(registry, key)
        self._policy = RetryPolicy(retry, retry_methods)
        self._key = key
        self._inner = _httpx.HTTPTransport() if inner is None else inner

    @property
    def registry(self) -> BreakerRegistry:
        """The breakers, one per key."""
        return self._registry

    @property
    def inner(self) -> _httpx.BaseTransport:
        """The transport that does the I/O."""
        return self._inner

    def handle_request(self, request: _httpx.Request) -> _httpx.Response:
        """Sends ``request`` through its breaker, retrying as configured.

        Raises:
            CircuitBreakerOpenError: the request's breaker rejected it.
            httpx.TransportError: the last attempt's error, unchanged.
        """
        key = self._key(request)
        breaker = self._registry.get(key)
        exchange = _SyncExchange(self._inner, request)
        try:
            return send_with_retries(self._policy, breaker, key, exchange)
        finally:
            exchange.body.restore()

    def close(self) -> None:
        """Closes the inner transport."""
        self._inner.close()


class AsyncResilientTransport(_httpx.AsyncBaseTransport):
    """The asyncio twin of ``ResilientTransport``, for ``httpx.AsyncClient(transport=...)``.

    Args:
        inner: the transport that does the I/O; None uses ``httpx.AsyncHTTPTransport()``.
        registry: where the breakers live; None makes a private ``BreakerRegistry()``.
        retry: how to retry; None uses ``RetryConfig()``. Sleeps use its ``async_sleep`` (or
            advance its manual clock).
        key: ``(request) -> str``, the breaker key of a request; default ``per_host``.
        retry_methods: the methods that may be retried (case-insensitive).

    Raises:
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        inner: _httpx.AsyncBaseTransport | None = None,
        *,
        registry: BreakerRegistry | None = None,
        retry: RetryConfig | None = None,
        key: KeyFunction = per_host,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
    ) -> None:
        if inner is not None and not callable(getattr(inner, "handle_async_request", None)):
            raise TypeError(f"inner must be an httpx.AsyncBaseTransport, got {inner!r}")
        self._registry = check_adapter_args(registry, key)
        self._policy = RetryPolicy(retry, retry_methods)
        self._key = key
        self._inner = _httpx.AsyncHTTPTransport() if inner is None else inner

    @property
    def registry(self) -> BreakerRegistry:
        """The breakers, one per key."""
        return self._registry

    @property
    def inner(self) -> _httpx.AsyncBaseTransport:
        """The transport that does the I/O."""
        return self._inner

    async def handle_async_request(self, request: _httpx.Request) -> _httpx.Response:
        """Sends ``request`` through its breaker, retrying as configured.

        Raises:
            CircuitBreakerOpenError: the request's breaker rejected it.
            httpx.TransportError: the last attempt's error, unchanged.
        """
        key = self._key(request)
        breaker = self._registry.get(key)
        exchange = _AsyncExchange(self._inner, request)
        try:
            return await send_with_retries_async(self._policy, breaker, key, exchange)
        finally:
            exchange.body.restore()

    async def aclose(self) -> None:
        """Closes the inner transport."""
        await self._inner.aclose()
