"""Runs the real ``CircuitBreaker`` and ``Retry`` through a scenario, in virtual time.

Design. Requests overlap: a call takes its latency, a retry waits its backoff, and meanwhile
other requests arrive. The simulation therefore needs concurrency, but in virtual time, and it
must run the library's own code rather than a model of it. It does both with the library's async
API and a tiny discrete-event loop of its own instead of asyncio:

* Each logical request is a coroutine that awaits ``Retry(config, breaker=cb).call_async(attempt)``
  exactly as a service would. The breaker admits or rejects each attempt (``call_async``), and the
  retry decides about backoff, ``retry_after`` and budgets; none of that is re-implemented here.
* The dependency (``attempt``) awaits its latency, then returns or raises. A call slower than the
  scenario's timeout raises ``TimeoutError`` at ``t + timeout`` instead.
* Every wait in that code (the dependency's latency, ``Retry``'s injected ``async_sleep``) is an
  awaitable that yields its duration straight up to the loop. ``VirtualTimeLoop`` keeps a heap of
  ``(wake-up time, sequence number, coroutine)``, pops the earliest, advances the shared
  ``ManualClock`` to that time and resumes the coroutine until its next wait. Breakers and retries
  read that clock, so windows, sleep windows and budgets see virtual time; nothing really sleeps.

Why not asyncio with a virtual clock: its loop needs selector and timer plumbing overridden, and
every wait becomes a future, a handle and a callback. The coroutines here only ever wait for
time, so a heap and ``coroutine.send`` are all the loop needs: a few dozen lines, exactly
deterministic (ties run in the order they were scheduled), and several times faster.

Time is kept in integer nanoseconds, the clock's own unit, so advancing it never drifts. Random
draws are seeded: arrivals and each request's first-attempt draws come from one stream that no
configuration can disturb, so two configurations compared see the same traffic meeting the same
dependency; retries and jitter draw from streams of their own.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import math
from bisect import bisect_right
from collections.abc import Coroutine, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from random import Random
from typing import Any, TypeAlias

from ..breaker import CircuitBreaker, CircuitState
from ..errors import CircuitBreakerOpenError
from ..retry import Retry
from ..testing import ManualClock
from .policy import Policy
from .scenario import Scenario

__all__ = [
    "DependencyError",
    "PhaseCounts",
    "RunResult",
    "Transition",
    "VirtualTimeLoop",
    "simulate",
]

_NS = 1_000_000_000
_NICE_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0)

# The breaker and retry log every transition and give-up; a simulation makes thousands of them.
_SILENT = logging.Logger("resilience.simulate", logging.CRITICAL + 1)

Task: TypeAlias = Coroutine[Any, None, None]
"""A coroutine the loop drives; it may only await ``VirtualTimeLoop.sleep`` and ``wake_at``."""


class DependencyError(ConnectionError):
    """What the simulated dependency raises when a call fails (counted and retried)."""


class _Sleep:
    """Awaitable: resume after ``seconds`` of virtual time (yields a float to the loop)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def __await__(self) -> Generator[float, None, None]:
        yield self.seconds


