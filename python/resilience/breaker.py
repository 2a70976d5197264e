"""The circuit breaker: configuration, the Python-facing class, and its ergonomics.

The state machine itself runs in Rust (``resilience._core.Breaker``). ``CircuitBreaker.call`` is
the core's own method, so a successful call crosses into Rust once and runs no Python frame of
ours; the decorator adds one plain Python frame around it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    ParamSpec,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

from . import _core
from ._validate import check_duration, check_int, check_name, check_number
from ._wrap import guarded
from .classify import Classifier, default_error_classifier
from .errors import CircuitBreakerOpenError
from .observe import REQUIRED_COLLECTOR_METHODS, MetricsCollector, Notifier, StateListener
from .testing import ManualClock

__all__ = ["CircuitBreaker", "CircuitBreakerConfig", "CircuitState"]

P = ParamSpec("P")
R = TypeVar("R")

_SUCCESS, _FAILURE = 0, 1
_OWNER = "CircuitBreakerConfig"


class CircuitState(str, Enum):
    """The three states; members compare equal to their string values."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"

    def __str__(self) -> str:
        return self.value


_STATES = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)


def _default_logger() -> logging.Logger:
    return logging.getLogger("resilience")


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreakerConfig:
    """Settings of one breaker, validated at construction.

    Durations are float seconds; a ``timedelta`` is accepted and stored as seconds. A wrong type
    raises ``TypeError``, a value out of range (or NaN, inf, an empty name) ``ValueError``; the
    message names the field and the value.
    """

    name: str = "default"
    error_threshold: float = 0.5
    volume_threshold: int = 10
    sleep_window: float = 30.0
    half_open_requests: int = 5
    success_threshold: float = 0.6
    window_size: float = 60.0
    bucket_count: int = 10
    failure_threshold: int = 0
    sleep_window_multiplier: float = 1.5
    max_sleep_window: float = 300.0
    error_classifier: Classifier = default_error_classifier
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(default_factory=_default_logger)
    metrics: MetricsCollector | None = None
    clock: ManualClock | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        check_name(_OWNER, "name", self.name)
        put(
            "error_threshold",
            check_number(_OWNER, "error_threshold", self.error_threshold, low=0.0, high=1.0),
        )
        put("volume_threshold", check_int(_OWNER, "volume_threshold", self.volume_threshold, low=0))
        put("sleep_window", check_duration(_OWNER, "sleep_window", self.sleep_window))
        put(
            "half_open_requests",
            check_int(
                _OWNER,
                "half_open_requests",
                self.half_open_requests,
                low=1,
                high=_core.MAX_HALF_OPEN_REQUESTS,
            ),
        )
        put(
            "success_threshold",
            check_number(_OWNER, "success_threshold", self.success_threshold, low=0.0, high=1.0),
        )
        put("window_size", check_duration(_OWNER, "window_size", self.window_size, positive=True))
        put(
            "bucket_count",
            check_int(_OWNER, "bucket_count", self.bucket_count, low=1, high=100_000),
        )
        if self.window_size * 1e9 < self.bucket_count:
            raise ValueError(
                f"{_OWNER}.window_size {self.window_size!r} is too short for "
                f"bucket_count {self.bucket_count!r} (each bucket needs at least 1ns)"
            )
        put(
            "failure_threshold",
            check_int(_OWNER, "failure_threshold", self.failure_threshold, low=0),
        )
        put(
            "sleep_window_multiplier",
            check_number(_OWNER, "sleep_window_multiplier", self.sleep_window_multiplier, low=1.0),
        )
        put("max_sleep_window", check_duration(_OWNER, "max_sleep_window", self.max_sleep_window))
        if self.max_sleep_window < self.sleep_window:
            raise ValueError(
                f"{_OWNER}.max_sleep_window ({self.max_sleep_window!r}) must be >= "
                f"sleep_window ({self.sleep_window!r})"
            )
        if not callable(self.error_classifier):
            raise TypeError(
                f"{_OWNER}.error_classifier must be callable, got {self.error_classifier!r}"
            )
        if not isinstance(self.logger, (logging.Logger, logging.LoggerAdapter)):
            raise TypeError(
                f"{_OWNER}.logger must be a logging.Logger or LoggerAdapter, got {self.logger!r}"
            )
        if self.metrics is not None:
            missing = [m for m in REQUIRED_COLLECTOR_METHODS if not hasattr(self.metrics, m)]
            if missing:
                raise TypeError(
                    f"{_OWNER}.metrics must implement MetricsCollector; {self.metrics!r} "
                    f"lacks {', '.join(missing)}"
                )
        if self.clock is not None and not isinstance(self.clock, ManualClock):
            raise TypeError(
                f"{_OWNER}.clock must be None or a resilience.testing.ManualClock, "
                f"got {self.clock!r}"
            )

    def replace(self, **changes: Any) -> CircuitBreakerConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# The `with cb:` blocks open in this thread or asyncio task, innermost first, as a linked list of
