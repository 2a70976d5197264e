"""SharedCircuitBreaker in one process: API, fleet semantics, bad input, faults, figures.

Several breakers with the same name in one process behave as members of one fleet (each has
its own core, connections and background threads), which keeps these tests fast.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import redis_server as helper
from redis_server import RedisServer, own_redis_server, redis_server, require_redis_py

require_redis_py()

import redis  # noqa: E402
import redis.asyncio as aredis  # noqa: E402

from resilience import (  # noqa: E402
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerOpenError,
    CircuitState,
)
from resilience.redis import SharedCircuitBreaker  # noqa: E402

__all__ = ["own_redis_server", "redis_server"]

pytestmark = pytest.mark.thread_unsafe

CONTRACT_KEYS = {
    "name",
    "state",
    "total",
    "success",
    "failure",
    "error_rate",
    "rejected",
    "in_flight",
    "total_executions",
    "generation",
    "sleep_window",
    "orphaned",
}


class Down(ConnectionError):
    pass


def fail() -> None:
    raise Down("dependency down")


def ok() -> str:
    return "ok"


def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def fleet(redis_server: RedisServer) -> Iterator[Callable[..., SharedCircuitBreaker]]:
    """``fleet(**config)``: another member of this test's fleet (same name and prefix)."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    made: list[SharedCircuitBreaker] = []

    def make(
        client: Any = None, sync_interval: float = 0.05, timeout: float = 0.5, **config: Any
    ) -> SharedCircuitBreaker:
        config.setdefault("name", "svc")
        config.setdefault("volume_threshold", 4)
        config.setdefault("sleep_window", 0.3)
        config.setdefault("max_sleep_window", max(5.0, config["sleep_window"]))
        cb = SharedCircuitBreaker(
            CircuitBreakerConfig(**config),
            redis=client or redis_server.client(),
            key_prefix=prefix,
            sync_interval=sync_interval,
            timeout=timeout,
        )
        made.append(cb)
        return cb

    yield make
    for cb in made:
        cb.close()


def drive_open(cb: SharedCircuitBreaker, failures: int = 4) -> None:
    for _ in range(failures):
        with pytest.raises((Down, CircuitBreakerOpenError)):
            cb.call(fail)


# ----- bad input -----


def test_rejects_an_object_that_is_not_a_redis_client() -> None:
    with pytest.raises(TypeError, match=r"redis\.Redis or redis\.asyncio\.Redis.*'not redis'"):
        SharedCircuitBreaker(CircuitBreakerConfig(name="x"), redis="not redis")


@pytest.mark.parametrize("prefix", ["has space", "tab\there", "{brace}", ""])
def test_rejects_a_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="key_prefix"):
        SharedCircuitBreaker(name="x", redis=redis.Redis(port=1), key_prefix=prefix)


def test_rejects_braces_in_the_name_a_clock_and_bad_intervals() -> None:
    client = redis.Redis(port=1)
    with pytest.raises(ValueError, match="hash tag"):
        SharedCircuitBreaker(name="a{b}", redis=client)
    from resilience.testing import ManualClock

    with pytest.raises(ValueError, match="clock"):
        SharedCircuitBreaker(name="a", clock=ManualClock(), redis=client)
    with pytest.raises(ValueError, match="sync_interval"):
        SharedCircuitBreaker(name="a", redis=client, sync_interval=0)
    with pytest.raises(ValueError, match="timeout"):
        SharedCircuitBreaker(name="a", redis=client, timeout=-1)


def test_config_mismatch_warns_naming_both_and_stays_local(
    fleet: Callable[..., SharedCircuitBreaker], caplog: pytest.LogCaptureFixture
) -> None:
    a = fleet(volume_threshold=4)
    caplog.set_level(logging.WARNING, logger="resilience.redis")
    b = fleet(volume_threshold=7)
    assert b.metrics()["coordination"] == "local"
    error = b.metrics()["coordination_error"]
    assert a._conf_hash in error
    assert b._conf_hash in error
    assert "volume_threshold: this process 7, fleet 4" in error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "volume_threshold" in warnings[0].getMessage()
    assert b.call(ok) == "ok"  # works as a local breaker
    # reset() adopts this process's config for the fleet; the other member now mismatches
    b.reset()
    assert wait_for(lambda: b.metrics()["coordination"] == "fleet")
    assert wait_for(lambda: a.metrics()["coordination"] == "local")
    assert "this process 4, fleet 7" in a.metrics()["coordination_error"]


