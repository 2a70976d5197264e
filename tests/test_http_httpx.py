"""resilience.httpx transports against real HTTP servers on 127.0.0.1 (nothing of httpx mocked).

Every breaker and retry reads a ManualClock, so backoff and Retry-After waits advance the clock
instead of sleeping; the servers answer from a script of replies per path.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from http_backend import Backend, Reply, free_port  # noqa: E402
from resilience import (  # noqa: E402
    AttemptInfo,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitState,
    RetryConfig,
)
from resilience.httpx import AsyncResilientTransport, ResilientTransport, per_host  # noqa: E402
from resilience.registry import BreakerRegistry  # noqa: E402
from resilience.testing import ManualClock  # noqa: E402

pytestmark = pytest.mark.thread_unsafe

# Building an SSL context loads the CA bundle (a quarter of a second); the servers here are plain
# HTTP, so every inner transport shares one context.
SSL_CONTEXT = ssl.create_default_context()


def inner() -> Any:
    return httpx.HTTPTransport(verify=SSL_CONTEXT)


def async_inner() -> Any:
    return httpx.AsyncHTTPTransport(verify=SSL_CONTEXT)


@pytest.fixture
def backend() -> Iterator[Backend]:
    server = Backend()
    yield server
    server.close()


@pytest.fixture
def other_backend() -> Iterator[Backend]:
    server = Backend()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock: ManualClock) -> BreakerRegistry:
    return BreakerRegistry(CircuitBreakerConfig(volume_threshold=4, clock=clock))


def transport(registry: BreakerRegistry, clock: ManualClock, **retry: Any) -> ResilientTransport:
    methods = retry.pop("retry_methods", None)
    config = RetryConfig(clock=clock, jitter=False, **retry)
    if methods is None:
        return ResilientTransport(inner(), registry=registry, retry=config)
    return ResilientTransport(inner(), registry=registry, retry=config, retry_methods=methods)


# ----------------------------------------------------------------------------- breakers


def test_each_host_gets_its_own_breaker(
    backend: Backend, other_backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503))
    with httpx.Client(transport=transport(registry, clock, max_attempts=1)) as client:
        for _ in range(4):
            assert client.get(backend.url()).status_code == 503
        with pytest.raises(CircuitBreakerOpenError) as rejected:
            client.get(backend.url())
        assert rejected.value.name == backend.key
        for _ in range(5):
            assert client.get(other_backend.url()).status_code == 200
    assert backend.count("/") == 4  # the rejected request never reached the server
    states = {key: m["state"] for key, m in registry.metrics().items()}
    assert states == {backend.key: CircuitState.OPEN, other_backend.key: CircuitState.CLOSED}


def test_5xx_responses_count_as_failures_and_are_returned_not_raised(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(500, b"boom"))
    with httpx.Client(transport=transport(registry, clock, max_attempts=1)) as client:
        response = client.get(backend.url())
    assert (response.status_code, response.text) == (500, "boom")
    metrics = registry.get(backend.key).metrics()
    assert (metrics["failure"], metrics["success"]) == (1, 0)


def test_4xx_responses_count_as_successes_and_never_open_the_breaker(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(404))
    with httpx.Client(transport=transport(registry, clock)) as client:
        for _ in range(20):
            assert client.get(backend.url()).status_code == 404
    metrics = registry.get(backend.key).metrics()
    assert metrics["state"] is CircuitState.CLOSED
    assert (metrics["success"], metrics["failure"]) == (20, 0)
    assert backend.count("/") == 20  # and a 4xx is never retried


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_408_429_and_5xx_count_as_failures(
    status: int, backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(status))
    with httpx.Client(transport=transport(registry, clock, max_attempts=1)) as client:
        assert client.get(backend.url()).status_code == status
    assert registry.get(backend.key).metrics()["failure"] == 1


def test_connection_refused_counts_as_a_failure_and_raises_the_httpx_error(
    closed_port: int, registry: BreakerRegistry, clock: ManualClock
) -> None:
    url = f"http://127.0.0.1:{closed_port}/"
    with (
        httpx.Client(transport=transport(registry, clock, max_attempts=2)) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(url)
    metrics = registry.get(f"127.0.0.1:{closed_port}").metrics()
    assert metrics["failure"] == 2  # both attempts
    assert clock.now() == pytest.approx(0.1)


def test_timeouts_count_as_failures(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/slow", Reply(delay=0.5))
    with (
        httpx.Client(transport=transport(registry, clock, max_attempts=1), timeout=0.05) as c,
        pytest.raises(httpx.ReadTimeout),
    ):
        c.get(backend.url("/slow"))
    assert registry.get(backend.key).metrics()["failure"] == 1


def test_a_breaker_opened_during_retries_stops_them_with_a_rejection(
    backend: Backend, clock: ManualClock
) -> None:
    registry = BreakerRegistry(CircuitBreakerConfig(volume_threshold=2, clock=clock))
    backend.route("/", Reply(503))
    with (
        httpx.Client(transport=transport(registry, clock, max_attempts=5)) as client,
        pytest.raises(CircuitBreakerOpenError),
    ):
        client.get(backend.url())
    assert backend.count("/") == 2


def test_key_function_can_give_each_endpoint_its_own_breaker(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/broken", Reply(500))
    mounted = ResilientTransport(
        inner(),
        registry=registry,
        retry=RetryConfig(max_attempts=1),
        key=lambda request: f"{per_host(request)}{request.url.path}",
    )
    with httpx.Client(transport=mounted) as client:
        for _ in range(4):
            client.get(backend.url("/broken"))
        with pytest.raises(CircuitBreakerOpenError):
            client.get(backend.url("/broken"))
        assert client.get(backend.url("/fine")).status_code == 200
    assert {k for k, _ in registry.items()} == {f"{backend.key}/broken", f"{backend.key}/fine"}


# ----------------------------------------------------------------------------- retries


def test_a_failed_get_is_retried_with_backoff_until_it_succeeds(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503), Reply(503), Reply(200, b"finally"))
    with httpx.Client(transport=transport(registry, clock, max_attempts=3)) as client:
        response = client.get(backend.url())
    assert response.text == "finally"
    assert backend.count("/") == 3
    assert clock.now() == pytest.approx(0.1 + 0.2)  # initial_delay 0.1, factor 2, no jitter


def test_retries_exhausted_return_the_last_failure_response(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(502, b"first"), Reply(502, b"second"), Reply(502, b"last"))
    with httpx.Client(transport=transport(registry, clock, max_attempts=3)) as client:
        response = client.get(backend.url())
    assert (response.status_code, response.text) == (502, "last")
    with pytest.raises(httpx.HTTPStatusError):
        response.raise_for_status()


def test_retry_after_seconds_is_honoured_with_a_manual_clock(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503, headers={"Retry-After": "7"}), Reply(200))
    with httpx.Client(transport=transport(registry, clock, max_delay=10.0)) as client:
        assert client.get(backend.url()).status_code == 200
    assert clock.now() == 7.0


def test_retry_after_on_a_429_is_honoured(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(429, headers={"Retry-After": "2"}), Reply(200))
    with httpx.Client(transport=transport(registry, clock)) as client:
        assert client.get(backend.url()).status_code == 200
    assert clock.now() == 2.0


def test_retry_after_http_date_is_honoured(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    date = email.utils.format_datetime(when, usegmt=True)
    backend.route("/", Reply(503, headers={"Retry-After": date}), Reply(200))
    with httpx.Client(transport=transport(registry, clock, max_delay=60.0)) as client:
        assert client.get(backend.url()).status_code == 200
    assert 27.0 <= clock.now() <= 30.0  # whole seconds in the date, and the request took time


def test_retry_after_is_capped_by_max_delay(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503, headers={"Retry-After": "3600"}), Reply(200))
    with httpx.Client(transport=transport(registry, clock, max_delay=5.0)) as client:
        assert client.get(backend.url()).status_code == 200
    assert clock.now() == 5.0


def test_malformed_retry_after_falls_back_to_the_backoff_delay(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503, headers={"Retry-After": "soon"}), Reply(200))
    with httpx.Client(transport=transport(registry, clock)) as client:
        assert client.get(backend.url()).status_code == 200
    assert clock.now() == pytest.approx(0.1)


def test_post_is_not_retried_by_default(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/orders", Reply(503), Reply(201))
    with httpx.Client(transport=transport(registry, clock)) as client:
        response = client.post(backend.url("/orders"), json={"sku": 1})
    assert response.status_code == 503
    assert backend.count("/orders") == 1
    assert clock.now() == 0.0


def test_post_is_retried_when_listed_in_retry_methods(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/orders", Reply(503), Reply(201))
    mounted = transport(registry, clock, retry_methods={"post"})
    with httpx.Client(transport=mounted) as client:
        response = client.post(backend.url("/orders"), content=b"order-1")
    assert response.status_code == 201
    assert backend.bodies("/orders") == [b"order-1", b"order-1"]  # the body was sent again


def test_get_is_not_retried_when_retry_methods_leaves_it_out(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503), Reply(200))
    with httpx.Client(transport=transport(registry, clock, retry_methods=())) as client:
        assert client.get(backend.url()).status_code == 503
    assert backend.count("/") == 1


def test_a_streamed_body_is_not_retried_once_it_was_read(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/upload", Reply(503), Reply(200))

    def chunks() -> Iterator[bytes]:
        yield b"part-1;"
        yield b"part-2"

    with httpx.Client(transport=transport(registry, clock)) as client:
        response = client.put(backend.url("/upload"), content=chunks())
    assert response.status_code == 503  # PUT is idempotent, but the generator is spent
    assert backend.bodies("/upload") == [b"part-1;part-2"]


def test_a_streamed_body_is_retried_when_the_connection_failed_before_reading_it(
    closed_port: int, registry: BreakerRegistry, clock: ManualClock
) -> None:
    attempts: list[AttemptInfo] = []

    def chunks() -> Iterator[bytes]:
        yield b"never sent"

    config = RetryConfig(clock=clock, jitter=False, on_retry=attempts.append)
    with (
        httpx.Client(
            transport=ResilientTransport(inner(), registry=registry, retry=config)
        ) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.put(f"http://127.0.0.1:{closed_port}/upload", content=chunks())
    assert [a.attempt for a in attempts] == [1, 2]


def test_an_in_memory_body_is_sent_again_on_retry(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/doc", Reply(500), Reply(200))
    with httpx.Client(transport=transport(registry, clock)) as client:
        assert client.put(backend.url("/doc"), json={"v": 1}).status_code == 200
    assert backend.bodies("/doc") == [b'{"v":1}', b'{"v":1}']


def test_on_retry_hears_each_failed_response(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    attempts: list[AttemptInfo] = []
    backend.route("/", Reply(503), Reply(200))
    config = RetryConfig(clock=clock, jitter=False, on_retry=attempts.append, name="fetch")
    with httpx.Client(
        transport=ResilientTransport(inner(), registry=registry, retry=config)
    ) as client:
        client.get(backend.url())
    assert [(a.operation, a.attempt, a.result, a.exception) for a in attempts] == [
        ("fetch", 1, "HTTP 503", None)
    ]


def test_max_elapsed_budget_stops_retrying(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503, headers={"Retry-After": "4"}))
    mounted = transport(registry, clock, max_attempts=10, max_elapsed=10.0, max_delay=5.0)
    with httpx.Client(transport=mounted) as client:
        assert client.get(backend.url()).status_code == 503
    assert backend.count("/") == 3  # waits of 4 s at 0 and 4; a third would end at 12 > 10
    assert clock.now() == 8.0


# ----------------------------------------------------------------------------- async


def test_async_transport_serves_100_concurrent_requests(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/item", Reply(200, b"item"))

    async def main() -> list[Any]:
        mounted = AsyncResilientTransport(
            async_inner(), registry=registry, retry=RetryConfig(clock=clock)
        )
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(transport=mounted, limits=limits) as client:
            return list(
                await asyncio.gather(*(client.get(backend.url("/item")) for _ in range(100)))
            )

    responses = asyncio.run(main())
    assert [r.text for r in responses] == ["item"] * 100
    metrics = registry.get(backend.key).metrics()
    assert (metrics["success"], metrics["in_flight"], metrics["total_executions"]) == (100, 0, 100)


def test_async_transport_with_100_concurrent_failures_opens_and_rejects(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503))

    async def main() -> list[Any]:
        mounted = AsyncResilientTransport(
            async_inner(), registry=registry, retry=RetryConfig(max_attempts=1)
        )
        async with httpx.AsyncClient(transport=mounted) as client:
            return list(
                await asyncio.gather(
                    *(client.get(backend.url()) for _ in range(100)), return_exceptions=True
                )
            )

    outcomes = asyncio.run(main())
    rejected = [o for o in outcomes if isinstance(o, CircuitBreakerOpenError)]
    answered = [o for o in outcomes if isinstance(o, httpx.Response)]
    assert len(rejected) + len(answered) == 100
    assert all(r.status_code == 503 for r in answered)
    metrics = registry.get(backend.key).metrics()
    assert metrics["state"] is CircuitState.OPEN
    assert metrics["in_flight"] == 0
    assert metrics["rejected"] == len(rejected)
    assert backend.count("/") == len(answered)


def test_async_transport_honours_retry_after_with_a_manual_clock(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503, headers={"Retry-After": "3"}), Reply(200))

    async def main() -> int:
        mounted = AsyncResilientTransport(
            async_inner(), registry=registry, retry=RetryConfig(clock=clock)
        )
        async with httpx.AsyncClient(transport=mounted) as client:
            return (await client.get(backend.url())).status_code

    assert asyncio.run(main()) == 200
    assert clock.now() == 3.0


def test_async_streamed_body_is_not_retried_once_it_was_read(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/up", Reply(503), Reply(200))

    async def chunks() -> Any:
        yield b"abc"

    async def main() -> int:
        mounted = AsyncResilientTransport(
            async_inner(), registry=registry, retry=RetryConfig(clock=clock)
        )
        async with httpx.AsyncClient(transport=mounted) as client:
            return (await client.put(backend.url("/up"), content=chunks())).status_code

    assert asyncio.run(main()) == 503
    assert backend.bodies("/up") == [b"abc"]


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"registry": object()},
        {"key": "host"},
        {"retry": {"max_attempts": 2}},
        {"retry_methods": "GET"},
        {"inner": object()},
    ],
)
def test_transports_reject_arguments_of_the_wrong_type(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        ResilientTransport(**kwargs)
    with pytest.raises(TypeError):
        AsyncResilientTransport(**kwargs)


def test_per_host_key_fills_in_the_default_port() -> None:
    assert per_host(httpx.Request("GET", "https://API.example.com/x")) == "api.example.com:443"
    assert per_host(httpx.Request("GET", "http://example.com:8080/")) == "example.com:8080"
    assert per_host(httpx.Request("GET", "http://[::1]:9000/")) == "[::1]:9000"
