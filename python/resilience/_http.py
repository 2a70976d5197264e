"""What the HTTP adapters share: status rules, ``Retry-After``, the attempt loop, chaos decisions.

Nothing here imports an HTTP library. ``resilience.httpx`` and ``resilience.requests`` describe
one request as an *exchange* (send it, read a status and a header, discard a response, tell
whether the body can be sent again) and hand it to ``send_with_retries`` or its async twin,
which run every attempt through a breaker's permit API: a failure *response* (5xx, 408, 429) is
recorded as a failure without raising, so the caller still gets the response.
"""

from __future__ import annotations

import asyncio
import email.utils
import fnmatch
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, TypeAlias, TypeVar, cast

from .backoff import Backoff, backoff_for
from .breaker import CircuitBreaker
from .registry import BreakerRegistry
from .retry import AttemptInfo, RetryConfig

__all__ = [
    "IDEMPOTENT_METHODS",
    "AsyncExchange",
    "ChaosControls",
    "ChaosPolicy",
    "ChaosStats",
    "Exchange",
    "HTTPStatusFailure",
    "RetryPolicy",
    "check_adapter_args",
    "check_rate",
    "host_key",
    "is_failure_status",
    "missing_extra",
    "parse_retry_after",
    "send_with_retries",
    "send_with_retries_async",
]

R = TypeVar("R")

IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods retried by default: sending one twice has the effect of sending it once."""

_SUCCESS, _FAILURE = 0, 1
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def missing_extra(adapter: str, module: str, extra: str) -> ImportError:
    """An ImportError naming the ``resilience-rs`` extra that brings ``module``.

    Raise it ``from`` the original ImportError so the underlying cause stays visible.
    """
    return ImportError(
        f"{adapter} needs the {module!r} package, which is not installed; "
        f"install it with: pip install 'resilience-rs[{extra}]'",
        name=module,
    )


def is_failure_status(status: int) -> bool:
    """True for statuses that say the server (not the request) is in trouble: 5xx, 408, 429."""
    return status >= 500 or status == 408 or status == 429


def host_key(scheme: str, host: str, port: int | None) -> str:
    """``"host:port"``, with the scheme's default port filled in (``"api.example.com:443"``)."""
    if port is None:
        port = _DEFAULT_PORTS.get(scheme.lower())
    host = host.lower()
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


class HTTPStatusFailure(Exception):
    """Stands for a failure response in breaker metrics and logs (it is never raised).

    Attributes:
        status: the response's HTTP status code.
    """

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Args:
        value: the header value: delay-seconds (``"120"``) or an HTTP-date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``); None when the header is absent.
        now: the current wall-clock time for an HTTP-date; None uses the system clock.

    Returns:
        The delay in seconds (0.0 for a date in the past), or None when the value is absent or
        malformed (a malformed header is ignored, not an error).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc) if now is None else now
    return max(0.0, (when - current).total_seconds())


def check_adapter_args(registry: BreakerRegistry | None, key: object) -> BreakerRegistry:
    """Validates an adapter's ``registry`` and ``key``; returns the registry to use.

    Raises:
        TypeError: ``key`` is not callable or ``registry`` is not a BreakerRegistry.
    """
    if not callable(key):
        raise TypeError(f"key must be a callable (request) -> str, got {key!r}")
    if registry is None:
        return BreakerRegistry()
    if not isinstance(registry, BreakerRegistry):
        raise TypeError(f"registry must be a BreakerRegistry or None, got {registry!r}")
    return registry


# --------------------------------------------------------------------------- retries