# (breaker, permit, enclosing blocks) nodes; contextvars keep concurrent tasks apart. Entering
# pushes a node and leaving pops it, each one ContextVar.set, whatever the nesting depth.
_Blocks: TypeAlias = "tuple[CircuitBreaker, Any, _Blocks] | None"
_open_blocks: ContextVar[_Blocks] = ContextVar("resilience_open_blocks", default=None)


def _push_block(breaker: CircuitBreaker, permit: Any) -> None:
    """Remembers ``permit`` for the block ``breaker`` just entered."""
    _open_blocks.set((breaker, permit, _open_blocks.get()))


def _pop_block(breaker: CircuitBreaker) -> Any:
    """The permit of the innermost open block of ``breaker``, which it forgets."""
    node = _open_blocks.get()
    if node is not None and node[0] is breaker:  # blocks leave in order: the usual case
        _open_blocks.set(node[2])
        return node[1]
    # Blocks of two breakers left out of order (possible with ExitStack): rebuild the list
    # without the innermost node of this breaker.
    skipped: list[tuple[CircuitBreaker, Any]] = []
    while node is not None and node[0] is not breaker:
        skipped.append((node[0], node[1]))
        node = node[2]
    if node is None:
        raise RuntimeError(
            f"circuit breaker {breaker.name!r}: __exit__ without a matching __enter__"
        )
    permit, rest = node[1], node[2]
    for owner, kept in reversed(skipped):
        rest = (owner, kept, rest)
    _open_blocks.set(rest)
    return permit


