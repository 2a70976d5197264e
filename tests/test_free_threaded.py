"""Concurrency proofs for free-threaded CPython (3.13t, no GIL); they run on GIL builds too.

`make test-ft` runs this file (and the whole suite) on 3.13t. Stress sizes grow with
RESILIENCE_STRESS=1, which CI sets.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter

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


def test_half_open_trials_never_exceed_the_limit_with_threads_and_event_loops() -> None:
    cycles = 10_000 if STRESS else 200
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

    async def async_trial() -> None:
        enter()
        try:
            while not gate.is_set():
                await asyncio.sleep(0)
            raise TrialFailed
        finally:
            leave()

    def thread_worker() -> None:
        while not stop.is_set():
            try:
                cb.call(trial)
            except (CircuitBreakerOpenError, TrialFailed):
                time.sleep(0)
            except BaseException as exc:
                errors.append(exc)
                return

    async def task_worker() -> None:
        while not stop.is_set():
            try:
                await cb.call_async(async_trial)
            except (CircuitBreakerOpenError, TrialFailed):
                await asyncio.sleep(0)
            except BaseException as exc:
                errors.append(exc)
                return

    def loop_worker() -> None:
        async def main() -> None:
            await asyncio.gather(*(task_worker() for _ in range(4)))

        asyncio.run(main())

    with pytest.raises(Boom):
        cb.call(_fail)  # CLOSED -> OPEN
    workers = [threading.Thread(target=thread_worker) for _ in range(32)]
    workers += [threading.Thread(target=loop_worker) for _ in range(4)]
    for w in workers:
        w.start()

    def wait_for(condition: object, what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():  # type: ignore[operator]
            if errors:
                raise AssertionError(f"worker failed: {errors[0]!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0)

    try:
        for _ in range(cycles):
            gate.clear()
            clock.advance(1.0)  # the sleep window has passed: the next call starts trials
            wait_for(lambda: inside >= limit, "trials to start")
            gate.set()
            wait_for(lambda: inside == 0 and cb.state is CircuitState.OPEN, "trials to end")
    finally:
        stop.set()
        gate.set()
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
