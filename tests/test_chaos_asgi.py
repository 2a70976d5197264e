"""resilience.asgi.ChaosMiddleware: off unless enabled, seeded faults, path filters, latency.

Behaviour visible to clients is checked through a real uvicorn server on 127.0.0.1; the
seed-and-rate arithmetic is checked by calling the middleware directly (it is plain ASGI).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from resilience import (  # noqa: E402
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitState,
    RetryConfig,
)
from resilience.asgi import ChaosMiddleware  # noqa: E402
from resilience.httpx import ResilientTransport  # noqa: E402
from resilience.registry import BreakerRegistry  # noqa: E402

pytestmark = pytest.mark.thread_unsafe

SSL_CONTEXT = ssl.create_default_context()  # built once: loading the CA bundle is slow


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every HTTP request with 200 "hello", and completes the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


class Swappable:
    """An ASGI app that forwards to ``self.app``, so one server serves every test."""

    def __init__(self) -> None:
        self.app: Any = hello_app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Swappable]]:
    holder = Swappable()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(holder, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(1000):
        if uv.started:
            break
        time.sleep(0.01)
    assert uv.started, "uvicorn did not start within 10 s"
    yield f"http://127.0.0.1:{port}", holder
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def serve(server: tuple[str, Swappable]) -> Iterator[Any]:
    """``serve(app) -> base_url``: puts ``app`` behind the shared server for this test."""
    base, holder = server

    def put(app: Any) -> str:
        holder.app = app
        return base

    yield put
    holder.app = hello_app


async def call(app: Any, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    """Calls an ASGI app directly with one GET and collects the response."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def statuses(app: Any, n: int, path: str = "/") -> list[int]:
    async def run() -> list[int]:
        return [(await call(app, path))[0] for _ in range(n)]

    return asyncio.run(run())


# ----------------------------------------------------------------------------- through uvicorn


def test_chaos_is_off_unless_explicitly_enabled(serve: Any) -> None:
    chaos = ChaosMiddleware(hello_app, failure_rate=1.0, latency=5.0)
    base = serve(chaos)
    with httpx.Client(verify=SSL_CONTEXT) as client:
        assert [client.get(base).status_code for _ in range(5)] == [200] * 5
    assert chaos.stats().requests == 0


def test_enabled_chaos_answers_the_configured_status_without_calling_the_app(
    serve: Any,
) -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        await hello_app(scope, receive, send)

    chaos = ChaosMiddleware(
        app, enabled=True, failure_rate=1.0, status_code=500, headers={"retry-after": "3"}
    )
    base = serve(chaos)
    with httpx.Client(verify=SSL_CONTEXT) as client:
        response = client.get(f"{base}/orders")
    assert response.status_code == 500
    assert response.headers["x-chaos"] == "injected-failure"
    assert response.headers["retry-after"] == "3"
    assert json.loads(response.text) == {"error": "chaos: injected failure", "status": 500}
    assert calls == []
    assert chaos.stats().failures == 1


def test_enabled_can_be_switched_on_and_off_at_run_time(serve: Any) -> None:
    chaos = ChaosMiddleware(hello_app, failure_rate=1.0)
    base = serve(chaos)
    with httpx.Client(verify=SSL_CONTEXT) as client:
        assert client.get(base).status_code == 200
        chaos.enabled = True
        assert client.get(base).status_code == 503
        chaos.failure_rate = 0.0
        assert client.get(base).status_code == 200
        chaos.enabled = False
        chaos.failure_rate = 1.0
        assert client.get(base).status_code == 200


def test_injected_latency_delays_the_response(serve: Any) -> None:
    base = serve(ChaosMiddleware(hello_app, enabled=True, latency=0.2))
    with httpx.Client(verify=SSL_CONTEXT) as client:
        started = time.perf_counter()
        response = client.get(base)
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.2


def test_a_breaker_protecting_a_client_opens_under_injected_failures(serve: Any) -> None:
    base = serve(ChaosMiddleware(hello_app, enabled=True, failure_rate=1.0, seed=1))
    registry = BreakerRegistry(CircuitBreakerConfig(volume_threshold=5))
    transport = ResilientTransport(
        httpx.HTTPTransport(verify=SSL_CONTEXT),
        registry=registry,
        retry=RetryConfig(max_attempts=1),
    )
    with httpx.Client(transport=transport) as client:
        for _ in range(5):
            assert client.get(base).status_code == 503
        with pytest.raises(CircuitBreakerOpenError):
            client.get(base)
    (metrics,) = registry.metrics().values()
    assert metrics["state"] is CircuitState.OPEN