class CircuitBreaker:
    """A thread-safe circuit breaker.

    Build it from a config, from keyword arguments, or both (keywords override the config)::

        cb = CircuitBreaker(name="payments", error_threshold=0.3)
        result = cb.call(charge, order)

        @cb
        def fetch(url: str) -> bytes: ...

        with cb:
            do_work()
    """

    __slots__ = ("__weakref__", "_config", "_core", "_notifier", "call")

    # True while admission is this class's own (`_admit`, `_finish`, `call_async`): `with` and
    # async decorated functions then call the core directly, a Python frame or coroutine fewer.
    _native_hooks: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._native_hooks = (
            cls._admit is CircuitBreaker._admit
            and cls._finish is CircuitBreaker._finish
            and cls.call_async is CircuitBreaker.call_async
        )

    if TYPE_CHECKING:

        def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
            """Runs ``fn(*args, **kwargs)`` if the breaker admits it, else raises
            CircuitBreakerOpenError. The outcome is recorded; exceptions pass through unchanged."""
            ...

    def __init__(self, config: CircuitBreakerConfig | None = None, /, **overrides: Any) -> None:
        if config is None:
            config = CircuitBreakerConfig(**overrides)
        elif not isinstance(config, CircuitBreakerConfig):
            raise TypeError(
                f"CircuitBreaker(config) must be a CircuitBreakerConfig, got {config!r}"
            )
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        logger = config.logger
        base_logger = logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        notifier = Notifier(config.name, base_logger, config.metrics)
        core = _core.Breaker(
            name=config.name,
            error_threshold=config.error_threshold,
            volume_threshold=config.volume_threshold,
            sleep_window=config.sleep_window,
            half_open_requests=config.half_open_requests,
            success_threshold=config.success_threshold,
            window_size=config.window_size,
            bucket_count=config.bucket_count,
            failure_threshold=config.failure_threshold,
            sleep_window_multiplier=config.sleep_window_multiplier,
            max_sleep_window=config.max_sleep_window,
            clock=config.clock,
            classifier=config.error_classifier,
            notifier=notifier,
            metrics=config.metrics,
            open_error=CircuitBreakerOpenError,
            states=_STATES,
        )
        self._config = config
        self._notifier = notifier
        self._core = core
        # The core's own method, stored per instance: `cb.call(f)` runs no Python frame of ours.
        self.call = core.fast_call  # type: ignore[method-assign]

    # ----- identity -----

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self._config.name

    @property
    def config(self) -> CircuitBreakerConfig:
        """The validated settings."""
        return self._config

    @property
    def state(self) -> CircuitState:
        """The current state. Reading it never moves OPEN to HALF_OPEN."""
        state: CircuitState = self._core.state
        return state

    def metrics(self) -> dict[str, Any]:
        """Window counts, lifetime counters and the state, as the contract lists them."""
        return self._core.metrics()

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state.value!r})"

    # ----- running calls -----

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Awaits ``fn(*args, **kwargs)`` through the breaker (the async twin of ``call``)."""
        core = self._core
        permit = core.acquire()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            core.complete(permit, exc)
            raise
        core.complete(permit)
        return result

    def call_with_timeout(
        self, seconds: float | timedelta, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Runs ``fn`` in a helper thread and waits at most ``seconds``.

        On time-out raises the builtin ``TimeoutError``, counted as one failure; the call keeps
        running in its daemon thread and its late outcome is ignored.
        """
        limit = check_duration("call_with_timeout", "seconds", seconds, positive=True)
        permit = self._admit()
        future: concurrent.futures.Future[R] = concurrent.futures.Future()

        def run() -> None:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._finish(permit, exc)
                future.set_exception(exc)
            else:
                self._finish(permit, None)
                future.set_result(result)

        threading.Thread(target=run, name=f"resilience-timeout-{self.name}", daemon=True).start()
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            if future.done():
                return future.result()
            error = TimeoutError(
                f"circuit breaker {self.name!r}: call did not finish within {limit}s"
            )
            self._finish_as(permit, _FAILURE, error)
            raise error from None

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorates ``fn`` so every call goes through the breaker; keeps its metadata and its
        sync or async nature."""
        if not callable(fn):
            raise TypeError(f"CircuitBreaker can only decorate a callable, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            if not self._native_hooks:
                call_async = self.call_async

                @functools.wraps(fn)
                async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                    return await call_async(fn, *args, **kwargs)

                return async_wrapper
            # call_async's body, inlined: one coroutine per call instead of two.
            acquire, complete = self._core.acquire, self._core.complete

            @functools.wraps(fn)
            async def async_guarded(*args: P.args, **kwargs: P.kwargs) -> Any:
                permit = acquire()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    complete(permit, exc)
                    raise
                complete(permit)
                return result

            return async_guarded
        return cast(Callable[P, Any], guarded(self._runner(), fn))

    def __enter__(self) -> CircuitBreaker:
        # The core directly unless a subclass replaced the admission hooks (one frame fewer).
        permit = self._core.acquire() if self._native_hooks else self._admit()
        # `_push_block`, inlined: `with` is a hot path and the call would cost a frame.
        _open_blocks.set((self, permit, _open_blocks.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        # `_pop_block`'s usual case inlined (a frame fewer); out-of-order exits go to it.
        node = _open_blocks.get()
        if node is not None and node[0] is self:
            _open_blocks.set(node[2])
            permit = node[1]
        else:
            permit = _pop_block(self)
        if self._native_hooks:
            self._core.complete(permit, exc)
        else:
            self._finish(permit, exc)
        return False

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    # ----- admission hooks: a subclass that admits differently (the fleet-wide breaker of
    # resilience.redis) replaces these, and `with`, `call_with_timeout` and the decorator follow.

    def _admit(self) -> Any:
        """Admits one call or raises CircuitBreakerOpenError; returns its permit."""
        return self._core.acquire()

    def _finish(self, permit: Any, exc: BaseException | None) -> None:
        """Ends an admitted call: ``exc`` None is a success, else it is classified."""
        self._core.complete(permit, exc)

    def _finish_as(self, permit: Any, outcome: int, exc: BaseException | None) -> None:
        """Ends an admitted call with an outcome decided by the caller."""
        self._core.complete_as(permit, outcome, exc)

    def _runner(self) -> Any:
        """What a decorated function runs through: the core (natively), or a callable
        ``runner(fn, *args, **kwargs)``."""
        return self._core

    # ----- manual use -----

    def can_execute(self) -> bool:
        """Admission without running anything: True means go ahead, and then report the outcome
        with ``record_success()`` or ``record_failure()``. Moves OPEN to HALF_OPEN after the
        sleep window and takes a trial slot in HALF_OPEN, like ``call``."""
        return self._core.can_execute()

    def record_success(self) -> None:
        """Reports a success for a call admitted by ``can_execute()``."""
        self._core.record(_SUCCESS)

    def record_failure(self, exc: BaseException | None = None) -> None:
        """Reports a failure for a call admitted by ``can_execute()``; it always counts, and
        ``exc`` only names the error type for metrics."""
        self._core.record(_FAILURE, exc)

    # ----- control -----

    def force_open(self) -> None:
        """Rejects every call until ``clear_force()`` or ``reset()``."""
        self._core.force_open()

    def force_closed(self) -> None:
        """Admits every call and judges no outcome until ``clear_force()`` or ``reset()``."""
        self._core.force_closed()

    def clear_force(self) -> None:
        """Lets the breaker follow its rules again from its current state."""
        self._core.clear_force()

    def reset(self) -> None:
        """Back to a fresh CLOSED breaker (window, trials and grown sleep window cleared)."""
        self._core.reset()

    def add_state_listener(self, listener: StateListener) -> None:
        """Calls ``listener(name, from_state, to_state)`` on every transition, in order, outside
        any internal lock. Exceptions it raises are logged and swallowed."""
        if not callable(listener):
            raise TypeError(f"state listener must be callable, got {listener!r}")
        self._notifier.add_listener(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        """Stops calling ``listener``; ValueError if it was not added."""
        self._notifier.remove_listener(listener)
