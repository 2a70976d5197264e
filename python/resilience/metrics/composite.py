"""A collector that hands every event to several collectors."""

from __future__ import annotations

from collections.abc import Callable

from ..observe import REQUIRED_COLLECTOR_METHODS, MetricsCollector

__all__ = ["CompositeCollector"]

_Record = Callable[..., object]


def _fan_out(records: tuple[_Record, ...], *args: str) -> None:
    """Calls every record; then re-raises the first exception, if any, for the caller to log."""
    error: Exception | None = None
    for record in records:
        try:
            record(*args)
        except Exception as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error


class CompositeCollector:
    """Sends each event to every collector given, in order, for example to Prometheus and
    OpenTelemetry at once::

        metrics = CompositeCollector(PrometheusCollector(), OpenTelemetryCollector())

    A collector that raises does not stop the others from hearing of the event; once all have
    been called, the first exception is re-raised, and the breaker (or retry) that reported the
    event logs and swallows it. Retry events go to the collectors that have
    ``record_retry_attempt`` / ``record_retry_exhausted``.

    Raises:
        TypeError: an argument does not implement ``MetricsCollector``.
    """

    __slots__ = (
        "_failure",
        "_rejection",
        "_retry_attempt",
        "_retry_exhausted",
        "_state_change",
        "_success",
        "collectors",
    )

    def __init__(self, *collectors: MetricsCollector) -> None:
        for collector in collectors:
            missing = [m for m in REQUIRED_COLLECTOR_METHODS if not hasattr(collector, m)]
            if missing:
                raise TypeError(
                    f"CompositeCollector arguments must implement MetricsCollector; "
                    f"{collector!r} lacks {', '.join(missing)}"
                )
        self.collectors: tuple[MetricsCollector, ...] = collectors
        # Bound methods looked up once, as the breaker does.
        self._success = tuple(c.record_success for c in collectors)
        self._failure = tuple(c.record_failure for c in collectors)
        self._state_change = tuple(c.record_state_change for c in collectors)
        self._rejection = tuple(c.record_rejection for c in collectors)
        self._retry_attempt = _optional(collectors, "record_retry_attempt")
        self._retry_exhausted = _optional(collectors, "record_retry_exhausted")

    def __repr__(self) -> str:
        return f"CompositeCollector{self.collectors!r}"

    def record_success(self, name: str) -> None:
        """Passes the event on to every collector."""
        _fan_out(self._success, name)

    def record_failure(self, name: str, error_type: str) -> None:
        """Passes the event on to every collector."""
        _fan_out(self._failure, name, error_type)

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        """Passes the event on to every collector."""
        _fan_out(self._state_change, name, from_state, to_state)

    def record_rejection(self, name: str) -> None:
        """Passes the event on to every collector."""
        _fan_out(self._rejection, name)

    def record_retry_attempt(self, operation: str) -> None:
        """Passes the event on to every collector that counts retries."""
        _fan_out(self._retry_attempt, operation)

    def record_retry_exhausted(self, operation: str) -> None:
        """Passes the event on to every collector that counts retries."""
        _fan_out(self._retry_exhausted, operation)


def _optional(collectors: tuple[MetricsCollector, ...], method: str) -> tuple[_Record, ...]:
    found = (getattr(c, method, None) for c in collectors)
    return tuple(m for m in found if callable(m))