# ----------------------------------------------------------------------------- direct calls


def test_the_same_seed_injects_the_same_failures() -> None:
    runs = [
        statuses(ChaosMiddleware(hello_app, enabled=True, failure_rate=0.3, seed=7), 200)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = statuses(ChaosMiddleware(hello_app, enabled=True, failure_rate=0.3, seed=8), 200)
    assert other != runs[0]


def test_failure_rate_is_the_fraction_of_matching_requests_that_fail() -> None:
    chaos = ChaosMiddleware(hello_app, enabled=True, failure_rate=0.25, seed=3)
    failed = statuses(chaos, 2000).count(503)
    assert 400 <= failed <= 600  # 500 expected; more than 4 standard deviations of slack
    stats = chaos.stats()
    assert (stats.requests, stats.failures) == (2000, failed)


def test_path_filters_choose_where_chaos_applies_and_exclusions_win() -> None:
    chaos = ChaosMiddleware(
        hello_app,
        enabled=True,
        failure_rate=1.0,
        paths=["/api/*"],
        exclude_paths=["/api/health"],
    )
    assert statuses(chaos, 1, "/api/orders") == [503]
    assert statuses(chaos, 1, "/api/health") == [200]
    assert statuses(chaos, 1, "/static/app.js") == [200]
    assert chaos.stats().requests == 1


def test_latency_range_and_rate_are_drawn_from_the_seeded_generator() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    chaos = ChaosMiddleware(
        hello_app, enabled=True, latency=(0.1, 0.3), latency_rate=0.5, seed=11, sleep=sleep
    )
    assert statuses(chaos, 400) == [200] * 400
    assert 150 <= len(slept) <= 250
    assert all(0.1 <= s <= 0.3 for s in slept)
    assert chaos.stats().delayed == len(slept)
    assert chaos.stats().total_delay == pytest.approx(sum(slept))


def test_latency_can_follow_any_distribution() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    def exponential(rng: random.Random) -> float:
        return rng.expovariate(50.0)

    chaos = ChaosMiddleware(hello_app, enabled=True, latency=exponential, seed=5, sleep=sleep)
    statuses(chaos, 300)
    assert len(slept) == 300
    assert 0.01 < sum(slept) / len(slept) < 0.04  # mean 1/50 s


def test_a_latency_distribution_that_draws_a_negative_delay_is_an_error() -> None:
    chaos = ChaosMiddleware(hello_app, enabled=True, latency=lambda rng: -1.0)
    with pytest.raises(ValueError, match="latency"):
        statuses(chaos, 1)


def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    chaos = ChaosMiddleware(app, enabled=True, failure_rate=1.0)

    async def run() -> None:
        await chaos({"type": "lifespan"}, None, None)
        await chaos({"type": "websocket", "path": "/ws"}, None, None)

    asyncio.run(run())
    assert seen == ["lifespan", "websocket"]
    assert chaos.stats().requests == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"failure_rate": 1.5}, ValueError),
        ({"failure_rate": -0.1}, ValueError),
        ({"failure_rate": math.nan}, ValueError),
        ({"failure_rate": True}, TypeError),
        ({"latency_rate": 2}, ValueError),
        ({"status_code": 99}, ValueError),
        ({"status_code": 600}, ValueError),
        ({"status_code": "503"}, TypeError),
        ({"latency": -1.0}, ValueError),
        ({"latency": math.inf}, ValueError),
        ({"latency": (0.5, 0.1)}, ValueError),
        ({"latency": (0.1, 0.2, 0.3)}, ValueError),
        ({"latency": "slow"}, TypeError),
        ({"seed": "42"}, TypeError),
        ({"paths": "/api/*"}, TypeError),
        ({"exclude_paths": [1]}, TypeError),
        ({"enabled": 1}, TypeError),
        ({"headers": {"x": 1}}, TypeError),
        ({"sleep": 0.1}, TypeError),
    ],
)
def test_invalid_arguments_are_rejected_at_construction(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        ChaosMiddleware(hello_app, **kwargs)


def test_settable_fields_are_validated() -> None:
    chaos = ChaosMiddleware(hello_app)
    with pytest.raises(ValueError):
        chaos.failure_rate = 3.0
    with pytest.raises(TypeError):
        chaos.enabled = "yes"  # type: ignore[assignment]
    with pytest.raises(TypeError):
        ChaosMiddleware("not an app")  # type: ignore[arg-type]
