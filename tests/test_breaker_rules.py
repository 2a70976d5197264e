"""The breaker's numbered rules (contract 1-9) and its "Precise readings", on a ManualClock."""

from __future__ import annotations

import pytest

from resilience import CircuitBreakerOpenError, CircuitState

CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def ok() -> str:
    return "ok"


def boom() -> None:
    raise ConnectionError("down")


def bad_input() -> None:
    raise ValueError("not an infrastructure failure")


def succeed(cb, n=1):
    for _ in range(n):
        assert cb.call(ok) == "ok"


def fail(cb, n=1):
    for _ in range(n):
        with pytest.raises(ConnectionError):
            cb.call(boom)


def rejection(cb) -> CircuitBreakerOpenError:
    with pytest.raises(CircuitBreakerOpenError) as info:
        cb.call(ok)
    return info.value


def open_then_half_open(cb, clock):
    """Opens the breaker with one failure (volume_threshold 1) and lets its sleep window pass: the
    next admission starts a half-open period."""
    fail(cb)
    assert cb.state is OPEN
    clock.advance(cb.metrics()["sleep_window"])


# ----- rule 1: opening from CLOSED ---------------------------------------------------------------


def test_opens_when_error_rate_reaches_threshold_only_at_volume_threshold(make_breaker, listener):
    cb = make_breaker(volume_threshold=4, error_threshold=0.5)
    succeed(cb)
    fail(cb, 2)
    assert cb.state is CLOSED  # 2 of 3 failed, but only 3 counted outcomes < 4
    succeed(cb)  # 2 of 4 = 0.5 >= 0.5
    assert cb.state is OPEN
    assert listener.transitions == [(CLOSED, OPEN)]


def test_stays_closed_below_error_threshold_and_judges_after_each_outcome(make_breaker):
    cb = make_breaker(volume_threshold=4, error_threshold=0.5)
    succeed(cb, 4)
    fail(cb, 3)
    assert cb.state is CLOSED  # 3 of 7 < 0.5
    fail(cb)  # 4 of 8
    assert cb.state is OPEN


def test_volume_threshold_zero_judges_the_first_counted_outcome(make_breaker):
    cb = make_breaker(volume_threshold=0, error_threshold=0.5)
    succeed(cb)
    assert cb.state is CLOSED
    fail(cb)  # 1 of 2
    assert cb.state is OPEN


def test_failure_threshold_counts_failures_neither_consecutive_nor_expired_by_the_window(
    make_breaker, clock
):
    cb = make_breaker(volume_threshold=1000, failure_threshold=3, window_size=10, bucket_count=2)
    for step in (fail, succeed, succeed, fail, succeed):
        step(cb)
    clock.advance(100)
    assert cb.metrics()["failure"] == 0
    assert cb.state is CLOSED
    fail(cb)
    assert cb.state is OPEN
    assert cb.metrics()["failure"] == 1


@pytest.mark.parametrize("back_to_closed", ["trials", "reset", "force_closed"])
def test_failure_threshold_count_restarts_when_the_breaker_closes(
    back_to_closed, make_breaker, clock
):
    cb = make_breaker(volume_threshold=1000, failure_threshold=2, half_open_requests=1)
    fail(cb, 2)
    assert cb.state is OPEN
    if back_to_closed == "trials":
        clock.advance(30)
        succeed(cb)
    else:
        getattr(cb, back_to_closed)()
        cb.clear_force()
    assert cb.state is CLOSED
    fail(cb)
    assert cb.state is CLOSED
    fail(cb)
    assert cb.state is OPEN


# ----- rule 2: uncounted exceptions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("classifier", "fn", "error"),
    [(None, bad_input, ValueError), (lambda exc: False, boom, ConnectionError)],
    ids=["default classifier", "custom classifier"],
)
def test_exception_the_classifier_rejects_is_not_counted_and_is_reraised(
    classifier, fn, error, make_breaker, collector
):
    cb = make_breaker(
        volume_threshold=1, **({"error_classifier": classifier} if classifier else {})
    )
    for _ in range(5):
        with pytest.raises(error):
            cb.call(fn)
    m = cb.metrics()
    assert (cb.state, m["total"], m["success"], m["failure"]) == (CLOSED, 0, 0, 0)
    assert m["total_executions"] == 5
    assert collector.events == []


# ----- rule 3: OPEN ------------------------------------------------------------------------------