class _WakeAt:
    """Awaitable: resume at the absolute time ``ns`` (yields an int to the loop)."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __await__(self) -> Generator[int, None, None]:
        yield self.ns


class VirtualTimeLoop:
    """A discrete-event loop for coroutines that only wait for time.

    Args:
        clock: the clock every breaker and retry of the simulation reads; the loop advances it.
    """

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock
        self.now_ns: int = round(clock.now() * _NS)
        self._queue: list[tuple[int, int, Task]] = []
        self._seq = itertools.count()

    @property
    def now(self) -> float:
        """The current virtual time, seconds."""
        return self.now_ns / _NS

    @staticmethod
    def sleep(seconds: float) -> _Sleep:
        """An awaitable that resumes the caller ``seconds`` later (negative counts as 0)."""
        return _Sleep(seconds)

    @staticmethod
    def wake_at(ns: int) -> _WakeAt:
        """An awaitable that resumes the caller at virtual time ``ns`` (nanoseconds)."""
        return _WakeAt(ns)

    def spawn(self, task: Task) -> None:
        """Starts ``task`` now: it runs until its first wait, before the caller continues."""
        self._resume(task)

    def spawn_at(self, ns: int, task: Task) -> None:
        """Starts ``task`` at virtual time ``ns`` (now, if that has passed)."""
        heapq.heappush(self._queue, (max(ns, self.now_ns), next(self._seq), task))

    def _resume(self, task: Task) -> None:
        """Runs ``task`` until its next wait and schedules its wake-up."""
        try:
            signal = task.send(None)
        except StopIteration:
            return
        if type(signal) is float:
            if not signal >= 0.0:  # also catches NaN
                signal = 0.0
            when = self.now_ns + round(signal * _NS)
        elif type(signal) is int:
            when = max(signal, self.now_ns)
        elif signal is None:  # a bare yield, as asyncio.sleep(0) does: let others run first
            when = self.now_ns
        else:
            task.close()
            raise TypeError(
                f"a simulated task awaited {signal!r}; only virtual-time sleeps are supported"
            )
        heapq.heappush(self._queue, (when, next(self._seq), task))

    def run(self, until_ns: int) -> None:
        """Runs every wake-up earlier than ``until_ns``, in time order (ties in schedule order)."""
        queue = self._queue
        advance = self._clock.advance
        resume = self._resume
        pop = heapq.heappop
        while queue and queue[0][0] < until_ns:
            when, _, task = pop(queue)
            if when > self.now_ns:
                advance((when - self.now_ns) / _NS)
                self.now_ns = when
            resume(task)

    def close(self) -> int:
        """Closes the coroutines still waiting; returns how many there were."""
        pending = self._queue
        self._queue = []
        for _, _, task in pending:
            task.close()
        return len(pending)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of the breaker.

    Attributes:
        time: seconds from the scenario's start.
        from_state: the state left.
        to_state: the state entered.
        error_rate: the window's error rate at that moment.
        window_total: counted outcomes in the window at that moment.
    """

    time: float
    from_state: CircuitState
    to_state: CircuitState
    error_rate: float
    window_total: int


@dataclass(frozen=True, slots=True)
class PhaseCounts:
    """What happened to attempts in one phase of the scenario.

    Attributes:
        calls: attempts the breaker let through (counted when they started).
        successes: of those, the ones that succeeded.
        failures: the ones that failed (error or time-out).
        rejected: attempts the breaker rejected (counted when rejected).
        trials: attempts let through while HALF_OPEN.
    """

    calls: int
    successes: int
    failures: int
    rejected: int
    trials: int


@dataclass(frozen=True, slots=True)
class RunResult:
    """The raw record of one simulation run (``report`` summarizes it).

    Attributes:
        scenario: what was simulated.
        policy: the configuration that ran.
        seed: the random seed.
        transitions: every state change, in order.
        phases: per-phase attempt counts, in the scenario's phase order.
        requests: logical requests that arrived.
        requests_succeeded: requests whose retry loop returned a result.
        requests_failed: requests that ended in ``RetryError`` (or another error).
        requests_rejected: requests that ended in ``CircuitBreakerOpenError`` (not retried,
            because its ``retry_after`` did not fit).
        requests_unfinished: requests still running at the scenario's end.
        bin_width: seconds per bin of the timeline series.
        successes: succeeded attempts per bin (by the time they ended).
        failures: failed attempts per bin (by the time they ended).
        rejections: rejected attempts per bin.
        sample_width: seconds between window samples.
        window_error_rate: the breaker's window error rate, sampled every ``sample_width``
            seconds from t = 0.
        window_total: counted outcomes in the window at the same instants.
    """

    scenario: Scenario
    policy: Policy
    seed: int
    transitions: tuple[Transition, ...]
    phases: tuple[PhaseCounts, ...]
    requests: int
    requests_succeeded: int
    requests_failed: int
    requests_rejected: int
    requests_unfinished: int
    bin_width: float
    successes: tuple[int, ...]
    failures: tuple[int, ...]
    rejections: tuple[int, ...]
    sample_width: float
    window_error_rate: tuple[float, ...]
    window_total: tuple[int, ...]

    @property
    def calls(self) -> int:
        """Attempts the breaker let through."""
        return sum(p.calls for p in self.phases)

    @property
    def rejected(self) -> int:
        """Attempts the breaker rejected."""
        return sum(p.rejected for p in self.phases)


