"""Scenario files for `python -m resilience simulate`: format, built-ins and error messages."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from resilience.simulate.builtin import BUILTIN_SCENARIOS
from resilience.simulate.scenario import (
    ConstantLatency,
    ExponentialLatency,
    LognormalLatency,
    ScenarioError,
    UniformLatency,
    load_scenario,
    parse_scenario,
)

FULL = """\
name = "checkout"
description = "A payment provider that browns out"
seed = 42
timeout = 0.8

[traffic]
arrivals = "uniform"

[[traffic.phases]]
duration = 30
rate = 10

[[traffic.phases]]
duration = 30
rate = 40

[[traffic.bursts]]
at = 10
duration = 5
rate = 100

[[phases]]
name = "healthy"
duration = 20
latency = { kind = "lognormal", median = 0.05, p99 = 0.2 }

[[phases]]
name = "brownout"
duration = 20
error_rate = 0.25
timeout_rate = 0.1
latency = { kind = "uniform", low = 0.1, high = 0.5 }
error_latency = 0.002

[[phases]]
name = "slow"
duration = 20
latency = { kind = "exponential", mean = 2.0 }

[[phases]]
name = "recovered"
duration = 20
latency = 0.03

[breaker]
preset = "critical"
sleep_window = 5

[retry]
max_attempts = 2
jitter = false
"""


def test_full_scenario_parses_every_section() -> None:
    scenario = parse_scenario(FULL, "checkout.toml")
    assert scenario.name == "checkout"
    assert scenario.seed == 42
    assert scenario.timeout == 0.8
    assert scenario.duration == 80.0
    assert [p.name for p in scenario.phases] == ["healthy", "brownout", "slow", "recovered"]
    assert [p.start for p in scenario.phases] == [0.0, 20.0, 40.0, 60.0]
    healthy, brownout, slow, recovered = scenario.phases
    assert healthy.latency == LognormalLatency(0.05, 0.2)
    assert brownout.latency == UniformLatency(0.1, 0.5)
    assert brownout.error_latency == ConstantLatency(0.002)
    assert slow.latency == ExponentialLatency(2.0)
    assert recovered.latency == recovered.error_latency == ConstantLatency(0.03)
    assert dict(scenario.breaker) == {"preset": "critical", "sleep_window": 5}
    assert dict(scenario.retry) == {"max_attempts": 2, "jitter": False}


def test_traffic_phases_and_bursts_become_rate_segments() -> None:
    traffic = parse_scenario(FULL).traffic
    # 10/s, +100/s burst from 10 to 15, 40/s from 30 on; the last rate holds to the end (80 s).
    assert traffic.segments == (
        (0.0, 10.0, 10.0),
        (10.0, 15.0, 110.0),
        (15.0, 30.0, 10.0),
        (30.0, 80.0, 40.0),
    )
    assert traffic.expected_requests() == 100 + 550 + 150 + 2000


def test_uniform_arrivals_are_evenly_spaced_from_zero() -> None:
    scenario = parse_scenario(
        '[traffic]\nrate = 4\narrivals = "uniform"\n[[phases]]\nduration = 2\n'
    )
    times = list(scenario.traffic.arrival_times(random.Random(0)))
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])


def test_uniform_arrivals_follow_a_piecewise_rate() -> None:
    traffic = parse_scenario(FULL).traffic
    times = list(traffic.arrival_times(random.Random(0)))
    assert len(times) == pytest.approx(traffic.expected_requests(), abs=1)
    assert sum(1 for t in times if 10.0 <= t < 15.0) == pytest.approx(550, abs=1)


def test_poisson_arrivals_average_the_rate_and_depend_only_on_the_seed() -> None:
    scenario = parse_scenario("[traffic]\nrate = 50\n[[phases]]\nduration = 100\n")
    first = list(scenario.traffic.arrival_times(random.Random(3)))
    assert first == list(scenario.traffic.arrival_times(random.Random(3)))
    assert first != list(scenario.traffic.arrival_times(random.Random(4)))
    assert len(first) == pytest.approx(5000, rel=0.05)


def test_phase_health_is_derived_from_expected_failures_and_can_be_overridden() -> None:
    scenario = parse_scenario(FULL)
    healthy, brownout, slow, recovered = scenario.phases
    assert healthy.healthy
    assert recovered.healthy
    assert not brownout.healthy
    # exponential latency, mean 2 s, against a 0.8 s timeout: exp(-0.4) of calls time out.
    assert slow.failure_rate == pytest.approx(0.6703, abs=1e-4)
    assert not slow.healthy
    assert scenario.outages() == [(20.0, 60.0)]
    forced = parse_scenario(
        "[traffic]\nrate = 1\n[[phases]]\nduration = 5\nerror_rate = 0.5\nhealthy = true\n"
    )
    assert forced.phases[0].healthy
    assert forced.outages() == []


def test_lognormal_latency_matches_its_median_and_p99() -> None:
    latency = LognormalLatency(0.1, 0.5)
    assert latency.sample(0.5) == pytest.approx(0.1)
    assert latency.sample(0.99) == pytest.approx(0.5)
    assert latency.exceed_probability(0.5) == pytest.approx(0.01)
    assert latency.exceed_probability(0.1) == pytest.approx(0.5)


@pytest.mark.parametrize("name", sorted(BUILTIN_SCENARIOS))
def test_builtin_scenarios_parse_and_contain_an_outage(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.source == f"<built-in {name}>"
    assert scenario.outages(), "every built-in has something for the breaker to do"
    assert scenario.phases[0].healthy
    assert scenario.phases[-1].healthy


def test_builtins_are_the_ones_the_issue_names() -> None:
    assert set(BUILTIN_SCENARIOS) == {"outage", "flapping", "brownout", "slow", "low-traffic"}


def test_outage_builtin_is_ten_minutes_at_200_per_second() -> None:
    scenario = load_scenario("outage")
    assert scenario.duration == 600.0
    assert scenario.traffic.expected_requests() == 120_000
    assert [p.healthy for p in scenario.phases] == [True, False, True]


def test_scenario_file_is_loaded_by_path_and_named_after_its_stem(tmp_path: Path) -> None:
    path = tmp_path / "payments.toml"
    path.write_text("[traffic]\nrate = 1\n[[phases]]\nduration = 5\n")
    scenario = load_scenario(path)
    assert scenario.name == "payments"
    assert scenario.source == str(path)


# ----------------------------------------------------------------------------- bad files


def _error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    return caught.value


def test_toml_syntax_error_names_line_and_column() -> None:
    error = _error("[traffic]\nrate = 10\n[[phases]]\nduration = = 5\n")
    assert (error.line, error.column) == (4, 12)
    assert str(error).startswith("bad.toml:4:12: invalid TOML: ")


def test_unknown_field_names_path_line_and_suggestion() -> None:
    text = (
        "[traffic]\nrate = 10\n"
        "[[phases]]\nduration = 5\n"
        "[[phases]]\nduration = 5\neror_rate = 0.5\n"
    )
    error = _error(text)
    assert error.field == "phases[1].eror_rate"
    assert error.line == 7
    assert "did you mean 'error_rate'?" in str(error)
    assert str(error).startswith("bad.toml:7: phases[1].eror_rate: unknown field")


def test_wrong_type_names_field_and_line() -> None:
    error = _error('[traffic]\nrate = 10\n\n[[phases]]\nname = "a"\nduration = "60"\n')
    assert error.field == "phases[0].duration"
    assert error.line == 6
    assert "must be a number, got a string ('60')" in str(error)


def test_negative_rate_is_refused() -> None:
    error = _error("[traffic]\nrate = -5\n[[phases]]\nduration = 5\n")
    assert str(error) == "bad.toml:2: traffic.rate: must be >= 0, got -5"


def test_error_rate_above_one_is_refused_on_its_line() -> None:
    text = (
        "[traffic]\nrate = 1\n"
        "[[phases]]\nduration = 5\n"
        "[[phases]]\nduration = 5\n"
        "[[phases]]\nduration = 5\n   error_rate = 1.5   # oops\n"
    )
    error = _error(text)
    assert (error.field, error.line) == ("phases[2].error_rate", 9)
    assert "must be <= 1" in error.reason


def test_bad_value_inside_an_inline_latency_table_points_at_its_line() -> None:
    text = (
        "[traffic]\nrate = 1\n[[phases]]\nduration = 5\n"
        'latency = { kind = "lognormal", median = 0.5, p99 = 0.1 }\n'
    )
    error = _error(text)
    assert (error.field, error.line) == ("phases[0].latency.p99", 5)
    assert "must be >= median (0.5)" in error.reason


def test_unknown_latency_kind_lists_the_known_ones() -> None:
    error = _error('[traffic]\nrate = 1\n[[phases]]\nduration = 5\nlatency = { kind = "gamma" }\n')
    assert error.field == "phases[0].latency.kind"
    assert "constant, uniform, exponential, lognormal" in error.reason


def test_second_burst_error_points_at_the_second_burst() -> None:
    text = (
        "[traffic]\nrate = 1\n"
        "[[traffic.bursts]]\nat = 1\nduration = 1\nrate = 5\n"
        "[[traffic.bursts]]\nat = 99\nduration = 1\nrate = 5\n"
        "[[phases]]\nduration = 5\n"
    )
    error = _error(text)
    assert (error.field, error.line) == ("traffic.bursts[1].at", 8)
    assert "before the scenario's end (5 s)" in error.reason


def test_missing_sections_are_named() -> None:
    assert _error("[traffic]\nrate = 1\n").field == "phases"
    assert _error("[[phases]]\nduration = 1\n").field == "traffic"
    assert _error("[traffic]\n[[phases]]\nduration = 1\n").field == "traffic.rate"


def test_hanging_calls_need_a_timeout() -> None:
    error = _error("[traffic]\nrate = 1\n[[phases]]\nduration = 5\ntimeout_rate = 0.1\n")
    assert error.field == "phases[0].timeout_rate"
    assert "needs a top-level timeout" in error.reason


def test_breaker_table_is_validated_by_circuit_breaker_config() -> None:
    text = "[traffic]\nrate = 1\n[[phases]]\nduration = 5\n[breaker]\nerror_threshold = 1.5\n"
    error = _error(text)
    assert (error.field, error.line) == ("breaker.error_threshold", 6)
    assert "CircuitBreakerConfig.error_threshold must be <= 1.0, got 1.5" in error.reason


def test_unknown_breaker_setting_and_bad_preset_are_refused() -> None:
    base = "[traffic]\nrate = 1\n[[phases]]\nduration = 5\n[breaker]\n"
    assert _error(base + "clock = 1\n").field == "breaker.clock"
    assert _error(base + 'preset = "fragile"\n').field == "breaker.preset"


def test_too_much_traffic_is_refused_before_running() -> None:
    error = _error("[traffic]\nrate = 1e6\n[[phases]]\nduration = 3600\n")
    assert error.field == "traffic"
    assert "at most 5,000,000" in error.reason


def test_unknown_builtin_and_missing_file_say_what_exists() -> None:
    with pytest.raises(ScenarioError, match="no built-in scenario of that name") as caught:
        load_scenario("outgae")
    assert "outage, flapping, brownout, slow, low-traffic" in str(caught.value)
