"""CompositeCollector, the no-op default, and importing resilience.metrics without its libraries."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

import resilience
from resilience import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    MetricsCollector,
    Retry,
    RetryConfig,
    RetryError,
)
from resilience.metrics import CompositeCollector, NoopCollector
from resilience.testing import ManualClock


class Recorder:
    """Remembers every event, retry events included."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _add(self, *event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def record_success(self, name: str) -> None:
        self._add("success", name)

    def record_failure(self, name: str, error_type: str) -> None:
        self._add("failure", name, error_type)

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        self._add("state_change", name, from_state, to_state)

    def record_rejection(self, name: str) -> None:
        self._add("rejection", name)

    def record_retry_attempt(self, operation: str) -> None:
        self._add("retry_attempt", operation)

    def record_retry_exhausted(self, operation: str) -> None:
        self._add("retry_exhausted", operation)


class BreakerOnly:
    """Implements the four breaker events and nothing for retries."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def record_success(self, name: str) -> None:
        self.events.append(("success", name))

    def record_failure(self, name: str, error_type: str) -> None:
        self.events.append(("failure", name, error_type))

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        self.events.append(("state_change", name, from_state, to_state))

    def record_rejection(self, name: str) -> None:
        self.events.append(("rejection", name))


class Broken(Recorder):
    """Raises on every event, retry events included."""

    def _add(self, *event: Any) -> None:
        raise RuntimeError(f"collector down: {event[0]}")


def ok() -> str:
    return "ok"


def fail(exc: Exception) -> None:
    raise exc


CYCLE = [
    ("success", "svc"),
    ("failure", "svc", "ConnectionError"),
    ("state_change", "svc", "closed", "open"),
    ("rejection", "svc"),
]


def drive(cb: CircuitBreaker) -> None:
    """One success, one failure that opens the breaker, one rejection."""
    cb.call(ok)
    with pytest.raises(ConnectionError):
        cb.call(fail, ConnectionError())
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)


def make_breaker(metrics: object, name: str = "svc") -> CircuitBreaker:
    return CircuitBreaker(
        name=name, clock=ManualClock(), volume_threshold=2, error_threshold=0.5, metrics=metrics
    )


def test_every_event_reaches_every_collector_in_order():
    first, second = Recorder(), Recorder()
    drive(make_breaker(CompositeCollector(first, second)))
    assert first.events == CYCLE
    assert second.events == CYCLE


def test_raising_collector_neither_starves_the_others_nor_changes_the_call(caplog):
    healthy = Recorder()
    cb = make_breaker(CompositeCollector(Broken(), healthy))
    with caplog.at_level(logging.DEBUG, logger="resilience"):
        assert cb.call(ok) == "ok"
        with pytest.raises(ConnectionError):
            cb.call(fail, ConnectionError())
        with pytest.raises(CircuitBreakerOpenError):
            cb.call(ok)
    assert healthy.events == CYCLE
    swallowed = [r for r in caplog.records if getattr(r, "callback", None) == "metrics"]
    assert len(swallowed) == 4  # one per event
    assert [r.levelno for r in swallowed] == [logging.ERROR] + [logging.DEBUG] * 3
    assert swallowed[0].breaker == "svc"
    assert swallowed[0].error_type == "RuntimeError"


@pytest.mark.thread_unsafe(reason="its log handler sits on a process-wide logger")
def test_raising_collector_is_logged_at_error_once_per_breaker():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("resilience.test_metrics_composite")
    handler = Keep(level=logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        broken = CompositeCollector(Broken())
        a = CircuitBreaker(name="a", metrics=broken, logger=logger)
        b = CircuitBreaker(name="b", metrics=broken, logger=logger)
        for cb in (a, b, a, b):
            assert cb.call(ok) == "ok"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    errors = [r.breaker for r in records if r.levelno == logging.ERROR]
    assert errors == ["a", "b"]


def test_retry_events_go_only_to_collectors_that_count_retries():
    counting, breaker_only = Recorder(), BreakerOnly()
    composite = CompositeCollector(breaker_only, counting)
    policy = Retry(
        RetryConfig(max_attempts=2, jitter=False, clock=ManualClock(), name="op", metrics=composite)
    )
    with pytest.raises(RetryError):
        policy.call(fail, ConnectionError())
    assert counting.events == [("retry_attempt", "op"), ("retry_exhausted", "op")]
    assert breaker_only.events == []


def test_raising_collector_in_a_retry_leaves_the_retry_outcome_unchanged():
    healthy = Recorder()
    policy = Retry(
        RetryConfig(
            max_attempts=2,
            jitter=False,
            clock=ManualClock(),
            name="op",
            metrics=CompositeCollector(Broken(), healthy),
        )
    )
    with pytest.raises(RetryError) as info:
        policy.call(fail, ConnectionError("down"))
    assert info.value.attempts == 2
    assert healthy.events == [("retry_attempt", "op"), ("retry_exhausted", "op")]


def test_object_that_is_not_a_collector_is_a_type_error_naming_what_it_lacks():
    with pytest.raises(TypeError, match="record_failure, record_state_change, record_rejection"):
        CompositeCollector(Recorder(), type("Half", (), {"record_success": print})())


def test_empty_composite_records_nothing_and_keeps_calls_working():
    cb = make_breaker(CompositeCollector())
    drive(cb)
    assert cb.metrics()["rejected"] == 1


def test_composite_and_noop_implement_the_protocol():
    assert isinstance(CompositeCollector(), MetricsCollector)
    assert isinstance(NoopCollector(), MetricsCollector)
    assert NoopCollector is resilience.NoopCollector
    drive(make_breaker(NoopCollector()))


def test_prometheus_and_opentelemetry_together_see_the_same_calls():
    prometheus_client = pytest.importorskip("prometheus_client")
    pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from resilience.metrics import OpenTelemetryCollector, PrometheusCollector

    registry = prometheus_client.CollectorRegistry()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    both = CompositeCollector(
        PrometheusCollector(registry), OpenTelemetryCollector(provider.get_meter("test"))
    )
    drive(make_breaker(both))

    def prom(outcome: str) -> float | None:
        return registry.get_sample_value(
            "resilience_calls_total", {"breaker": "svc", "outcome": outcome}
        )

    data = reader.get_metrics_data()
    assert data is not None
    calls = next(
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == "resilience.breaker.calls"
    )
    otel = {p.attributes["breaker.outcome"]: p.value for p in calls.data.data_points}
    assert otel == {"success": 1, "failure": 1, "rejected": 1}
    assert {o: prom(o) for o in otel} == {"success": 1.0, "failure": 1.0, "rejected": 1.0}
    provider.shutdown()


def test_resilience_imports_without_either_library_and_adapters_name_their_extra():
    script = textwrap.dedent(
        """
        import sys
        for blocked in ("prometheus_client", "opentelemetry", "opentelemetry.metrics"):
            sys.modules[blocked] = None
        import resilience
        import resilience.metrics
        from resilience.metrics import (
            CompositeCollector, NoopCollector, OpenTelemetryCollector, PrometheusCollector,
        )
        cb = resilience.CircuitBreaker(name="x", metrics=CompositeCollector(NoopCollector()))
        assert cb.call(lambda: 1) == 1
        for adapter in (PrometheusCollector, OpenTelemetryCollector):
            try:
                adapter()
            except ImportError as exc:
                print(exc)
            else:
                raise SystemExit(f"{adapter.__name__} built without its library")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "pip install 'resilience-rs[prometheus]'" in lines[0]
    assert "pip install 'resilience-rs[otel]'" in lines[1]