# ----- the same API, with the fleet's counts and state -----


def test_is_a_circuit_breaker_with_the_contract_metrics(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    a = fleet()
    assert isinstance(a, CircuitBreaker)
    m = a.metrics()
    assert set(m) >= CONTRACT_KEYS
    assert m["coordination"] == "fleet"
    assert m["fleet_generation"] == 0
    assert a.call(ok) == "ok"
    assert a.state is CircuitState.CLOSED
    assert "SharedCircuitBreaker(name='svc'" in repr(a)


def test_window_counts_are_the_fleets(fleet: Callable[..., SharedCircuitBreaker]) -> None:
    a = fleet(volume_threshold=100)
    b = fleet(volume_threshold=100)
    for _ in range(3):
        a.call(ok)
    for _ in range(2):
        with pytest.raises(Down):
            b.call(fail)
    assert wait_for(lambda: a.metrics()["total"] == 5 and b.metrics()["total"] == 5)
    m = a.metrics()
    assert (m["success"], m["failure"], m["error_rate"]) == (3, 2, 0.4)


def test_the_fleet_opens_every_member_and_listeners_hear_it(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    heard: list[tuple[str, CircuitState, CircuitState]] = []
    a = fleet(sleep_window=30.0)
    b = fleet(sleep_window=30.0)
    b.add_state_listener(lambda name, f, t: heard.append((name, f, t)))
    drive_open(a)
    assert wait_for(lambda: a.state is CircuitState.OPEN and b.state is CircuitState.OPEN)
    assert heard == [("svc", CircuitState.CLOSED, CircuitState.OPEN)]
    with pytest.raises(CircuitBreakerOpenError) as info:
        b.call(ok)
    assert info.value.state is CircuitState.OPEN
    assert info.value.retry_after is not None
    assert 29.0 < info.value.retry_after <= 30.0
    assert b.metrics()["rejected"] == 1


def test_a_member_does_not_open_on_its_own_counts(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    a = fleet(volume_threshold=4)
    b = fleet(volume_threshold=4)
    for _ in range(20):
        b.call(ok)
    assert wait_for(lambda: a.metrics()["success"] == 20)
    for _ in range(4):  # 4 of 24 fail: the fleet stays closed though a's own window is 100%
        with pytest.raises(Down):
            a.call(fail)
    time.sleep(0.2)
    assert a.state is CircuitState.CLOSED
    assert b.state is CircuitState.CLOSED


def test_half_open_trial_slots_are_fleet_wide(fleet: Callable[..., SharedCircuitBreaker]) -> None:
    a = fleet(half_open_requests=2)
    b = fleet(half_open_requests=2)
    drive_open(a)
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    time.sleep(0.35)
    assert a.can_execute()  # one trial in a ...
    assert wait_for(lambda: b.state is CircuitState.HALF_OPEN)
    assert b.can_execute()  # ... and one in b: the fleet's two slots
    assert not a.can_execute()
    with pytest.raises(CircuitBreakerOpenError) as info:
        b.call(ok)
    assert info.value.state is CircuitState.HALF_OPEN
    m = a.metrics()
    assert m["half_open_in_flight"] == 2
    a.record_success()
    b.record_success()
    assert wait_for(lambda: a.state is CircuitState.CLOSED and b.state is CircuitState.CLOSED)
    assert a.metrics()["total"] == 0  # closing cleared the fleet's window


def test_a_failed_trial_period_reopens_with_a_grown_sleep_window(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    a = fleet(half_open_requests=1)
    b = fleet(half_open_requests=1)
    drive_open(a)
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    time.sleep(0.35)
    with pytest.raises(Down):
        b.call(fail)  # the fleet's only trial
    assert wait_for(lambda: a.metrics()["sleep_window"] == pytest.approx(0.45))
    assert a.state is CircuitState.OPEN
    assert b.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as info:
        a.call(ok)
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0.3


def test_an_orphaned_trial_is_judged_a_failure(fleet: Callable[..., SharedCircuitBreaker]) -> None:
    a = fleet(half_open_requests=2)
    b = fleet(half_open_requests=2)
    drive_open(a)
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    time.sleep(0.35)
    assert a.can_execute()  # a trial that never reports
    time.sleep(0.35)
    with pytest.raises(CircuitBreakerOpenError):
        b.call(ok)  # the admission judges the orphan: 1 of 2 failed -> re-open
    assert b.metrics()["orphaned"] == 1
    assert wait_for(lambda: a.state is CircuitState.OPEN)
    a.record_success()  # the orphan's late outcome is ignored
    assert a.state is CircuitState.OPEN


def test_decorator_context_manager_and_async_in_half_open(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    a = fleet(half_open_requests=3)
    drive_open(a)
    assert wait_for(lambda: a.state is CircuitState.OPEN)
    time.sleep(0.35)

    @a
    def decorated() -> str:
        return "deco"

    assert decorated() == "deco"
    assert a.state is CircuitState.HALF_OPEN
    with a:
        pass
    assert wait_for(lambda: a.state is CircuitState.CLOSED)  # 2 of 3 succeeded

    drive_open(a)
    assert wait_for(lambda: a.state is CircuitState.OPEN)
    time.sleep(0.35)

    async def trial() -> str:
        return "async"

    async def main() -> None:
        assert await a.call_async(trial) == "async"
        async with a:
            pass

    asyncio.run(main())
    assert wait_for(lambda: a.state is CircuitState.CLOSED)
    assert a.call_with_timeout(1.0, ok) == "ok"


def test_force_is_local_and_clear_force_follows_the_fleet(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    a = fleet()
    b = fleet()
    a.force_open()
    with pytest.raises(CircuitBreakerOpenError):
        a.call(ok)
    assert b.call(ok) == "ok"
    a.clear_force()
    assert a.state is CircuitState.CLOSED
    drive_open(b)
    assert wait_for(lambda: a.state is CircuitState.OPEN)


def test_reset_resets_the_fleet(fleet: Callable[..., SharedCircuitBreaker]) -> None:
    a = fleet(sleep_window=30.0)
    b = fleet(sleep_window=30.0)
    drive_open(a)
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    a.reset()
    assert a.state is CircuitState.CLOSED
    assert wait_for(lambda: b.state is CircuitState.CLOSED)
    assert b.call(ok) == "ok"


def test_close_stops_the_threads_and_a_dropped_breaker_stops_them_too(
    redis_server: RedisServer,
) -> None:
    a = SharedCircuitBreaker(name="gc", redis=redis_server.client(), sync_interval=0.05)
    threads = list(a._threads)
    a.close()
    assert not any(t.is_alive() for t in threads)
    assert a.call(ok) == "ok"
    assert a.metrics()["coordination"] == "local"
    b = SharedCircuitBreaker(name="gc2", redis=redis_server.client(), sync_interval=0.05)
    threads = list(b._threads)
    del b
    gc.collect()
    assert wait_for(lambda: not any(t.is_alive() for t in threads), timeout=3.0)


# ----- faults -----


def test_without_redis_it_is_a_local_breaker_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience.redis")
    started = time.monotonic()
    cb = SharedCircuitBreaker(
        name="alone", volume_threshold=3, redis=redis.Redis(port=helper.free_port())
    )
    try:
        assert time.monotonic() - started < 1.0
        assert cb.metrics()["coordination"] == "local"
        for _ in range(3):
            with pytest.raises(Down):
                cb.call(fail)
        assert cb.state is CircuitState.OPEN  # the local core decides alone
        time.sleep(0.5)  # several reconnection attempts
        warnings = [
            r
            for r in caplog.records
            if r.name == "resilience.redis" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
    finally:
        cb.close()


def _fault_run(
    server: RedisServer, make: Callable[[], SharedCircuitBreaker], call: Callable[..., Any]
) -> None:
    """Kill redis-server mid-run, keep calling, restart it."""
    a, b = make(), make()
    assert a.metrics()["coordination"] == b.metrics()["coordination"] == "fleet"
    others: list[BaseException] = []

    def attempt(fn: Callable[[], Any]) -> str:
        try:
            call(a, fn)
            return "ok"
        except Down:
            return "fail"
        except CircuitBreakerOpenError:
            return "rejected"
        except BaseException as exc:
            others.append(exc)
            return "other"

    for _ in range(20):
        assert attempt(ok) == "ok"
    server.kill()
    outcomes = [attempt(ok) for _ in range(20)]  # the fast path never touches Redis
    assert outcomes == ["ok"] * 20
    assert wait_for(
        lambda: a.metrics()["coordination"] == b.metrics()["coordination"] == "local",
        timeout=2.0,
    )
    # The local breaker decides alone: as many failures as it holds successes open it (50%).
    # That is 40, or 39 when the switch to local mode landed during one of the calls above:
    # the switch ends the forced-closed period, so that call's success counts in neither.
    successes = a.metrics()["success"]
    assert successes in (39, 40), a.metrics()
    outcomes = [attempt(fail) for _ in range(50)]
    assert outcomes.count("fail") == successes, outcomes
    assert outcomes[-1] == "rejected", outcomes
    assert a.state is CircuitState.OPEN
    assert others == []
    server.start()
    assert wait_for(
        lambda: a.metrics()["coordination"] == b.metrics()["coordination"] == "fleet",
        timeout=8.0,
    )
    # the outage's failures were pushed: the fleet opened on them, and b follows
    assert wait_for(lambda: b.state is CircuitState.OPEN)
    assert a.metrics()["fleet_generation"] is not None
    assert others == []


def test_killing_redis_falls_back_to_local_and_recovers(own_redis_server: RedisServer) -> None:
    def make() -> SharedCircuitBreaker:
        return SharedCircuitBreaker(
            name="fault",
            volume_threshold=4,
            sleep_window=30.0,
            redis=own_redis_server.client(),
            sync_interval=0.05,
        )

    made: list[SharedCircuitBreaker] = []

    def tracked() -> SharedCircuitBreaker:
        made.append(make())
        return made[-1]

    try:
        _fault_run(own_redis_server, tracked, lambda cb, fn: cb.call(fn))
    finally:
        for cb in made:
            cb.close()


def test_asyncio_client_falls_back_to_local_and_recovers(own_redis_server: RedisServer) -> None:
    made: list[SharedCircuitBreaker] = []

    def make() -> SharedCircuitBreaker:
        made.append(
            SharedCircuitBreaker(
                name="afault",
                volume_threshold=4,
                sleep_window=30.0,
                redis=aredis.Redis(host="127.0.0.1", port=own_redis_server.port),
                sync_interval=0.05,
            )
        )
        return made[-1]

    loop = asyncio.new_event_loop()

    def call(cb: SharedCircuitBreaker, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return loop.run_until_complete(cb.call_async(run))

    try:
        _fault_run(own_redis_server, make, call)
    finally:
        loop.close()
        for cb in made:
            cb.close()


def test_a_stalled_redis_times_out_and_never_slows_the_fast_path(
    own_redis_server: RedisServer,
) -> None:
    cb = SharedCircuitBreaker(name="slow", redis=own_redis_server.client(), sync_interval=0.05)
    try:
        assert cb.metrics()["coordination"] == "fleet"
        own_redis_server.pause()
        slowest = 0.0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            t = time.perf_counter()
            cb.call(ok)
            slowest = max(slowest, time.perf_counter() - t)
            time.sleep(0.001)
        assert slowest < 0.02, slowest
        assert wait_for(lambda: cb.metrics()["coordination"] == "local", timeout=1.0)
        own_redis_server.resume()
        assert wait_for(lambda: cb.metrics()["coordination"] == "fleet", timeout=8.0)
    finally:
        own_redis_server.resume()
        cb.close()


def test_a_trial_round_trip_to_a_dead_redis_never_raises_redis_errors(
    own_redis_server: RedisServer,
) -> None:
    a = SharedCircuitBreaker(
        name="trial",
        volume_threshold=4,
        sleep_window=0.2,
        redis=own_redis_server.client(),
        sync_interval=5.0,  # no tick notices the outage before the caller does
    )
    try:
        drive_open(a)
        assert a.state is CircuitState.OPEN or wait_for(lambda: a.state is CircuitState.OPEN)
        time.sleep(0.25)
        own_redis_server.kill()
        assert a.call(ok) == "ok"  # the admission round trip fails: the local core decides
        assert a.metrics()["coordination"] == "local"
    finally:
        a.close()


# ----- the fixture's contract -----


def test_the_fixture_skips_without_redis_server_but_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(helper, "REDIS_SERVER", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        helper._need_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="redis-server is not installed"):
        helper._need_binary()


# ----- figures for the README note -----


def _per_call_ns(call: Callable[[Callable[[], Any]], Any], n: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t = clock()
        call(ok)
        samples.append(clock() - t)
    return samples


def test_added_latency_per_call_in_fleet_mode(redis_server: RedisServer) -> None:
    local = CircuitBreaker(name="lat-local", volume_threshold=10**9)
    shared = SharedCircuitBreaker(
        name=f"lat-{uuid.uuid4().hex[:6]}", volume_threshold=10**9, redis=redis_server.client()
    )
    try:
        assert shared.metrics()["coordination"] == "fleet"
        n = 20_000
        _per_call_ns(local.call, 2000)
        _per_call_ns(shared.call, 2000)
        base: list[int] = []
        fleet: list[int] = []
        for _ in range(5):  # interleave so drift hits both alike
            base += _per_call_ns(local.call, n // 5)
            fleet += _per_call_ns(shared.call, n // 5)

        def pct(xs: list[int], q: float) -> float:
            return statistics.quantiles(xs, n=100)[int(q) - 1] / 1000

        p50 = pct(fleet, 50) - pct(base, 50)
        p99 = pct(fleet, 99) - pct(base, 99)
        print(
            f"\n[fleet figures] successful call, CLOSED: local p50 {pct(base, 50):.2f} us "
            f"p99 {pct(base, 99):.2f} us; fleet mode p50 {pct(fleet, 50):.2f} us "
            f"p99 {pct(fleet, 99):.2f} us; added p50 {p50:.2f} us, p99 {p99:.2f} us"
        )
        assert p50 < 20.0  # no round trip: microseconds, never milliseconds
        assert shared.metrics()["coordination"] == "fleet"
    finally:
        shared.close()


def test_threads_calling_while_the_fleet_flips_see_no_stray_errors(
    fleet: Callable[..., SharedCircuitBreaker],
) -> None:
    a = fleet(volume_threshold=10, sleep_window=0.1, half_open_requests=2)
    b = fleet(volume_threshold=10, sleep_window=0.1, half_open_requests=2)
    stop = time.monotonic() + 1.5
    errors: list[BaseException] = []

    def hammer(cb: SharedCircuitBreaker, flaky: bool) -> None:
        i = 0
        while time.monotonic() < stop:
            i += 1
            try:
                cb.call(fail if flaky and i % 2 else ok)
            except (Down, CircuitBreakerOpenError):
                pass
            except BaseException as exc:
                errors.append(exc)
            time.sleep(0.001)

    threads = [
        threading.Thread(target=hammer, args=(cb, flaky))
        for cb in (a, b)
        for flaky in (True, False)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for cb in (a, b):
        m = cb.metrics()
        assert m["in_flight"] == 0, m
        assert m["coordination"] == "fleet"
