"""Every exception the package raises on its own account, under one base class."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .breaker import CircuitState

__all__ = [
    "CircuitBreakerOpenError",
    "ConfigurationError",
    "NotFoundError",
    "ResilienceError",
    "RetryError",
    "StateError",
]


class ResilienceError(Exception):
    """Base class of every exception raised by ``resilience`` itself."""


class ConfigurationError(ResilienceError, ValueError):
    """A configuration that cannot work as a whole (a single bad field raises ValueError)."""


class NotFoundError(ResilienceError, LookupError):
    """A named object (for example a breaker in a registry) does not exist."""


class StateError(ResilienceError, RuntimeError):
    """An operation is not valid in the object's current state."""


class CircuitBreakerOpenError(ResilienceError):
    """The breaker rejected a call without running it.

    Attributes:
        name: the breaker's name.
        state: the state that rejected the call (OPEN, or HALF_OPEN with no trial slot free).
        retry_after: seconds until a trial call may be admitted; None while the breaker is forced
            open (no automatic transition will happen).
    """

    # The attributes live in ``args`` only: the core builds a rejection with
    # ``BaseException.__new__`` alone (no Python ``__init__`` frame and no instance dict on the
    # rejection path), so ``__init__`` must not store anything else.

    def __init__(self, name: str, state: CircuitState, retry_after: float | None) -> None:
        super().__init__(name, state, retry_after)

    @property
    def name(self) -> str:
        """The breaker's name."""
        return cast(str, self.args[0])

    @property
    def state(self) -> CircuitState:
        """The state that rejected the call."""
        return cast("CircuitState", self.args[1])

    @property
    def retry_after(self) -> float | None:
        """Seconds until a trial call may be admitted; None while forced open."""
        return cast("float | None", self.args[2])

    def __str__(self) -> str:
        # Formatted only when read: rejections are a hot path.
        if self.retry_after is None:
            detail = "forced open"
        else:
            detail = f"retry after {self.retry_after:.3f}s"
        return f"circuit breaker {self.name!r} is {self.state.value}: call rejected ({detail})"


class RetryError(ResilienceError):
    """Retrying stopped without a successful result.

    Attributes:
        attempts: how many attempts ran.
        last_exception: the exception of the last attempt, or None when the last attempt returned
            a result that ``retry_on_result`` rejected.
        last_result: that rejected result (None when the last attempt raised).
        slept: total seconds slept between attempts.

    ``__cause__`` is ``last_exception``.
    """

    attempts: int
    last_exception: BaseException | None
    last_result: Any
    slept: float

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        last_exception: BaseException | None = None,
        last_result: Any = None,
        slept: float = 0.0,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_exception = last_exception
        self.last_result = last_result
        self.slept = slept
        self.__cause__ = last_exception
