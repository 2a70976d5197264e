"""Retrying calls with backoff, a time budget and circuit-breaker awareness.

``Retry(config)`` runs a callable, and runs it again after a delay while it fails with an error
``config.retry_on`` accepts (or returns a value ``config.retry_on_result`` rejects), until it
succeeds, ``max_attempts`` have run, or the ``max_elapsed`` budget cannot fit the next delay.
Then it raises ``RetryError``. Delays come from ``resilience.backoff``.

Cost when the first attempt succeeds: ``Retry.call`` and decorated functions run the first
attempt in the Rust core (``_core.RetryCore``): no Python frame of ours, one atomic counter
increment, no lock, no clock read (unless ``max_elapsed`` is set: the budget counts from the first
attempt's start) and no per-call object. Everything else (per-call state, the delay iterator,
clock reads, locked statistics, every decision) is Python, and starts after a failure or a result
that ``retry_on_result`` must judge.

Predicates (``retry_on``, ``retry_on_result``) are user code on the decision path: an exception
they raise propagates. Hooks and collectors are not: their exceptions are logged and swallowed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeAlias, TypeVar, cast, overload

from . import _core
from ._validate import check_duration, check_int, check_name, check_number
from ._wrap import guarded
from .backoff import JITTER_STRATEGIES, Backoff, JitterStrategy, RandomSource, backoff_for
from .classify import default_error_classifier
from .errors import CircuitBreakerOpenError, ConfigurationError, RetryError

__all__ = [
    "AttemptInfo",
    "Clock",
    "Retry",
    "RetryConfig",
    "RetryError",
    "RetryStatistics",
    "retry",
    "retry_with_circuit_breaker",
]

P = ParamSpec("P")
T = TypeVar("T")

_OWNER = "RetryConfig"
_LOGGER = logging.getLogger("resilience")

RetryOn: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""An exception type, a tuple of them, or a predicate: what ``retry_on`` accepts."""


class Clock(Protocol):
    """A time source: ``now()`` in seconds, monotonic (``resilience.testing.ManualClock`` fits)."""

    def now(self) -> float:
        """The current time in seconds."""
        ...


class _Breaker(Protocol):
    """What ``Retry`` needs from a circuit breaker (``resilience.CircuitBreaker`` fits)."""

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T: ...

    def call_async(
        self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any
    ) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """What ``on_retry`` is told before each sleep.

    Attributes:
        operation: the operation name (``RetryConfig.name`` or the function's ``__qualname__``).
        attempt: the 1-based number of the attempt that just failed.
        delay: seconds about to be slept before the next attempt.
        exception: the exception that attempt raised, or None when its result was rejected.
        result: the rejected result (None when the attempt raised).
        elapsed: seconds since the first attempt started when ``max_elapsed`` is set, else since
            the first attempt failed (the success path reads no clock).
    """

    operation: str
    attempt: int
    delay: float
    exception: BaseException | None
    result: Any
    elapsed: float


@dataclass(frozen=True, slots=True)
class RetryStatistics:
    """Lifetime counters of one ``Retry`` object (a snapshot).

    Attributes:
        calls: calls started (``call``, ``call_async`` and decorated functions).
        attempts: attempts started, first attempts included.
        retries: sleeps started between attempts.
        exhausted: calls that ended in ``RetryError``.
        total_slept: seconds slept in completed sleeps.

    The counts are exact once no call is in flight; while calls run, a snapshot may count a call
    whose retries are not counted yet.
    """

    calls: int
    attempts: int
    retries: int
    exhausted: int
    total_slept: float


