"""A chain of calls A -> B -> C sharing one deadline: each step gets a slice of what is left.

The request has a 2-second budget. Service A may use up to 40% of it, B up to 30%, and C gets
whatever remains. Each call's timeout is the smaller of its slice and the time left, so the chain
as a whole can never overrun the budget, and a slow step fails (counted by its own breaker) instead
of starving the steps after it. Three runs: all fast; B too slow for its slice; A slow but within
its slice, and C slower than any fixed slice would allow but within what is left.

Run: python examples/cascading_timeouts.py
"""

from __future__ import annotations

import time

import httpx
from _loopback import Request, Response, http_service

from resilience import RetryConfig
from resilience.httpx import ResilientTransport
from resilience.registry import BreakerRegistry


class Deadline:
    """A time budget shared by every step of one request."""

    def __init__(self, seconds: float) -> None:
        self.total = seconds
        self.expires = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    def slice(self, fraction: float | None) -> float:
        """``fraction`` of the whole budget, never more than what is left (None: all of it)."""
        left = self.remaining()
        return left if fraction is None else min(self.total * fraction, left)


class Step:
    """A dependency whose latency the scenario sets."""

    def __init__(self) -> None:
        self.delay = 0.05

    def __call__(self, request: Request) -> Response:
        return Response(200, {"ok": True}, delay=self.delay)


PLAN = (("A", 0.4), ("B", 0.3), ("C", None))  # C takes the rest


def run_chain(client: httpx.Client, urls: dict[str, str], budget: float) -> str:
    deadline = Deadline(budget)
    done: list[str] = []
    for name, fraction in PLAN:
        timeout = deadline.slice(fraction)
        share = "the rest" if fraction is None else f"{fraction:.0%} = {budget * fraction:.1f}s"
        try:
            client.get(urls[name], timeout=timeout).raise_for_status()
        except httpx.TimeoutException:
            skipped = [n for n, _ in PLAN[len(done) + 1 :]]
            return f"  {name} ran past its slice ({share}) and timed out; chain aborted" + (
                f", {' and '.join(skipped)} not called" if skipped else ""
            )
        done.append(name)
        print(f"  {name} answered within its slice ({share})")
    return f"  chain complete within the {budget:.0f}s budget"


def main() -> None:
    steps = {name: Step() for name, _ in PLAN}
    with (
        http_service(steps["A"]) as a,
        http_service(steps["B"]) as b,
        http_service(steps["C"]) as c,
    ):
        urls = {"A": a.url, "B": b.url, "C": c.url}
        names = {httpx.URL(url).port: name for name, url in urls.items()}
        registry = BreakerRegistry()
        transport = ResilientTransport(
            registry=registry,
            retry=RetryConfig(max_attempts=1),  # no time in the budget for retries
            key=lambda request: f"service-{names[request.url.port]}",
        )
        with httpx.Client(transport=transport) as client:
            print("run 1: every service answers in 50 ms")
            print(run_chain(client, urls, budget=2.0))

            print("run 2: B takes 1.2 s, more than its 0.6 s slice")
            steps["B"].delay = 1.2
            print(run_chain(client, urls, budget=2.0))

            print("run 3: A takes 0.5 s of its 0.8 s; C takes 0.7 s, more than a 30% slice")
            steps["A"].delay, steps["B"].delay, steps["C"].delay = 0.5, 0.05, 0.7
            print(run_chain(client, urls, budget=2.0))

        failures = {key: m["failure"] for key, m in sorted(registry.metrics().items())}
        print(f"failures counted per breaker: {failures}")


if __name__ == "__main__":
    main()