class RetryPolicy:
    """A ``RetryConfig`` resolved for the HTTP adapters, plus the methods they may retry.

    Uses the config's ``max_attempts``, backoff fields, ``max_elapsed``, ``retry_on`` (for
    exceptions), ``on_retry``, ``logger``, ``metrics``, ``random``, ``sleep``, ``async_sleep`` and
    ``clock`` with the meanings ``Retry`` gives them. ``retry_on_result`` does not apply: responses
    are judged by status.
    """

    __slots__ = (
        "async_sleep",
        "backoff",
        "budget",
        "config",
        "logger",
        "max_attempts",
        "max_delay",
        "methods",
        "name",
        "now",
        "on_retry",
        "record_attempt",
        "record_exhausted",
        "retry_on",
        "rng",
        "sleep",
    )

    def __init__(self, config: RetryConfig | None, methods: Iterable[str]) -> None:
        if config is None:
            config = RetryConfig()
        elif not isinstance(config, RetryConfig):
            raise TypeError(f"retry must be a RetryConfig or None, got {config!r}")
        if isinstance(methods, str):
            raise TypeError(f"retry_methods must be a collection of method names, got {methods!r}")
        names = []
        for method in methods:
            if not isinstance(method, str) or not method.strip():
                raise TypeError(f"retry_methods must hold method names, got {method!r}")
            names.append(method.strip().upper())
        self.config = config
        self.methods: frozenset[str] = frozenset(names)
        self.max_attempts = config.max_attempts
        self.max_delay = config.max_delay
        self.budget = config.max_elapsed
        self.name = config.name
        self.on_retry = config.on_retry
        self.rng = config.random
        self.backoff: Backoff = backoff_for(
            config.jitter, config.initial_delay, config.backoff_factor, config.max_delay
        )
        logger = config.logger
        self.logger: logging.Logger = (
            logger.logger if isinstance(logger, logging.LoggerAdapter) else logger
        )
        retry_on = config.retry_on
        if isinstance(retry_on, (type, tuple)):
            types = retry_on

            def matches(exc: BaseException) -> bool:
                return isinstance(exc, types)

            self.retry_on: Callable[[BaseException], bool] = matches
        else:
            self.retry_on = retry_on
        # Time and sleeping, resolved as Retry resolves them (a manual clock is advanced).
        clock = config.clock
        self.now: Callable[[], float] = time.monotonic if clock is None else clock.now
        manual: Callable[[float], object] | None = None
        if clock is not None and callable(getattr(clock, "advance", None)):
            clock_sleep = getattr(clock, "sleep", None)
            manual = clock_sleep if callable(clock_sleep) else cast(Any, clock).advance
        self.sleep: Callable[[float], object] = (
            config.sleep if config.sleep is not None else manual if manual else time.sleep
        )
        if config.async_sleep is not None:
            self.async_sleep: Callable[[float], Awaitable[object]] = config.async_sleep
        elif manual is not None:
            advance = manual

            async def manual_sleep(seconds: float) -> None:
                advance(seconds)
                await asyncio.sleep(0)

            self.async_sleep = manual_sleep
        else:
            self.async_sleep = asyncio.sleep
        metrics = config.metrics
        record = getattr(metrics, "record_retry_attempt", None)
        self.record_attempt: Callable[[str], object] | None = record if callable(record) else None
        record = getattr(metrics, "record_retry_exhausted", None)
        self.record_exhausted: Callable[[str], object] | None = record if callable(record) else None


class Exchange(Protocol[R]):
    """One request through a synchronous HTTP library (``R`` is its response type)."""

    method: str

    def send(self) -> R:
        """Sends the request once and returns the response (any status)."""
        ...

    def status(self, response: R) -> int:
        """The response's status code."""
        ...

    def header(self, response: R, name: str) -> str | None:
        """A response header, or None."""
        ...

    def discard(self, response: R) -> None:
        """Releases a response that will not be returned (it is about to be retried)."""
        ...

    def replayable(self) -> bool:
        """Whether the request body can be sent again as it was (not a consumed stream)."""
        ...


class AsyncExchange(Protocol[R]):
    """One request through an asyncio HTTP library (``R`` is its response type)."""

    method: str

    async def send(self) -> R:
        """Sends the request once and returns the response (any status)."""
        ...

    def status(self, response: R) -> int:
        """The response's status code."""
        ...

    def header(self, response: R, name: str) -> str | None:
        """A response header, or None."""
        ...

    async def discard(self, response: R) -> None:
        """Releases a response that will not be returned (it is about to be retried)."""
        ...

    def replayable(self) -> bool:
        """Whether the request body can be sent again as it was (not a consumed stream)."""
        ...


