"""A ``MetricsCollector`` that reports through the OpenTelemetry metrics API.

Instruments, with attribute names in OpenTelemetry semantic-convention style:

- ``resilience.breaker.calls`` (counter, ``{call}``): ``breaker.name``, ``breaker.outcome``
- ``resilience.breaker.failures`` (counter, ``{failure}``): ``breaker.name``, ``error.type``
- ``resilience.breaker.state_transitions`` (counter, ``{transition}``): ``breaker.name``,
  ``breaker.previous_state``, ``breaker.state`` (the state entered)
- ``resilience.breaker.state`` (observable gauge, ``1``): ``breaker.name``, ``breaker.state``
- ``resilience.retry.attempts`` (counter, ``{attempt}``): ``retry.operation.name``
- ``resilience.retry.exhausted`` (counter, ``{call}``): ``retry.operation.name``

``breaker.outcome`` is ``success``, ``failure`` or ``rejected``; ``breaker.state`` and
``breaker.previous_state`` are ``closed``, ``open`` or ``half-open``; ``error.type`` is the
exception's qualified class name. The state gauge is observable: at each collection it reports 1
for the state each breaker is in and 0 for the other two (the pattern of the ``hw.status``
semantic convention).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._extras import missing_extra

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["OpenTelemetryCollector"]

_STATES = ("closed", "open", "half-open")

Attributes = dict[str, str]


class _Instruments:
    """The instruments of one meter, shared by all collectors that use it.

    An OpenTelemetry SDK hands back the existing instrument when one is created twice, and then
    ignores the second observable-gauge callback; sharing keeps every breaker in the one gauge.
    Attribute dicts are built once per breaker (and error type) and cached in plain dicts, whose
    lookups and stores are atomic; first sightings are made under ``lock``.
    """

    def __init__(self, meter: Meter) -> None:
        from opentelemetry.metrics import Observation

        self._observation = Observation
        self.calls = meter.create_counter(
            "resilience.breaker.calls",
            unit="{call}",
            description="Calls through a circuit breaker, by outcome.",
        )
        self.failures = meter.create_counter(
            "resilience.breaker.failures",
            unit="{failure}",
            description="Calls counted as failures, by the exception's qualified class name.",
        )
        self.transitions = meter.create_counter(
            "resilience.breaker.state_transitions",
            unit="{transition}",
            description="Circuit breaker state changes.",
        )
        self.retry_attempts = meter.create_counter(
            "resilience.retry.attempts",
            unit="{attempt}",
            description="Retries scheduled after a failed attempt.",
        )
        self.retry_exhausted = meter.create_counter(
            "resilience.retry.exhausted",
            unit="{call}",
            description="Retried operations that gave up.",
        )
        self.lock = threading.Lock()
        # breaker name -> attributes of its success, failure and rejected calls
        self.breakers: dict[str, tuple[Attributes, Attributes, Attributes]] = {}
        self.failure_attrs: dict[tuple[str, str], tuple[Attributes, Attributes]] = {}
        self.operations: dict[str, Attributes] = {}
        # breaker name -> current state; read by the gauge callback under the lock
        self.states: dict[str, str] = {}
        self.state_attrs: dict[str, tuple[tuple[str, Attributes], ...]] = {}
        meter.create_observable_gauge(
            "resilience.breaker.state",
            callbacks=[self.observe_states],
            unit="1",
            description="1 for the state a circuit breaker is in, 0 for the other states.",
        )

    def breaker(self, name: str) -> tuple[Attributes, Attributes, Attributes]:
        """The call attributes of breaker ``name``; the first time, it starts CLOSED."""
        with self.lock:
            found = self.breakers.get(name)
            if found is not None:
                return found
            self.states[name] = "closed"
            self.state_attrs[name] = tuple(
                (state, {"breaker.name": name, "breaker.state": state}) for state in _STATES
            )
            found = (
                {"breaker.name": name, "breaker.outcome": "success"},
                {"breaker.name": name, "breaker.outcome": "failure"},
                {"breaker.name": name, "breaker.outcome": "rejected"},
            )
            self.breakers[name] = found  # published last: readers never see it half-built
        # Outside the lock (the SDK runs our gauge callback under its own locks): every outcome
        # gets a series from the start.
        for attrs in found:
            self.calls.add(0, attrs)
        return found

    def failure(self, name: str, error_type: str) -> tuple[Attributes, Attributes]:
        pair = (self.breaker(name)[1], {"breaker.name": name, "error.type": error_type})
        self.failure_attrs[(name, error_type)] = pair
        return pair

    def transition(self, name: str, from_state: str, to_state: str) -> None:
        self.transitions.add(
            1,
            {"breaker.name": name, "breaker.previous_state": from_state, "breaker.state": to_state},
        )
        self.breaker(name)
        with self.lock:
            self.states[name] = to_state

    def operation(self, operation: str) -> Attributes:
        attrs = {"retry.operation.name": operation}
        with self.lock:
            first = self.operations.setdefault(operation, attrs) is attrs
        if first:
            self.retry_attempts.add(0, attrs)
            self.retry_exhausted.add(0, attrs)
        return attrs

    def observe_states(self, options: CallbackOptions) -> Iterable[Observation]:
        """The gauge callback: 1 for each breaker's current state, 0 for the others."""
        with self.lock:
            current = [(self.state_attrs[name], state) for name, state in self.states.items()]
        observation = self._observation
        return [
            observation(1 if state == now else 0, attrs)
            for per_state, now in current
            for state, attrs in per_state
        ]


