"""Backoff schedules: exact exponential delays, caps, and the bounds of each jitter strategy."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.backoff import (
    Backoff,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
    backoff_for,
    exponential,
)
from resilience.retry import Retry, RetryConfig
from resilience.testing import ManualClock

SEEDS = range(200)


def take(backoff: Backoff, n: int, rng: random.Random | None = None) -> list[float]:
    return list(itertools.islice(backoff.delays(rng), n))


def recorded_sleeps(config: RetryConfig, failures: int) -> list[float]:
    """The delays a Retry sleeps when fn fails `failures` times and then succeeds."""
    sleeps: list[float] = []
    remaining = [failures]

    def fn() -> str:
        if remaining[0]:
            remaining[0] -= 1
            raise ConnectionError("down")
        return "ok"

    assert Retry(config.replace(sleep=sleeps.append)).call(fn) == "ok"
    return sleeps


# --- exact schedule -------------------------------------------------------------------------------


def test_exponential_with_defaults_doubles_from_a_tenth_up_to_the_cap() -> None:
    assert [exponential(0.1, 2.0, 5.0, n) for n in range(1, 9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )


def test_exponential_first_delay_is_initial_exactly() -> None:
    assert exponential(0.25, 3.0, 10.0, 1) == 0.25


def test_exponential_with_huge_attempt_number_returns_cap_instead_of_overflowing() -> None:
    assert exponential(0.1, 2.0, 5.0, 100_000) == 5.0


def test_exponential_with_zero_initial_delay_is_always_zero() -> None:
    assert exponential(0.0, 2.0, 5.0, 100_000) == 0.0


def test_exponential_rejects_attempt_numbers_below_one() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        exponential(0.1, 2.0, 5.0, 0)


@pytest.mark.parametrize(
    ("initial", "factor", "cap", "expected"),
    [
        (0.1, 2.0, 5.0, [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]),
        (1.0, 3.0, 10.0, [1.0, 3.0, 9.0, 10.0, 10.0, 10.0, 10.0, 10.0]),
        (0.5, 1.0, 5.0, [0.5] * 8),
        (0.05, 3.0, 10.0, [0.05, 0.15, 0.45, 1.35, 4.05, 10.0, 10.0, 10.0]),
        (2.0, 2.0, 2.0, [2.0] * 8),
        (0.0, 2.0, 1.0, [0.0] * 8),
    ],
)
def test_exponential_backoff_yields_the_exact_capped_schedule(
    initial: float, factor: float, cap: float, expected: list[float]
) -> None:
    assert take(Exponential(initial, factor, cap), 8) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("overrides", "failures", "expected"),
    [
        ({}, 2, [0.1, 0.2]),
        ({"max_attempts": 6}, 5, [0.1, 0.2, 0.4, 0.8, 1.6]),
        (
            {"max_attempts": 8, "initial_delay": 1.0, "backoff_factor": 3.0, "max_delay": 10.0},
            7,
            [1.0, 3.0, 9.0, 10.0, 10.0, 10.0, 10.0],
        ),
        ({"max_attempts": 4, "initial_delay": 0.5, "backoff_factor": 1.0}, 3, [0.5] * 3),
    ],
)
def test_retry_without_jitter_sleeps_the_exact_schedule(
    overrides: dict[str, Any], failures: int, expected: list[float]
) -> None:
    config = RetryConfig(jitter=False, **overrides)
    assert recorded_sleeps(config, failures) == pytest.approx(expected)


def test_retry_never_sleeps_longer_than_max_delay() -> None:
    config = RetryConfig(max_attempts=20, initial_delay=0.3, max_delay=1.0, jitter=False)
    sleeps = recorded_sleeps(config, 19)
    assert max(sleeps) == 1.0
    assert sleeps[:3] == pytest.approx([0.3, 0.6, 1.0])


def test_retry_with_manual_clock_advances_it_by_the_schedule() -> None:
    clock = ManualClock()
    calls = itertools.count()

    def fn() -> int:
        if next(calls) < 3:
            raise TimeoutError
        return 1

    Retry(RetryConfig(max_attempts=4, jitter=False, clock=clock)).call(fn)
    assert clock.now() == pytest.approx(0.1 + 0.2 + 0.4)


# --- jitter bounds --------------------------------------------------------------------------------


def test_full_jitter_stays_within_zero_and_the_capped_delay_for_many_seeds() -> None:
    backoff = FullJitter(0.1, 2.0, 5.0)
    ceilings = take(Exponential(0.1, 2.0, 5.0), 10)
    for seed in SEEDS:
        delays = take(backoff, 10, random.Random(seed))
        assert all(0.0 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_equal_jitter_stays_within_half_and_all_of_the_capped_delay_for_many_seeds() -> None:
    backoff = EqualJitter(0.1, 2.0, 5.0)
    ceilings = take(Exponential(0.1, 2.0, 5.0), 10)
    for seed in SEEDS:
        delays = take(backoff, 10, random.Random(seed))
        assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_decorrelated_jitter_stays_between_initial_and_three_times_previous_for_many_seeds() -> (
    None
):
    backoff = DecorrelatedJitter(0.1, 2.0, 5.0)
    for seed in SEEDS:
        previous = 0.1
        for d in take(backoff, 15, random.Random(seed)):
            assert 0.1 <= d <= min(5.0, previous * 3)
            previous = d


@pytest.mark.parametrize("strategy", [FullJitter, EqualJitter, DecorrelatedJitter])
def test_jittered_delays_vary_between_seeds(strategy: type[Backoff]) -> None:
    backoff = strategy(0.1, 2.0, 5.0)
    firsts = {take(backoff, 1, random.Random(seed))[0] for seed in range(20)}
    assert len(firsts) == 20


@pytest.mark.parametrize("strategy", [FullJitter, EqualJitter, DecorrelatedJitter])
def test_jittered_delays_never_exceed_the_cap(strategy: type[Backoff]) -> None:
    backoff = strategy(0.5, 4.0, 2.0)
    for seed in SEEDS:
        assert max(take(backoff, 12, random.Random(seed))) <= 2.0


def test_full_jitter_draws_uniform_zero_to_delay_from_the_given_source() -> None:
    reference = random.Random(7)
    expected = [reference.uniform(0.0, c) for c in [0.1, 0.2, 0.4, 0.8]]
    assert take(FullJitter(0.1, 2.0, 5.0), 4, random.Random(7)) == expected


def test_equal_jitter_draws_half_plus_uniform_half_from_the_given_source() -> None:
    reference = random.Random(7)
    expected = [c / 2 + reference.uniform(0.0, c / 2) for c in [0.1, 0.2, 0.4, 0.8]]
    assert take(EqualJitter(0.1, 2.0, 5.0), 4, random.Random(7)) == expected


def test_decorrelated_jitter_draws_from_initial_to_three_times_previous() -> None:
    reference = random.Random(7)
    expected, previous = [], 0.1
    for _ in range(6):
        previous = min(5.0, reference.uniform(0.1, previous * 3))
        expected.append(previous)
    assert take(DecorrelatedJitter(0.1, 2.0, 5.0), 6, random.Random(7)) == expected


def test_decorrelated_jitter_keeps_its_previous_delay_per_iterator_not_on_the_object() -> None:
    backoff = DecorrelatedJitter(0.1, 2.0, 5.0)
    alone = take(backoff, 6, random.Random(3))
    first, second = backoff.delays(random.Random(3)), backoff.delays(random.Random(3))
    interleaved = [(next(first), next(second)) for _ in range(6)]
    assert [a for a, _ in interleaved] == alone
    assert [b for _, b in interleaved] == alone


def test_retry_with_seeded_random_gives_a_reproducible_jittered_schedule() -> None:
    def run(seed: int) -> list[float]:
        config = RetryConfig(max_attempts=5, random=random.Random(seed))
        return recorded_sleeps(config, 4)

    assert run(7) == run(7)
    assert run(7) != run(8)
    assert run(7) == take(FullJitter(0.1, 2.0, 5.0), 4, random.Random(7))


@pytest.mark.parametrize("jitter", [True, "full", "equal", "decorrelated"])
def test_retry_sleeps_follow_the_configured_jitter_strategy(jitter: bool | str) -> None:
    config = RetryConfig(max_attempts=6, jitter=jitter, random=random.Random(11))  # type: ignore[arg-type]
    strategy = backoff_for(jitter, 0.1, 2.0, 5.0)  # type: ignore[arg-type]
    assert recorded_sleeps(config, 5) == take(strategy, 5, random.Random(11))


# --- strategy selection and shape -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("jitter", "kind"),
    [
        (False, Exponential),
        (True, FullJitter),
        ("full", FullJitter),
        ("equal", EqualJitter),
        ("decorrelated", DecorrelatedJitter),
    ],
)
def test_backoff_for_maps_each_jitter_value_to_its_strategy(
    jitter: bool | str, kind: type[Backoff]
) -> None:
    backoff = backoff_for(jitter, 0.1, 2.0, 5.0)  # type: ignore[arg-type]
    assert type(backoff) is kind
    assert (backoff.initial, backoff.factor, backoff.cap) == (0.1, 2.0, 5.0)


def test_backoff_for_rejects_an_unknown_strategy_name() -> None:
    with pytest.raises(ValueError, match="'gaussian'"):
        backoff_for("gaussian", 0.1, 2.0, 5.0)  # type: ignore[arg-type]


def test_backoff_objects_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FullJitter(0.1, 2.0, 5.0).cap = 1.0  # type: ignore[misc]


@given(
    initial=st.floats(0.0, 10.0),
    factor=st.floats(1.0, 10.0),
    extra=st.floats(0.0, 100.0),
    jitter=st.sampled_from([False, "full", "equal", "decorrelated"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_strategy_yields_delays_between_zero_and_the_cap(
    initial: float, factor: float, extra: float, jitter: bool | str, seed: int
) -> None:
    cap = initial + extra
    backoff = backoff_for(jitter, initial, factor, cap)  # type: ignore[arg-type]
    assert all(0.0 <= d <= cap for d in take(backoff, 30, random.Random(seed)))