class _Run:
    """Per-request retry state, created on the first failure."""

    __slots__ = ("attempt", "delays", "operation", "slept", "start")

    def __init__(self, operation: str, start: float | None) -> None:
        self.operation = operation
        self.start = start
        self.attempt = 1
        self.slept = 0.0
        self.delays: Any = None


def _plan(
    policy: RetryPolicy,
    run: _Run,
    *,
    retryable: bool,
    exc: BaseException | None,
    response: object,
    retry_after: float | None,
) -> float | None:
    """The delay before the next attempt, or None to stop (and return or raise the outcome)."""
    if not retryable:
        return None
    if run.attempt >= policy.max_attempts:
        if policy.max_attempts > 1:
            _give_up(policy, run, exc, "no attempts left")
        return None
    if run.delays is None:
        run.delays = policy.backoff.delays(policy.rng)
    delay: float = next(run.delays)
    if retry_after is not None:
        delay = min(retry_after, policy.max_delay)
    if policy.budget is not None:
        now = policy.now()
        if run.start is None:
            run.start = now
        elapsed = now - run.start
        if elapsed + delay >= policy.budget:
            _give_up(policy, run, exc, f"max_elapsed={policy.budget:g}s would be exceeded")
            return None
    else:
        elapsed = run.slept
    _announce(policy, run, delay, exc, response, elapsed)
    return delay


def _extra(run: _Run, delay: float | None, exc: BaseException | None) -> dict[str, Any]:
    return {
        "operation": run.operation,
        "attempt": run.attempt,
        "delay": delay,
        "error_type": type(exc).__qualname__ if exc is not None else None,
    }


def _announce(
    policy: RetryPolicy,
    run: _Run,
    delay: float,
    exc: BaseException | None,
    response: object,
    elapsed: float,
) -> None:
    logger = policy.logger
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s: attempt %d failed (%s), retrying in %.3fs",
            run.operation,
            run.attempt,
            type(exc).__qualname__ if exc is not None else str(response),
            delay,
            extra=_extra(run, delay, exc),
        )
    if policy.record_attempt is not None:
        try:
            policy.record_attempt(run.operation)
        except Exception:
            logger.exception(
                "%s: metrics collector failed in record_retry_attempt",
                run.operation,
                extra=_extra(run, delay, exc),
            )
    if policy.on_retry is not None:
        info = AttemptInfo(run.operation, run.attempt, delay, exc, response, elapsed)
        try:
            policy.on_retry(info)
        except Exception:
            logger.exception(
                "%s: on_retry hook raised; ignored", run.operation, extra=_extra(run, delay, exc)
            )


def _give_up(policy: RetryPolicy, run: _Run, exc: BaseException | None, reason: str) -> None:
    policy.logger.warning(
        "%s: retries exhausted after %d attempt(s) (%s)",
        run.operation,
        run.attempt,
        reason,
        extra=_extra(run, None, exc),
    )
    if policy.record_exhausted is not None:
        try:
            policy.record_exhausted(run.operation)
        except Exception:
            policy.logger.exception(
                "%s: metrics collector failed in record_retry_exhausted",
                run.operation,
                extra=_extra(run, None, exc),
            )


def _start(policy: RetryPolicy, method: str, key: str) -> tuple[bool, _Run]:
    retryable = policy.max_attempts > 1 and method.upper() in policy.methods
    operation = policy.name if policy.name is not None else f"{method.upper()} {key}"
    start = policy.now() if retryable and policy.budget is not None else None
    return retryable, _Run(operation, start)


