"""Concurrency proofs for free-threaded CPython (3.13t, no GIL); they run on GIL builds too.

`make test-ft` runs this file (and the whole suite) on 3.13t. Stress sizes grow with
RESILIENCE_STRESS=1, which CI sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience import CircuitBreaker, CircuitBreakerOpenError, CircuitState
from resilience.testing import ManualClock

STRESS = os.environ.get("RESILIENCE_STRESS") == "1"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# The protected functions here are shared by every thread on purpose.
pytestmark = pytest.mark.thread_unsafe


def _free_threaded_python() -> str | None:
    if FREE_THREADED:
        return sys.executable
    return os.environ.get("RESILIENCE_FT_PYTHON")


IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import resilience
names = sorted(m.name for m in pkgutil.walk_packages(resilience.__path__, "resilience."))
for name in names:
    importlib.import_module(name)
print(len(names), sys._is_gil_enabled())
"""


def test_gil_stays_disabled_after_importing_every_submodule() -> None:
    python = _free_threaded_python()
    if python is None:
        pytest.skip("no free-threaded interpreter here; `make test-ft` runs this test")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    done = subprocess.run(
        [python, "-W", "error::RuntimeWarning", "-c", IMPORT_EVERYTHING],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    count, gil_enabled = done.stdout.split()
    assert int(count) >= 5
    assert gil_enabled == "False"


class Boom(Exception):
    """A failure the default classifier counts."""


def _ok() -> None:
    return None


def _fail() -> None:
    raise Boom


def test_eight_threads_lose_no_outcome_and_never_see_borrow_or_panic_errors() -> None:
    total = 10**7 if STRESS else 10**6
    threads = 8
    per_thread = total // threads
    cb = CircuitBreaker(
        name="exact",
        clock=ManualClock(),
        window_size=3600.0,
        error_threshold=1.0,
        volume_threshold=10**12,
    )
    barrier = threading.Barrier(threads)
    done: list[tuple[int, int]] = []
    unexpected: Counter[str] = Counter()

    def worker() -> None:
        call = cb.call
        ok = failed = 0
        barrier.wait()
        for i in range(per_thread):
            try:
                if i % 8 == 0:
                    call(_fail)
                else:
                    call(_ok)
                    ok += 1
            except Boom:
                failed += 1
            except BaseException as exc:  # PanicException, "Already borrowed", anything
                unexpected[f"{type(exc).__qualname__}: {exc}"] += 1
        done.append((ok, failed))

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not unexpected
    ok = sum(d[0] for d in done)
    failed = sum(d[1] for d in done)
    assert ok + failed == per_thread * threads
    m = cb.metrics()
    assert (m["success"], m["failure"]) == (ok, failed)
    assert m["total_executions"] == per_thread * threads
    assert m["in_flight"] == 0
    assert m["state"] is CircuitState.CLOSED


class TrialFailed(Exception):
    """How the blocked trials end, so every period re-opens the breaker."""


class _LoopSide:
    """One asyncio loop's view of the cycles: a wake-up event per cycle, and a gate that the
    trials wait on. Only the loop's own thread touches these; the controller schedules changes
    onto it and waits for the gate to be closed before it advances the clock."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wakeup = asyncio.Event()
        self.gate = asyncio.Event()
        self.ready = threading.Event()
        self.gate_closed = threading.Event()

    def schedule(self, callback: Callable[[], None]) -> None:
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has already finished
            self.loop.call_soon_threadsafe(callback)

    def close_gate(self) -> None:
        self.gate.clear()
        self.gate_closed.set()

    def open_gate(self) -> None:
        self.gate.set()

    def next_cycle(self) -> None:
        old, self.wakeup = self.wakeup, asyncio.Event()
        old.set()


def test_half_open_trials_never_exceed_the_limit_with_threads_and_event_loops() -> None:
    """32 threads and 4 event loops (4 tasks each) all try once per cycle, released together
    right after the sleep window; the trials block until the controller opens the gate."""
    cycles = 10_000 if STRESS else 300
    limit = 3
    clock = ManualClock()
    cb = CircuitBreaker(
        name="half-open-bound",
        clock=clock,
        volume_threshold=1,
        error_threshold=0.5,
        sleep_window=1.0,
        sleep_window_multiplier=1.0,
        max_sleep_window=1.0,
        half_open_requests=limit,
        success_threshold=1.0,
    )
    transitions: list[tuple[CircuitState, CircuitState]] = []
    cb.add_state_listener(lambda _name, old, new: transitions.append((old, new)))
    gate = threading.Event()
    stop = threading.Event()
    cycle_changed = threading.Condition()
    cycle = 0
    lock = threading.Lock()
    inside = 0
    peak = 0
    errors: list[BaseException] = []

    def enter() -> None:
        nonlocal inside, peak
        with lock:
            inside += 1
            peak = max(peak, inside)

    def leave() -> None:
        nonlocal inside
        with lock:
            inside -= 1

    def trial() -> None:
        enter()
        try:
            gate.wait()
            raise TrialFailed
        finally:
            leave()

    async def async_trial(side: _LoopSide) -> None:
        enter()
        try:
            await side.gate.wait()
            raise TrialFailed
        finally:
            leave()

    def thread_worker() -> None:
        seen = 0

        def moved_on() -> bool:
            return cycle != seen or stop.is_set()

        while True:
            with cycle_changed:
                cycle_changed.wait_for(moved_on)
                seen = cycle
            if stop.is_set():
                return
            try:
                cb.call(trial)
            except (CircuitBreakerOpenError, TrialFailed):
                pass
            except BaseException as exc:
                errors.append(exc)
                return

    async def task_worker(side: _LoopSide) -> None:
        while True:
            await side.wakeup.wait()
            if stop.is_set():
                return
            try:
                await cb.call_async(async_trial, side)
            except (CircuitBreakerOpenError, TrialFailed):
                pass
            except BaseException as exc:
                errors.append(exc)
                return

    def loop_worker(side: _LoopSide) -> None:
        async def main() -> None:
            side.loop = asyncio.get_running_loop()
            side.ready.set()
            await asyncio.gather(*(task_worker(side) for _ in range(4)))

        asyncio.run(main())

    def wait_for(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            if errors:
                raise AssertionError(f"worker failed: {errors[0]!r}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}: inside={inside}, metrics={cb.metrics()}"
                )
            time.sleep(0)

    with pytest.raises(Boom):
        cb.call(_fail)  # CLOSED -> OPEN
    sides = [_LoopSide() for _ in range(4)]
    workers = [threading.Thread(target=thread_worker) for _ in range(32)]
    workers += [threading.Thread(target=loop_worker, args=(side,)) for side in sides]
    for w in workers:
        w.start()
    for side in sides:
        side.ready.wait()

    def close_gates() -> None:
        # Closed before the clock moves: a straggler from the last cycle may start the next
        # half-open period, and its trial must block like everyone else's.
        gate.clear()
        for side in sides:
            side.gate_closed.clear()
            side.schedule(side.close_gate)
        for side in sides:
            side.gate_closed.wait()

    def open_gates() -> None:
        gate.set()
        for side in sides:
            side.schedule(side.open_gate)

    def next_cycle() -> None:
        nonlocal cycle
        for side in sides:
            side.schedule(side.next_cycle)
        with cycle_changed:
            cycle += 1
            cycle_changed.notify_all()

    try:
        for _ in range(cycles):
            close_gates()
            clock.advance(1.0)  # the sleep window has passed: the next call starts trials
            next_cycle()
            wait_for(lambda: inside >= limit, "trials to start")
            open_gates()
            wait_for(lambda: inside == 0 and cb.state is CircuitState.OPEN, "trials to end")
    finally:
        stop.set()
        open_gates()
        next_cycle()
        for w in workers:
            w.join()
    assert not errors
    assert peak == limit
    expected = [(CircuitState.CLOSED, CircuitState.OPEN)]
    expected += [
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.OPEN),
    ] * cycles
    assert transitions == expected
    assert cb.metrics()["in_flight"] == 0


ENDINGS = ("success", "failure", "ignored", "keyboard", "systemexit", "task_cancel", "timeout")


async def _end_trial_async(cb: CircuitBreaker, ending: str) -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    if ending == "task_cancel":
        task = asyncio.ensure_future(cb.call_async(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await cb.call_async(hang)


def _end_trial(cb: CircuitBreaker, ending: str) -> None:
    def raising(exc: BaseException) -> None:
        raise exc

    if ending == "success":
        cb.call(_ok)
    elif ending == "failure":
        with pytest.raises(Boom):
            cb.call(_fail)
    elif ending == "ignored":
        with pytest.raises(ValueError):
            cb.call(raising, ValueError("not the dependency's fault"))
    elif ending == "keyboard":
        with pytest.raises(KeyboardInterrupt):
            cb.call(raising, KeyboardInterrupt())
    elif ending == "systemexit":
        with pytest.raises(SystemExit):
            cb.call(raising, SystemExit(3))
    else:
        asyncio.run(_end_trial_async(cb, ending))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
@settings(
    max_examples=int(os.environ.get("RESILIENCE_HYPOTHESIS_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.sampled_from(ENDINGS), min_size=1, max_size=12))
def test_no_trial_slot_leaks_whatever_ends_the_trial(endings: list[str]) -> None:
    clock = ManualClock()
    cb = CircuitBreaker(
        name="leak", clock=clock, volume_threshold=1, sleep_window=1.0, half_open_requests=1
    )
    for ending in endings:
        if cb.state is CircuitState.CLOSED:
            with pytest.raises(Boom):
                cb.call(_fail)
        clock.advance(cb.metrics()["sleep_window"])
        _end_trial(cb, ending)
        m = cb.metrics()
        assert m["in_flight"] == 0
        if ending == "success":
            assert cb.state is CircuitState.CLOSED
        elif ending == "failure":
            assert cb.state is CircuitState.OPEN
        else:
            # The slot came back: the next trial is admitted at once.
            assert cb.state is CircuitState.HALF_OPEN
            assert m["half_open_in_flight"] == 0
            cb.call(_ok)
            assert cb.state is CircuitState.CLOSED
