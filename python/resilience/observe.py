"""Observability plumbing: the metrics-collector protocol and the breaker's event notifier.

Log records go to the ``resilience`` logger (or the one configured) with their fields as record
attributes through ``extra``: ``breaker``, ``from_state``, ``to_state`` and ``error_rate`` for
transitions. A transition to OPEN logs at WARNING, every other transition at INFO. A listener,
collector or classifier that raises is logged at ERROR the first time per breaker and kind, then
at DEBUG, and never changes the outcome of a call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .breaker import CircuitState

__all__ = ["MetricsCollector", "NoopCollector", "StateListener"]

StateListener = Callable[[str, "CircuitState", "CircuitState"], object]
"""``listener(name, from_state, to_state)``: called once per transition, in order."""


@runtime_checkable
class MetricsCollector(Protocol):
    """What a breaker reports to. States are their string values ("closed", "open",
    "half-open"); ``error_type`` is the exception's qualified class name."""

    def record_success(self, name: str) -> None:
        """A call counted as a success."""

    def record_failure(self, name: str, error_type: str) -> None:
        """A call counted as a failure."""

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        """The breaker changed state."""

    def record_rejection(self, name: str) -> None:
        """A call was rejected without running."""


class NoopCollector:
    """A collector that records nothing (the same as configuring none, only slower)."""

    def record_success(self, name: str) -> None:
        """Ignored."""

    def record_failure(self, name: str, error_type: str) -> None:
        """Ignored."""

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        """Ignored."""

    def record_rejection(self, name: str) -> None:
        """Ignored."""


REQUIRED_COLLECTOR_METHODS = (
    "record_success",
    "record_failure",
    "record_state_change",
    "record_rejection",
)


# Guards every notifier's listener tuple and failed-once set. Both change rarely (a listener
# added, a callback's first failure), so one lock for all breakers costs nothing on any hot path
# and spares each breaker a lock of its own (programs keep thousands of breakers).
_LOCK = threading.Lock()


class Notifier:
    """Receives a breaker's transitions and callback failures from the core, outside its locks.

    The core delivers transitions one at a time and in order, so listeners see them in order.
    The listeners are an immutable tuple, replaced whole on a change: delivery iterates it without
    a lock or a copy, and an idle breaker holds no list. The failed-once set starts as the shared
    empty frozenset for the same reason.
    """

    __slots__ = ("_failed_once", "listeners", "logger", "metrics", "name")

    def __init__(self, name: str, logger: logging.Logger, metrics: MetricsCollector | None) -> None:
        self.name = name
        self.logger = logger
        self.metrics = metrics
        self.listeners: tuple[StateListener, ...] = ()
        self._failed_once: frozenset[str] = frozenset()

    def add_listener(self, listener: StateListener) -> None:
        """Adds ``listener`` after the ones already there."""
        with _LOCK:
            self.listeners = (*self.listeners, listener)

    def remove_listener(self, listener: StateListener) -> None:
        """Removes the first listener equal to ``listener``; ValueError if there is none."""
        with _LOCK:
            current = self.listeners
            for i, existing in enumerate(current):
                if existing == listener:
                    self.listeners = current[:i] + current[i + 1 :]
                    return
        raise ValueError(f"state listener {listener!r} was not added")

    def transition(
        self, from_state: CircuitState, to_state: CircuitState, error_rate: float
    ) -> None:
        """Logs the transition, then tells the collector and the listeners."""
        level = logging.WARNING if to_state.value == "open" else logging.INFO
        self.logger.log(
            level,
            "circuit breaker %r: %s -> %s (error rate %.3f)",
            self.name,
            from_state.value,
            to_state.value,
            error_rate,
            extra={
                "breaker": self.name,
                "from_state": from_state.value,
                "to_state": to_state.value,
                "error_rate": error_rate,
            },
        )
        if self.metrics is not None:
            try:
                self.metrics.record_state_change(self.name, from_state.value, to_state.value)
            except Exception as exc:
                self.callback_failed("metrics", exc)
        for listener in self.listeners:
            try:
                listener(self.name, from_state, to_state)
            except Exception as exc:
                self.callback_failed("listener", exc)

    def callback_failed(self, what: str, exc: BaseException) -> None:
        """Logs a swallowed error from a listener, collector or classifier."""
        with _LOCK:
            first = what not in self._failed_once
            if first:
                self._failed_once = self._failed_once | {what}
        self.logger.log(
            logging.ERROR if first else logging.DEBUG,
            "circuit breaker %r: %s raised %s; ignored%s",
            self.name,
            what,
            type(exc).__qualname__,
            "" if first else " (repeat)",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"breaker": self.name, "callback": what, "error_type": type(exc).__qualname__},
        )
