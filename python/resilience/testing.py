"""Helpers for testing code that uses breakers and retries without real sleeping.

``ManualClock`` is a Rust object: breakers and windows read it directly, with no call back into
Python, so a test controls time exactly::

    clock = ManualClock()
    cb = CircuitBreaker(name="x", clock=clock, sleep_window=5)
    ...
    clock.advance(5)          # the sleep window has passed
"""

from __future__ import annotations

from ._core import ManualClock

__all__ = ["ManualClock"]
