"""Search that degrades step by step: primary, then backup, then cached results, then nothing.

Two ASGI search services run under uvicorn, each wrapped in ``resilience.asgi.ChaosMiddleware``
(off at first). An asyncio client with ``AsyncResilientTransport`` keeps one breaker per host.
Chaos is switched on for the primary, then for the backup too, and the output shows which tier
answered each query.

Run: python examples/search_degradation.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import httpx
from _loopback import asgi_service

from resilience import CircuitBreakerConfig, CircuitBreakerOpenError, RetryConfig
from resilience.asgi import ChaosMiddleware
from resilience.httpx import AsyncResilientTransport
from resilience.registry import BreakerRegistry
from resilience.testing import ManualClock

INDEX = {
    "python": ["python.org", "docs.python.org", "peps.python.org"],
    "rust": ["rust-lang.org", "crates.io", "docs.rs"],
    "go": ["go.dev", "pkg.go.dev"],
}


def search_app(limit: int) -> Any:
    """An ASGI search service returning at most ``limit`` results (the backup is smaller)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        query = parse_qs(scope["query_string"].decode()).get("q", [""])[0]
        body = json.dumps({"results": INDEX.get(query, [])[:limit]}).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class SearchService:
    def __init__(self, primary: str, backup: str, clock: ManualClock) -> None:
        self.primary, self.backup = primary, backup
        self.registry = BreakerRegistry(
            CircuitBreakerConfig(volume_threshold=2, sleep_window=30.0, clock=clock)
        )
        retry = RetryConfig(max_attempts=2, initial_delay=0.1, jitter=False, clock=clock)
        self.client = httpx.AsyncClient(
            transport=AsyncResilientTransport(registry=self.registry, retry=retry)
        )
        self.cache: dict[str, list[str]] = {}

    async def _ask(self, base: str, query: str) -> list[str]:
        response = await self.client.get(f"{base}/search", params={"q": query})
        response.raise_for_status()
        results: list[str] = response.json()["results"]
        return results

    async def search(self, query: str) -> str:
        try:
            results = await self._ask(self.primary, query)
            self.cache[query] = results
            return f"{query!r}: {len(results)} results from primary"
        except (CircuitBreakerOpenError, httpx.HTTPError) as exc:
            why = reason(exc)
        try:
            results = await self._ask(self.backup, query)
            return f"{query!r}: {len(results)} results from backup (primary: {why})"
        except (CircuitBreakerOpenError, httpx.HTTPError) as exc:
            why = f"{why}; backup: {reason(exc)}"
        if query in self.cache:
            return f"{query!r}: {len(self.cache[query])} results from cache, degraded ({why})"
        return f"{query!r}: no results, search degraded and nothing cached ({why})"

    def states(self, names: dict[str, str]) -> str:
        held = self.registry.items()
        return ", ".join(f"{names[key]}={breaker.state.value}" for key, breaker in held)


def reason(exc: BaseException) -> str:
    if isinstance(exc, CircuitBreakerOpenError):
        return "circuit open"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


async def scenario(service: SearchService, chaos: dict[str, ChaosMiddleware]) -> None:
    names = {
        httpx.URL(url).netloc.decode(): name
        for name, url in (("primary", service.primary), ("backup", service.backup))
    }
    print(await service.search("python"))
    print(await service.search("rust"))

    print("-- chaos: the primary answers every request with 503")
    chaos["primary"].enabled = True
    print(await service.search("python"))
    print(await service.search("go"))
    print(f"breakers: {service.states(names)}")

    print("-- chaos: the backup fails too")
    chaos["backup"].enabled = True
    print(await service.search("python"))
    print(await service.search("rust"))
    print(await service.search("go"))
    print(f"breakers: {service.states(names)}")
    print(
        f"injected failures: primary={chaos['primary'].stats().failures}, "
        f"backup={chaos['backup'].stats().failures}"
    )
    await service.client.aclose()


def main() -> None:
    clock = ManualClock()
    chaos = {
        "primary": ChaosMiddleware(search_app(limit=10), failure_rate=1.0, seed=1),
        "backup": ChaosMiddleware(search_app(limit=2), failure_rate=1.0, seed=2),
    }
    with asgi_service(chaos["primary"]) as primary, asgi_service(chaos["backup"]) as backup:
        asyncio.run(scenario(SearchService(primary.url, backup.url, clock), chaos))


if __name__ == "__main__":
    main()
