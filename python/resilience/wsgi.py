"""Fault injection for WSGI apps, to test how clients and dependants cope (never for production).

::

    from resilience.wsgi import ChaosMiddleware

    app = ChaosMiddleware(app, enabled=True, failure_rate=0.3, status_code=503, seed=7)

The twin of ``resilience.asgi.ChaosMiddleware``, with the same arguments and behaviour; latency
blocks the worker thread with ``time.sleep`` (or the ``sleep`` given).
"""

from __future__ import annotations

import http
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ._http import ChaosControls, ChaosPolicy, ChaosStats, Latency

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ChaosMiddleware", "ChaosStats"]


class ChaosMiddleware(ChaosControls):
    """Injects failures and latency into a fraction of a WSGI app's requests.

    Args:
        app: the WSGI application to wrap.
        enabled: nothing is injected unless this is True (settable later: ``mw.enabled = True``).
        failure_rate: fraction of matching requests answered with ``status_code``, in [0, 1].
        status_code: the status of an injected failure (default 503).
        latency: delay added to matching requests: seconds, a ``(low, high)`` uniform range, or
            ``(rng) -> seconds`` for any distribution; None for none.
        latency_rate: fraction of matching requests that get the latency, in [0, 1].
        seed: seeds the random generator so a run can be repeated; None for a random seed.
        paths: fnmatch patterns of the paths (``PATH_INFO``) chaos applies to; None for all.
        exclude_paths: fnmatch patterns of paths never touched (they win over ``paths``).
        headers: extra headers on injected failures (``{"Retry-After": "1"}``).
        sleep: the sleep used for latency; default ``time.sleep``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range.
    """

    def __init__(
        self,
        app: WSGIApplication,
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
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI application, got {app!r}")
        if sleep is not None and not callable(sleep):
            raise TypeError(f"sleep must be callable or None, got {sleep!r}")
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
        self._sleep: Callable[[float], object] = time.sleep if sleep is None else sleep
        code = self._policy.status_code
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = "Injected Failure"
        self._status_line = f"{code} {phrase}"

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        decision = self._policy.decide(environ.get("PATH_INFO", "") or "/")
        if decision is None:
            return self.app(environ, start_response)
        delay, fail = decision
        if delay > 0.0:
            self._sleep(delay)
        if not fail:
            return self.app(environ, start_response)
        body = self._policy.body
        start_response(
            self._status_line,
            [*self._policy.headers, ("content-length", str(len(body)))],
        )
        return [body]
