"""Shared fixtures for the breaker and window tests, and the hypothesis profiles.

Every breaker built by ``make_breaker`` reads the test's ``ManualClock`` (no test sleeps), reports
to a recording collector and tells a recording listener about its transitions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings

from resilience import CircuitBreaker, CircuitState
from resilience.testing import ManualClock

settings.register_profile("ci", max_examples=500, deadline=None)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


class RecordingListener:
    """A state listener that remembers ``(from_state, to_state)`` for every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, CircuitState, CircuitState]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, from_state: CircuitState, to_state: CircuitState) -> None:
        with self._lock:
            self.calls.append((name, from_state, to_state))

    @property
    def transitions(self) -> list[tuple[CircuitState, CircuitState]]:
        return [(a, b) for _, a, b in self.calls]


class RecordingCollector:
    """A MetricsCollector that remembers every call as a tuple, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def _add(self, *event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def record_success(self, name: str) -> None:
        self._add("success", name)

    def record_failure(self, name: str, error_type: str) -> None:
        self._add("failure", name, error_type)

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        self._add("state_change", name, from_state, to_state)

    def record_rejection(self, name: str) -> None:
        self._add("rejection", name)

    def kinds(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
def collector() -> RecordingCollector:
    return RecordingCollector()


@pytest.fixture
def make_breaker(
    clock: ManualClock, listener: RecordingListener, collector: RecordingCollector
) -> Callable[..., CircuitBreaker]:
    """``make_breaker(**overrides)``: a breaker named "test" on the test's clock, with
    volume_threshold 4, the recording collector and the recording listener."""

    def make(**overrides: Any) -> CircuitBreaker:
        kw: dict[str, Any] = {
            "name": "test",
            "clock": clock,
            "volume_threshold": 4,
            "metrics": collector,
        }
        kw.update(overrides)
        cb = CircuitBreaker(**kw)
        cb.add_state_listener(listener)
        return cb

    return make


# Fixtures that hand every thread of a pytest-run-parallel run the same mutable object: one
# ManualClock (a test that advances virtual time can't share it), one breaker factory wired to it,
# one recording listener or collector, one Prometheus registry, one log capture (caplog records
# every thread's logs), one monkeypatch. Tests using them run on a single thread under
# `--parallel-threads`; tests that build their own objects run on all threads.
SHARED_STATE_FIXTURES = frozenset(
    {"clock", "make_breaker", "listener", "collector", "registry", "caplog", "monkeypatch"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SHARED_STATE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(
                pytest.mark.thread_unsafe(reason="shares a ManualClock or breaker fixture")
            )