def test_open_rejects_without_calling_fn_until_exactly_the_sleep_window_has_passed(
    make_breaker, clock
):
    cb = make_breaker(volume_threshold=1, sleep_window=30)
    fail(cb)
    clock.advance(12.5)
    called = []
    with pytest.raises(CircuitBreakerOpenError) as info:
        cb.call(called.append, 1)
    assert called == []
    assert (info.value.name, info.value.state, info.value.retry_after) == ("test", OPEN, 17.5)
    clock.advance(17.25)
    assert rejection(cb).retry_after == pytest.approx(0.25)
    assert cb.metrics()["rejected"] == 2
    clock.advance(0.25)
    succeed(cb)


def test_reading_state_or_metrics_never_moves_open_to_half_open(make_breaker, clock, listener):
    cb = make_breaker(volume_threshold=1)
    fail(cb)
    clock.advance(1000)
    for _ in range(3):
        assert cb.state is OPEN
        assert cb.metrics()["state"] is OPEN
    generation = cb.metrics()["generation"]
    assert cb.can_execute()
    assert cb.state is HALF
    assert cb.metrics()["generation"] == generation + 1
    assert listener.transitions == [(CLOSED, OPEN), (OPEN, HALF)]


# ----- rule 4: HALF_OPEN -------------------------------------------------------------------------


def test_half_open_admits_at_most_half_open_requests_trials_then_rejects_as_half_open(
    make_breaker, clock
):
    cb = make_breaker(volume_threshold=1, half_open_requests=3, sleep_window=30)
    open_then_half_open(cb, clock)
    assert [cb.can_execute() for _ in range(5)] == [True, True, True, False, False]
    m = cb.metrics()
    assert (m["half_open_in_flight"], m["rejected"], m["total_executions"]) == (3, 2, 4)
    clock.advance(10)
    err = rejection(cb)
    assert err.state is HALF
    assert err.retry_after is not None
    assert 0 <= err.retry_after <= 30


@pytest.mark.parametrize(
    ("trials", "decided"),
    [
        ("sss", CLOSED),  # 3 / 5 == 0.6: certain before the other two trials
        ("fff", OPEN),  # after "ff", 3 of the remaining 3 could still make 0.6
        ("sfsfs", CLOSED),
        ("sfsff", OPEN),
        ("fsfss", CLOSED),
    ],
)
def test_half_open_decides_as_soon_as_the_result_is_certain(
    trials, decided, make_breaker, clock, listener
):
    cb = make_breaker(volume_threshold=1, half_open_requests=5, success_threshold=0.6)
    open_then_half_open(cb, clock)
    for i, trial in enumerate(trials, 1):
        succeed(cb) if trial == "s" else fail(cb)
        m = cb.metrics()
        if i < len(trials):
            assert cb.state is HALF
            assert (m["half_open_successes"], m["half_open_failures"]) == (
                trials[:i].count("s"),
                trials[:i].count("f"),
            )
    assert cb.state is decided
    assert listener.transitions == [(CLOSED, OPEN), (OPEN, HALF), (HALF, decided)]


def test_half_open_gives_slot_back_on_uncounted_exception(make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=1)
    open_then_half_open(cb, clock)
    with pytest.raises(ValueError):
        cb.call(bad_input)
    m = cb.metrics()
    assert (cb.state, m["in_flight"], m["half_open_in_flight"]) == (HALF, 0, 0)
    succeed(cb)
    assert cb.state is CLOSED


def test_closing_clears_the_window_and_restores_the_configured_sleep_window(make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=1, sleep_window=30)
    open_then_half_open(cb, clock)
    fail(cb)
    assert cb.metrics()["sleep_window"] == 45.0
    clock.advance(45)
    succeed(cb)
    m = cb.metrics()
    assert (cb.state, m["total"], m["failure"], m["sleep_window"]) == (CLOSED, 0, 0, 30.0)
    fail(cb)  # an opening from CLOSED uses the (restored) current value
    assert rejection(cb).retry_after == 30.0


def test_sleep_window_grows_on_each_failed_period_and_is_capped(make_breaker, clock):
    cb = make_breaker(
        volume_threshold=1,
        half_open_requests=1,
        sleep_window=30,
        sleep_window_multiplier=1.5,
        max_sleep_window=100,
    )
    fail(cb)
    seen = []
    for _ in range(4):
        clock.advance(cb.metrics()["sleep_window"])
        fail(cb)  # the trial fails: OPEN again with a grown window
        seen.append((cb.metrics()["sleep_window"], rejection(cb).retry_after))
    assert seen == [(45.0, 45.0), (67.5, 67.5), (100.0, 100.0), (100.0, 100.0)]
    cb.reset()
    assert cb.metrics()["sleep_window"] == 30.0


# ----- rule 4: orphaned trials -------------------------------------------------------------------


