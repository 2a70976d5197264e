"""PrometheusCollector against the real prometheus_client, on a fresh registry per test."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

import pytest

pytest.importorskip("prometheus_client")

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from resilience import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    MetricsCollector,
    Retry,
    RetryConfig,
    RetryError,
)
from resilience.metrics import PrometheusCollector
from resilience.testing import ManualClock

STATES = ("closed", "open", "half-open")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def collector(registry: CollectorRegistry) -> PrometheusCollector:
    return PrometheusCollector(registry)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def state_gauge(registry: CollectorRegistry, breaker: str) -> dict[str, float | None]:
    return {s: sample(registry, "resilience_state", breaker=breaker, state=s) for s in STATES}


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


def open_breaker(cb: CircuitBreaker) -> None:
    """2 successes, then a ConnectionError and a TimeoutError: 50 % of 4, so it opens."""
    cb.call(ok)
    cb.call(ok)
    for exc in (ConnectionError("refused"), TimeoutError("slow")):
        with pytest.raises(type(exc)):
            cb.call(fail, exc)
    assert cb.state is CircuitState.OPEN


def test_full_cycle_counts_calls_failures_and_transitions_exactly(registry, collector, clock):
    cb = make_payments(clock, collector)
    open_breaker(cb)
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)
    clock.advance(10.0)
    cb.call(ok)
    assert cb.state is CircuitState.HALF_OPEN
    cb.call(ok)
    assert cb.state is CircuitState.CLOSED

    text = generate_latest(registry).decode()
    print("\n" + text)

    calls = "resilience_calls_total"
    assert sample(registry, calls, breaker="payments", outcome="success") == 4.0
    assert sample(registry, calls, breaker="payments", outcome="failure") == 2.0
    assert sample(registry, calls, breaker="payments", outcome="rejected") == 1.0
    failures = "resilience_failures_total"
    assert sample(registry, failures, breaker="payments", error_type="ConnectionError") == 1.0
    assert sample(registry, failures, breaker="payments", error_type="TimeoutError") == 1.0
    transitions = "resilience_state_transitions_total"
    for from_state, to_state in (
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ):
        labels = {"breaker": "payments", "from_state": from_state, "to_state": to_state}
        assert sample(registry, transitions, **labels) == 1.0
    assert (
        sample(registry, transitions, breaker="payments", from_state="half-open", to_state="open")
        is None
    )
    assert state_gauge(registry, "payments") == {"closed": 1.0, "open": 0.0, "half-open": 0.0}

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["resilience_calls"].type == "counter"
    assert families["resilience_failures"].type == "counter"
    assert families["resilience_state_transitions"].type == "counter"
    assert families["resilience_state"].type == "gauge"
    assert families["resilience_retry_attempts"].type == "counter"
    assert families["resilience_retry_exhausted"].type == "counter"
    parsed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["resilience_calls"].samples
        if s.name == "resilience_calls_total"
    }
    assert parsed == {
        ("resilience_calls_total", (("breaker", "payments"), ("outcome", "success"))): 4.0,
        ("resilience_calls_total", (("breaker", "payments"), ("outcome", "failure"))): 2.0,
        ("resilience_calls_total", (("breaker", "payments"), ("outcome", "rejected"))): 1.0,
    }


def test_state_gauge_is_one_for_the_current_state_after_every_transition(
    registry, collector, clock
):
    cb = make_payments(clock, collector)
    cb.call(ok)
    assert state_gauge(registry, "payments") == {"closed": 1.0, "open": 0.0, "half-open": 0.0}
    cb.call(ok)
    with pytest.raises(ConnectionError):
        cb.call(fail, ConnectionError())
    with pytest.raises(ConnectionError):
        cb.call(fail, ConnectionError())
    assert state_gauge(registry, "payments") == {"closed": 0.0, "open": 1.0, "half-open": 0.0}
    clock.advance(10.0)
    with pytest.raises(ConnectionError):
        cb.call(fail, ConnectionError())  # the first trial fails: 1 of 2 can no longer reach 0.6
    assert cb.state is CircuitState.OPEN
    assert state_gauge(registry, "payments") == {"closed": 0.0, "open": 1.0, "half-open": 0.0}
    assert (
        sample(
            registry,
            "resilience_state_transitions_total",
            breaker="payments",
            from_state="half-open",
            to_state="open",
        )
        == 1.0
    )
    cb.reset()
    assert state_gauge(registry, "payments") == {"closed": 1.0, "open": 0.0, "half-open": 0.0}


def test_breaker_first_heard_of_through_a_transition_starts_from_closed(registry, collector):
    cb = CircuitBreaker(name="inventory", metrics=collector)
    assert state_gauge(registry, "inventory") == {"closed": None, "open": None, "half-open": None}
    cb.force_open()
    assert state_gauge(registry, "inventory") == {"closed": 0.0, "open": 1.0, "half-open": 0.0}
    assert sample(registry, "resilience_calls_total", breaker="inventory", outcome="success") == 0


def test_first_event_creates_all_three_outcome_series_at_zero(registry, collector):
    cb = CircuitBreaker(name="search", metrics=collector)
    cb.call(ok)
    assert sample(registry, "resilience_calls_total", breaker="search", outcome="success") == 1
    assert sample(registry, "resilience_calls_total", breaker="search", outcome="failure") == 0
    assert sample(registry, "resilience_calls_total", breaker="search", outcome="rejected") == 0


def test_error_type_label_is_the_qualified_class_name_never_the_message(registry, collector):
    class Upstream:
        class Unavailable(Exception):
            pass

    cb = CircuitBreaker(name="payments", metrics=collector)
    for user in range(3):
        with pytest.raises(Upstream.Unavailable):
            cb.call(fail, Upstream.Unavailable(f"user {user} secret-token-{user}"))
    qualname = Upstream.Unavailable.__qualname__
    assert qualname.endswith("Upstream.Unavailable")
    assert (
        sample(registry, "resilience_failures_total", breaker="payments", error_type=qualname)
        == 3.0
    )
    text = generate_latest(registry).decode()
    assert "secret-token" not in text
    assert text.count('error_type="') == 2  # one _total and one _created sample


def test_exception_the_classifier_ignores_is_counted_as_nothing(registry, collector):
    cb = CircuitBreaker(name="payments", metrics=collector)
    cb.call(ok)
    with pytest.raises(ValueError):
        cb.call(fail, ValueError("bad input"))
    assert sample(registry, "resilience_calls_total", breaker="payments", outcome="success") == 1
    assert sample(registry, "resilience_calls_total", breaker="payments", outcome="failure") == 0
    assert (
        sample(registry, "resilience_failures_total", breaker="payments", error_type="ValueError")
        is None
    )


def test_manual_record_failure_without_an_exception_is_labelled_unknown(registry, collector):
    cb = CircuitBreaker(name="manual", metrics=collector)
    assert cb.can_execute()
    cb.record_failure()
    assert (
        sample(registry, "resilience_failures_total", breaker="manual", error_type="unknown") == 1
    )


def test_retry_counts_attempts_and_exhaustion_per_operation(registry, collector):
    clock = ManualClock()
    policy = Retry(
        RetryConfig(max_attempts=3, jitter=False, clock=clock, name="fetch-user", metrics=collector)
    )
    with pytest.raises(RetryError):
        policy.call(fail, ConnectionError("down"))
    attempts = [0]

    def flaky() -> str:
        attempts[0] += 1
        if attempts[0] < 2:
            raise ConnectionError("blip")
        return "ok"

    assert policy.call(flaky) == "ok"
    labels = {"operation": "fetch-user"}
    assert sample(registry, "resilience_retry_attempts_total", **labels) == 3.0  # 2 + 1
    assert sample(registry, "resilience_retry_exhausted_total", **labels) == 1.0


def test_one_collector_serves_a_breaker_and_the_retry_around_it(registry, collector, clock):
    cb = make_payments(clock, collector)
    policy = Retry(
        RetryConfig(
            max_attempts=2, jitter=False, clock=ManualClock(), name="charge", metrics=collector
        ),
        breaker=cb,
    )
    with pytest.raises(RetryError):
        policy.call(fail, TimeoutError())
    assert sample(registry, "resilience_calls_total", breaker="payments", outcome="failure") == 2
    assert sample(registry, "resilience_retry_attempts_total", operation="charge") == 1
    assert sample(registry, "resilience_retry_exhausted_total", operation="charge") == 1


def test_collectors_on_one_registry_share_their_metric_families(registry, clock):
    a = CircuitBreaker(name="a", metrics=PrometheusCollector(registry))
    b = CircuitBreaker(name="b", metrics=PrometheusCollector(registry))
    a.call(ok)
    b.call(ok)
    b.call(ok)
    assert sample(registry, "resilience_calls_total", breaker="a", outcome="success") == 1
    assert sample(registry, "resilience_calls_total", breaker="b", outcome="success") == 2


def test_namespace_prefixes_every_metric_name(registry):
    cb = CircuitBreaker(name="x", metrics=PrometheusCollector(registry, namespace="shop"))
    cb.force_open()
    with pytest.raises(CircuitBreakerOpenError):
        cb.call(ok)
    assert sample(registry, "shop_calls_total", breaker="x", outcome="rejected") == 1
    assert sample(registry, "shop_state", breaker="x", state="open") == 1
    assert sample(registry, "resilience_calls_total", breaker="x", outcome="rejected") is None


def test_default_registry_is_the_global_one():
    collector = PrometheusCollector(namespace="resilience_test_default_registry")
    assert collector.registry is prometheus_client.REGISTRY
    assert PrometheusCollector(namespace="resilience_test_default_registry").registry is (
        prometheus_client.REGISTRY
    )


def test_collector_implements_the_metrics_collector_protocol(collector):
    assert isinstance(collector, MetricsCollector)


def test_bad_registry_or_namespace_is_a_type_error(registry):
    with pytest.raises(TypeError, match="registry"):
        PrometheusCollector(registry="default")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="namespace"):
        PrometheusCollector(registry, namespace=None)  # type: ignore[arg-type]


def test_without_prometheus_client_building_the_collector_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    from resilience.metrics import PrometheusCollector as Collector  # importing still works

    with pytest.raises(ImportError, match=r"pip install 'resilience-rs\[prometheus\]'") as info:
        Collector()
    assert info.value.name == "prometheus_client"
    assert isinstance(info.value.__cause__, ImportError)


def test_counter_totals_equal_calls_made_by_eight_threads(registry, collector, clock):
    threads, per_thread = 8, 2_000
    # Never opens: every 4th call of a thread fails, far below the 90 % threshold.
    cb = CircuitBreaker(name="hammered", clock=clock, error_threshold=0.9, metrics=collector)
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        for i in range(per_thread):
            if i % 4 == 3:
                with contextlib.suppress(ConnectionError):
                    cb.call(fail, ConnectionError())
            else:
                cb.call(ok)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    calls = threads * per_thread
    success = sample(registry, "resilience_calls_total", breaker="hammered", outcome="success")
    failure = sample(registry, "resilience_calls_total", breaker="hammered", outcome="failure")
    assert success == calls * 3 // 4
    assert failure == calls // 4
    assert (
        sample(
            registry, "resilience_failures_total", breaker="hammered", error_type="ConnectionError"
        )
        == calls // 4
    )
    assert sample(registry, "resilience_calls_total", breaker="hammered", outcome="rejected") == 0
    assert cb.metrics()["total_executions"] == calls


def test_state_gauge_ends_true_when_threads_race_transitions_and_events(registry, collector, clock):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # more interleaving where there is a GIL
    try:
        _race(registry, clock, collector)
    finally:
        sys.setswitchinterval(interval)


def _race(registry, clock, collector):
    threads, per_thread = 8, 1_000
    cb = CircuitBreaker(name="racy", clock=clock, volume_threshold=4, metrics=collector)
    transitions: list[tuple[CircuitState, CircuitState]] = []
    cb.add_state_listener(lambda _name, a, b: transitions.append((a, b)))
    rejected = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            try:
                if i % 2:
                    cb.call(fail, ConnectionError())
                else:
                    cb.call(ok)
            except CircuitBreakerOpenError:
                rejected[index] += 1
            except ConnectionError:
                pass

    def switcher() -> None:
        start.wait()
        for i in range(400):
            if i % 2:
                cb.force_open()
            else:
                cb.reset()
            os.sched_yield()  # let the workers run between transitions

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    pool.append(threading.Thread(target=switcher))
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    gauge = state_gauge(registry, "racy")
    assert sorted(gauge.values()) == [0.0, 0.0, 1.0]
    assert gauge[cb.state.value] == 1.0
    assert sample(registry, "resilience_calls_total", breaker="racy", outcome="rejected") == sum(
        rejected
    )
    total_transitions = sum(
        s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        if f.name == "resilience_state_transitions"
        for s in f.samples
        if s.name == "resilience_state_transitions_total"
    )
    assert total_transitions == len(transitions)
