"""OpenTelemetryCollector against the real opentelemetry-api and -sdk, read back in memory."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

import pytest

pytest.importorskip("opentelemetry.metrics")
pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, InMemoryMetricReader, Sum

from resilience import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    MetricsCollector,
    Retry,
    RetryConfig,
    RetryError,
)
from resilience.metrics import OpenTelemetryCollector
from resilience.testing import ManualClock

Points = dict[frozenset[tuple[str, Any]], float]


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader):
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def collector(meter_provider: MeterProvider) -> OpenTelemetryCollector:
    return OpenTelemetryCollector(meter_provider.get_meter("test"))


def collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    """Instrument name -> its exported metric (one collection, so gauges are observed now)."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def points(metric: Any) -> Points:
    return {frozenset(p.attributes.items()): p.value for p in metric.data.data_points}


def attrs(**kwargs: str) -> frozenset[tuple[str, str]]:
    """``attrs(breaker_name="x")`` is the attribute set ``{"breaker.name": "x"}``."""
    return frozenset((key.replace("_", ".", 1), value) for key, value in kwargs.items())


def state_points(reader: InMemoryMetricReader, breaker: str) -> dict[str, float]:
    gauge = collect(reader)["resilience.breaker.state"]
    found = {}
    for p in gauge.data.data_points:
        if p.attributes["breaker.name"] == breaker:
            found[p.attributes["breaker.state"]] = p.value
    return found


def ok() -> str:
    return "ok"


def fail(exc: Exception) -> None:
    raise exc


def make_payments(clock: ManualClock, metrics: object) -> CircuitBreaker:
    """Opens at 50 % errors over 4 outcomes; closes after 2 successful trials 10 s later."""
    return CircuitBreaker(
        name="payments",
        clock=clock,
        volume_threshold=4,
        error_threshold=0.5,
        sleep_window=10.0,
        half_open_requests=2,
        metrics=metrics,
    )


def run_full_cycle(cb: CircuitBreaker, clock: ManualClock) -> None:
    """closed -> open -> (1 rejection) -> half-open -> closed: 4 successes, 2 failures."""
    cb.call(ok)
    cb.call(ok)
    for exc in (ConnectionError("refused"), TimeoutError("slow")):
        with pytest.raises(type(exc)):
            cb.call(fail, exc)
    assert cb.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)
    clock.advance(10.0)
    cb.call(ok)
    assert cb.state is CircuitState.HALF_OPEN
    cb.call(ok)
    assert cb.state is CircuitState.CLOSED


def test_full_cycle_exports_counters_with_semantic_convention_attributes(reader, collector, clock):
    run_full_cycle(make_payments(clock, collector), clock)
    metrics = collect(reader)

    assert points(metrics["resilience.breaker.calls"]) == {
        attrs(breaker_name="payments", breaker_outcome="success"): 4,
        attrs(breaker_name="payments", breaker_outcome="failure"): 2,
        attrs(breaker_name="payments", breaker_outcome="rejected"): 1,
    }
    assert points(metrics["resilience.breaker.failures"]) == {
        attrs(breaker_name="payments", error_type="ConnectionError"): 1,
        attrs(breaker_name="payments", error_type="TimeoutError"): 1,
    }
    transitions = (("closed", "open"), ("open", "half-open"), ("half-open", "closed"))
    assert points(metrics["resilience.breaker.state_transitions"]) == {
        attrs(breaker_name="payments", breaker_previous_state=a, breaker_state=b): 1
        for a, b in transitions
    }
    assert points(metrics["resilience.breaker.state"]) == {
        attrs(breaker_name="payments", breaker_state="closed"): 1,
        attrs(breaker_name="payments", breaker_state="open"): 0,
        attrs(breaker_name="payments", breaker_state="half-open"): 0,
    }


def test_instruments_are_monotonic_counters_and_a_unit_gauge(reader, collector):
    cb = CircuitBreaker(name="x", volume_threshold=1, metrics=collector)
    with pytest.raises(ConnectionError):
        cb.call(fail, ConnectionError())  # a failure that opens the breaker
    metrics = collect(reader)
    for name, unit in (
        ("resilience.breaker.calls", "{call}"),
        ("resilience.breaker.failures", "{failure}"),
        ("resilience.breaker.state_transitions", "{transition}"),
    ):
        assert isinstance(metrics[name].data, Sum)
        assert metrics[name].data.is_monotonic
        assert metrics[name].unit == unit
    assert isinstance(metrics["resilience.breaker.state"].data, Gauge)
    assert metrics["resilience.breaker.state"].unit == "1"


