"""A ``MetricsCollector`` that exports to Prometheus through ``prometheus_client``.

Metric families, with ``namespace="resilience"`` (the default):

- ``resilience_calls_total{breaker, outcome}`` (counter)
- ``resilience_failures_total{breaker, error_type}`` (counter)
- ``resilience_state_transitions_total{breaker, from_state, to_state}`` (counter)
- ``resilience_state{breaker, state}`` (gauge: 1 for the current state, 0 for the others)
- ``resilience_retry_attempts_total{operation}`` (counter)
- ``resilience_retry_exhausted_total{operation}`` (counter)

``outcome`` is ``success``, ``failure`` or ``rejected``; ``state`` and the transition labels are
``closed``, ``open`` or ``half-open``; ``error_type`` is the exception's qualified class name
(never its message, so the number of series stays bounded).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, NamedTuple

from ._extras import missing_extra

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["PrometheusCollector"]

_STATES = ("closed", "open", "half-open")


class _Breaker(NamedTuple):
    """The labelled children of one breaker that every event needs."""

    success: Counter
    failure: Counter
    rejected: Counter
    states: tuple[Gauge, Gauge, Gauge]  # in the order of _STATES


class _Operation(NamedTuple):
    attempts: Counter
    exhausted: Counter


class _Families:
    """The metric families of one (registry, namespace), shared by all collectors that use it.

    Labelled children are cached in plain dicts so an event costs one dict lookup and one
    ``inc()``, not a ``.labels()`` call (which takes a lock and builds a tuple; about 3x slower).
    A dict lookup and store are each atomic, also on free-threaded Python; first sightings are
    created under ``lock`` and published last, so a reader sees a child only once it is complete.
    """

    def __init__(self, registry: CollectorRegistry, namespace: str) -> None:
        from prometheus_client import Counter, Gauge

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=namespace, registry=registry)

        self.calls = counter(
            "calls", "Calls through a circuit breaker, by outcome.", ("breaker", "outcome")
        )
        self.failures = counter(
            "failures",
            "Calls counted as failures, by the exception's qualified class name.",
            ("breaker", "error_type"),
        )
        self.transitions = counter(
            "state_transitions",
            "Circuit breaker state changes.",
            ("breaker", "from_state", "to_state"),
        )
        self.state = Gauge(
            "state",
            "1 for the state a circuit breaker is in, 0 for the other states.",
            ("breaker", "state"),
            namespace=namespace,
            registry=registry,
        )
        self.retry_attempts = counter(
            "retry_attempts", "Retries scheduled after a failed attempt.", ("operation",)
        )
        self.retry_exhausted = counter(
            "retry_exhausted", "Retried operations that gave up.", ("operation",)
        )
        self.lock = threading.Lock()
        self.breakers: dict[str, _Breaker] = {}
        self.failure_children: dict[tuple[str, str], tuple[Counter, Counter]] = {}
        self.operations: dict[str, _Operation] = {}

    def breaker(self, name: str) -> _Breaker:
        """The children of breaker ``name``; the first time, its gauge starts at closed=1."""
        with self.lock:
            found = self.breakers.get(name)
            if found is not None:
                return found
            states = tuple(self.state.labels(name, state) for state in _STATES)
            for state, gauge in zip(_STATES, states, strict=True):
                gauge.set(1 if state == "closed" else 0)
            found = _Breaker(
                success=self.calls.labels(name, "success"),
                failure=self.calls.labels(name, "failure"),
                rejected=self.calls.labels(name, "rejected"),
                states=(states[0], states[1], states[2]),
            )
            self.breakers[name] = found  # published last: readers never see it half-built
            return found

    def failure(self, name: str, error_type: str) -> tuple[Counter, Counter]:
        pair = (self.breaker(name).failure, self.failures.labels(name, error_type))
        self.failure_children[(name, error_type)] = pair
        return pair

    def transition(self, name: str, from_state: str, to_state: str) -> None:
        self.transitions.labels(name, from_state, to_state).inc()
        gauges = self.breaker(name).states
        # breaker() has finished the first-sighting set-up (under the lock) before it returns,
        # and the core delivers one breaker's transitions one at a time, in order. The lock keeps
        # the two loops together anyway, should two breakers share a name. The new state goes to
        # 1 before the others go to 0, so a scrape in between never sees a breaker in no state.
        with self.lock:
            for state, gauge in zip(_STATES, gauges, strict=True):
                if state == to_state:
                    gauge.set(1)
            for state, gauge in zip(_STATES, gauges, strict=True):
                if state != to_state:
                    gauge.set(0)

    def operation(self, operation: str) -> _Operation:
        with self.lock:
            found = self.operations.get(operation)
            if found is None:
                found = _Operation(
                    self.retry_attempts.labels(operation), self.retry_exhausted.labels(operation)
                )
                self.operations[operation] = found
            return found


# One _Families per registry and namespace: prometheus_client refuses to register a name twice,
# and a collector per breaker is the natural way to write it.
_shared: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Families]] = (
    weakref.WeakKeyDictionary()
)
_shared_lock = threading.Lock()


def _families(registry: CollectorRegistry, namespace: str) -> _Families:
    with _shared_lock:
        by_namespace = _shared.setdefault(registry, {})
        families = by_namespace.get(namespace)
        if families is None:
            families = by_namespace[namespace] = _Families(registry, namespace)
        return families


class PrometheusCollector:
    """Reports breaker and retry events as Prometheus metrics.

    Pass it as ``CircuitBreakerConfig(metrics=...)`` and, for retry counters, as
    ``RetryConfig(metrics=...)``. Collectors built for the same registry and namespace share
    their metric families, so writing ``PrometheusCollector()`` once per breaker is fine; breaker
    names must be unique among the breakers that report to one registry.

    A breaker's series appear the first time it reports an event: then ``…_calls_total`` gets its
    three outcomes at 0 and ``…_state`` starts at closed=1. Every transition sets the new state
    to 1 and the other two to 0.

    Args:
        registry: where the metrics are registered; None is ``prometheus_client.REGISTRY``.
        namespace: prefix of every metric name (``resilience`` gives ``resilience_calls_total``).

    Raises:
        ImportError: ``prometheus_client`` is not installed (``pip install
            'resilience-rs[prometheus]'``). Importing this class works without it; building one
            does not.
        ValueError: the registry already holds a different metric with one of these names.
    """

    __slots__ = ("_breakers", "_failures", "_families", "_operations", "namespace", "registry")

    def __init__(
        self, registry: CollectorRegistry | None = None, namespace: str = "resilience"
    ) -> None:
        try:
            import prometheus_client
        except ImportError as exc:
            raise missing_extra("PrometheusCollector", "prometheus_client", "prometheus") from exc
        if not isinstance(namespace, str):
            raise TypeError(f"PrometheusCollector.namespace must be a str, got {namespace!r}")
        if registry is None:
            registry = prometheus_client.REGISTRY
        elif not isinstance(registry, prometheus_client.CollectorRegistry):
            raise TypeError(
                f"PrometheusCollector.registry must be a CollectorRegistry, got {registry!r}"
            )
        self.registry = registry
        self.namespace = namespace
        families = _families(registry, namespace)
        self._families = families
        self._breakers = families.breakers
        self._failures = families.failure_children
        self._operations = families.operations

    def __repr__(self) -> str:
        return f"PrometheusCollector(registry={self.registry!r}, namespace={self.namespace!r})"

    # Hot path: one dict lookup and one increment per event.

    def record_success(self, name: str) -> None:
        """Counts ``outcome="success"``."""
        children = self._breakers.get(name)
        if children is None:
            children = self._families.breaker(name)
        children.success.inc()

    def record_failure(self, name: str, error_type: str) -> None:
        """Counts ``outcome="failure"`` and the failure under its ``error_type``."""
        pair = self._failures.get((name, error_type))
        if pair is None:
            pair = self._families.failure(name, error_type)
        pair[0].inc()
        pair[1].inc()

    def record_rejection(self, name: str) -> None:
        """Counts ``outcome="rejected"``."""
        children = self._breakers.get(name)
        if children is None:
            children = self._families.breaker(name)
        children.rejected.inc()

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        """Counts the transition and moves the state gauge."""
        self._families.transition(name, from_state, to_state)

    def record_retry_attempt(self, operation: str) -> None:
        """Counts a retry of ``operation`` (called by ``Retry`` before each sleep)."""
        children = self._operations.get(operation)
        if children is None:
            children = self._families.operation(operation)
        children.attempts.inc()

    def record_retry_exhausted(self, operation: str) -> None:
        """Counts an ``operation`` whose retries ran out."""
        children = self._operations.get(operation)
        if children is None:
            children = self._families.operation(operation)
        children.exhausted.inc()
