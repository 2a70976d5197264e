"""Circuit breakers, retries with backoff and sliding-window metrics, on a lock-free Rust core.

Everything public is importable from here; each name lives in the module of its concern.
"""

import logging as _logging

from ._core import __version__
from .breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from .classify import Classifier, classifier, default_error_classifier
from .errors import (
    CircuitBreakerOpenError,
    ConfigurationError,
    NotFoundError,
    ResilienceError,
    RetryError,
    StateError,
)
from .observe import MetricsCollector, NoopCollector, StateListener
from .registry import BreakerRegistry
from .retry import (
    AttemptInfo,
    Retry,
    RetryConfig,
    RetryStatistics,
    retry,
    retry_with_circuit_breaker,
)
from .window import SlidingWindow

# A library never decides where logs go: without configuration, records are dropped quietly.
_logging.getLogger("resilience").addHandler(_logging.NullHandler())

__all__ = [
    "AttemptInfo",
    "BreakerRegistry",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenError",
    "CircuitState",
    "Classifier",
    "ConfigurationError",
    "MetricsCollector",
    "NoopCollector",
    "NotFoundError",
    "ResilienceError",
    "Retry",
    "RetryConfig",
    "RetryError",
    "RetryStatistics",
    "SlidingWindow",
    "StateError",
    "StateListener",
    "__version__",
    "classifier",
    "default_error_classifier",
    "retry",
    "retry_with_circuit_breaker",
]
