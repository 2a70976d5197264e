"""A hypothesis state machine drives a real CircuitBreaker and a plain-Python model of the contract
side by side, and compares state, metrics and transitions after every step.

Calls that stay running are ``call_async`` coroutines stepped by hand (``send`` / ``throw``): each
holds its own permit, so trials can hang, finish late, be cancelled or be orphaned in any order.
Time is integer nanoseconds in the model, exactly what the ManualClock holds.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from resilience import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from resilience.testing import ManualClock

CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
NS = 1_000_000_000
OUTCOMES = ["success", "failure", "ignored"]


def ns(seconds: float) -> int:
    return round(seconds * NS)


class _Suspend:
    def __await__(self) -> Any:
        yield


async def _held_call(box: list[str]) -> str:
    await _Suspend()
    if box[0] == "failure":
        raise ConnectionError("down")
    if box[0] == "ignored":
        raise ValueError("not counted")
    return "ok"


def _immediate_call(outcome: str) -> str:
    if outcome == "failure":
        raise ConnectionError("down")
    if outcome == "ignored":
        raise ValueError("not counted")
    return "ok"


@dataclass(eq=False)
class Held:
    """A call admitted by both breaker and model that has not finished yet."""

    coro: Any
    box: list[str]
    generation: int
    trial: bool
    admitted_at: int
    holds_slot: bool = True  # a trial that was neither judged orphaned nor ended by a new period


@dataclass
class Model:
    """The contract, plainly: one thread, no atomics."""

    error_threshold: float
    volume_threshold: int
    sleep: int
    half_open_requests: int
    success_threshold: float
    window: int
    buckets: int
    failure_threshold: int
    multiplier: float
    max_sleep: int
    now: int = 0
    state: CircuitState = CLOSED
    forced: str | None = None
    generation: int = 0
    counts: dict[int, list[int]] = field(default_factory=dict)  # bucket index -> [ok, failed]
    open_until: int = 0
    failures_since_close: int = 0
    budget: int = 0
    trial_ok: int = 0
    trial_failed: int = 0
    rejected: int = 0
    total_executions: int = 0
    orphaned: int = 0
    held: list[Held] = field(default_factory=list)
    transitions: list[tuple[CircuitState, CircuitState]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.configured_sleep = self.sleep
        self.bucket = self.window // self.buckets

    # --- the window ---

    def window_counts(self) -> tuple[int, int]:
        current = self.now // self.bucket
        live = [c for i, c in self.counts.items() if current - self.buckets < i <= current]
        return sum(c[0] for c in live), sum(c[1] for c in live)

    def count(self, failed: bool) -> None:
        self.counts.setdefault(self.now // self.bucket, [0, 0])[failed] += 1

    # --- transitions ---

    def publish(self, forced: str | None, to: CircuitState) -> None:
        self.generation += 1
        self.forced = forced
        if self.state != to:
            self.transitions.append((self.state, to))
        self.state = to

    def enter_closed(self) -> None:
        self.counts.clear()
        self.sleep = self.configured_sleep
        self.failures_since_close = 0

    def open(self) -> None:
        self.open_until = self.now + self.sleep
        self.publish(None, OPEN)

    def begin_trials(self) -> None:
        self.budget, self.trial_ok, self.trial_failed = self.half_open_requests, 0, 0
        self.publish(None, HALF)

    def count_trial(self, success: bool) -> None:
        if self.state != HALF:
            return  # an orphan judged after its period was already decided
        self.trial_ok += success
        self.trial_failed += not success
        n = self.half_open_requests
        if self.trial_ok / n >= self.success_threshold:
            self.enter_closed()
            self.publish(None, CLOSED)
        elif (n - self.trial_failed) / n < self.success_threshold:
            self.sleep = int(min(self.sleep * self.multiplier, float(self.max_sleep)))
            self.open()

    def count_closed(self, failed: bool) -> None:
        self.count(failed)
        if self.forced == "closed":
            return
        opens = False
        if failed and self.failure_threshold:
            self.failures_since_close += 1
            opens = self.failures_since_close >= self.failure_threshold
        ok, bad = self.window_counts()
        total = ok + bad
        if not opens and total and total >= self.volume_threshold:
            opens = bad / total >= self.error_threshold
        if opens:
            self.open()

    # --- admission and completion ---

    def admit(self) -> tuple[CircuitState, float | None] | Held:
        """A Held (without coroutine) when admitted, else (state, retry_after) of the rejection."""
        while True:
            if self.state == CLOSED:
                self.total_executions += 1
                return Held(None, [], self.generation, False, self.now)
            if self.state == OPEN:
                if self.forced == "open":
                    self.rejected += 1
                    return OPEN, None
                if self.now < self.open_until:
                    self.rejected += 1
                    return OPEN, (self.open_until - self.now) / NS
                self.begin_trials()
                continue
            limit = self.sleep  # HALF_OPEN: judge trials that ran a whole sleep window
            if limit > 0:
                for h in self.trials():  # all of them, even once the first decided the period
                    if self.now - h.admitted_at >= limit:
                        h.holds_slot = False
                        self.orphaned += 1
                        self.count_trial(False)
                if self.state != HALF:
                    continue
            if self.budget:
                self.budget -= 1
                self.total_executions += 1
                return Held(None, [], self.generation, True, self.now)
            self.rejected += 1
            return HALF, None  # retry_after here is only checked for range

    def complete(self, h: Held, outcome: str) -> None:
        self.held.remove(h)
        if not h.trial:
            if outcome != "ignored" and h.generation == self.generation:
                self.count_closed(outcome == "failure")
            return
        if not h.holds_slot:
            return
        h.holds_slot = False
        if h.generation != self.generation:
            return
        if outcome == "ignored":
            self.budget += 1
        else:
            self.count_trial(outcome == "success")

    def trials(self) -> list[Held]:
        return [
            h for h in self.held if h.trial and h.holds_slot and h.generation == self.generation
        ]


class BreakerMachine(RuleBasedStateMachine):
    @initialize(
        volume_threshold=st.sampled_from([0, 1, 2, 4]),
        error_threshold=st.sampled_from([0.3, 0.5, 1.0]),
        half_open_requests=st.sampled_from([1, 2, 3, 5]),
        success_threshold=st.sampled_from([0.0, 0.5, 0.6, 1.0]),
        failure_threshold=st.sampled_from([0, 0, 2, 4]),
        buckets=st.sampled_from([1, 2, 4, 5]),
        sleep=st.sampled_from([0.0, 5.0, 10.0]),
        multiplier=st.sampled_from([1.0, 1.5, 2.0]),
    )
    def build(self, sleep: float, multiplier: float, **kw: Any) -> None:
        self.clock = ManualClock()
        self.transitions: list[tuple[CircuitState, CircuitState]] = []
        self.cb = CircuitBreaker(
            name="model",
            clock=self.clock,
            window_size=20.0,
            bucket_count=kw["buckets"],
            sleep_window=sleep,
            sleep_window_multiplier=multiplier,
            max_sleep_window=3 * sleep,
            **{k: v for k, v in kw.items() if k != "buckets"},
        )
        self.cb.add_state_listener(lambda name, a, b: self.transitions.append((a, b)))
        self.model = Model(
            sleep=ns(sleep),
            window=ns(20.0),
            multiplier=multiplier,
            max_sleep=ns(3 * sleep),
            **kw,
        )

    def check_rejection(self, err: CircuitBreakerOpenError, expected: Any) -> None:
        assert not isinstance(expected, Held), f"breaker rejected ({err}), model admitted"
        state, retry_after = expected
        assert (err.name, err.state) == ("model", state)
        if state == HALF:
            assert err.retry_after is not None
            assert 0 <= err.retry_after <= self.model.sleep / NS
        else:
            assert err.retry_after == retry_after

    @rule(outcome=st.sampled_from(["success", "failure", "failure", "ignored"]))
    def call_now(self, outcome: str) -> None:
        expected = self.model.admit()
        try:
            self.cb.call(_immediate_call, outcome)
        except CircuitBreakerOpenError as err:
            self.check_rejection(err, expected)
            return
        except (ConnectionError, ValueError):
            pass
        assert isinstance(expected, Held), f"breaker admitted, model rejected with {expected}"
        self.model.held.append(expected)
        self.model.complete(expected, outcome)

    @rule()
    def fail_until_open(self) -> None:
        """Failing calls until the breaker rejects one (at most 8): reaches OPEN quickly."""
        for _ in range(8):
            rejected = self.model.rejected
            self.call_now("failure")
            if self.model.rejected != rejected:
                return

    @rule()
    def start_call(self) -> None:
        expected = self.model.admit()
        box = ["success"]
        coro = self.cb.call_async(_held_call, box)
        try:
            coro.send(None)
        except CircuitBreakerOpenError as err:
            self.check_rejection(err, expected)
            return
        assert isinstance(expected, Held), f"breaker admitted, model rejected with {expected}"
        expected.coro, expected.box = coro, box
        self.model.held.append(expected)

    @precondition(lambda self: self.model.held)
    @rule(pick=st.integers(0, 50), outcome=st.sampled_from([*OUTCOMES, "cancelled"]))
    def finish_call(self, pick: int, outcome: str) -> None:
        held = self.model.held[pick % len(self.model.held)]
        held.box[0] = outcome
        try:
            if outcome == "cancelled":
                held.coro.throw(asyncio.CancelledError())
            else:
                held.coro.send(None)
        except (StopIteration, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        else:
            raise AssertionError("the held call did not finish")
        self.model.complete(held, "ignored" if outcome == "cancelled" else outcome)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 4.0, 4.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now += ns(seconds)

    @rule(extra=st.sampled_from([-0.5, 0.0, 0.5]))
    def advance_by_the_sleep_window(self, extra: float) -> None:
        """Lands on (or just around) the moments OPEN ends and a held trial turns orphan."""
        self.advance(max(0.0, self.model.sleep / NS + extra))

    @rule(op=st.sampled_from(["force_open", "force_closed", "clear_force", "reset"]))
    def control(self, op: str) -> None:
        getattr(self.cb, op)()
        model = self.model
        if op == "force_open":
            model.open_until = model.now + model.sleep
            model.publish("open", OPEN)
        elif op == "force_closed":
            if model.state != CLOSED:
                model.enter_closed()
            model.publish("closed", CLOSED)
        elif op == "reset":
            model.enter_closed()
            model.publish(None, CLOSED)
        elif model.forced:
            model.publish(None, model.state)

    @invariant()
    def agrees_with_the_model(self) -> None:
        if not hasattr(self, "cb"):
            return
        m, model = self.cb.metrics(), self.model
        ok, bad = model.window_counts()
        expected = {
            "name": "model",
            "state": model.state,
            "total": ok + bad,
            "success": ok,
            "failure": bad,
            "error_rate": bad / (ok + bad) if ok + bad else 0.0,
            "rejected": model.rejected,
            "in_flight": len(model.held),
            "total_executions": model.total_executions,
            "generation": model.generation,
            "sleep_window": model.sleep / NS,
            "orphaned": model.orphaned,
        }
        if model.state == HALF:
            expected["half_open_in_flight"] = len(model.trials())
            expected["half_open_successes"] = model.trial_ok
            expected["half_open_failures"] = model.trial_failed
        assert m == expected
        assert self.cb.state == model.state
        assert self.transitions == model.transitions

    def teardown(self) -> None:
        if hasattr(self, "model"):
            for held in self.model.held:
                held.coro.close()


BreakerMachine.TestCase.settings = settings(
    max_examples=int(
        os.environ.get("RESILIENCE_HYPOTHESIS_EXAMPLES", max(200, settings().max_examples))
    ),
    stateful_step_count=40,
    deadline=None,
)
test_breaker_agrees_with_the_contract_model = BreakerMachine.TestCase