_by_meter: weakref.WeakKeyDictionary[Meter, _Instruments] = weakref.WeakKeyDictionary()
_default: list[_Instruments] = []
_shared_lock = threading.Lock()


def _instruments(meter: Meter | None) -> _Instruments:
    with _shared_lock:
        if meter is None:
            # A proxy meter is new on every get_meter() call, yet all of them end up at the same
            # SDK meter once a provider is set: one set of instruments for the default.
            if not _default:
                from opentelemetry import metrics

                from .._core import __version__

                _default.append(_Instruments(metrics.get_meter("resilience", __version__)))
            return _default[0]
        found = _by_meter.get(meter)
        if found is None:
            found = _by_meter[meter] = _Instruments(meter)
        return found


class OpenTelemetryCollector:
    """Reports breaker and retry events as OpenTelemetry metrics.

    Pass it as ``CircuitBreakerConfig(metrics=...)`` and, for retry counters, as
    ``RetryConfig(metrics=...)``. It needs only ``opentelemetry-api``; the application decides
    where the metrics go by configuring a ``MeterProvider`` (before or after the collector is
    built). Collectors built for the same meter share its instruments, so writing
    ``OpenTelemetryCollector()`` once per breaker is fine; breaker names must be unique among the
    breakers that report to one meter.

    A breaker appears the first time it reports an event: its three outcomes at 0 and its state
    as CLOSED in the gauge.

    Args:
        meter: the meter to create the instruments on; None is
            ``opentelemetry.metrics.get_meter("resilience", resilience.__version__)`` from the
            global meter provider.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (``pip install
            'resilience-rs[otel]'``). Importing this class works without it; building one does not.
    """

    __slots__ = ("_breakers", "_failures", "_instruments", "_operations", "meter")

    def __init__(self, meter: Meter | None = None) -> None:
        try:
            import opentelemetry.metrics
        except ImportError as exc:
            raise missing_extra("OpenTelemetryCollector", "opentelemetry", "otel") from exc
        if meter is not None and not isinstance(meter, opentelemetry.metrics.Meter):
            raise TypeError(
                f"OpenTelemetryCollector.meter must be an opentelemetry Meter, got {meter!r}"
            )
        self.meter = meter
        instruments = _instruments(meter)
        self._instruments = instruments
        self._breakers = instruments.breakers
        self._failures = instruments.failure_attrs
        self._operations = instruments.operations

    def __repr__(self) -> str:
        return f"OpenTelemetryCollector(meter={self.meter!r})"

    # Hot path: one dict lookup and one counter add per event.

    def record_success(self, name: str) -> None:
        """Counts ``breaker.outcome="success"``."""
        attrs = self._breakers.get(name)
        if attrs is None:
            attrs = self._instruments.breaker(name)
        self._instruments.calls.add(1, attrs[0])

    def record_failure(self, name: str, error_type: str) -> None:
        """Counts ``breaker.outcome="failure"`` and the failure under its ``error.type``."""
        pair = self._failures.get((name, error_type))
        if pair is None:
            pair = self._instruments.failure(name, error_type)
        instruments = self._instruments
        instruments.calls.add(1, pair[0])
        instruments.failures.add(1, pair[1])

    def record_rejection(self, name: str) -> None:
        """Counts ``breaker.outcome="rejected"``."""
        attrs = self._breakers.get(name)
        if attrs is None:
            attrs = self._instruments.breaker(name)
        self._instruments.calls.add(1, attrs[2])

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        """Counts the transition and moves the breaker's state in the gauge."""
        self._instruments.transition(name, from_state, to_state)

    def record_retry_attempt(self, operation: str) -> None:
        """Counts a retry of ``operation`` (called by ``Retry`` before each sleep)."""
        attrs = self._operations.get(operation)
        if attrs is None:
            attrs = self._instruments.operation(operation)
        self._instruments.retry_attempts.add(1, attrs)

    def record_retry_exhausted(self, operation: str) -> None:
        """Counts an ``operation`` whose retries ran out."""
        attrs = self._operations.get(operation)
        if attrs is None:
            attrs = self._instruments.operation(operation)
        self._instruments.retry_exhausted.add(1, attrs)
