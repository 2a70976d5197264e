"""The simulation engine and its summary: virtual time, determinism and hand-checked numbers."""

from __future__ import annotations

import asyncio
import json

import pytest

from resilience import CircuitState
from resilience.simulate import (
    RunResult,
    build_policy,
    incidents,
    parse_scenario,
    render_text,
    simulate,
    summarize,
    to_json,
)
from resilience.simulate.engine import VirtualTimeLoop
from resilience.testing import ManualClock

# Ten requests a second, evenly spaced from t = 0; every call takes 10 ms.
# 0-1 s healthy, 1-2 s down (every call fails), 2-4 s healthy again.
TINY = """\
name = "tiny"

[traffic]
rate = 10
arrivals = "uniform"

[[phases]]
name = "healthy"
duration = 1
latency = 0.01

[[phases]]
name = "down"
duration = 1
error_rate = 1.0
latency = 0.01

[[phases]]
name = "recovered"
duration = 2
latency = 0.01
"""

# Opens on the 3rd counted failure (the rate rule can never fire with this volume), lets one trial
# through after 1 s, and closes if it succeeds.
HAND_CHECKED_BREAKER = [
    "failure_threshold=3",
    "volume_threshold=1000000",
    "sleep_window=1.0",
    "half_open_requests=1",
    "success_threshold=1.0",
]

# A brownout with random arrivals, latencies and jittered retries: everything seeded.
NOISY = """\
timeout = 0.5

[traffic]
rate = 80

[[phases]]
duration = 10
error_rate = 0.02
latency = { kind = "lognormal", median = 0.05, p99 = 0.4 }

[[phases]]
duration = 10
error_rate = 0.6
timeout_rate = 0.1
latency = { kind = "exponential", mean = 0.2 }

[[phases]]
duration = 10
latency = { kind = "uniform", low = 0.01, high = 0.1 }
"""


def _run(text: str, breaker: list[str], retry: list[str], seed: int | None = None) -> RunResult:
    scenario = parse_scenario(text)
    policy, _ = build_policy(breaker_items=breaker, retry_items=retry)
    return simulate(scenario, policy, seed)


def test_summary_of_the_tiny_scenario_matches_the_hand_count() -> None:
    result = _run(TINY, HAND_CHECKED_BREAKER, ["max_attempts=1"])
    # Failures end at 1.01, 1.11, 1.21 s: the third opens the breaker. The arrivals at 1.3-1.9 s
    # are rejected (unhealthy), and so are those at 2.0-2.2 s (healthy: false rejections). At
    # 2.3 s the sleep window (1.0 s from 1.21 s) is over: one trial, which succeeds at 2.31 s.
    assert [(t.from_state, t.to_state) for t in result.transitions] == [
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]
    assert [t.time for t in result.transitions] == pytest.approx([1.21, 2.30, 2.31])
    summary = summarize(result)
    assert summary.requests == 40
    assert summary.requests_succeeded == 10 + 1 + 16
    assert summary.requests_failed == 3
    assert summary.requests_rejected == 7 + 3
    assert summary.requests_unfinished == 0
    assert summary.outages == summary.outages_opened == 1
    assert summary.time_to_open == pytest.approx(0.21)
    assert summary.failing_calls_let_through == 3
    assert summary.false_rejections == 3
    assert summary.time_to_close == pytest.approx(0.31)
    assert summary.trial_calls == 1
    assert summary.attempts == 40
    assert summary.retry_amplification == 1.0
    assert summary.transitions == 3


def test_per_phase_counts_of_the_tiny_scenario() -> None:
    result = _run(TINY, HAND_CHECKED_BREAKER, ["max_attempts=1"])
    healthy, down, recovered = result.phases
    assert (healthy.calls, healthy.successes, healthy.failures, healthy.rejected) == (10, 10, 0, 0)
    assert (down.calls, down.successes, down.failures, down.rejected) == (3, 0, 3, 7)
    assert (recovered.calls, recovered.successes, recovered.rejected) == (17, 17, 3)
    assert recovered.trials == 1


def test_a_breaker_that_can_never_open_shows_no_transitions() -> None:
    result = _run(
        TINY,
        ["volume_threshold=1000000000"],
        ["max_attempts=3", "initial_delay=0.01", "jitter=False"],
    )
    assert result.transitions == ()
    summary = summarize(result)
    assert summary.transitions == 0
    assert summary.outages_opened == 0
    assert summary.time_to_open is None
    assert summary.false_rejections == 0
    # Every request in the down second tries 3 times (all within the second), the others once.
    assert summary.failing_calls_let_through == 30
    assert summary.attempts == 10 + 30 + 20
    assert summary.retry_amplification == pytest.approx(1.5)
    assert summary.requests_failed == 10
    document = to_json([result])
    assert document["runs"][0]["transitions"] == []
    assert "(none: the breaker stayed closed)" in render_text([result])


def test_retries_wait_their_backoff_in_virtual_time() -> None:
    result = _run(
        TINY,
        ["volume_threshold=1000000000"],
        ["max_attempts=3", "initial_delay=0.01", "jitter=False"],
    )
    # The down second's attempts end at t+0.01, t+0.03 (after a 0.01 s wait) and t+0.06
    # (after 0.02 s): a request arriving at 1.9 s fails for the last time at 1.96 s.
    bins = result.failures
    assert sum(bins) == 30
    assert result.bin_width == pytest.approx(0.2)
    assert bins[int(1.96 / 0.2)] > 0
    assert sum(bins[int(2.0 / 0.2) :]) == 0


