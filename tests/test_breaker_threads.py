"""One breaker, many threads: exact counts, HALF_OPEN never over-admitting, and every transition
delivered once, in order (contract rules 4 and 8)."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from resilience import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from resilience.testing import ManualClock

CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Starts ``count`` threads running ``target(i)`` behind a barrier and joins them."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # surfaced below, never lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def ok() -> None:
    pass


def boom() -> None:
    raise ConnectionError("down")


def bad_input() -> None:
    raise ValueError("not counted")


def test_counts_are_exact_when_eight_threads_call_at_once(collector):
    threads, calls = 8, 20_000
    cb = CircuitBreaker(
        name="busy",
        clock=ManualClock(),
        volume_threshold=10**12,  # never judged: every call is admitted
        window_size=3600,
        metrics=collector,
    )
    done: list[Counter[str]] = [Counter() for _ in range(threads)]

    def work(t: int) -> None:
        tally = done[t]
        plan = (ok, ok, boom, ok, bad_input, boom, ok)
        for i in range(calls):
            fn = plan[(i + t) % len(plan)]
            try:
                cb.call(fn)
                tally["success"] += 1
            except ConnectionError:
                tally["failure"] += 1
            except ValueError:
                tally["ignored"] += 1

    run_threads(threads, work)
    total = sum(done, Counter())
    assert total["success"] + total["failure"] + total["ignored"] == threads * calls
    m = cb.metrics()
    assert (m["state"], m["success"], m["failure"]) == (CLOSED, total["success"], total["failure"])
    assert (m["in_flight"], m["total_executions"], m["rejected"]) == (0, threads * calls, 0)
    heard = Counter(event[0] for event in collector.events)
    assert heard == Counter(success=total["success"], failure=total["failure"])


def half_open_cycle(cb: CircuitBreaker, threads: int) -> dict[str, int]:
    """Releases ``threads`` threads at once on a breaker whose sleep window has passed. Each
    calls a trial that blocks until every thread has been admitted or rejected, then fails.
    Returns the most trials seen running at once, how many ran, and how many were rejected."""
    gate, release = threading.Condition(), threading.Event()
    seen = {"active": 0, "max": 0, "entered": 0, "rejected": 0}
    states: list[CircuitState] = []

    def trial() -> None:
        with gate:
            seen["active"] += 1
            seen["entered"] += 1
            seen["max"] = max(seen["max"], seen["active"])
            gate.notify_all()
        release.wait(10)
        with gate:
            seen["active"] -= 1
        raise ConnectionError("the trial fails, so the breaker opens again")

    def attempt(_: int) -> None:
        try:
            cb.call(trial)
        except ConnectionError:
            pass
        except CircuitBreakerOpenError as err:
            with gate:
                states.append(err.state)
                seen["rejected"] += 1
                gate.notify_all()

    starter = threading.Thread(target=run_threads, args=(threads, attempt))
    starter.start()
    with gate:  # every thread has either entered a trial or been rejected
        assert gate.wait_for(lambda: seen["entered"] + seen["rejected"] == threads, 10)
    release.set()
    starter.join(30)
    assert not starter.is_alive()
    assert set(states) <= {HALF, OPEN}
    return seen


@pytest.mark.parametrize("half_open_requests", [1, 3])
def test_half_open_never_admits_more_than_half_open_requests_under_contention(
    half_open_requests, listener
):
    threads, cycles = 16, 5
    clock = ManualClock()
    cb = CircuitBreaker(
        name="contended",
        clock=clock,
        volume_threshold=1,
        half_open_requests=half_open_requests,
        sleep_window=10,
        sleep_window_multiplier=1.0,
    )
    cb.add_state_listener(listener)
    with pytest.raises(ConnectionError):
        cb.call(boom)

    for cycle in range(cycles):
        clock.advance(10)
        heard_before = len(listener.calls)
        seen = half_open_cycle(cb, threads)
        assert seen["max"] <= half_open_requests
        assert seen["entered"] == half_open_requests, f"cycle {cycle}: a trial slot was lost"
        assert cb.state is OPEN
        assert listener.transitions[heard_before:] == [(OPEN, HALF), (HALF, OPEN)]
    m = cb.metrics()
    assert (m["in_flight"], m["total_executions"]) == (0, 1 + cycles * half_open_requests)
    assert m["rejected"] == cycles * (threads - half_open_requests)


def test_every_transition_is_delivered_once_and_in_order_under_contention(listener, collector):
    threads, calls = 8, 3_000
    clock = ManualClock()
    cb = CircuitBreaker(
        name="churn",
        clock=clock,
        volume_threshold=2,
        error_threshold=0.3,
        half_open_requests=2,
        success_threshold=0.5,
        sleep_window=1,
        sleep_window_multiplier=1.0,
        metrics=collector,
    )
    cb.add_state_listener(listener)

    def work(t: int) -> None:
        for i in range(calls):
            if i % 50 == 0:
                clock.advance(1)
            with contextlib.suppress(ConnectionError, CircuitBreakerOpenError):
                cb.call(boom if (i * 7 + t) % 3 == 0 else ok)

    run_threads(threads, work)
    transitions = listener.transitions
    assert len(transitions) > 10, "the scenario should make the breaker move"
    assert transitions[0][0] is CLOSED
    for (_, to), (frm, _) in itertools.pairwise(transitions):
        assert frm is to, f"out of order: {transitions}"
    assert transitions[-1][1] is cb.state
    heard = [(e[2], e[3]) for e in collector.kinds("state_change")]
    assert heard == [(a.value, b.value) for a, b in transitions]
    assert cb.metrics()["in_flight"] == 0