def _check_callable(field: str, value: Any, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(
            f"{_OWNER}.{field} must be callable{' or None' if optional else ''}, "
            f"got {value!r} ({type(value).__name__})"
        )


def _check_retry_on(value: Any) -> None:
    if isinstance(value, type):
        if not issubclass(value, BaseException):
            raise TypeError(f"{_OWNER}.retry_on must be an exception type, got {value!r}")
        return
    if isinstance(value, tuple):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(
                    f"{_OWNER}.retry_on must hold exception types only, got {item!r} in {value!r}"
                )
        return
    if not callable(value):
        raise TypeError(
            f"{_OWNER}.retry_on must be an exception type, a tuple of them or a predicate, "
            f"got {value!r} ({type(value).__name__})"
        )


def _check_has_methods(field: str, value: Any, *names: str) -> None:
    if value is None:
        return
    for name in names:
        if not callable(getattr(value, name, None)):
            raise TypeError(
                f"{_OWNER}.{field} must have a .{name}() method or be None, "
                f"got {value!r} ({type(value).__name__})"
            )


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class RetryConfig:
    """How to retry. Keyword-only, validated at construction, immutable.

    Attributes:
        max_attempts: total attempts, ``>= 1``.
        initial_delay: seconds before the 2nd attempt (``>= 0``; a timedelta is accepted).
        max_delay: cap on any delay (``>= initial_delay``).
        backoff_factor: delay n is ``initial_delay * backoff_factor ** (n - 1)``, ``>= 1``.
        jitter: False for the exact schedule; True or ``"full"``, ``"equal"``, ``"decorrelated"``
            (see ``resilience.backoff``).
        max_elapsed: total time budget in seconds (``> 0``) or None for none. A sleep starts only
            if it ends before the budget runs out; no attempt starts after it.
        retry_on: exception type, tuple of types, or ``(exc) -> bool``; other exceptions are
            raised unchanged at once. Default: ``default_error_classifier``.
        retry_on_result: ``(result) -> bool``; True asks for another attempt.
        on_retry: called with an ``AttemptInfo`` before each sleep; its exceptions are logged at
            ERROR and swallowed.
        name: operation name for logs, hooks and metrics; None uses the function's qualname.
        logger: where retries (DEBUG), exhaustion (WARNING) and swallowed hook or collector
            errors (ERROR) go, each record with ``extra`` fields ``operation``, ``attempt``,
            ``delay`` and ``error_type``. A LoggerAdapter is unwrapped to its logger, as the
            breaker does, so those fields are never replaced by the adapter's.
        metrics: a collector; its ``record_retry_attempt(operation)`` (each retry) and
            ``record_retry_exhausted(operation)`` are called when it has them.
        random: random source for jitter (``.uniform``, ``.random``); None = a shared one.
        sleep: sync sleep function; None = ``time.sleep``, or ``clock.sleep`` when ``clock`` is a
            manual clock (has ``.advance``).
        async_sleep: async sleep function; None = ``asyncio.sleep``, or advance the manual clock
            and yield once (``await asyncio.sleep(0)``).
        clock: object with ``.now()`` measuring ``max_elapsed``; None = ``time.monotonic``.
    """

    max_attempts: int = 3
    initial_delay: float = 0.1
    max_delay: float = 5.0
    backoff_factor: float = 2.0
    jitter: bool | JitterStrategy = True
    max_elapsed: float | None = None
    retry_on: RetryOn = default_error_classifier
    retry_on_result: Callable[[Any], bool] | None = None
    on_retry: Callable[[AttemptInfo], object] | None = None
    name: str | None = None
    logger: logging.Logger | logging.LoggerAdapter[Any] = _LOGGER
    metrics: object | None = None
    random: RandomSource | None = None
    sleep: Callable[[float], object] | None = None
    async_sleep: Callable[[float], Awaitable[object]] | None = None
    clock: Clock | None = None

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        initial_delay: float | timedelta = 0.1,
        max_delay: float | timedelta = 5.0,
        backoff_factor: float = 2.0,
        jitter: bool | JitterStrategy = True,
        max_elapsed: float | timedelta | None = None,
        retry_on: RetryOn = default_error_classifier,
        retry_on_result: Callable[[Any], bool] | None = None,
        on_retry: Callable[[AttemptInfo], object] | None = None,
        name: str | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] = _LOGGER,
        metrics: object | None = None,
        random: RandomSource | None = None,
        sleep: Callable[[float], object] | None = None,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        initial = check_duration(_OWNER, "initial_delay", initial_delay)
        cap = check_duration(_OWNER, "max_delay", max_delay)
        if cap < initial:
            raise ConfigurationError(
                f"{_OWNER}.max_delay ({cap!r}) must be >= {_OWNER}.initial_delay ({initial!r})"
            )
        if isinstance(jitter, str):
            if jitter not in JITTER_STRATEGIES:
                raise ValueError(
                    f"{_OWNER}.jitter must be a bool or one of {JITTER_STRATEGIES}, got {jitter!r}"
                )
        elif not isinstance(jitter, bool):
            raise TypeError(
                f"{_OWNER}.jitter must be a bool or a strategy name, "
                f"got {jitter!r} ({type(jitter).__name__})"
            )
        _check_retry_on(retry_on)
        _check_callable("retry_on_result", retry_on_result)
        _check_callable("on_retry", on_retry)
        if name is not None:
            check_name(_OWNER, "name", name)
        if not isinstance(logger, (logging.Logger, logging.LoggerAdapter)):
            raise TypeError(
                f"{_OWNER}.logger must be a logging.Logger or LoggerAdapter, "
                f"got {logger!r} ({type(logger).__name__})"
            )
        _check_has_methods("random", random, "uniform", "random")
        _check_callable("sleep", sleep)
        _check_callable("async_sleep", async_sleep)
        _check_has_methods("clock", clock, "now")
        values: dict[str, Any] = {
            "max_attempts": check_int(_OWNER, "max_attempts", max_attempts, low=1),
            "initial_delay": initial,
            "max_delay": cap,
            "backoff_factor": check_number(_OWNER, "backoff_factor", backoff_factor, low=1.0),
            "jitter": jitter,
            "max_elapsed": (
                None
                if max_elapsed is None
                else check_duration(_OWNER, "max_elapsed", max_elapsed, positive=True)
            ),
            "retry_on": retry_on,
            "retry_on_result": retry_on_result,
            "on_retry": on_retry,
            "name": name,
            "logger": logger,
            "metrics": metrics,
            "random": random,
            "sleep": sleep,
            "async_sleep": async_sleep,
            "clock": clock,
        }
        for field, value in values.items():
            object.__setattr__(self, field, value)

    def replace(self, **changes: Any) -> RetryConfig:
        """A copy with some fields changed, validated like a new config."""
        return dataclasses.replace(self, **changes)


