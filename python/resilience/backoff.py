"""Backoff schedules: how long to wait before each retry.

Every strategy is a small frozen object holding ``initial`` (the first delay), ``factor`` (growth
per retry) and ``cap`` (the largest delay ever returned). ``delays(rng)`` returns a fresh iterator
of delays for one retrying call: the first value is the wait before the 2nd attempt, the next one
the wait before the 3rd, and so on, without end. Any state a strategy needs between delays (the
previous delay, for decorrelated jitter) lives in that iterator, never on the shared object, so one
schedule can serve many threads and tasks at once.

The random draws are made through ``rng.uniform(a, b)`` exactly as documented on each class, so a
seeded ``random.Random`` gives a reproducible schedule.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias

__all__ = [
    "JITTER_STRATEGIES",
    "Backoff",
    "DecorrelatedJitter",
    "EqualJitter",
    "Exponential",
    "FullJitter",
    "JitterStrategy",
    "RandomSource",
    "backoff_for",
    "exponential",
]

JitterStrategy: TypeAlias = Literal["full", "equal", "decorrelated"]
"""The jitter strategies that can be named in ``RetryConfig(jitter=...)``."""

JITTER_STRATEGIES: tuple[JitterStrategy, ...] = ("full", "equal", "decorrelated")


class RandomSource(Protocol):
    """What a schedule needs from a random generator (``random.Random`` fits)."""

    def uniform(self, a: float, b: float, /) -> float:
        """A float in ``[a, b]``."""
        ...

    def random(self) -> float:
        """A float in ``[0, 1)``."""
        ...


# Shared default source. random.Random's methods are safe to call from many threads.
_DEFAULT_RANDOM = random.Random()


def exponential(initial: float, factor: float, cap: float, n: int) -> float:
    """The n-th exponential delay: ``min(cap, initial * factor ** (n - 1))``.

    Args:
        initial: the first delay (``n == 1``), seconds.
        factor: growth per step, ``>= 1``.
        cap: the largest value returned.
        n: the 1-based index of the delay (1 = wait before the 2nd attempt).

    Returns:
        The delay in seconds. A power too large for a float gives ``cap``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    if initial <= 0.0:
        return 0.0
    try:
        delay = initial * factor ** (n - 1)
    except OverflowError:
        return cap
    return min(delay, cap)


def _exponential_steps(initial: float, factor: float, cap: float) -> Iterator[float]:
    """``exponential(initial, factor, cap, n)`` for n = 1, 2, ... (stays at cap once reached)."""
    n = 1
    while True:
        delay = exponential(initial, factor, cap, n)
        yield delay
        if delay >= cap:
            break
        n += 1
    while True:
        yield cap


@dataclass(frozen=True, slots=True)
class Backoff(ABC):
    """A backoff strategy.

    Attributes:
        initial: the base delay in seconds (the exact first delay without jitter).
        factor: growth per retry, ``>= 1``.
        cap: no delay is longer than this.
    """

    initial: float
    factor: float
    cap: float

    @abstractmethod
    def delays(self, rng: RandomSource | None = None) -> Iterator[float]:
        """A fresh, endless iterator of delays for one retrying call.

        Args:
            rng: random source for jittered strategies; None uses a shared ``random.Random``.
        """


@dataclass(frozen=True, slots=True)
class Exponential(Backoff):
    """No jitter: delay n is ``min(cap, initial * factor ** (n - 1))``.

    With the defaults (0.1, 2.0, 5.0): 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, ...
    """

    def delays(self, rng: RandomSource | None = None) -> Iterator[float]:
        """The exact exponential schedule (``rng`` is not used)."""
        return _exponential_steps(self.initial, self.factor, self.cap)


@dataclass(frozen=True, slots=True)
class FullJitter(Backoff):
    """Full jitter: delay n is ``rng.uniform(0, d)`` with ``d`` the capped exponential delay n.

    Spreads clients evenly over the whole window; the mean is half the exponential delay.
    """

    def delays(self, rng: RandomSource | None = None) -> Iterator[float]:
        """Uniform delays in ``[0, d]``."""
        uniform = (rng or _DEFAULT_RANDOM).uniform
        for d in _exponential_steps(self.initial, self.factor, self.cap):
            yield uniform(0.0, d)


@dataclass(frozen=True, slots=True)
class EqualJitter(Backoff):
    """Equal jitter: delay n is ``d / 2 + rng.uniform(0, d / 2)`` with ``d`` as in FullJitter.

    Half of the exponential delay is kept, half is random, so a client never retries too soon.
    """

    def delays(self, rng: RandomSource | None = None) -> Iterator[float]:
        """Uniform delays in ``[d / 2, d]``."""
        uniform = (rng or _DEFAULT_RANDOM).uniform
        for d in _exponential_steps(self.initial, self.factor, self.cap):
            half = d / 2.0
            yield half + uniform(0.0, half)


@dataclass(frozen=True, slots=True)
class DecorrelatedJitter(Backoff):
    """Decorrelated jitter: ``delay = min(cap, rng.uniform(initial, previous * 3))``.

    ``previous`` starts at ``initial`` and is the last delay returned, so each delay depends on
    the one before rather than on the attempt number; ``factor`` is not used. The result never
    drops below ``initial`` (or ``cap``, if smaller). With ``initial == 0`` every delay is 0.
    """

    def delays(self, rng: RandomSource | None = None) -> Iterator[float]:
        """Delays in ``[initial, min(cap, previous * 3)]``."""
        uniform = (rng or _DEFAULT_RANDOM).uniform
        low, cap = self.initial, self.cap
        previous = low
        while True:
            high = previous * 3.0
            # min(high, ...) guards against uniform() rounding one ulp past its upper bound.
            previous = min(cap, high, uniform(low, high))
            yield previous


def backoff_for(
    jitter: bool | JitterStrategy, initial: float, factor: float, cap: float
) -> Backoff:
    """The strategy for a ``RetryConfig.jitter`` value.

    Args:
        jitter: False (exact schedule), True or ``"full"``, ``"equal"`` or ``"decorrelated"``.
        initial: first delay, seconds.
        factor: growth per retry.
        cap: largest delay.

    Raises:
        ValueError: ``jitter`` names no known strategy.
    """
    if jitter is False:
        return Exponential(initial, factor, cap)
    if jitter is True or jitter == "full":
        return FullJitter(initial, factor, cap)
    if jitter == "equal":
        return EqualJitter(initial, factor, cap)
    if jitter == "decorrelated":
        return DecorrelatedJitter(initial, factor, cap)
    raise ValueError(f"jitter must be a bool or one of {JITTER_STRATEGIES}, got {jitter!r}")