def test_trial_running_a_whole_sleep_window_is_judged_failed_at_next_admission(
    make_breaker, clock, collector
):
    cb = make_breaker(volume_threshold=1, half_open_requests=1, sleep_window=30)
    open_then_half_open(cb, clock)
    with cb:  # the hung trial
        clock.advance(29.5)
        assert rejection(cb).state is HALF
        assert cb.metrics()["orphaned"] == 0
        clock.advance(0.5)
        err = rejection(cb)  # this admission check judges the trial: OPEN with 45 s
        assert (err.state, err.retry_after) == (OPEN, 45.0)
        assert cb.metrics()["orphaned"] == 1
    m = cb.metrics()  # the late success changed nothing
    assert (cb.state, m["orphaned"], m["in_flight"], m["success"]) == (OPEN, 1, 0, 0)
    assert collector.kinds("success") == []


def test_orphaned_trials_late_outcome_is_ignored_by_the_next_period(make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=2, success_threshold=0.5)
    open_then_half_open(cb, clock)

    def hung_trial() -> None:
        clock.advance(30)
        succeed(cb)  # judges the hung trial failed (1 of 2), then 1 success of 2 closes
        assert cb.state is CLOSED
        raise ConnectionError("late")

    with pytest.raises(ConnectionError):
        cb.call(hung_trial)
    m = cb.metrics()
    assert (cb.state, m["failure"], m["orphaned"]) == (CLOSED, 0, 1)


def test_manual_trials_late_record_after_being_orphaned_is_ignored(make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=5)
    open_then_half_open(cb, clock)
    assert cb.can_execute()  # trial A hangs
    clock.advance(30)
    assert cb.can_execute()  # judges A failed, admits trial B
    cb.record_success()  # B
    cb.record_success()  # A's late outcome: no trial is running any more
    m = cb.metrics()
    assert (m["half_open_successes"], m["half_open_failures"]) == (1, 1)


# ----- rule 5: generations -----------------------------------------------------------------------


def test_outcome_of_call_admitted_before_opening_does_not_count_after_closing(make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=1)

    def admitted_in_the_first_closed_period() -> None:
        fail(cb)
        clock.advance(30)
        succeed(cb)
        assert cb.state is CLOSED
        raise ConnectionError("late")

    with pytest.raises(ConnectionError):
        cb.call(admitted_in_the_first_closed_period)
    assert cb.state is CLOSED
    assert cb.metrics()["failure"] == 0


def test_generation_check_reaches_across_reset(make_breaker, collector):
    cb = make_breaker(volume_threshold=1)

    def admitted_before_the_reset() -> None:
        cb.reset()
        raise ConnectionError("late")

    with pytest.raises(ConnectionError):
        cb.call(admitted_before_the_reset)
    assert cb.state is CLOSED
    assert cb.metrics()["failure"] == 0
    assert collector.kinds("failure") == []


def test_trial_of_an_earlier_half_open_period_does_not_count(make_breaker, clock):
    cb = make_breaker(volume_threshold=1, half_open_requests=1, sleep_window=30)
    open_then_half_open(cb, clock)
    with cb:  # trial of the first period, ends with a success after the second began
        cb.force_open()
        cb.clear_force()
        clock.advance(30)
        assert cb.can_execute()
        assert cb.state is HALF
    assert cb.state is HALF
    assert cb.metrics()["half_open_successes"] == 0


# ----- rule 6: force and reset -------------------------------------------------------------------


def test_force_open_rejects_with_retry_after_none_until_clear_force(make_breaker, clock, listener):
    cb = make_breaker(sleep_window=30)
    cb.force_open()
    clock.advance(20)
    cb.clear_force()  # the sleep window counts from the force: 10 s left
    assert rejection(cb).retry_after == 10.0
    cb.force_open()
    clock.advance(10_000)  # no automatic transition while forced
    err = rejection(cb)
    assert (err.state, err.retry_after) == (OPEN, None)
    assert not cb.can_execute()
    assert cb.state is OPEN
    cb.clear_force()
    succeed(cb)
    assert listener.transitions == [(CLOSED, OPEN), (OPEN, HALF)]


def test_force_closed_admits_every_call_and_judges_no_outcome(make_breaker, listener):
    cb = make_breaker(volume_threshold=1, failure_threshold=1)
    fail(cb)
    cb.force_closed()
    fail(cb, 20)
    m = cb.metrics()
    assert (cb.state, m["failure"]) == (CLOSED, 20)
    assert listener.transitions == [(CLOSED, OPEN), (OPEN, CLOSED)]
    cb.clear_force()
    fail(cb)  # judged again
    assert cb.state is OPEN


def test_reset_clears_force_window_and_half_open_counters(make_breaker, clock, listener):
    cb = make_breaker(volume_threshold=1, half_open_requests=3)
    open_then_half_open(cb, clock)
    fail(cb)
    cb.reset()
    m = cb.metrics()
    assert (cb.state, m["total"], m["sleep_window"]) == (CLOSED, 0, 30.0)
    assert "half_open_failures" not in m
    assert listener.transitions[-1] == (HALF, CLOSED)
    cb.force_open()
    cb.reset()
    succeed(cb)