class _Run:
    """State of one call that has failed at least once (never shared between calls)."""

    __slots__ = ("attempt", "delays", "exc", "fn", "result", "slept", "start")

    def __init__(self, fn: Callable[..., Any], start: float | None) -> None:
        self.fn = fn
        self.start = start
        self.attempt = 1
        self.slept = 0.0
        self.delays: Iterator[float] | None = None
        self.exc: BaseException | None = None
        self.result: Any = None

    def forget(self) -> None:
        """Drops the last outcome: an exception's traceback would hold this run in a cycle."""
        self.exc = None
        self.result = None


def _qualname(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None)
    return name if isinstance(name, str) else repr(fn)


class Retry:
    """Runs callables with retries as configured; also a decorator (sync and async).

    One ``Retry`` can serve many threads and tasks at once: it holds no per-call state.

    Args:
        config: the retry settings; None uses ``RetryConfig()``.
        breaker: optional circuit breaker; every attempt then runs through ``breaker.call``
            (``call_async``). A ``CircuitBreakerOpenError`` (from the breaker or from inside
            ``fn``, whatever ``retry_on`` says) is retried only when its ``retry_after`` fits:
            the next attempt then waits ``max(delay, retry_after)``. When it does not fit the
            remaining attempts or budget, or ``retry_after`` is None (forced open), that error is
            raised unchanged at once.
    """

    __slots__ = (
        "_async_sleep",
        "_backoff",
        "_breaker",
        "_budget",
        "_collector_failed",
        "_config",
        "_exhausted",
        "_extra_attempts",
        "_fast",
        "_lock",
        "_logger",
        "_max_attempts",
        "_name",
        "_now",
        "_on_retry",
        "_record_attempt",
        "_record_exhausted",
        "_retries",
        "_retry_on_result",
        "_retryable",
        "_rng",
        "_sleep",
        "_slept",
        "call",
    )

    if TYPE_CHECKING:

        def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
            """Runs ``fn(*args, **kwargs)`` with retries and returns its result.

            Raises:
                RetryError: attempts or the time budget ran out.
                CircuitBreakerOpenError: a breaker rejection whose ``retry_after`` does not fit.
                Exception: an exception ``retry_on`` does not accept, unchanged.
            """
            ...

    def __init__(self, config: RetryConfig | None = None, breaker: _Breaker | None = None) -> None:
        if config is None:
            config = RetryConfig()
        elif not isinstance(config, RetryConfig):
            raise TypeError(f"config must be a RetryConfig, got {config!r}")
        if breaker is not None and not (
            callable(getattr(breaker, "call", None))
            and callable(getattr(breaker, "call_async", None))
        ):
            raise TypeError(f"breaker must have .call() and .call_async(), got {breaker!r}")
        self._config = config
        self._breaker = breaker
        self._max_attempts = config.max_attempts
        self._budget = config.max_elapsed
        self._retry_on_result = config.retry_on_result
        self._on_retry = config.on_retry
        self._name = config.name
        logger = config.logger
        self._logger: logging.Logger = (
            logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        )
        self._rng = config.random
        self._backoff: Backoff = backoff_for(
            config.jitter, config.initial_delay, config.backoff_factor, config.max_delay
        )

        retry_on = config.retry_on
        if isinstance(retry_on, (type, tuple)):
            types = retry_on

            def retryable(exc: BaseException) -> bool:
                return isinstance(exc, types)

            self._retryable: Callable[[BaseException], bool] = retryable
        else:
            self._retryable = retry_on

        clock = config.clock
        self._now: Callable[[], float] = time.monotonic if clock is None else clock.now
        manual_sleep: Callable[[float], object] | None = None
        if clock is not None and callable(getattr(clock, "advance", None)):
            # A manual clock: sleeping advances it (ManualClock.sleep, else .advance).
            clock_sleep = getattr(clock, "sleep", None)
            manual_sleep = clock_sleep if callable(clock_sleep) else cast(Any, clock).advance
        if config.sleep is not None:
            self._sleep: Callable[[float], object] = config.sleep
        elif manual_sleep is not None:
            self._sleep = manual_sleep
        else:
            self._sleep = time.sleep
        if config.async_sleep is not None:
            self._async_sleep: Callable[[float], Awaitable[object]] = config.async_sleep
        elif manual_sleep is not None:
            self._async_sleep = _manual_async_sleep(manual_sleep)
        else:
            self._async_sleep = asyncio.sleep

        metrics = config.metrics
        self._record_attempt: Callable[[str], object] | None = None
        self._record_exhausted: Callable[[str], object] | None = None
        if metrics is not None:
            record = getattr(metrics, "record_retry_attempt", None)
            self._record_attempt = record if callable(record) else None
            record = getattr(metrics, "record_retry_exhausted", None)
            self._record_exhausted = record if callable(record) else None

        # Calls are counted by the core's atomic counter; everything else is counted under
        # _lock, only after a failure.
        self._lock = threading.Lock()
        self._collector_failed: set[tuple[str, str]] = set()
        self._extra_attempts = 0
        self._retries = 0
        self._exhausted = 0
        self._slept = 0.0
        # The first attempt runs in the core; it comes back to `_first_failure`, `_after_result`
        # and `_retry_sync` when there is something to decide.
        self._fast = _core.RetryCore(
            self,
            breaker_call=None if breaker is None else breaker.call,
            now=None if self._budget is None else self._now,
            judges_results=self._retry_on_result is not None,
        )
        self.call = self._fast.fast_call  # type: ignore[method-assign]

    @property
    def config(self) -> RetryConfig:
        """The configuration."""
        return self._config

    @property
    def breaker(self) -> _Breaker | None:
        """The circuit breaker every attempt goes through, if any."""
        return self._breaker

    @property
    def statistics(self) -> RetryStatistics:
        """A snapshot of the lifetime counters (thread-safe)."""
        with self._lock:
            calls = self._fast.calls
            return RetryStatistics(
                calls=calls,
                attempts=calls + self._extra_attempts,
                retries=self._retries,
                exhausted=self._exhausted,
                total_slept=self._slept,
            )

    def __repr__(self) -> str:
        return f"Retry({self._config!r}, breaker={self._breaker!r})"

    # ------------------------------------------------------------------ running

    def _first_failure(
        self, fn: Callable[..., Any], start: float | None, exc: Exception
    ) -> tuple[_Run, float] | None:
        """The core's first attempt raised ``exc`` (being handled): the run and the delay before
        the next attempt, or None to re-raise ``exc`` unchanged. Raises RetryError."""
        run = _Run(fn, start)
        planned = self._plan_exception(run, exc)
        return None if planned is None else (run, planned)

    def _after_result(
        self,
        fn: Callable[..., T],
        start: float | None,
        result: T,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
    ) -> T:
        """The core's first attempt returned ``result``: accept it or retry."""
        retry_on_result = self._retry_on_result
        if retry_on_result is None or not retry_on_result(result):
            return result
        run = _Run(fn, start)
        delay = self._schedule(run, None, result)
        return self._retry_sync(run, delay, fn, args, kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Awaits ``fn(*args, **kwargs)`` with retries and returns its result.

        Cancellation (``asyncio.CancelledError``), also while sleeping, propagates at once.

        Raises:
            RetryError: attempts or the time budget ran out.
            CircuitBreakerOpenError: a breaker rejection whose ``retry_after`` does not fit.
            Exception: an exception ``retry_on`` does not accept, unchanged.
        """
        self._fast.count_call()
        start = None if self._budget is None else self._now()
        try:
            if self._breaker is None:
                result = await fn(*args, **kwargs)
            else:
                result = await self._breaker.call_async(fn, *args, **kwargs)
        except Exception as exc:
            run = _Run(fn, start)
            planned = self._plan_exception(run, exc)
            if planned is None:
                raise
            delay = planned
        else:
            if self._retry_on_result is None or not self._retry_on_result(result):
                return result
            run = _Run(fn, start)
            delay = self._schedule(run, None, result)
        return await self._retry_async(run, delay, fn, args, kwargs)

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorates ``fn``; a coroutine function gets an ``async def`` wrapper.

        The wrapper keeps ``__name__``, ``__doc__``, ``__wrapped__`` (so ``inspect.signature``)
        and, for coroutine functions, ``inspect.iscoroutinefunction``.
        """
        if not callable(fn):
            raise TypeError(f"Retry can only decorate a callable, got {fn!r}")
        # A coroutine function, or an object whose class has an ``async def __call__``.
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
            call_async = self.call_async
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await call_async(afn, *args, **kwargs)

            return cast(Callable[P, T], async_wrapper)

        return cast(Callable[P, T], guarded(self._fast, fn))

    def _retry_sync(
        self,
        run: _Run,
        delay: float,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
    ) -> T:
        if kwargs is None:
            kwargs = {}
        sleep = self._sleep
        breaker = self._breaker
        retry_on_result = self._retry_on_result
        try:
            while True:
                sleep(delay)
                self._resume(run, delay)
                try:
                    if breaker is None:
                        result = fn(*args, **kwargs)
                    else:
                        result = breaker.call(fn, *args, **kwargs)
                except Exception as exc:
                    planned = self._plan_exception(run, exc)
                    if planned is None:
                        raise
                    delay = planned
                else:
                    if retry_on_result is None or not retry_on_result(result):
                        return result
                    delay = self._schedule(run, None, result)
        finally:
            run.forget()

    async def _retry_async(
        self,
        run: _Run,
        delay: float,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        sleep = self._async_sleep
        breaker = self._breaker
        retry_on_result = self._retry_on_result
        try:
            while True:
                await sleep(delay)
                self._resume(run, delay)
                try:
                    if breaker is None:
                        result = await fn(*args, **kwargs)
                    else:
                        result = await breaker.call_async(fn, *args, **kwargs)
                except Exception as exc:
                    planned = self._plan_exception(run, exc)
                    if planned is None:
                        raise
                    delay = planned
                else:
                    if retry_on_result is None or not retry_on_result(result):
                        return result
                    delay = self._schedule(run, None, result)
        finally:
            run.forget()

    # ------------------------------------------------------------------ decisions

    def _plan_exception(self, run: _Run, exc: Exception) -> float | None:
        """The delay before the next attempt, None to re-raise ``exc``; raises RetryError."""
        if isinstance(exc, CircuitBreakerOpenError):
            return self._plan_breaker_wait(run, exc)
        if not self._retryable(exc):
            return None
        return self._schedule(run, exc, None)

    def _plan_breaker_wait(self, run: _Run, exc: CircuitBreakerOpenError) -> float | None:
        retry_after = exc.retry_after
        if retry_after is None or run.attempt >= self._max_attempts:
            return None
        delay = self._next_delay(run)
        wait = max(delay, retry_after)
        elapsed = self._elapsed(run)
        if self._budget is not None and elapsed + wait >= self._budget:
            return None
        run.exc = exc
        run.result = None
        self._announce(run, wait, elapsed)
        return wait

    def _schedule(self, run: _Run, exc: BaseException | None, result: Any) -> float:
        """The delay before the next attempt; raises RetryError when there is none."""
        run.exc = exc
        run.result = result
        if run.attempt >= self._max_attempts:
            raise self._give_up(run, "no attempts left")
        delay = self._next_delay(run)
        elapsed = self._elapsed(run)
        if self._budget is not None and elapsed + delay >= self._budget:
            raise self._give_up(
                run, f"a {delay:.3f}s delay would not end within max_elapsed={self._budget:g}s"
            )
        self._announce(run, delay, elapsed)
        return delay

    def _next_delay(self, run: _Run) -> float:
        if run.delays is None:
            run.delays = self._backoff.delays(self._rng)
        return next(run.delays)

    def _elapsed(self, run: _Run) -> float:
        now = self._now()
        if run.start is None:
            run.start = now
            return 0.0
        return now - run.start

    def _operation(self, run: _Run) -> str:
        return self._name if self._name is not None else _qualname(run.fn)

    def _announce(self, run: _Run, delay: float, elapsed: float) -> None:
        """Counts, logs and reports the retry about to sleep ``delay``."""
        with self._lock:
            self._retries += 1
        operation = self._operation(run)
        exc = run.exc
        logger = self._logger
        if logger.isEnabledFor(logging.DEBUG):
            outcome = type(exc).__qualname__ if exc is not None else f"result {run.result!r}"
            logger.debug(
                "%s: attempt %d failed (%s), retrying in %.3fs",
                operation,
                run.attempt,
                outcome,
                delay,
                extra=_extra(operation, run.attempt, delay, exc),
            )
        if self._record_attempt is not None:
            try:
                self._record_attempt(operation)
            except Exception:
                self._collector_raised(
                    operation, "record_retry_attempt", _extra(operation, run.attempt, delay, exc)
                )
        if self._on_retry is not None:
            info = AttemptInfo(operation, run.attempt, delay, exc, run.result, elapsed)
            try:
                self._on_retry(info)
            except Exception:
                logger.exception(
                    "%s: on_retry hook raised; ignored",
                    operation,
                    extra=_extra(operation, run.attempt, delay, exc),
                )

    def _resume(self, run: _Run, delay: float) -> None:
        """Accounts for a finished sleep; raises RetryError when the budget is spent."""
        run.slept += delay
        if (
            self._budget is not None
            and run.start is not None
            and self._now() - run.start >= self._budget
        ):
            with self._lock:
                self._slept += delay
            raise self._give_up(run, f"max_elapsed={self._budget:g}s spent")
        run.attempt += 1
        with self._lock:
            self._slept += delay
            self._extra_attempts += 1

    def _collector_raised(self, operation: str, method: str, extra: dict[str, Any]) -> None:
        """Logs a failing metrics collector: at ERROR the first time per operation and method,
        then at DEBUG, so a broken collector cannot flood the logs (the contract's rule 7)."""
        with self._lock:
            first = (operation, method) not in self._collector_failed
            self._collector_failed.add((operation, method))
        self._logger.log(
            logging.ERROR if first else logging.DEBUG,
            "%s: metrics collector failed in %s%s",
            operation,
            method,
            "" if first else " (repeat)",
            exc_info=True,
            extra=extra,
        )

    def _give_up(self, run: _Run, reason: str) -> RetryError:
        """Counts, logs and reports exhaustion; returns the RetryError to raise."""
        with self._lock:
            self._exhausted += 1
        operation = self._operation(run)
        exc = run.exc
        last = f"last error: {exc!r}" if exc is not None else f"last result: {run.result!r}"
        message = (
            f"{operation}: gave up after {run.attempt} attempt(s) "
            f"and {run.slept:.3f}s asleep ({reason}); {last}"
        )
        self._logger.warning(
            "%s: retries exhausted after %d attempt(s) (%s)",
            operation,
            run.attempt,
            reason,
            extra=_extra(operation, run.attempt, None, exc),
        )
        if self._record_exhausted is not None:
            try:
                self._record_exhausted(operation)
            except Exception:
                self._collector_raised(
                    operation, "record_retry_exhausted", _extra(operation, run.attempt, None, exc)
                )
        error = RetryError(
            message,
            attempts=run.attempt,
            last_exception=exc,
            last_result=run.result,
            slept=run.slept,
        )
        run.forget()
        return error


def _extra(
    operation: str, attempt: int, delay: float | None, exc: BaseException | None
) -> dict[str, Any]:
    return {
        "operation": operation,
        "attempt": attempt,
        "delay": delay,
        "error_type": type(exc).__qualname__ if exc is not None else None,
    }


def _manual_async_sleep(advance: Callable[[float], object]) -> Callable[[float], Awaitable[None]]:
    """An async sleep that advances a manual clock, then yields to the event loop once."""

    async def sleep(seconds: float) -> None:
        advance(seconds)
        await asyncio.sleep(0)

    return sleep


@overload
def retry(fn: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def retry(fn: None = None, /, **overrides: Any) -> Retry: ...


def retry(fn: Callable[P, T] | None = None, /, **overrides: Any) -> Callable[P, T] | Retry:
    """Decorator: ``@retry`` or ``@retry(max_attempts=5, ...)`` (``RetryConfig`` fields).

    Works on plain and coroutine functions; the result keeps the function's signature.
    """
    decorator = Retry(RetryConfig(**overrides))
    return decorator if fn is None else decorator(fn)


def retry_with_circuit_breaker(config: RetryConfig | None, breaker: _Breaker) -> Retry:
    """``Retry(config, breaker=breaker)``: every attempt goes through the breaker."""
    return Retry(config, breaker=breaker)