def test_state_gauge_reports_one_for_the_current_state_at_each_collection(reader, collector, clock):
    cb = make_payments(clock, collector)
    cb.call(ok)
    assert state_points(reader, "payments") == {"closed": 1, "open": 0, "half-open": 0}
    cb.force_open()
    assert state_points(reader, "payments") == {"closed": 0, "open": 1, "half-open": 0}
    cb.clear_force()
    clock.advance(10.0)
    assert cb.can_execute()
    assert state_points(reader, "payments") == {"closed": 0, "open": 0, "half-open": 1}
    cb.record_success()
    cb.reset()
    assert state_points(reader, "payments") == {"closed": 1, "open": 0, "half-open": 0}


def test_first_event_of_a_breaker_creates_its_outcome_series_at_zero(reader, collector):
    cb = CircuitBreaker(name="search", metrics=collector)
    cb.force_open()
    assert points(collect(reader)["resilience.breaker.calls"]) == {
        attrs(breaker_name="search", breaker_outcome="success"): 0,
        attrs(breaker_name="search", breaker_outcome="failure"): 0,
        attrs(breaker_name="search", breaker_outcome="rejected"): 0,
    }
    assert state_points(reader, "search") == {"closed": 0, "open": 1, "half-open": 0}


def test_error_type_is_the_qualified_class_name_never_the_message(reader, collector):
    class Upstream:
        class Unavailable(Exception):
            pass

    cb = CircuitBreaker(name="payments", metrics=collector)
    for user in range(3):
        with pytest.raises(Upstream.Unavailable):
            cb.call(fail, Upstream.Unavailable(f"user {user} secret-token-{user}"))
    assert points(collect(reader)["resilience.breaker.failures"]) == {
        attrs(breaker_name="payments", error_type=Upstream.Unavailable.__qualname__): 3
    }


def test_retry_counts_attempts_and_exhaustion_per_operation(reader, collector):
    policy = Retry(
        RetryConfig(
            max_attempts=3, jitter=False, clock=ManualClock(), name="fetch-user", metrics=collector
        )
    )
    with pytest.raises(RetryError):
        policy.call(fail, ConnectionError("down"))
    metrics = collect(reader)
    operation = frozenset({("retry.operation.name", "fetch-user")})
    assert points(metrics["resilience.retry.attempts"]) == {operation: 2}
    assert points(metrics["resilience.retry.exhausted"]) == {operation: 1}


def test_two_collectors_on_one_meter_report_both_breakers_in_the_state_gauge(
    reader, meter_provider
):
    meter = meter_provider.get_meter("shared")
    a = CircuitBreaker(name="a", metrics=OpenTelemetryCollector(meter))
    b = CircuitBreaker(name="b", metrics=OpenTelemetryCollector(meter))
    a.call(ok)
    b.force_open()
    assert state_points(reader, "a") == {"closed": 1, "open": 0, "half-open": 0}
    assert state_points(reader, "b") == {"closed": 0, "open": 1, "half-open": 0}


def test_default_meter_records_without_an_sdk_provider_configured():
    collector = OpenTelemetryCollector()
    assert collector.meter is None
    cb = CircuitBreaker(name="no-sdk", metrics=collector)
    cb.call(ok)
    cb.force_open()
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)


def test_collector_implements_the_metrics_collector_protocol(collector):
    assert isinstance(collector, MetricsCollector)


def test_meter_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="meter"):
        OpenTelemetryCollector("resilience")  # type: ignore[arg-type]


def test_without_opentelemetry_building_the_collector_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    from resilience.metrics import OpenTelemetryCollector as Collector  # importing still works

    with pytest.raises(ImportError, match=r"pip install 'resilience-rs\[otel\]'") as info:
        Collector()
    assert info.value.name == "opentelemetry"


def test_counter_sums_equal_calls_made_by_eight_threads(reader, collector, clock):
    threads, per_thread = 8, 1_000
    cb = CircuitBreaker(name="hammered", clock=clock, error_threshold=0.9, metrics=collector)
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        for i in range(per_thread):
            if i % 4 == 3:
                with contextlib.suppress(TimeoutError):
                    cb.call(fail, TimeoutError())
            else:
                cb.call(ok)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    calls = threads * per_thread
    metrics = collect(reader)
    assert points(metrics["resilience.breaker.calls"]) == {
        attrs(breaker_name="hammered", breaker_outcome="success"): calls * 3 // 4,
        attrs(breaker_name="hammered", breaker_outcome="failure"): calls // 4,
        attrs(breaker_name="hammered", breaker_outcome="rejected"): 0,
    }
    assert points(metrics["resilience.breaker.failures"]) == {
        attrs(breaker_name="hammered", error_type="TimeoutError"): calls // 4
    }
