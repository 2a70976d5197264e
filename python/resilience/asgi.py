"""Fault injection for ASGI apps, to test how clients and dependants cope (never for production).

::

    from resilience.asgi import ChaosMiddleware

    app = ChaosMiddleware(
        app,
        enabled=os.environ.get("CHAOS") == "1",   # off unless asked for
        failure_rate=0.2,                          # 20% of matching requests answer 503
        latency=(0.05, 0.5),                       # every matching request waits 50-500 ms
        seed=42,                                   # the same faults on every run
        exclude_paths=["/health*"],
    )

A failed request never reaches the app: the middleware answers ``status_code`` with a small JSON
body and an ``x-chaos: injected-failure`` header. Latency is added before the app runs (or before
the injected failure). Non-HTTP scopes (``lifespan``, ``websocket``) pass through untouched. The
middleware holds no circuit breaker: it plays a failing dependency, and the code under test
decides how to protect itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from ._http import ChaosControls, ChaosPolicy, ChaosStats, Latency

__all__ = ["ASGIApp", "ChaosMiddleware", "ChaosStats"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""


class ChaosMiddleware(ChaosControls):
    """Injects failures and latency into a fraction of an ASGI app's HTTP requests.

    Args:
        app: the ASGI application to wrap.
        enabled: nothing is injected unless this is True (settable later: ``mw.enabled = True``).
        failure_rate: fraction of matching requests answered with ``status_code``, in [0, 1].
        status_code: the status of an injected failure (default 503).
        latency: delay added to matching requests: seconds, a ``(low, high)`` uniform range, or
            ``(rng) -> seconds`` for any distribution (``lambda r: r.expovariate(20)``); None for
            none.
        latency_rate: fraction of matching requests that get the latency, in [0, 1].
        seed: seeds the random generator so a run can be repeated; None for a random seed.
        paths: fnmatch patterns of the paths chaos applies to; None for every path.
        exclude_paths: fnmatch patterns of paths never touched (they win over ``paths``).
        headers: extra headers on injected failures (``{"retry-after": "1"}``).
        sleep: the async sleep used for latency; default ``asyncio.sleep``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        enabled: bool = False,
        failure_rate: float = 0.0,
        status_code: int = 503,
        latency: Latency | None = None,
        latency_rate: float = 1.0,
        seed: int | None = None,
        paths: Iterable[str] | None = None,
        exclude_paths: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, got {app!r}")
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be an async callable or None, got {sleep!r}")
        self.app = app
        self._policy = ChaosPolicy(
            enabled=enabled,
            failure_rate=failure_rate,
            status_code=status_code,
            latency=latency,
            latency_rate=latency_rate,
            seed=seed,
            paths=paths,
            exclude_paths=exclude_paths,
            headers=headers,
        )
        self._sleep: Callable[[float], Awaitable[object]] = (
            asyncio.sleep if sleep is None else sleep
        )
        self._headers = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in self._policy.headers
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = self._policy.decide(scope.get("path", ""))
        if decision is None:
            await self.app(scope, receive, send)
            return
        delay, fail = decision
        if delay > 0.0:
            await self._sleep(delay)
        if not fail:
            await self.app(scope, receive, send)
            return
        body = self._policy.body
        await send(
            {
                "type": "http.response.start",
                "status": self._policy.status_code,
                "headers": [*self._headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
