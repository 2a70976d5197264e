"""resilience.wsgi.ChaosMiddleware behind a real wsgiref server on 127.0.0.1, and called directly
for the seeded arithmetic."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

requests = pytest.importorskip("requests")

from resilience import CircuitBreakerConfig, CircuitBreakerOpenError, RetryConfig  # noqa: E402
from resilience.registry import BreakerRegistry  # noqa: E402
from resilience.requests import ResilientAdapter  # noqa: E402
from resilience.wsgi import ChaosMiddleware  # noqa: E402

pytestmark = pytest.mark.thread_unsafe


def hello_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Swappable:
    def __init__(self) -> None:
        self.app: Any = hello_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Swappable]]:
    holder = Swappable()
    httpd = make_server("127.0.0.1", 0, holder, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", holder
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def serve(server: tuple[str, Swappable]) -> Iterator[Any]:
    base, holder = server

    def put(app: Any) -> str:
        holder.app = app
        return base

    yield put
    holder.app = hello_app


def call(app: Any, path: str = "/") -> int:
    """Calls a WSGI app directly and returns the status code it started."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return int(status[0].split()[0])


def test_chaos_is_off_unless_explicitly_enabled(serve: Any) -> None:
    chaos = ChaosMiddleware(hello_app, failure_rate=1.0, latency=5.0)
    base = serve(chaos)
    with requests.Session() as s:
        assert [s.get(base).status_code for _ in range(5)] == [200] * 5
    assert chaos.stats().requests == 0


def test_enabled_chaos_answers_the_configured_status_and_headers(serve: Any) -> None:
    chaos = ChaosMiddleware(
        hello_app, enabled=True, failure_rate=1.0, status_code=429, headers={"Retry-After": "2"}
    )
    base = serve(chaos)
    with requests.Session() as s:
        response = s.get(f"{base}/api")
    assert response.status_code == 429
    assert response.reason == "Too Many Requests"
    assert response.headers["Retry-After"] == "2"
    assert response.headers["x-chaos"] == "injected-failure"
    assert json.loads(response.text)["status"] == 429


def test_an_unassigned_status_code_gets_a_generic_reason(serve: Any) -> None:
    base = serve(ChaosMiddleware(hello_app, enabled=True, failure_rate=1.0, status_code=599))
    with requests.Session() as s:
        response = s.get(base)
    assert (response.status_code, response.reason) == (599, "Injected Failure")


def test_injected_latency_delays_the_response(serve: Any) -> None:
    base = serve(ChaosMiddleware(hello_app, enabled=True, latency=0.2))
    with requests.Session() as s:
        started = time.perf_counter()
        assert s.get(base).status_code == 200
        assert time.perf_counter() - started >= 0.2


def test_a_requests_adapter_breaker_opens_under_injected_failures(serve: Any) -> None:
    base = serve(ChaosMiddleware(hello_app, enabled=True, failure_rate=1.0))
    registry = BreakerRegistry(CircuitBreakerConfig(volume_threshold=3))
    with requests.Session() as s:
        s.mount("http://", ResilientAdapter(registry=registry, retry=RetryConfig(max_attempts=1)))
        for _ in range(3):
            assert s.get(base).status_code == 503
        with pytest.raises(CircuitBreakerOpenError):
            s.get(base)


def test_the_same_seed_injects_the_same_failures() -> None:
    def run(seed: int) -> list[int]:
        chaos = ChaosMiddleware(hello_app, enabled=True, failure_rate=0.5, seed=seed)
        return [call(chaos) for _ in range(100)]

    assert run(21) == run(21)
    assert run(21) != run(22)


def test_path_filters_and_latency_with_an_injected_sleep() -> None:
    slept: list[float] = []
    chaos = ChaosMiddleware(
        hello_app,
        enabled=True,
        latency=0.05,
        paths=["/slow/*"],
        exclude_paths=["/slow/health"],
        sleep=slept.append,
    )
    assert [call(chaos, p) for p in ("/slow/a", "/slow/health", "/fast")] == [200, 200, 200]
    assert slept == [0.05]
    assert chaos.stats().delayed == 1
