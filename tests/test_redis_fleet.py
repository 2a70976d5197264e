"""Fleet scenarios: worker processes sharing one breaker through a private redis-server.

Run with ``-s`` to see the figures the README note quotes (failing calls let through by a
shared versus independent breakers).
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections import Counter
from typing import Any

import pytest

from redis_server import RedisServer, redis_server, require_redis_py, run_workers

require_redis_py()

__all__ = ["redis_server"]

pytestmark = pytest.mark.thread_unsafe

SYNC = 0.1
PROCESSES = 4


def _params(server: RedisServer, name: str, **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "port": server.port,
        "prefix": f"t{uuid.uuid4().hex[:8]}",
        "name": name,
        "sync_interval": SYNC,
        "timeout": 0.5,
        "pace": 0.005,
    }
    p.update(extra)
    return p


def _max_calls_in_interval(times: list[float], interval: float) -> int:
    """The most attempts this worker made inside any window of ``interval`` seconds."""
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_right(times, t + interval)
        best = max(best, j - i)
    return best


def _open_scenario(
    server: RedisServer,
    *,
    shared: bool,
    asyncio: bool = False,
    processes: int = PROCESSES,
    volume: int = 100,
) -> dict[str, Any]:
    """Every call fails from the start; returns the figures of the run."""
    config = {
        "volume_threshold": volume,
        "error_threshold": 0.5,
        "window_size": 10.0,
        "bucket_count": 10,
        "sleep_window": 30.0,
    }
    name = f"open-{uuid.uuid4().hex[:6]}"
    base = _params(server, name, config=config, shared=shared, asyncio=asyncio)
    params = [dict(base, duration=1.2, fail_from=0.0) for _ in range(processes)]
    results = run_workers(params)
    for r in results:
        assert r["others"] == [], r["others"]  # nothing but the dependency's error or rejections
    fails = sorted(t for r in results for t, what in r["attempts"] if what == "fail")
    crossing = fails[volume - 1]
    opened = []
    per_interval = 0
    for r in results:
        opens = [t for t, a, b in r["transitions"] if a == "closed" and b == "open"]
        assert opens, f"a worker never opened: {r['transitions']}"
        opened.append(opens[0])
        before_open = [t for t, _ in r["attempts"] if t <= opens[0]]
        per_interval += _max_calls_in_interval(before_open, SYNC)
    return {
        "let_through": len(fails),
        "bound": volume + per_interval,
        "volume": volume,
        "crossing": crossing,
        "open_lag": max(opened) - crossing,
        "results": results,
    }


def test_four_processes_open_together_and_let_few_failures_through(
    redis_server: RedisServer,
) -> None:
    shared = _open_scenario(redis_server, shared=True)
    for r in shared["results"]:
        assert r["coordination_at_start"] == "fleet"
        assert r["coordination"] == "fleet"
    assert shared["open_lag"] <= SYNC + 0.1, shared["open_lag"]
    assert shared["let_through"] <= shared["bound"], (shared["let_through"], shared["bound"])
    independent = _open_scenario(redis_server, shared=False)
    print(
        f"\n[fleet figures] {PROCESSES} processes, volume_threshold {shared['volume']}, "
        f"one call per 5 ms each, sync_interval {SYNC}s: failing calls let through "
        f"shared={shared['let_through']} (bound {shared['bound']}), "
        f"independent={independent['let_through']}; last process opened "
        f"{shared['open_lag'] * 1000:.0f} ms after the fleet crossed the threshold"
    )
    assert independent["let_through"] == PROCESSES * shared["volume"]
    assert shared["let_through"] < independent["let_through"]


def _half_open_scenario(
    server: RedisServer, *, asyncio: bool = False, processes: int = PROCESSES
) -> list[dict[str, Any]]:
    config = {
        "volume_threshold": 10,
        "window_size": 10.0,
        "sleep_window": 0.3,
        "max_sleep_window": 0.3,
        "half_open_requests": 3,
        "success_threshold": 0.6,
    }
    name = f"half-{uuid.uuid4().hex[:6]}"
    base = _params(server, name, config=config, probe=True, asyncio=asyncio)
    params = [dict(base, duration=2.6, fail_from=0.0, fail_until=1.5) for _ in range(processes)]
    return run_workers(params)


def _check_half_open(results: list[dict[str, Any]], limit: int) -> Counter[str]:
    for r in results:
        assert r["others"] == [], r["others"]
        assert r["untracked"] == [], "a call ran outside CLOSED without a fleet trial slot"
    grants: Counter[str] = Counter(tag for r in results for tag in r["grants"])
    assert len(grants) >= 2, grants  # several half-open periods were seen
    assert max(grants.values()) <= limit, grants
    for r in results:  # the dependency recovered: the fleet closed everywhere
        assert r["transitions"][-1][2] == "closed", r["transitions"]
    return grants


def test_half_open_trials_are_fleet_wide(redis_server: RedisServer) -> None:
    results = _half_open_scenario(redis_server)
    grants = _check_half_open(results, limit=3)
    print(f"\n[fleet figures] trial calls per half-open period (4 processes, limit 3): {grants}")


def test_asyncio_client_opens_together(redis_server: RedisServer) -> None:
    shared = _open_scenario(redis_server, shared=True, asyncio=True, processes=2)
    for r in shared["results"]:
        assert r["coordination"] == "fleet"
    assert shared["open_lag"] <= SYNC + 0.1, shared["open_lag"]
    assert shared["let_through"] <= shared["bound"], (shared["let_through"], shared["bound"])


def test_asyncio_client_half_open_trials_are_fleet_wide(redis_server: RedisServer) -> None:
    results = _half_open_scenario(redis_server, asyncio=True, processes=2)
    _check_half_open(results, limit=3)


def test_bound_helper() -> None:
    assert _max_calls_in_interval([0.0, 0.05, 0.09, 0.2, 0.25], 0.1) == 3
    assert _max_calls_in_interval([], 0.1) == 0
    assert math.isclose(SYNC, 0.1)
