"""BreakerRegistry: one breaker per key, pattern overrides, and a bounded LRU that keeps failing
breakers."""

from __future__ import annotations

import logging
import random
import threading
from datetime import timedelta

import pytest

from resilience import CircuitBreaker, CircuitBreakerConfig, CircuitState, ConfigurationError
from resilience.registry import BreakerRegistry
from resilience.testing import ManualClock

pytestmark = pytest.mark.thread_unsafe


@pytest.fixture
def config() -> CircuitBreakerConfig:
    return CircuitBreakerConfig(volume_threshold=2, error_threshold=0.5, clock=ManualClock())


def trip(breaker: CircuitBreaker) -> None:
    """Opens a breaker whose volume_threshold is 2."""
    for _ in range(2):
        assert breaker.can_execute()
        breaker.record_failure(ConnectionError("down"))
    assert breaker.state is CircuitState.OPEN


def test_get_returns_the_same_breaker_for_the_same_key(config: CircuitBreakerConfig) -> None:
    registry = BreakerRegistry(config)
    first = registry.get("api.example.com:443")
    assert registry.get("api.example.com:443") is first
    assert registry.get("other:443") is not first
    assert len(registry) == 2
    assert "other:443" in registry


def test_created_breaker_is_named_after_its_key_with_the_default_settings(
    config: CircuitBreakerConfig,
) -> None:
    breaker = BreakerRegistry(config).get("inventory")
    assert breaker.name == "inventory"
    assert breaker.config == config.replace(name="inventory")


def test_default_config_is_circuit_breaker_config_defaults_when_omitted() -> None:
    breaker = BreakerRegistry().get("k")
    assert breaker.config == CircuitBreakerConfig(name="k")


def test_matching_patterns_apply_in_order_and_later_ones_win(
    config: CircuitBreakerConfig,
) -> None:
    registry = BreakerRegistry(
        config,
        patterns={
            "payments.*": {"error_threshold": 0.2, "volume_threshold": 20},
            "payments.eu*": {"error_threshold": 0.1},
        },
    )
    assert registry.get("payments.us").config.error_threshold == 0.2
    eu = registry.get("payments.eu-west").config
    assert (eu.error_threshold, eu.volume_threshold) == (0.1, 20)
    assert registry.get("search").config.error_threshold == 0.5
    assert registry.get("PAYMENTS.us").config.error_threshold == 0.5  # case-sensitive


def test_get_overrides_apply_after_patterns_when_the_breaker_is_created(
    config: CircuitBreakerConfig,
) -> None:
    registry = BreakerRegistry(config, patterns={"db.*": {"error_threshold": 0.2}})
    breaker = registry.get("db.main", error_threshold=0.3, sleep_window=timedelta(seconds=5))
    assert (breaker.config.error_threshold, breaker.config.sleep_window) == (0.3, 5.0)
    # Asking again with the same overrides (a timedelta equal to the stored seconds) is fine.
    assert registry.get("db.main", error_threshold=0.3, sleep_window=5) is breaker


def test_get_with_an_override_that_contradicts_the_existing_breaker_raises(
    config: CircuitBreakerConfig,
) -> None:
    registry = BreakerRegistry(config)
    registry.get("svc", error_threshold=0.3)
    with pytest.raises(ConfigurationError, match="error_threshold"):
        registry.get("svc", error_threshold=0.4)
    with pytest.raises(ConfigurationError, match="name"):
        registry.get("svc", name="other")


def test_config_for_shows_the_resolved_settings_of_a_key(config: CircuitBreakerConfig) -> None:
    registry = BreakerRegistry(config, patterns={"a*": {"sleep_window": 2.0}})
    assert registry.config_for("abc").sleep_window == 2.0
    assert registry.config_for("abc").name == "abc"
    assert "abc" not in registry  # only looked at, not created


@pytest.mark.parametrize(
    ("patterns", "error"),
    [
        ({"x*": {"error_threshold": 2.0}}, ValueError),
        ({"x*": {"no_such_field": 1}}, TypeError),
        ({"x*": {"name": "other"}}, ConfigurationError),
        ({"x*": 0.5}, TypeError),
    ],
)
def test_invalid_pattern_overrides_are_rejected_at_construction(
    patterns: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        BreakerRegistry(patterns=patterns)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (True, TypeError), (1.5, TypeError), ("9", TypeError)],
)
def test_max_breakers_must_be_an_int_of_at_least_one(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_breakers"):
        BreakerRegistry(max_breakers=value)  # type: ignore[arg-type]


def test_default_config_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="default_config"):
        BreakerRegistry({"error_threshold": 0.5})  # type: ignore[arg-type]


def test_a_key_must_be_a_non_empty_string() -> None:
    with pytest.raises(ValueError, match="key"):
        BreakerRegistry().get("")
    with pytest.raises(TypeError, match="key"):
        BreakerRegistry(patterns={"1*": {}}).get(1)  # type: ignore[arg-type]


def race_for(registry: BreakerRegistry, key: str, threads: int) -> list[CircuitBreaker]:
    """``threads`` threads released at once by a barrier, each asking for ``key``."""
    barrier = threading.Barrier(threads)
    seen: list[CircuitBreaker] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait(timeout=10)
        breaker = registry.get(key)
        with lock:
            seen.append(breaker)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=10)
    return seen