def send_with_retries(
    policy: RetryPolicy, breaker: CircuitBreaker, key: str, exchange: Exchange[R]
) -> R:
    """Sends ``exchange`` through ``breaker``, retrying as ``policy`` allows.

    Every attempt takes a permit (``CircuitBreakerOpenError`` propagates at once) and records its
    outcome: an exception through the breaker's classifier, a failure status as a failure, any
    other response as a success. Only methods in ``policy.methods`` are retried, and only while
    the body is replayable. After the last attempt the last response is returned, or the last
    exception raised unchanged.
    """
    core = breaker._core
    retryable, run = _start(policy, exchange.method, key)
    while True:
        permit = core.acquire()
        try:
            response = exchange.send()
        except BaseException as exc:
            core.complete(permit, exc)
            if not isinstance(exc, Exception) or not policy.retry_on(exc):
                raise
            delay = _plan(
                policy,
                run,
                retryable=retryable and exchange.replayable(),
                exc=exc,
                response=None,
                retry_after=None,
            )
            if delay is None:
                raise
        else:
            status = exchange.status(response)
            if not is_failure_status(status):
                core.complete_as(permit, _SUCCESS)
                return response
            core.complete_as(permit, _FAILURE, HTTPStatusFailure(status))
            delay = _plan(
                policy,
                run,
                retryable=retryable and exchange.replayable(),
                exc=None,
                response=f"HTTP {status}",
                retry_after=parse_retry_after(exchange.header(response, "retry-after")),
            )
            if delay is None:
                return response
            exchange.discard(response)
        policy.sleep(delay)
        run.slept += delay
        run.attempt += 1


async def send_with_retries_async(
    policy: RetryPolicy, breaker: CircuitBreaker, key: str, exchange: AsyncExchange[R]
) -> R:
    """The asyncio twin of ``send_with_retries`` (cancellation propagates at once)."""
    core = breaker._core
    retryable, run = _start(policy, exchange.method, key)
    while True:
        permit = core.acquire()
        try:
            response = await exchange.send()
        except BaseException as exc:
            core.complete(permit, exc)
            if not isinstance(exc, Exception) or not policy.retry_on(exc):
                raise
            delay = _plan(
                policy,
                run,
                retryable=retryable and exchange.replayable(),
                exc=exc,
                response=None,
                retry_after=None,
            )
            if delay is None:
                raise
        else:
            status = exchange.status(response)
            if not is_failure_status(status):
                core.complete_as(permit, _SUCCESS)
                return response
            core.complete_as(permit, _FAILURE, HTTPStatusFailure(status))
            delay = _plan(
                policy,
                run,
                retryable=retryable and exchange.replayable(),
                exc=None,
                response=f"HTTP {status}",
                retry_after=parse_retry_after(exchange.header(response, "retry-after")),
            )
            if delay is None:
                return response
            await exchange.discard(response)
        await policy.async_sleep(delay)
        run.slept += delay
        run.attempt += 1


# --------------------------------------------------------------------------- chaos


Latency: TypeAlias = float | tuple[float, float] | Callable[[random.Random], float]
"""Fixed seconds, a ``(low, high)`` uniform range, or ``(rng) -> seconds`` for any distribution."""


@dataclass(frozen=True, slots=True)
class ChaosStats:
    """What a chaos middleware did so far (a snapshot).

    Attributes:
        requests: requests that matched the path filters while enabled.
        failures: injected failure responses.
        delayed: requests delayed.
        total_delay: seconds of injected latency.
    """

    requests: int
    failures: int
    delayed: int
    total_delay: float


