"""Metrics adapters: report breaker and retry events to Prometheus or OpenTelemetry.

One line turns them on::

    from resilience.metrics import PrometheusCollector
    cb = CircuitBreaker(name="payments", metrics=PrometheusCollector())

Every adapter imports its library only when it is built, so this package (and ``resilience``)
imports without them; building ``PrometheusCollector`` without ``prometheus_client`` or
``OpenTelemetryCollector`` without ``opentelemetry-api`` raises an ``ImportError`` naming the
extra to install (``pip install 'resilience-rs[prometheus]'`` / ``'resilience-rs[otel]'``).
With no collector configured (``metrics=None``, the default) a call costs nothing for metrics;
with one, each event is one Python call into it.
"""

from ..observe import MetricsCollector, NoopCollector
from .composite import CompositeCollector
from .otel import OpenTelemetryCollector
from .prometheus import PrometheusCollector

__all__ = [
    "CompositeCollector",
    "MetricsCollector",
    "NoopCollector",
    "OpenTelemetryCollector",
    "PrometheusCollector",
]