def test_force_and_reset_are_heard_only_when_the_state_changes(make_breaker, listener, collector):
    cb = make_breaker()
    cb.force_closed()
    cb.reset()
    cb.force_open()
    cb.force_open()
    cb.clear_force()
    cb.force_closed()
    cb.reset()
    assert listener.transitions == [(CLOSED, OPEN), (OPEN, CLOSED)]
    assert collector.kinds("state_change") == [
        ("state_change", "test", "closed", "open"),
        ("state_change", "test", "open", "closed"),
    ]


# ----- manual use --------------------------------------------------------------------------------


def test_manual_can_execute_and_record_drive_the_breaker_like_calls(make_breaker, clock):
    cb = make_breaker(volume_threshold=2, half_open_requests=2, success_threshold=1.0)
    assert cb.can_execute()
    cb.record_failure(ConnectionError())
    assert cb.can_execute()
    cb.record_failure()
    assert cb.state is OPEN
    assert not cb.can_execute()
    clock.advance(30)
    assert cb.can_execute()
    assert cb.state is HALF
    assert cb.can_execute()
    cb.record_success()
    cb.record_success()
    assert cb.state is CLOSED
    m = cb.metrics()
    assert (m["total_executions"], m["rejected"], m["in_flight"]) == (4, 1, 0)


def test_record_failure_always_counts_exc_only_names_the_type_and_uncounted_is_unreported(
    make_breaker, collector
):
    cb = make_breaker(volume_threshold=2)
    assert cb.can_execute()
    cb.record_failure(ValueError("the classifier would not count this, record_failure does"))
    assert cb.can_execute()
    fail(cb)  # another call opens the breaker meanwhile
    cb.record_failure(TimeoutError())  # OPEN: nothing to count, so nothing to report
    assert cb.metrics()["failure"] == 2
    assert collector.kinds("failure") == [
        ("failure", "test", "ValueError"),
        ("failure", "test", "ConnectionError"),
    ]


# ----- rule 9: metrics ---------------------------------------------------------------------------

BASE_KEYS = {"name", "state", "total", "success", "failure", "error_rate", "rejected"} | {
    "in_flight",
    "total_executions",
    "generation",
    "sleep_window",
    "orphaned",
}
HALF_OPEN_KEYS = {"half_open_in_flight", "half_open_successes", "half_open_failures"}


def test_metrics_keys_are_exactly_rule_9_plus_half_open_keys_only_while_half_open(
    make_breaker, clock
):
    cb = make_breaker(volume_threshold=1, half_open_requests=1)
    assert set(cb.metrics()) == BASE_KEYS
    fail(cb)
    assert set(cb.metrics()) == BASE_KEYS
    clock.advance(30)
    with cb:
        assert set(cb.metrics()) == BASE_KEYS | HALF_OPEN_KEYS
    assert set(cb.metrics()) == BASE_KEYS


def test_metrics_window_counters_clear_on_close_while_lifetime_counters_stay(make_breaker, clock):
    cb = make_breaker(volume_threshold=4, half_open_requests=1)
    succeed(cb)
    with pytest.raises(ValueError):
        cb.call(bad_input)
    fail(cb, 3)
    m = cb.metrics()
    assert m["name"] == "test"
    assert (m["total"], m["success"], m["failure"], m["error_rate"]) == (4, 1, 3, 0.75)
    rejection(cb)
    rejection(cb)
    clock.advance(30)
    succeed(cb)
    m = cb.metrics()
    assert (m["total"], m["success"], m["failure"], m["error_rate"]) == (0, 0, 0, 0.0)
    assert (m["rejected"], m["total_executions"], m["in_flight"]) == (2, 6, 0)


# ----- the sliding window through the breaker ----------------------------------------------------


def test_counts_expire_from_the_breakers_window_at_bucket_granularity(make_breaker, clock):
    cb = make_breaker(volume_threshold=4, window_size=60, bucket_count=10)
    clock.advance(5.5)
    fail(cb, 2)  # bucket 0 (0..6 s)
    clock.advance(0.5)
    fail(cb)  # bucket 1
    clock.advance(53.5)  # t = 59.5
    assert cb.metrics()["failure"] == 3
    clock.advance(0.5)  # t = 60: bucket 0 left the window
    assert cb.metrics()["failure"] == 1
    succeed(cb, 3)  # 1 of 4 counted failures: stays closed
    assert cb.state is CLOSED
    clock.advance(6)
    assert cb.metrics()["total"] == 3
