"""Resilience testing with injected faults: does the client cope with a flaky service?

A WSGI "profile" service runs under the standard library's server, wrapped in
``resilience.wsgi.ChaosMiddleware``: enabled explicitly, seeded so every run injects the same
faults. A ``requests`` session with ``ResilientAdapter`` retries the GETs. At a 30% failure rate
retries absorb the faults and the breaker stays closed; at 90% the breaker opens and the client
falls back to a default profile instead of waiting on a dying service.

Run: python examples/chaos_testing.py
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests

from resilience import CircuitBreakerConfig, CircuitBreakerOpenError, RetryConfig
from resilience.registry import BreakerRegistry
from resilience.requests import ResilientAdapter
from resilience.testing import ManualClock
from resilience.wsgi import ChaosMiddleware


def profile_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    user = environ["PATH_INFO"].rsplit("/", 1)[-1]
    body = json.dumps({"user": user, "theme": "dark"}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgi_service(app: Any) -> Iterator[str]:
    httpd = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def run(session: requests.Session, base: str, users: int) -> dict[str, int]:
    outcome = {"ok": 0, "failed": 0, "fallback": 0}
    for i in range(users):
        try:
            response = session.get(f"{base}/profiles/user-{i}")
        except CircuitBreakerOpenError:
            outcome["fallback"] += 1  # serve a default profile without calling the service
            continue
        outcome["ok" if response.ok else "failed"] += 1
    return outcome


def main() -> None:
    clock = ManualClock()
    chaos = ChaosMiddleware(
        profile_app,
        enabled=True,  # never on by default: a test or staging setup turns it on
        failure_rate=0.3,
        status_code=503,
        seed=1,
        exclude_paths=["/health"],
    )
    registry = BreakerRegistry(
        CircuitBreakerConfig(volume_threshold=40, error_threshold=0.5, clock=clock)
    )
    retry = RetryConfig(max_attempts=3, initial_delay=0.05, jitter=False, clock=clock)
    with wsgi_service(chaos) as base, requests.Session() as session:
        session.mount("http://", ResilientAdapter(registry=registry, retry=retry))
        breaker = registry.get(urlsplit(base).netloc)  # the adapter's key: "host:port"

        print("phase 1: 30% of requests fail")
        outcome = run(session, base, users=50)
        stats = chaos.stats()
        print(f"  {outcome['ok']} of 50 profiles loaded, {outcome['failed']} failed")
        print(f"  chaos injected {stats.failures} failures into {stats.requests} requests")
        print(f"  breaker: {breaker.state.value}")

        print("phase 2: 90% of requests fail")
        chaos.failure_rate = 0.9
        outcome = run(session, base, users=50)
        print(
            f"  {outcome['ok']} loaded, {outcome['failed']} failed, "
            f"{outcome['fallback']} served the default profile (breaker open)"
        )
        print(f"  breaker: {breaker.state.value}")
        health = requests.get(f"{base}/health", timeout=5)
        print(f"  /health is excluded from chaos: {health.status_code}")


if __name__ == "__main__":
    main()