def test_32_threads_racing_for_one_key_get_one_breaker() -> None:
    registry = BreakerRegistry()
    for round_ in range(20):
        seen = race_for(registry, f"race-{round_}", 32)
        assert len(seen) == 32
        assert len({id(b) for b in seen}) == 1
        assert registry.get(f"race-{round_}") is seen[0]


def test_lru_bound_evicts_the_least_recently_used_closed_breaker(
    config: CircuitBreakerConfig,
) -> None:
    registry = BreakerRegistry(config, max_breakers=3)
    a = registry.get("a")
    registry.get("b")
    registry.get("c")
    registry.get("a")  # a is now the most recently used; b the least
    registry.get("d")
    assert [k for k, _ in registry.items()] == ["c", "a", "d"]
    assert registry.get("a") is a
    assert len(registry) == 3


def test_lru_eviction_never_evicts_an_open_breaker(config: CircuitBreakerConfig) -> None:
    registry = BreakerRegistry(config, max_breakers=3)
    failing = registry.get("failing")
    trip(failing)
    registry.get("b")
    registry.get("c")
    for i in range(10):  # never asked for again, "failing" is always an eviction candidate
        registry.get(f"new-{i}")
        assert "failing" in registry
    assert dict(registry.items())["failing"] is failing
    assert failing.state is CircuitState.OPEN
    assert len(registry) == 3


def test_lru_eviction_skips_half_open_forced_and_busy_breakers(
    config: CircuitBreakerConfig,
) -> None:
    assert config.clock is not None
    registry = BreakerRegistry(config, max_breakers=4)
    half_open = registry.get("half-open")
    trip(half_open)
    config.clock.advance(config.sleep_window)
    assert half_open.can_execute()  # the trial call moves it to HALF_OPEN and stays in flight
    forced = registry.get("forced")
    forced.force_closed()
    busy = registry.get("busy")
    assert busy.can_execute()  # admitted, outcome not yet reported: in flight
    registry.get("idle")
    registry.get("newcomer")
    assert "idle" not in registry
    assert {"half-open", "forced", "busy", "newcomer"} == {k for k, _ in registry.items()}
    busy.record_success()
    half_open.record_success()


def test_registry_grows_past_the_bound_with_one_warning_then_shrinks_back(
    config: CircuitBreakerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    registry = BreakerRegistry(config, max_breakers=2)
    opened = [registry.get("x"), registry.get("y")]
    for breaker in opened:
        trip(breaker)
    with caplog.at_level(logging.WARNING, logger="resilience"):
        registry.get("z1")
        registry.get("z2")
    warnings = [r for r in caplog.records if "max_breakers" in r.getMessage()]
    assert len(warnings) == 1
    # Nothing open was evictable, so z1 was served past the bound; z2 then evicted z1 (closed,
    # idle, least recently used) to shrink back, but the two open breakers keep it over.
    assert [k for k, _ in registry.items()] == ["x", "y", "z2"]
    for breaker in opened:
        breaker.reset()  # the failing hosts recovered: their breakers are evictable again
    registry.get("z3")
    registry.get("z4")
    assert len(registry) == 2
    assert {k for k, _ in registry.items()} == {"z3", "z4"}


def test_eviction_scan_is_bounded_when_many_breakers_are_open(
    config: CircuitBreakerConfig,
) -> None:
    registry = BreakerRegistry(config, max_breakers=100)
    for i in range(100):
        trip(registry.get(f"open-{i}"))
    registry.get("closed-but-recent")
    registry.get("another")
    # 102 breakers: the scan gave up after a bounded number of open ones, so the registry grew,
    # and not a single open breaker was lost.
    assert sum(1 for k, _ in registry.items() if k.startswith("open-")) == 100


def test_random_workload_never_loses_an_open_breaker(config: CircuitBreakerConfig) -> None:
    rng = random.Random(1234)
    registry = BreakerRegistry(config, max_breakers=8)
    open_keys: set[str] = set()
    for _ in range(2_000):
        key = f"k{rng.randrange(40)}"
        breaker = registry.get(key)
        if rng.random() < 0.05 and breaker.state is CircuitState.CLOSED:
            trip(breaker)
            open_keys.add(key)
        elif rng.random() < 0.05 and key in open_keys:
            breaker.reset()
            open_keys.discard(key)
        assert open_keys <= {k for k, _ in registry.items()}
    for key in open_keys:
        registry.get(key).reset()
    for i in range(40):  # each new key evicts up to two: the registry shrinks back to its bound
        registry.get(f"fresh-{i}")
    assert len(registry) == 8


def test_items_and_metrics_cover_every_breaker(config: CircuitBreakerConfig) -> None:
    registry = BreakerRegistry(config)
    registry.get("a").call(lambda: None)
    trip(registry.get("b"))
    metrics = registry.metrics()
    assert set(metrics) == {"a", "b"}
    assert metrics["a"]["success"] == 1
    assert metrics["b"]["state"] == "open"
    assert [k for k, _ in registry.items()] == ["a", "b"]


def test_registry_listener_hears_breakers_held_now_and_created_later(
    config: CircuitBreakerConfig,
) -> None:
    registry = BreakerRegistry(config)
    early = registry.get("early")
    heard: list[tuple[str, str, str]] = []
    registry.add_state_listener(lambda name, a, b: heard.append((name, a.value, b.value)))
    trip(early)
    trip(registry.get("late"))
    assert heard == [("early", "closed", "open"), ("late", "closed", "open")]
    with pytest.raises(TypeError):
        registry.add_state_listener("not callable")  # type: ignore[arg-type]