def _nice(seconds: float) -> float:
    """The smallest of 0.01, 0.02, 0.05, 0.1, ... 300 that is at least ``seconds``."""
    for step in _NICE_STEPS:
        if step >= seconds:
            return step
    return _NICE_STEPS[-1]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector.

    A run keeps tens of thousands of suspended coroutines alive, and each collection would walk
    them all; the run itself creates almost no reference cycles (the retry loop breaks its own).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Request:
    """One logical request: its pre-drawn randoms for the first attempt."""

    __slots__ = ("draws",)

    def __init__(self, draws: tuple[float, float, float]) -> None:
        self.draws: tuple[float, float, float] | None = draws


class _Simulation:
    """One run: the breaker and retry under test, the dependency, and the bookkeeping.

    It is also the breaker's metrics collector (only ``record_rejection`` does anything), which
    is how rejections are seen: they never reach the dependency.
    """

    def __init__(self, scenario: Scenario, policy: Policy, seed: int) -> None:
        self.scenario = scenario
        self.policy = policy
        self.seed = seed
        clock = ManualClock()
        self.loop = VirtualTimeLoop(clock)
        self.end_ns = round(scenario.duration * _NS)
        self.phases = scenario.phases
        self.starts = [round(p.start * _NS) for p in scenario.phases]
        self.timeout = scenario.timeout
        n = len(scenario.phases)
        self.calls = [0] * n
        self.successes = [0] * n
        self.failures = [0] * n
        self.rejected = [0] * n
        self.trials = [0] * n
        mean_rate = scenario.traffic.expected_requests() / scenario.duration
        width = max(scenario.duration / 600.0, 5.0 / mean_rate if mean_rate > 0 else 0.0)
        self.bin_width = min(_nice(width), _nice(scenario.duration / 20.0))
        self.bin_ns = round(self.bin_width * _NS)
        bins = -(-self.end_ns // self.bin_ns)
        self.success_bins = [0] * bins
        self.failure_bins = [0] * bins
        self.rejection_bins = [0] * bins
        self.sample_width = _nice(scenario.duration / 1000.0)
        self.error_rate: list[float] = []
        self.window_total: list[int] = []
        self.transitions: list[Transition] = []
        self.requests = self.succeeded = self.failed = self.rejected_requests = 0
        self.retry_rng = Random(f"{seed}/retries")
        self.traffic_rng = Random(seed)
        self.arrivals = scenario.traffic.arrival_times(self.traffic_rng)
        self.breaker = CircuitBreaker(
            policy.breaker.replace(clock=clock, metrics=self, logger=_SILENT)
        )
        self.breaker.add_state_listener(self._on_transition)
        self.retry = Retry(
            policy.retry.replace(
                clock=clock,
                async_sleep=self.loop.sleep,
                random=Random(f"{seed}/jitter"),
                logger=_SILENT,
            ),
            breaker=self.breaker,
        )

    # ----- the breaker's collector and listener

    def record_success(self, name: str) -> None:
        """Unused: successes are counted by the dependency."""

    def record_failure(self, name: str, error_type: str) -> None:
        """Unused: failures are counted by the dependency."""

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        """Unused: the state listener records transitions."""

    def record_rejection(self, name: str) -> None:
        """Counts a rejected attempt in its phase and time bin."""
        now = self.loop.now_ns
        self.rejected[bisect_right(self.starts, now) - 1] += 1
        self.rejection_bins[now // self.bin_ns] += 1

    def _on_transition(self, name: str, old: CircuitState, new: CircuitState) -> None:
        window = self.breaker.metrics()
        self.transitions.append(
            Transition(self.loop.now, old, new, window["error_rate"], window["total"])
        )

    # ----- the coroutines

    async def attempt(self, request: _Request) -> None:
        """One call to the dependency, as the phase at its start decides."""
        loop = self.loop
        k = bisect_right(self.starts, loop.now_ns) - 1
        phase = self.phases[k]
        self.calls[k] += 1
        if self.breaker.state is CircuitState.HALF_OPEN:
            self.trials[k] += 1
        draws = request.draws
        if draws is None:
            draw = self.retry_rng.random
            u_error, u_hang, u_latency = draw(), draw(), draw()
        else:
            u_error, u_hang, u_latency = draws
            request.draws = None
        failing = u_error < phase.error_rate
        if failing:
            latency = phase.error_latency.sample(u_latency)
        elif u_hang < phase.timeout_rate:
            latency = math.inf
        else:
            latency = phase.latency.sample(u_latency)
        timeout = self.timeout
        if timeout is not None and latency > timeout:
            await _Sleep(timeout)
            self.failures[k] += 1
            self.failure_bins[loop.now_ns // self.bin_ns] += 1
            raise TimeoutError(f"no answer within {timeout:g} s")
        await _Sleep(latency)
        if failing:
            self.failures[k] += 1
            self.failure_bins[loop.now_ns // self.bin_ns] += 1
            raise DependencyError("dependency unavailable")
        self.successes[k] += 1
        self.success_bins[loop.now_ns // self.bin_ns] += 1

    async def request(self, draws: tuple[float, float, float]) -> None:
        """One logical request: the retry loop around the breaker around the dependency."""
        self.requests += 1
        self.schedule_next_arrival()
        try:
            await self.retry.call_async(self.attempt, _Request(draws))
        except CircuitBreakerOpenError:
            self.rejected_requests += 1
        except Exception:
            self.failed += 1
        else:
            self.succeeded += 1

    def schedule_next_arrival(self) -> None:
        """Schedules the next request of the traffic; each arrival schedules the one after it.

        The traffic stream's draws (arrival gap, then the request's three first-attempt draws)
        come in a fixed order that no configuration can change.
        """
        arrival = next(self.arrivals, None)
        draw = self.traffic_rng.random
        draws = (draw(), draw(), draw())
        if arrival is not None:
            at = round(arrival * _NS)
            if at < self.end_ns:
                self.loop.spawn_at(at, self.request(draws))

    async def sampler(self) -> None:
        """Samples the breaker's window at regular instants."""
        metrics = self.breaker.metrics
        step = round(self.sample_width * _NS)
        for at in range(0, self.end_ns, step):
            await _WakeAt(at)
            window = metrics()
            self.error_rate.append(window["error_rate"])
            self.window_total.append(window["total"])

    def run(self) -> RunResult:
        """Runs the scenario to its end and returns the record."""
        loop = self.loop
        with _gc_paused():
            loop.spawn(self.sampler())
            self.schedule_next_arrival()
            loop.run(self.end_ns)
            loop.close()
        phases = tuple(
            PhaseCounts(*counts)
            for counts in zip(
                self.calls, self.successes, self.failures, self.rejected, self.trials, strict=True
            )
        )
        finished = self.succeeded + self.failed + self.rejected_requests
        return RunResult(
            scenario=self.scenario,
            policy=self.policy,
            seed=self.seed,
            transitions=tuple(self.transitions),
            phases=phases,
            requests=self.requests,
            requests_succeeded=self.succeeded,
            requests_failed=self.failed,
            requests_rejected=self.rejected_requests,
            requests_unfinished=self.requests - finished,
            bin_width=self.bin_width,
            successes=tuple(self.success_bins),
            failures=tuple(self.failure_bins),
            rejections=tuple(self.rejection_bins),
            sample_width=self.sample_width,
            window_error_rate=tuple(self.error_rate),
            window_total=tuple(self.window_total),
        )


def simulate(scenario: Scenario, policy: Policy, seed: int | None = None) -> RunResult:
    """Runs ``policy`` through ``scenario`` in virtual time.

    Args:
        scenario: the traffic and the dependency's health.
        policy: the breaker and retry settings to run.
        seed: the random seed; None uses the scenario's.

    Returns:
        The record of the run; the same inputs always give the same record.
    """
    return _Simulation(scenario, policy, scenario.seed if seed is None else seed).run()
