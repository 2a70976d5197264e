"""``python -m resilience demo``: a breaker protecting a flaky dependency, in real time.

The dependency is healthy, then mostly failing, then healthy again, over about eight seconds.
Every state transition is printed as it happens, then a summary of what the breaker did.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from .breaker import CircuitBreaker, CircuitState
from .errors import CircuitBreakerOpenError

__all__ = ["Phase", "run_demo"]


@dataclass(frozen=True)
class Phase:
    """A stretch of time in which the dependency fails at ``error_rate``."""

    name: str
    seconds: float
    error_rate: float


PHASES = (
    Phase("healthy", 2.0, 0.02),
    Phase("outage", 3.0, 0.9),
    Phase("recovered", 3.0, 0.0),
)


class DependencyDown(ConnectionError):
    """What the flaky dependency raises."""


def run_demo(
    phases: tuple[Phase, ...] = PHASES, rate: float = 200.0, seed: int = 7
) -> Counter[str]:
    """Runs the demo, printing transitions as they happen; returns the outcome counts."""
    rng = random.Random(seed)
    cb = CircuitBreaker(
        name="flaky-dependency",
        error_threshold=0.5,
        volume_threshold=20,
        window_size=1.0,
        bucket_count=10,
        sleep_window=0.5,
        half_open_requests=3,
        success_threshold=0.6,
    )
    start = time.monotonic()
    phase_name = phases[0].name

    def on_change(name: str, old: CircuitState, new: CircuitState) -> None:
        print(
            f"  t={time.monotonic() - start:5.2f}s  [{phase_name:>9}]  "
            f"{name}: {old.value} -> {new.value}"
        )

    cb.add_state_listener(on_change)
    outcomes: Counter[str] = Counter()
    print(f"Calling a flaky dependency {rate:.0f} times a second through {cb!r}")
    print(
        "  phases: "
        + ", ".join(f"{p.name} {p.seconds:g}s ({p.error_rate:.0%} errors)" for p in phases)
    )
    interval = 1.0 / rate
    phase_end = start
    for phase in phases:
        phase_name = phase.name
        phase_end += phase.seconds

        def dependency(error_rate: float = phase.error_rate) -> str:
            if rng.random() < error_rate:
                raise DependencyDown("dependency unavailable")
            return "ok"

        next_call = time.monotonic()
        while next_call < phase_end:
            try:
                cb.call(dependency)
                outcomes["success"] += 1
            except DependencyDown:
                outcomes["failure"] += 1
            except CircuitBreakerOpenError:
                outcomes["rejected"] += 1
            next_call += interval
            pause = next_call - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    metrics = cb.metrics()
    total = sum(outcomes.values())
    print(f"Summary after {time.monotonic() - start:.1f}s: {total} calls")
    print(
        f"  succeeded {outcomes['success']}, failed {outcomes['failure']}, "
        f"rejected without calling {outcomes['rejected']}"
    )
    print(
        f"  final state {metrics['state'].value}, generation {metrics['generation']}, "
        f"lifetime rejections {metrics['rejected']}"
    )
    return outcomes
