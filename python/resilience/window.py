"""The sliding window on its own: success and failure counts over the last ``window_size``
seconds, in ``bucket_count`` buckets. The breaker uses the same Rust window internally."""

from __future__ import annotations

from datetime import timedelta

from . import _core
from ._validate import check_duration, check_int
from .testing import ManualClock

__all__ = ["SlidingWindow"]

_OWNER = "SlidingWindow"


class SlidingWindow:
    """Thread-safe, lock-free counts of recent outcomes.

    A count expires once it is older than ``window_size`` (at the granularity of one bucket,
    ``window_size / bucket_count``). A clock that goes backwards resets the window.
    """

    __slots__ = ("_core", "bucket_count", "window_size")

    def __init__(
        self,
        window_size: float | timedelta = 60.0,
        bucket_count: int = 10,
        clock: ManualClock | None = None,
    ) -> None:
        self.window_size = check_duration(_OWNER, "window_size", window_size, positive=True)
        self.bucket_count = check_int(_OWNER, "bucket_count", bucket_count, low=1, high=100_000)
        if self.window_size * 1e9 < self.bucket_count:
            raise ValueError(
                f"{_OWNER}.window_size {window_size!r} is too short for bucket_count "
                f"{bucket_count!r} (each bucket needs at least 1ns)"
            )
        if clock is not None and not isinstance(clock, ManualClock):
            raise TypeError(
                f"{_OWNER}.clock must be None or a resilience.testing.ManualClock, got {clock!r}"
            )
        self._core = _core.Window(self.window_size, self.bucket_count, clock)

    def record_success(self) -> None:
        """Counts one success now."""
        self._core.record_success()

    def record_failure(self) -> None:
        """Counts one failure now."""
        self._core.record_failure()

    def counts(self) -> tuple[int, int]:
        """``(successes, failures)`` in the window."""
        return self._core.counts()

    def total(self) -> int:
        """Successes plus failures in the window."""
        return self._core.total()

    def error_rate(self) -> float:
        """Failures / total, 0.0 when the window is empty."""
        return self._core.error_rate()

    def reset(self) -> None:
        """Forgets every count."""
        self._core.reset()

    def __repr__(self) -> str:
        ok, failed = self.counts()
        return (
            f"SlidingWindow(window_size={self.window_size}, bucket_count={self.bucket_count}, "
            f"success={ok}, failure={failed})"
        )