def test_same_seed_gives_identical_json() -> None:
    first = to_json([_run(NOISY, ["preset=critical"], [], seed=11)])
    second = to_json([_run(NOISY, ["preset=critical"], [], seed=11)])
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["runs"][0]["transitions"], "the scenario should make the breaker move"


def test_another_seed_gives_other_traffic() -> None:
    first = _run(NOISY, [], [], seed=1)
    second = _run(NOISY, [], [], seed=2)
    assert (first.requests, first.successes) != (second.requests, second.successes)


def test_compared_configurations_see_the_same_traffic() -> None:
    scenario = parse_scenario(NOISY)
    main, other = build_policy(compare_items=["preset=flaky", "retry.max_attempts=1"])
    assert other is not None
    a, b = simulate(scenario, main, 5), simulate(scenario, other, 5)
    assert a.requests == b.requests
    assert summarize(a).attempts != summarize(b).attempts


def test_timeouts_fail_at_the_timeout_and_count_as_failures() -> None:
    text = """\
timeout = 0.5
[traffic]
rate = 10
arrivals = "uniform"
[[phases]]
duration = 1
latency = 2.0
"""
    result = _run(text, ["volume_threshold=1000000000"], ["max_attempts=1"])
    # Calls at 0.0 ... 0.9 s time out at 0.5 ... 1.4 s; the scenario ends at 1 s.
    assert result.phases[0].calls == 10
    assert result.phases[0].failures == 5
    assert result.phases[0].successes == 0
    assert result.requests_failed == 5
    assert result.requests_unfinished == 5
    first_failure_bin = next(i for i, n in enumerate(result.failures) if n)
    assert first_failure_bin * result.bin_width == pytest.approx(0.5)
    assert not result.scenario.phases[0].healthy


def test_incidents_report_each_outage_of_a_flapping_dependency() -> None:
    text = '[traffic]\nrate = 10\narrivals = "uniform"\n' + "".join(
        f"[[phases]]\nduration = 1\nlatency = 0.01\nerror_rate = {rate}\n"
        for rate in (0, 1, 0, 1, 0)
    )
    result = _run(text, [*HAND_CHECKED_BREAKER[:-3], "sleep_window=0.5"], ["max_attempts=1"])
    found = incidents(result)
    assert [(i.start, i.end) for i in found] == [(1.0, 2.0), (3.0, 4.0)]
    assert found[0].time_to_open == pytest.approx(0.21)
    assert all(i.recovered for i in found)
    summary = summarize(result)
    assert summary.outages == 2
    assert summary.recoveries == 2


def test_text_report_lists_transitions_and_both_columns() -> None:
    scenario = parse_scenario(TINY)
    main, other = build_policy(
        breaker_items=HAND_CHECKED_BREAKER,
        retry_items=["max_attempts=1"],
        compare_items=["sleep_window=0.5"],
    )
    assert other is not None
    text = render_text([simulate(scenario, main), simulate(scenario, other)])
    assert "Transitions: failure_threshold=3" in text
    assert "Transitions: sleep_window=0.5" in text
    assert "closed -> open" in text
    lines = text.splitlines()
    header = lines[lines.index("Summary") + 1].split()
    assert header[0] == "failure_threshold=3"
    assert header[-1] == "sleep_window=0.5"
    assert "time to open after outage began" in text
    assert "0.21 s" in text


def test_virtual_time_loop_runs_ties_in_schedule_order_and_moves_the_clock() -> None:
    clock = ManualClock()
    loop = VirtualTimeLoop(clock)
    seen: list[tuple[str, float]] = []

    async def task(name: str, delays: list[float]) -> None:
        for delay in delays:
            await loop.sleep(delay)
            seen.append((name, clock.now()))

    loop.spawn(task("a", [1.0, 0.5]))
    loop.spawn(task("b", [1.0]))
    loop.spawn_at(1_250_000_000, task("c", [0.0]))
    loop.run(10_000_000_000)
    assert seen == [("a", 1.0), ("b", 1.0), ("c", 1.25), ("a", 1.5)]
    assert loop.now == 1.5


def test_virtual_time_loop_stops_at_the_horizon_and_closes_what_is_left() -> None:
    clock = ManualClock()
    loop = VirtualTimeLoop(clock)
    finished: list[str] = []

    async def task() -> None:
        try:
            await loop.sleep(5.0)
        finally:
            finished.append("closed")

    loop.spawn(task())
    loop.run(1_000_000_000)
    assert clock.now() == 0.0
    assert loop.close() == 1
    assert finished == ["closed"]


def test_virtual_time_loop_refuses_real_asyncio_waits() -> None:
    loop = VirtualTimeLoop(ManualClock())

    async def task() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(RuntimeError):  # no running asyncio loop: asyncio code cannot sneak in
        loop.spawn(task())

    class Strange:
        def __await__(self):  # type: ignore[no-untyped-def]
            yield "not a time"

    async def odd() -> None:
        await Strange()

    with pytest.raises(TypeError, match="only virtual-time sleeps"):
        loop.spawn(odd())
