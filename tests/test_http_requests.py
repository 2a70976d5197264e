"""resilience.requests.ResilientAdapter against real HTTP servers on 127.0.0.1.

The same behaviours as the httpx transports, through ``requests.Session.mount``; breakers and
retries read a ManualClock so no test sleeps for a backoff.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest

requests = pytest.importorskip("requests")

from http_backend import Backend, Reply, free_port  # noqa: E402
from resilience import (  # noqa: E402
    AttemptInfo,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitState,
    RetryConfig,
)
from resilience.registry import BreakerRegistry  # noqa: E402
from resilience.requests import ResilientAdapter, per_host  # noqa: E402
from resilience.testing import ManualClock  # noqa: E402

pytestmark = pytest.mark.thread_unsafe


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
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock: ManualClock) -> BreakerRegistry:
    return BreakerRegistry(CircuitBreakerConfig(volume_threshold=4, clock=clock))


def session(
    registry: BreakerRegistry, clock: ManualClock, retry_methods: Any = None, **retry: Any
) -> Any:
    config = RetryConfig(clock=clock, jitter=False, **retry)
    if retry_methods is None:
        adapter = ResilientAdapter(registry=registry, retry=config)
    else:
        adapter = ResilientAdapter(registry=registry, retry=config, retry_methods=retry_methods)
    s = requests.Session()
    s.mount("http://", adapter)
    return s


def test_each_host_gets_its_own_breaker(
    backend: Backend, other_backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(500))
    with session(registry, clock, max_attempts=1) as s:
        for _ in range(4):
            assert s.get(backend.url()).status_code == 500
        with pytest.raises(CircuitBreakerOpenError):
            s.get(backend.url())
        assert s.get(other_backend.url()).status_code == 200
    assert backend.count("/") == 4
    states = {key: m["state"] for key, m in registry.metrics().items()}
    assert states == {backend.key: CircuitState.OPEN, other_backend.key: CircuitState.CLOSED}


def test_4xx_responses_never_open_the_breaker(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(403))
    with session(registry, clock) as s:
        for _ in range(10):
            assert s.get(backend.url()).status_code == 403
    metrics = registry.get(backend.key).metrics()
    assert (metrics["state"], metrics["success"], metrics["failure"]) == (
        CircuitState.CLOSED,
        10,
        0,
    )


def test_a_failed_get_is_retried_and_the_body_of_the_success_is_read(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503), Reply(200, b"done"))
    with session(registry, clock) as s:
        response = s.get(backend.url())
    assert (response.status_code, response.text) == (200, "done")
    assert backend.count("/") == 2


def test_retry_after_is_honoured_with_a_manual_clock(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(429, headers={"Retry-After": "4"}), Reply(200))
    with session(registry, clock) as s:
        assert s.get(backend.url()).status_code == 200
    assert clock.now() == 4.0


def test_retry_after_is_capped_by_max_delay(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/", Reply(503, headers={"Retry-After": "600"}), Reply(200))
    with session(registry, clock, max_delay=2.0) as s:
        assert s.get(backend.url()).status_code == 200
    assert clock.now() == 2.0


def test_post_is_not_retried_by_default(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/pay", Reply(503), Reply(200))
    with session(registry, clock) as s:
        assert s.post(backend.url("/pay"), data=b"charge").status_code == 503
    assert backend.count("/pay") == 1


def test_post_with_a_bytes_body_is_retried_when_allowed(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/pay", Reply(503), Reply(200))
    with session(registry, clock, retry_methods=["POST"]) as s:
        assert s.post(backend.url("/pay"), data=b"charge").status_code == 200
    assert backend.bodies("/pay") == [b"charge", b"charge"]


def test_a_generator_body_is_not_retried_once_it_was_read(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/up", Reply(503), Reply(200))

    def chunks() -> Iterator[bytes]:
        yield b"one;"
        yield b"two"

    with session(registry, clock) as s:
        assert s.put(backend.url("/up"), data=chunks()).status_code == 503
    assert backend.bodies("/up") == [b"one;two"]


def test_a_seekable_file_body_is_rewound_and_sent_again(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/up", Reply(503), Reply(200))
    with session(registry, clock) as s:
        assert s.put(backend.url("/up"), data=io.BytesIO(b"file-body")).status_code == 200
    assert backend.bodies("/up") == [b"file-body", b"file-body"]


def test_connection_refused_counts_and_raises_the_requests_error(
    registry: BreakerRegistry, clock: ManualClock
) -> None:
    port = free_port()
    attempts: list[AttemptInfo] = []
    adapter = ResilientAdapter(
        registry=registry, retry=RetryConfig(clock=clock, jitter=False, on_retry=attempts.append)
    )
    with requests.Session() as s:
        s.mount("http://", adapter)
        with pytest.raises(requests.ConnectionError):
            s.get(f"http://127.0.0.1:{port}/")
    assert registry.get(f"127.0.0.1:{port}").metrics()["failure"] == 3
    assert [a.exception.__class__ for a in attempts] == [requests.ConnectionError] * 2


def test_timeouts_count_as_failures(
    backend: Backend, registry: BreakerRegistry, clock: ManualClock
) -> None:
    backend.route("/slow", Reply(delay=0.5))
    with session(registry, clock, max_attempts=1) as s, pytest.raises(requests.Timeout):
        s.get(backend.url("/slow"), timeout=0.05)
    assert registry.get(backend.key).metrics()["failure"] == 1


def test_adapter_rejects_arguments_of_the_wrong_type() -> None:
    with pytest.raises(TypeError):
        ResilientAdapter(inner=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ResilientAdapter(key="host")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ResilientAdapter(retry_methods="GET")


def test_per_host_key_fills_in_the_default_port() -> None:
    prepared = requests.Request("GET", "https://Example.com/a").prepare()
    assert per_host(prepared) == "example.com:443"
    assert per_host(requests.Request("GET", "http://example.com:81/").prepare()) == (
        "example.com:81"
    )