def check_rate(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ChaosMiddleware.{field} must be a number, got {value!r}")
    rate = float(value)
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ValueError(f"ChaosMiddleware.{field} must be within [0, 1], got {value!r}")
    return rate


def _check_seconds(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ChaosMiddleware.{field} must be seconds (a number), got {value!r}")
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds >= 0.0):
        raise ValueError(f"ChaosMiddleware.{field} must be finite and >= 0, got {value!r}")
    return seconds


def _latency_sampler(latency: Latency | None) -> Callable[[random.Random], float] | None:
    if latency is None:
        return None
    if isinstance(latency, tuple):
        if len(latency) != 2:
            raise ValueError(f"ChaosMiddleware.latency range must be (low, high), got {latency!r}")
        low = _check_seconds("latency", latency[0])
        high = _check_seconds("latency", latency[1])
        if high < low:
            raise ValueError(f"ChaosMiddleware.latency range has high < low: {latency!r}")
        return lambda rng: rng.uniform(low, high)
    if callable(latency):
        draw = latency

        def sample(rng: random.Random) -> float:
            return _check_seconds("latency (drawn)", draw(rng))

        return sample
    fixed = _check_seconds("latency", latency)
    return lambda rng: fixed


class ChaosPolicy:
    """The fault decisions shared by the ASGI and WSGI chaos middleware (thread-safe).

    See ``resilience.asgi.ChaosMiddleware`` for the meaning of each argument.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        failure_rate: float,
        status_code: int,
        latency: Latency | None,
        latency_rate: float,
        seed: int | None,
        paths: Iterable[str] | None,
        exclude_paths: Iterable[str],
        headers: Mapping[str, str] | None,
    ) -> None:
        if not isinstance(enabled, bool):
            raise TypeError(f"ChaosMiddleware.enabled must be a bool, got {enabled!r}")
        if isinstance(status_code, bool) or not isinstance(status_code, int):
            raise TypeError(f"ChaosMiddleware.status_code must be an int, got {status_code!r}")
        if not 100 <= status_code <= 599:
            raise ValueError(f"ChaosMiddleware.status_code must be 100..599, got {status_code!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"ChaosMiddleware.seed must be an int or None, got {seed!r}")
        self.enabled = enabled
        self.failure_rate = check_rate("failure_rate", failure_rate)
        self.latency_rate = check_rate("latency_rate", latency_rate)
        self.status_code = status_code
        self._sample = _latency_sampler(latency)
        self._rng = random.Random(seed)
        self.paths = None if paths is None else _patterns("paths", paths)
        self.exclude_paths = _patterns("exclude_paths", exclude_paths)
        extra = dict(headers or {})
        for name, value in extra.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"ChaosMiddleware.headers must map str to str, got {headers!r}")
        self.headers: tuple[tuple[str, str], ...] = (
            ("content-type", "application/json"),
            ("x-chaos", "injected-failure"),
            *extra.items(),
        )
        self.body = f'{{"error": "chaos: injected failure", "status": {status_code}}}'.encode(
            "ascii"
        )
        self._lock = threading.Lock()
        self._requests = 0
        self._failures = 0
        self._delayed = 0
        self._total_delay = 0.0

    def matches(self, path: str) -> bool:
        """Whether chaos applies to ``path`` (the include patterns, minus the excluded)."""
        if any(fnmatch.fnmatchcase(path, p) for p in self.exclude_paths):
            return False
        return self.paths is None or any(fnmatch.fnmatchcase(path, p) for p in self.paths)

    def decide(self, path: str) -> tuple[float, bool] | None:
        """``(delay_seconds, fail)`` for a request to ``path``, or None to leave it alone.

        Draws from the seeded generator in a fixed order (latency, then failure) under a lock,
        so the same seed and the same sequence of requests give the same faults.
        """
        if not self.enabled or not self.matches(path):
            return None
        with self._lock:
            delay = 0.0
            if self._sample is not None and self._rng.random() < self.latency_rate:
                delay = self._sample(self._rng)
            fail = self.failure_rate > 0.0 and self._rng.random() < self.failure_rate
            self._requests += 1
            if delay > 0.0:
                self._delayed += 1
                self._total_delay += delay
            if fail:
                self._failures += 1
        return delay, fail

    def stats(self) -> ChaosStats:
        """A snapshot of the counters."""
        with self._lock:
            return ChaosStats(self._requests, self._failures, self._delayed, self._total_delay)


def _patterns(field: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"ChaosMiddleware.{field} must be a collection of patterns, not a str")
    result = tuple(values)
    for value in result:
        if not isinstance(value, str):
            raise TypeError(f"ChaosMiddleware.{field} must hold str patterns, got {value!r}")
    return result


class ChaosControls:
    """The switches both chaos middlewares (ASGI and WSGI) expose over their ``ChaosPolicy``."""

    _policy: ChaosPolicy

    @property
    def enabled(self) -> bool:
        """Whether faults are injected now."""
        return self._policy.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"ChaosMiddleware.enabled must be a bool, got {value!r}")
        self._policy.enabled = value

    @property
    def failure_rate(self) -> float:
        """The fraction of matching requests that fail (settable, in [0, 1])."""
        return self._policy.failure_rate

    @failure_rate.setter
    def failure_rate(self, value: float) -> None:
        self._policy.failure_rate = check_rate("failure_rate", value)

    def stats(self) -> ChaosStats:
        """What was injected so far."""
        return self._policy.stats()
