"""Retry behaviour: configuration, classification, exhaustion, budgets, breakers, cancellation,
hooks, logging, metrics, decorators and thread safety. Schedules are in test_backoff.py."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import logging
import math
import random
import threading
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import CircuitBreaker, CircuitState
from resilience.errors import CircuitBreakerOpenError, ResilienceError, RetryError
from resilience.retry import (
    AttemptInfo,
    Retry,
    RetryConfig,
    RetryStatistics,
    retry,
    retry_with_circuit_breaker,
)
from resilience.testing import ManualClock

# --- helpers --------------------------------------------------------------------------------------


class Upstream:
    class Unavailable(ConnectionError):
        """Nested, so its __qualname__ differs from its __name__."""


class HTTPStatusError(Exception):
    """Shaped like httpx's: the status sits on ``.response.status_code``."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.response = SimpleNamespace(status_code=status)


class Script:
    """A callable that raises or returns the scripted outcomes in order, then returns "ok"."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.attempts = 0

    def __call__(self) -> Any:
        self.attempts += 1
        if not self.outcomes:
            return "ok"
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class AsyncScript(Script):
    async def run(self) -> Any:
        return self()


def recording(**overrides: Any) -> tuple[Retry, list[float]]:
    """A Retry whose sleeps are recorded instead of slept (exact schedule unless overridden)."""
    sleeps: list[float] = []
    config = RetryConfig(**{"jitter": False, "sleep": sleeps.append, **overrides})
    return Retry(config), sleeps


# --- configuration --------------------------------------------------------------------------------


def test_config_defaults_match_the_contract() -> None:
    config = RetryConfig()
    assert (config.max_attempts, config.initial_delay, config.max_delay) == (3, 0.1, 5.0)
    assert (config.backoff_factor, config.jitter, config.max_elapsed) == (2.0, True, None)
    assert config.retry_on_result is None
    assert config.on_retry is None
    assert config.name is None
    assert config.logger is logging.getLogger("resilience")
    assert config.retry_on.__name__ == "default_error_classifier"  # type: ignore[union-attr]


def test_config_stores_timedelta_durations_as_float_seconds() -> None:
    config = RetryConfig(
        initial_delay=timedelta(milliseconds=250),
        max_delay=timedelta(seconds=3),
        max_elapsed=timedelta(minutes=1),
    )
    assert (config.initial_delay, config.max_delay, config.max_elapsed) == (0.25, 3.0, 60.0)
    assert type(config.initial_delay) is float


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_attempts", 0, ValueError),
        ("max_attempts", True, TypeError),
        ("max_attempts", 2.5, TypeError),
        ("max_attempts", "3", TypeError),
        ("initial_delay", -0.1, ValueError),
        ("initial_delay", math.nan, ValueError),
        ("initial_delay", "fast", TypeError),
        ("max_delay", math.inf, ValueError),
        ("backoff_factor", 0.5, ValueError),
        ("backoff_factor", math.inf, ValueError),
        ("backoff_factor", None, TypeError),
        ("jitter", "gaussian", ValueError),
        ("jitter", 1, TypeError),
        ("max_elapsed", 0, ValueError),
        ("max_elapsed", -1.0, ValueError),
        ("max_elapsed", math.inf, ValueError),
        ("max_elapsed", "1s", TypeError),
        ("retry_on", 42, TypeError),
        ("retry_on", int, TypeError),
        ("retry_on", (ConnectionError, "x"), TypeError),
        ("retry_on_result", True, TypeError),
        ("on_retry", "print", TypeError),
        ("name", "", ValueError),
        ("name", 7, TypeError),
        ("logger", "resilience", TypeError),
        ("random", 7, TypeError),
        ("sleep", 0.1, TypeError),
        ("async_sleep", 0.1, TypeError),
        ("clock", object(), TypeError),
    ],
)
def test_config_rejects_a_bad_field_naming_it_and_its_value(
    field: str, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error) as excinfo:
        RetryConfig(**{field: value})
    message = str(excinfo.value)
    assert f"RetryConfig.{field}" in message
    assert repr(value)[:20] in message or repr(value) in message


def test_config_rejects_max_delay_below_initial_delay_naming_both() -> None:
    with pytest.raises(ValueError, match=r"max_delay \(0\.05\).*initial_delay \(0\.1\)"):
        RetryConfig(max_delay=0.05)


def test_config_accepts_each_jitter_strategy_name() -> None:
    for jitter in (True, False, "full", "equal", "decorrelated"):
        assert RetryConfig(jitter=jitter).jitter == jitter


def test_config_is_frozen_and_keyword_only() -> None:
    config = RetryConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_attempts = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryConfig(5)  # type: ignore[call-arg]


def test_config_replace_changes_fields_and_validates_again() -> None:
    config = RetryConfig(max_attempts=4, name="fetch")
    changed = config.replace(max_attempts=7)
    assert (changed.max_attempts, changed.name) == (7, "fetch")
    assert dataclasses.replace(config, jitter=False).jitter is False
    with pytest.raises(ValueError, match="max_attempts"):
        config.replace(max_attempts=0)


def test_retry_rejects_a_config_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="RetryConfig"):
        Retry({"max_attempts": 3})  # type: ignore[arg-type]


# --- success, retries, exhaustion -----------------------------------------------------------------


def test_first_attempt_success_returns_the_result_without_sleeping() -> None:
    retrier, sleeps = recording()

    def add(a: int, b: int = 0) -> int:
        return a + b

    assert retrier.call(add, 2, b=3) == 5
    assert sleeps == []
    assert retrier.statistics == RetryStatistics(
        calls=1, attempts=1, retries=0, exhausted=0, total_slept=0.0
    )


def test_success_path_reads_no_clock_unless_max_elapsed_is_set() -> None:
    class CountingClock:
        reads = 0

        def now(self) -> float:
            self.reads += 1
            return 0.0

    clock = CountingClock()
    Retry(RetryConfig(clock=clock)).call(lambda: 1)
    assert clock.reads == 0
    Retry(RetryConfig(clock=clock, max_elapsed=5.0)).call(lambda: 1)
    assert clock.reads == 1


def test_retryable_failures_are_retried_until_success() -> None:
    retrier, sleeps = recording()
    fn = Script(ConnectionError("a"), TimeoutError("b"))
    assert retrier.call(fn) == "ok"
    assert fn.attempts == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_exhaustion_raises_retry_error_with_attempts_last_exception_cause_and_slept() -> None:
    retrier, _ = recording()
    errors = [ConnectionError("first"), ConnectionError("second"), ConnectionError("third")]
    with pytest.raises(RetryError) as excinfo:
        retrier.call(Script(*errors))
    error = excinfo.value
    assert isinstance(error, ResilienceError)
    assert error.attempts == 3
    assert error.last_exception is errors[2]
    assert error.__cause__ is errors[2]
    assert error.last_result is None
    assert error.slept == pytest.approx(0.3)
    assert "gave up after 3 attempt(s)" in str(error)


def test_single_attempt_failure_still_raises_retry_error_not_the_bare_exception() -> None:
    retrier, sleeps = recording(max_attempts=1)
    boom = ConnectionError("down")
    with pytest.raises(RetryError) as excinfo:
        retrier.call(Script(boom))
    assert excinfo.value.attempts == 1
    assert excinfo.value.last_exception is boom
    assert excinfo.value.slept == 0.0
    assert sleeps == []


# --- what is retried ------------------------------------------------------------------------------


def test_non_retryable_exception_is_raised_unchanged_with_its_traceback() -> None:
    retrier, sleeps = recording()
    bad = ValueError("bad input")

    def parse() -> None:
        raise bad

    with pytest.raises(ValueError) as excinfo:
        retrier.call(parse)
    assert excinfo.value is bad
    assert "parse" in [entry.name for entry in excinfo.traceback]
    assert sleeps == []


def test_non_retryable_exception_on_a_later_attempt_is_raised_unchanged() -> None:
    retrier, sleeps = recording()
    bad = KeyError("missing")
    fn = Script(ConnectionError(), bad)
    with pytest.raises(KeyError) as excinfo:
        retrier.call(fn)
    assert excinfo.value is bad
    assert fn.attempts == 2
    assert sleeps == pytest.approx([0.1])


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ConnectionError("reset"), True),
        (TimeoutError("slow"), True),
        (HTTPStatusError(503), True),
        (HTTPStatusError(429), True),
        (ValueError("bad"), False),
        (HTTPStatusError(404), False),
    ],
)
def test_default_classifier_decides_what_is_retried(error: Exception, retried: bool) -> None:
    retrier, _ = recording()
    fn = Script(error)
    if retried:
        assert retrier.call(fn) == "ok"
    else:
        with pytest.raises(type(error)):
            retrier.call(fn)
    assert fn.attempts == (2 if retried else 1)


def test_retry_on_a_single_type_retries_only_that_type() -> None:
    retrier, _ = recording(retry_on=ConnectionError)
    assert retrier.call(Script(Upstream.Unavailable())) == "ok"
    with pytest.raises(TimeoutError):
        retrier.call(Script(TimeoutError()))


def test_retry_on_a_tuple_of_types_retries_any_of_them() -> None:
    retrier, _ = recording(retry_on=(KeyError, TimeoutError), max_attempts=4)
    assert retrier.call(Script(KeyError("k"), TimeoutError(), KeyError("k"))) == "ok"
    with pytest.raises(ConnectionError):
        retrier.call(Script(ConnectionError()))


def test_retry_on_a_predicate_retries_when_it_returns_true() -> None:
    retrier, _ = recording(retry_on=lambda exc: "transient" in str(exc))
    assert retrier.call(Script(RuntimeError("transient glitch"))) == "ok"
    with pytest.raises(RuntimeError, match="permanent"):
        retrier.call(Script(RuntimeError("permanent")))


def test_retry_on_result_retries_rejected_results_until_one_is_accepted() -> None:
    retrier, sleeps = recording(retry_on_result=lambda result: result is None)
    fn = Script(None, None, 5)
    assert retrier.call(fn) == 5
    assert fn.attempts == 3
    assert sleeps == pytest.approx([0.1, 0.2])


def test_exhaustion_on_a_rejected_result_keeps_it_and_has_no_exception() -> None:
    retrier, _ = recording(retry_on_result=lambda result: result == "pending")
    with pytest.raises(RetryError) as excinfo:
        retrier.call(Script(ConnectionError(), "pending", "pending"))
    assert excinfo.value.last_exception is None
    assert excinfo.value.__cause__ is None
    assert excinfo.value.last_result == "pending"
    assert excinfo.value.attempts == 3


def test_exhaustion_on_an_exception_after_a_rejected_result_drops_the_result() -> None:
    retrier, _ = recording(retry_on_result=lambda result: result == "pending")
    last = TimeoutError()
    with pytest.raises(RetryError) as excinfo:
        retrier.call(Script("pending", "pending", last))
    assert excinfo.value.last_exception is last
    assert excinfo.value.last_result is None


# --- time budget ----------------------------------------------------------------------------------


def test_max_elapsed_stops_when_the_next_delay_would_not_fit() -> None:
    clock = ManualClock()
    fn = Script(*[ConnectionError()] * 10)
    retrier = Retry(RetryConfig(max_attempts=10, jitter=False, max_elapsed=1.0, clock=clock))
    with pytest.raises(RetryError, match="max_elapsed") as excinfo:
        retrier.call(fn)
    # 0.1 + 0.2 + 0.4 = 0.7 slept; the next delay (0.8) would end at 1.5.
    assert excinfo.value.attempts == 4
    assert excinfo.value.slept == pytest.approx(0.7)
    assert clock.now() == pytest.approx(0.7)


def test_max_elapsed_counts_from_the_start_of_the_first_attempt() -> None:
    clock = ManualClock()

    def slow_failure() -> None:
        clock.advance(0.4)
        raise ConnectionError

    retrier = Retry(RetryConfig(max_attempts=10, jitter=False, max_elapsed=1.0, clock=clock))
    with pytest.raises(RetryError) as excinfo:
        retrier.call(slow_failure)
    # attempt 1 ends at 0.4, sleep 0.1, attempt 2 ends at 0.9; a 0.2 sleep would end at 1.1.
    assert excinfo.value.attempts == 2
    assert excinfo.value.slept == pytest.approx(0.1)


def test_no_attempt_starts_once_the_budget_is_spent_during_a_sleep() -> None:
    clock = ManualClock()

    def oversleep(seconds: float) -> None:
        clock.advance(seconds + 1.0)

    fn = Script(ConnectionError(), ConnectionError())
    retrier = Retry(
        RetryConfig(jitter=False, max_elapsed=1.0, clock=clock, sleep=oversleep, max_attempts=5)
    )
    with pytest.raises(RetryError, match="spent"):
        retrier.call(fn)
    assert fn.attempts == 1


def test_max_elapsed_accepts_a_timedelta() -> None:
    clock = ManualClock()
    retrier = Retry(
        RetryConfig(max_attempts=10, jitter=False, max_elapsed=timedelta(seconds=1), clock=clock)
    )
    with pytest.raises(RetryError):
        retrier.call(Script(*[ConnectionError()] * 10))
    assert clock.now() < 1.0


@settings(max_examples=150, deadline=None)
@given(
    max_attempts=st.integers(1, 8),
    initial=st.floats(0.0, 2.0),
    extra=st.floats(0.0, 5.0),
    factor=st.floats(1.0, 4.0),
    jitter=st.sampled_from([False, True, "equal", "decorrelated"]),
    max_elapsed=st.none() | st.floats(0.01, 10.0),
    attempt_time=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_valid_config_respects_max_attempts_and_the_time_budget(
    max_attempts: int,
    initial: float,
    extra: float,
    factor: float,
    jitter: Any,
    max_elapsed: float | None,
    attempt_time: float,
    seed: int,
) -> None:
    clock = ManualClock()
    starts: list[float] = []

    def always_fails() -> None:
        starts.append(clock.now())
        clock.advance(attempt_time)
        raise ConnectionError

    config = RetryConfig(
        max_attempts=max_attempts,
        initial_delay=initial,
        max_delay=initial + extra,
        backoff_factor=factor,
        jitter=jitter,
        max_elapsed=max_elapsed,
        random=random.Random(seed),
        clock=clock,
    )
    retrier = Retry(config)
    with pytest.raises(RetryError) as excinfo:
        retrier.call(always_fails)
    error = excinfo.value
    assert error.attempts == len(starts) <= max_attempts
    assert retrier.statistics.attempts == len(starts)
    if max_elapsed is not None:
        assert error.slept <= max_elapsed
        assert all(start < max_elapsed for start in starts)


# --- circuit breaker awareness --------------------------------------------------------------------


def opening_breaker(clock: ManualClock, sleep_window: float) -> CircuitBreaker:
    """A real breaker that opens on its first counted failure."""
    return CircuitBreaker(name="db", clock=clock, volume_threshold=1, sleep_window=sleep_window)


def breaker_retry(
    breaker: CircuitBreaker, clock: ManualClock, **overrides: Any
) -> tuple[Retry, list[AttemptInfo]]:
    """A Retry through ``breaker`` that advances ``clock`` instead of sleeping."""
    infos: list[AttemptInfo] = []
    config = RetryConfig(jitter=False, clock=clock, on_retry=infos.append, **overrides)
    return retry_with_circuit_breaker(config, breaker), infos


def test_breaker_rejection_that_fits_waits_for_retry_after_when_longer_than_the_delay() -> None:
    clock = ManualClock()
    retrier, infos = breaker_retry(opening_breaker(clock, 2.0), clock)
    # Attempt 1 fails and opens the breaker; attempt 2 (t=0.1) is rejected with retry_after 1.9.
    assert retrier.call(Script(ConnectionError())) == "ok"
    assert [(i.attempt, type(i.exception)) for i in infos] == [
        (1, ConnectionError),
        (2, CircuitBreakerOpenError),
    ]
    assert [i.delay for i in infos] == pytest.approx([0.1, 1.9])
    assert clock.now() == pytest.approx(2.0)


def test_breaker_rejection_waits_for_the_delay_when_longer_than_retry_after() -> None:
    clock = ManualClock()
    retrier, infos = breaker_retry(opening_breaker(clock, 0.15), clock)
    # Attempt 2 (t=0.1) is rejected with retry_after 0.05, shorter than the 0.2 delay.
    assert retrier.call(Script(ConnectionError())) == "ok"
    assert [i.delay for i in infos] == pytest.approx([0.1, 0.2])


def test_breaker_rejection_on_the_last_attempt_is_raised_at_once() -> None:
    clock = ManualClock()
    retrier, infos = breaker_retry(opening_breaker(clock, 2.0), clock, max_attempts=2)
    with pytest.raises(CircuitBreakerOpenError) as excinfo:
        retrier.call(Script(ConnectionError()))
    assert excinfo.value.retry_after == pytest.approx(1.9)
    assert len(infos) == 1
    assert clock.now() == pytest.approx(0.1)


def test_breaker_rejection_with_max_attempts_one_is_raised_not_wrapped() -> None:
    clock = ManualClock()
    breaker = opening_breaker(clock, 2.0)
    with pytest.raises(ConnectionError):
        breaker.call(Script(ConnectionError()))
    retrier, _ = breaker_retry(breaker, clock, max_attempts=1)
    with pytest.raises(CircuitBreakerOpenError):
        retrier.call(lambda: "ok")


def test_breaker_rejection_whose_wait_exceeds_the_budget_is_raised_at_once() -> None:
    clock = ManualClock()
    retrier, infos = breaker_retry(opening_breaker(clock, 5.0), clock, max_elapsed=1.0)
    fn = Script(ConnectionError())
    with pytest.raises(CircuitBreakerOpenError) as excinfo:
        retrier.call(fn)
    assert excinfo.value.retry_after == pytest.approx(4.9)
    assert fn.attempts == 1
    assert len(infos) == 1  # only the sleep after the ConnectionError
    assert clock.now() == pytest.approx(0.1)


def test_forced_open_breaker_rejection_is_raised_at_once() -> None:
    clock = ManualClock()
    breaker = opening_breaker(clock, 2.0)
    breaker.force_open()
    retrier, infos = breaker_retry(breaker, clock, max_attempts=5)
    fn = Script()
    with pytest.raises(CircuitBreakerOpenError) as excinfo:
        retrier.call(fn)
    assert excinfo.value.retry_after is None
    assert (fn.attempts, infos, clock.now()) == (0, [], 0.0)


def test_breaker_rejection_raised_inside_fn_is_handled_the_same_way() -> None:
    retrier, sleeps = recording()
    inner = CircuitBreakerOpenError("inner", CircuitState.OPEN, 1.5)
    assert retrier.call(Script(inner)) == "ok"
    assert sleeps == [1.5]
    forced = CircuitBreakerOpenError("inner", CircuitState.OPEN, None)
    with pytest.raises(CircuitBreakerOpenError) as excinfo:
        retrier.call(Script(forced))
    assert excinfo.value is forced
    assert sleeps == [1.5]


def test_breaker_rejection_is_handled_even_when_retry_on_does_not_name_it() -> None:
    clock = ManualClock()
    retrier, infos = breaker_retry(opening_breaker(clock, 2.0), clock, retry_on=(ConnectionError,))
    assert retrier.call(Script(ConnectionError())) == "ok"
    assert [i.delay for i in infos] == pytest.approx([0.1, 1.9])


def test_every_attempt_goes_through_the_breaker() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(name="api", clock=clock)
    retrier, _ = breaker_retry(breaker, clock)
    fn = Script(ConnectionError(), TimeoutError())
    assert retrier.call(fn) == "ok"
    assert fn.attempts == 3
    assert breaker.metrics()["total_executions"] == 3
    assert breaker.metrics()["failure"] == 2


def test_async_breaker_rejection_that_fits_waits_for_retry_after() -> None:
    clock = ManualClock()
    retrier, infos = breaker_retry(opening_breaker(clock, 3.0), clock)
    fn = AsyncScript(ConnectionError())
    assert asyncio.run(retrier.call_async(fn.run)) == "ok"
    assert [i.delay for i in infos] == pytest.approx([0.1, 2.9])
    assert clock.now() == pytest.approx(3.0)
    assert fn.attempts == 2


def test_async_forced_open_breaker_rejection_is_raised_at_once() -> None:
    clock = ManualClock()
    breaker = opening_breaker(clock, 2.0)
    breaker.force_open()
    retrier, _ = breaker_retry(breaker, clock)
    with pytest.raises(CircuitBreakerOpenError):
        asyncio.run(retrier.call_async(AsyncScript().run))


# --- cancellation ---------------------------------------------------------------------------------


def test_async_cancellation_during_the_sleep_propagates_at_once() -> None:
    async def scenario() -> tuple[int, list[AttemptInfo]]:
        infos: list[AttemptInfo] = []
        about_to_sleep = asyncio.Event()

        def on_retry(info: AttemptInfo) -> None:
            infos.append(info)
            about_to_sleep.set()

        fn = AsyncScript(ConnectionError(), ConnectionError())
        retrier = Retry(RetryConfig(initial_delay=3600.0, max_delay=3600.0, on_retry=on_retry))
        task = asyncio.create_task(retrier.call_async(fn.run))
        await about_to_sleep.wait()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return fn.attempts, infos

    attempts, infos = asyncio.run(scenario())
    assert attempts == 1
    assert len(infos) == 1


def test_cancelled_error_from_fn_is_never_retried_even_if_retry_on_accepts_it() -> None:
    fn = AsyncScript(asyncio.CancelledError())
    retrier = Retry(RetryConfig(retry_on=lambda exc: True, clock=ManualClock()))

    async def scenario() -> None:
        await retrier.call_async(fn.run)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())
    assert fn.attempts == 1


def test_keyboard_interrupt_during_a_sync_sleep_propagates_unchanged() -> None:
    interrupt = KeyboardInterrupt()

    def interrupted_sleep(seconds: float) -> None:
        raise interrupt

    fn = Script(ConnectionError(), ConnectionError())
    retrier = Retry(RetryConfig(sleep=interrupted_sleep))
    with pytest.raises(KeyboardInterrupt) as excinfo:
        retrier.call(fn)
    assert excinfo.value is interrupt
    assert fn.attempts == 1


@pytest.mark.parametrize("signal", [KeyboardInterrupt(), SystemExit(3)])
def test_base_exceptions_from_fn_are_never_retried(signal: BaseException) -> None:
    retrier, sleeps = recording(retry_on=BaseException)
    fn = Script(signal)
    with pytest.raises(type(signal)) as excinfo:
        retrier.call(fn)
    assert excinfo.value is signal
    assert fn.attempts == 1
    assert sleeps == []


# --- hooks, logging, metrics ----------------------------------------------------------------------


def test_on_retry_gets_attempt_info_before_each_sleep() -> None:
    clock = ManualClock()
    infos: list[AttemptInfo] = []
    errors = [ConnectionError("a"), TimeoutError("b")]

    def fn() -> str:
        clock.advance(0.5)
        if errors:
            raise errors.pop(0)
        return "done"

    retrier = Retry(
        RetryConfig(jitter=False, clock=clock, max_elapsed=100.0, on_retry=infos.append)
    )
    first, second = errors
    assert retrier.call(fn) == "done"
    assert [(i.attempt, i.delay, i.exception, i.result) for i in infos] == [
        (1, 0.1, first, None),
        (2, 0.2, second, None),
    ]
    assert [i.elapsed for i in infos] == pytest.approx([0.5, 1.1])
    assert {i.operation for i in infos} == {fn.__qualname__}
    with pytest.raises(dataclasses.FrozenInstanceError):
        infos[0].attempt = 9  # type: ignore[misc]


def test_on_retry_reports_a_rejected_result_without_an_exception() -> None:
    infos: list[AttemptInfo] = []
    retrier, _ = recording(retry_on_result=lambda r: r < 0, on_retry=infos.append)
    assert retrier.call(Script(-1, 3)) == 3
    assert (infos[0].exception, infos[0].result) == (None, -1)


def test_on_retry_is_not_called_when_the_first_attempt_succeeds() -> None:
    infos: list[AttemptInfo] = []
    retrier, _ = recording(on_retry=infos.append)
    retrier.call(lambda: 1)
    assert infos == []


def test_hook_exceptions_are_logged_at_error_and_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_hook(info: AttemptInfo) -> None:
        raise RuntimeError("hook bug")

    retrier, sleeps = recording(on_retry=broken_hook, name="fetch")
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert retrier.call(Script(ConnectionError())) == "ok"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "resilience"
    assert errors[0].exc_info is not None
    assert "hook bug" in str(errors[0].exc_info[1])
    assert errors[0].operation == "fetch"  # type: ignore[attr-defined]
    assert sleeps == pytest.approx([0.1])


def test_each_retry_is_logged_at_debug_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retrier, _ = recording(name="load-profile")
    with caplog.at_level(logging.DEBUG, logger="resilience"):
        retrier.call(Script(Upstream.Unavailable(), TimeoutError()))
    records = [r for r in caplog.records if r.levelno == logging.DEBUG]
    fields = [(r.operation, r.attempt, r.delay, r.error_type) for r in records]  # type: ignore[attr-defined]
    assert fields == [
        ("load-profile", 1, pytest.approx(0.1), "Upstream.Unavailable"),
        ("load-profile", 2, pytest.approx(0.2), "TimeoutError"),
    ]


def test_exhaustion_is_logged_at_warning_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retrier, _ = recording()

    def fetch_user() -> None:
        raise ConnectionError

    with caplog.at_level(logging.WARNING, logger="resilience"), pytest.raises(RetryError):
        retrier.call(fetch_user)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.operation == fetch_user.__qualname__  # type: ignore[attr-defined]
    assert (record.attempt, record.delay, record.error_type) == (3, None, "ConnectionError")  # type: ignore[attr-defined]


def test_exhaustion_on_a_result_logs_no_error_type(caplog: pytest.LogCaptureFixture) -> None:
    retrier, _ = recording(retry_on_result=lambda r: True, max_attempts=2)
    with caplog.at_level(logging.WARNING, logger="resilience"), pytest.raises(RetryError):
        retrier.call(lambda: 0)
    assert caplog.records[0].error_type is None  # type: ignore[attr-defined]


def test_a_custom_logger_receives_the_records(caplog: pytest.LogCaptureFixture) -> None:
    retrier, _ = recording(logger=logging.getLogger("myapp.retries"))
    with caplog.at_level(logging.DEBUG, logger="myapp.retries"):
        retrier.call(Script(ConnectionError()))
    assert {r.name for r in caplog.records} == {"myapp.retries"}


def test_a_logger_adapter_is_unwrapped_so_the_fields_survive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = logging.LoggerAdapter(logging.getLogger("myapp"), {"tenant": "acme"})
    retrier, _ = recording(logger=adapter, name="sync")
    with caplog.at_level(logging.DEBUG, logger="myapp"):
        retrier.call(Script(ConnectionError()))
    [record] = caplog.records
    assert (record.name, record.operation) == ("myapp", "sync")  # type: ignore[attr-defined]


def test_metrics_collector_hears_each_retry_and_each_exhaustion() -> None:
    class Collector:
        def __init__(self) -> None:
            self.events: list[tuple[str, str]] = []

        def record_retry_attempt(self, operation: str) -> None:
            self.events.append(("retry", operation))

        def record_retry_exhausted(self, operation: str) -> None:
            self.events.append(("exhausted", operation))

    collector = Collector()
    retrier, _ = recording(metrics=collector, name="sync-inventory")
    retrier.call(Script(ConnectionError()))
    with pytest.raises(RetryError):
        retrier.call(Script(*[ConnectionError()] * 3))
    assert collector.events == [("retry", "sync-inventory")] * 3 + [("exhausted", "sync-inventory")]


def test_metrics_collector_methods_are_looked_up_once_at_construction() -> None:
    class Dynamic:
        lookups = 0

        def __getattr__(self, name: str) -> Callable[[str], None]:
            type(self).lookups += 1
            return lambda operation: None

    collector = Dynamic()
    retrier, _ = recording(metrics=collector)
    assert Dynamic.lookups == 2
    for _ in range(3):
        retrier.call(Script(ConnectionError()))
    assert Dynamic.lookups == 2


def test_metrics_collector_without_retry_methods_or_raising_ones_is_harmless(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def record_retry_attempt(self, operation: str) -> None:
            raise RuntimeError("collector down")

    retrier, _ = recording(metrics=object())
    assert retrier.call(Script(ConnectionError())) == "ok"
    retrier, _ = recording(metrics=Broken())
    with caplog.at_level(logging.ERROR, logger="resilience"):
        assert retrier.call(Script(ConnectionError())) == "ok"
    assert "record_retry_attempt" in caplog.records[0].getMessage()


def test_raising_collector_is_logged_at_error_once_per_operation_then_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def record_retry_attempt(self, operation: str) -> None:
            raise RuntimeError("collector down")

    retrier, _ = recording(metrics=Broken(), name="op")
    with caplog.at_level(logging.DEBUG, logger="resilience"):
        for _ in range(3):
            assert retrier.call(Script(ConnectionError())) == "ok"
    failures = [r for r in caplog.records if "metrics collector failed" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.ERROR, logging.DEBUG, logging.DEBUG]


def test_operation_name_defaults_to_the_function_qualname() -> None:
    infos: list[AttemptInfo] = []
    retrier, _ = recording(on_retry=infos.append)

    class Client:
        def fetch(self) -> str:
            if not infos:
                raise ConnectionError
            return "ok"

    retrier.call(Client().fetch)
    assert infos[0].operation.endswith("Client.fetch")


# --- statistics -----------------------------------------------------------------------------------


def test_statistics_count_calls_attempts_retries_exhaustion_and_sleep() -> None:
    retrier, _ = recording(initial_delay=0.5, backoff_factor=1.0)
    retrier.call(lambda: 1)
    retrier.call(Script(ConnectionError()))
    with pytest.raises(RetryError):
        retrier.call(Script(*[ConnectionError()] * 3))
    with pytest.raises(ValueError):
        retrier.call(Script(ValueError()))
    expected = RetryStatistics(calls=4, attempts=7, retries=3, exhausted=1, total_slept=1.5)
    assert retrier.statistics == expected
    assert retrier.statistics == expected  # reading does not change the counts


def test_statistics_count_async_calls_too() -> None:
    retrier = Retry(RetryConfig(clock=ManualClock(), jitter=False))
    asyncio.run(retrier.call_async(AsyncScript(ConnectionError()).run))
    stats = retrier.statistics
    assert (stats.calls, stats.attempts, stats.retries) == (1, 2, 1)
    assert stats.total_slept == pytest.approx(0.1)


def test_one_retry_shared_by_eight_threads_keeps_results_and_counts_exact() -> None:
    retrier = Retry(
        RetryConfig(max_attempts=3, initial_delay=0.5, jitter=False, clock=ManualClock())
    )
    local = threading.local()

    def flaky(x: int) -> int:
        n = getattr(local, "attempts", 0)
        local.attempts = n + 1
        if n % 2 == 0:  # every other attempt of this thread fails
            raise ConnectionError
        return x * 2

    start = threading.Barrier(8)
    results: dict[int, list[int]] = {}

    def worker(index: int) -> None:
        start.wait()
        out = []
        for i in range(1000):
            out.append(retrier.call(flaky, i))
            out.append(retrier.call(abs, -i))
        results[index] = out

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expected = [v for i in range(1000) for v in (i * 2, i)]
    assert all(results[t] == expected for t in range(8))
    assert retrier.statistics == RetryStatistics(
        calls=16_000, attempts=24_000, retries=8_000, exhausted=0, total_slept=4_000.0
    )


def test_one_retry_shared_by_many_tasks_keeps_results_and_counts_exact() -> None:
    clock = ManualClock()
    retrier = Retry(RetryConfig(jitter=False, clock=clock))

    async def scenario() -> list[Any]:
        scripts = [AsyncScript(ConnectionError(), i) for i in range(200)]
        return await asyncio.gather(*(retrier.call_async(s.run) for s in scripts))

    assert asyncio.run(scenario()) == list(range(200))
    stats = retrier.statistics
    assert (stats.calls, stats.attempts, stats.retries, stats.exhausted) == (200, 400, 200, 0)


# --- sleep and clock injection --------------------------------------------------------------------


def test_manual_clock_without_a_sleep_function_is_advanced_instead_of_sleeping() -> None:
    clock = ManualClock()
    retrier = Retry(RetryConfig(initial_delay=3600.0, max_delay=3600.0, jitter=False, clock=clock))
    assert retrier.call(Script(ConnectionError())) == "ok"
    assert clock.now() == 3600.0


def test_an_explicit_sleep_function_wins_over_the_manual_clock() -> None:
    clock = ManualClock()
    sleeps: list[float] = []
    retrier = Retry(RetryConfig(jitter=False, clock=clock, sleep=sleeps.append))
    retrier.call(Script(ConnectionError()))
    assert (sleeps, clock.now()) == ([0.1], 0.0)


def test_async_retry_with_manual_clock_advances_it_instead_of_sleeping() -> None:
    clock = ManualClock()
    retrier = Retry(RetryConfig(initial_delay=600.0, max_delay=600.0, jitter=False, clock=clock))
    fn = AsyncScript(ConnectionError(), ConnectionError())
    assert asyncio.run(retrier.call_async(fn.run)) == "ok"
    assert clock.now() == 1200.0


def test_async_retry_uses_the_given_async_sleep() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    retrier = Retry(RetryConfig(jitter=False, async_sleep=fake_sleep))
    with pytest.raises(RetryError) as excinfo:
        asyncio.run(retrier.call_async(AsyncScript(*[TimeoutError()] * 3).run))
    assert sleeps == pytest.approx([0.1, 0.2])
    assert excinfo.value.attempts == 3


# --- decorators -----------------------------------------------------------------------------------


def test_bare_retry_decorator_keeps_metadata_and_retries() -> None:
    attempts = itertools.count(1)

    @retry
    def lookup(key: str, *, default: int = 0) -> int:
        """Looks a key up."""
        if next(attempts) == 1:
            raise ConnectionError
        return len(key) + default

    assert lookup.__name__ == "lookup"
    assert lookup.__doc__ == "Looks a key up."
    assert str(inspect.signature(lookup)) == "(key: 'str', *, default: 'int' = 0) -> 'int'"
    assert not inspect.iscoroutinefunction(lookup)
    assert lookup("abc", default=1) == 4


def test_retry_decorator_with_overrides_builds_its_config() -> None:
    sleeps: list[float] = []

    @retry(max_attempts=5, jitter=False, sleep=sleeps.append)
    def flaky() -> None:
        raise ConnectionError

    with pytest.raises(RetryError) as excinfo:
        flaky()
    assert excinfo.value.attempts == 5
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_retry_decorator_validates_its_overrides() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        retry(max_attempts=0)
    with pytest.raises(TypeError):
        retry(attempts=3)


def test_retry_object_decorates_a_coroutine_function_keeping_it_async() -> None:
    retrier = Retry(RetryConfig(clock=ManualClock()))
    attempts = itertools.count(1)

    @retrier
    async def fetch(url: str) -> str:
        """Fetches a URL."""
        if next(attempts) < 3:
            raise TimeoutError
        return url.upper()

    assert inspect.iscoroutinefunction(fetch)
    assert (fetch.__name__, fetch.__doc__) == ("fetch", "Fetches a URL.")
    assert list(inspect.signature(fetch).parameters) == ["url"]
    assert asyncio.run(fetch("a")) == "A"


def test_decorated_method_receives_self() -> None:
    class Service:
        calls = 0

        @retry(clock=ManualClock())
        def get(self, x: int) -> int:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError
            return x

    service = Service()
    assert service.get(7) == 7
    assert service.calls == 2


def test_retry_refuses_to_decorate_a_non_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        Retry()(42)  # type: ignore[arg-type]


def test_retry_with_circuit_breaker_is_a_retry_with_that_breaker() -> None:
    breaker = CircuitBreaker(name="x")
    config = RetryConfig(max_attempts=4)
    retrier = retry_with_circuit_breaker(config, breaker)
    assert isinstance(retrier, Retry)
    assert (retrier.config, retrier.breaker) == (config, breaker)


# --- trace ----------------------------------------------------------------------------------------


def test_trace_of_default_schedule_is_printed() -> None:
    lines: list[str] = []

    def trace(info: AttemptInfo) -> None:
        error = type(info.exception).__name__
        lines.append(f"attempt {info.attempt} failed ({error}) -> sleeping {info.delay:.3f}s")

    retrier = Retry(RetryConfig(max_attempts=6, jitter=False, clock=ManualClock(), on_retry=trace))
    with pytest.raises(RetryError) as excinfo:
        retrier.call(Script(*[ConnectionError("refused")] * 6))
    error = excinfo.value
    lines.append(
        f"attempt {error.attempts} failed ({type(error.last_exception).__name__}) -> "
        f"giving up after {error.attempts} attempts, {error.slept:.3f}s slept"
    )
    print("\n" + "\n".join(lines))
    assert lines == [
        "attempt 1 failed (ConnectionError) -> sleeping 0.100s",
        "attempt 2 failed (ConnectionError) -> sleeping 0.200s",
        "attempt 3 failed (ConnectionError) -> sleeping 0.400s",
        "attempt 4 failed (ConnectionError) -> sleeping 0.800s",
        "attempt 5 failed (ConnectionError) -> sleeping 1.600s",
        "attempt 6 failed (ConnectionError) -> giving up after 6 attempts, 3.100s slept",
    ]
