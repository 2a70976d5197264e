"""A gateway with separate breakers for reads, writes and admin calls (bulkheads).

One backend serves everything, but its write path breaks (a full disk, say). The gateway sends
each request through the breaker of its kind: the key function picks "api-read", "api-write" or
"api-admin", and registry patterns give each kind its own tolerance. The write breaker opens;
reads and admin calls carry on through theirs.

Run: python examples/api_gateway.py
"""

from __future__ import annotations

import httpx
from _loopback import Request, Response, http_service

from resilience import CircuitBreakerConfig, CircuitBreakerOpenError, RetryConfig
from resilience.httpx import ResilientTransport
from resilience.registry import BreakerRegistry
from resilience.testing import ManualClock


class Backend:
    def __init__(self) -> None:
        self.items = ["apple", "pear"]
        self.disk_full = False

    def __call__(self, request: Request) -> Response:
        if request.path.startswith("/admin/"):
            return Response(200, {"reindexed": len(self.items)})
        if request.method == "GET":
            return Response(200, {"items": self.items})
        if self.disk_full:
            return Response(500, {"error": "no space left on device"})
        self.items.append(request.body.decode())
        return Response(201, {"items": self.items})


def operation(request: httpx.Request) -> str:
    """The bulkhead a request belongs to."""
    if request.url.path.startswith("/admin/"):
        return "api-admin"
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return "api-read"
    return "api-write"


class Gateway:
    def __init__(self, backend_url: str, clock: ManualClock) -> None:
        self.registry = BreakerRegistry(
            CircuitBreakerConfig(volume_threshold=3, sleep_window=30.0, clock=clock),
            patterns={
                "api-read": {"error_threshold": 0.5},  # reads tolerate more errors
                "api-write": {"error_threshold": 0.2},  # writes: very sensitive
                "api-admin": {"error_threshold": 0.1},  # admin: most sensitive
            },
        )
        self.client = httpx.Client(
            base_url=backend_url,
            transport=ResilientTransport(
                registry=self.registry,
                retry=RetryConfig(max_attempts=1),  # a gateway passes failures on at once
                key=operation,
            ),
        )

    def forward(self, method: str, path: str, body: str | None = None) -> str:
        try:
            response = self.client.request(method, path, content=body)
        except CircuitBreakerOpenError as exc:
            return (
                f"{method} {path} -> 503 rejected by {exc.name} (retry in {exc.retry_after:.0f}s)"
            )
        return f"{method} {path} -> {response.status_code}"

    def states(self) -> str:
        return ", ".join(
            f"{key}={b.state.value} (threshold {b.config.error_threshold})"
            for key, b in sorted(self.registry.items())
        )


def main() -> None:
    clock = ManualClock()
    backend = Backend()
    with http_service(backend) as server:
        gateway = Gateway(server.url, clock)
        print(gateway.forward("GET", "/items"))
        print(gateway.forward("POST", "/items", "plum"))
        print(gateway.forward("POST", "/admin/reindex"))

        print("-- the backend's disk fills up: writes fail")
        backend.disk_full = True
        for fruit in ("fig", "kiwi", "lime"):
            print(gateway.forward("POST", "/items", fruit))
        print(gateway.forward("PUT", "/items/1", "mango"))
        print(gateway.forward("GET", "/items"))
        print(gateway.forward("POST", "/admin/reindex"))
        print(f"breakers: {gateway.states()}")

        print("-- space is freed; 30 s later the write breaker lets a trial through")
        backend.disk_full = False
        clock.advance(30.0)
        for fruit in ("fig", "kiwi", "lime"):
            print(gateway.forward("POST", "/items", fruit))
        print(f"breakers: {gateway.states()}")
        gateway.client.close()


if __name__ == "__main__":
    main()
