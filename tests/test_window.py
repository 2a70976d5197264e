"""SlidingWindow: counts, expiry at bucket granularity, a clock going backwards, validation and
exact counting from many threads."""

from __future__ import annotations

import math
import re
import threading
from datetime import timedelta

import pytest

from resilience import SlidingWindow
from resilience.testing import ManualClock


def test_empty_window_counts_nothing_and_its_error_rate_is_zero(clock):
    w = SlidingWindow(clock=clock)
    assert (w.counts(), w.total(), w.error_rate()) == ((0, 0), 0, 0.0)


def test_counts_total_and_error_rate(clock):
    w = SlidingWindow(clock=clock)
    for _ in range(3):
        w.record_success()
    w.record_failure()
    assert (w.counts(), w.total(), w.error_rate()) == ((3, 1), 4, 0.25)
    w.record_failure()
    w.record_failure()
    assert w.error_rate() == 0.5


def test_only_failures_give_error_rate_one(clock):
    w = SlidingWindow(clock=clock)
    w.record_failure()
    assert w.error_rate() == 1.0


def test_reset_forgets_every_count_and_counting_resumes(clock):
    w = SlidingWindow(clock=clock)
    w.record_success()
    w.record_failure()
    w.reset()
    assert (w.counts(), w.total(), w.error_rate()) == ((0, 0), 0, 0.0)
    w.record_failure()
    assert w.counts() == (0, 1)


def test_defaults_are_sixty_seconds_in_ten_buckets():
    w = SlidingWindow()
    assert (w.window_size, w.bucket_count) == (60.0, 10)
    w.record_success()
    assert w.counts() == (1, 0)


# ----- expiry ------------------------------------------------------------------------------------


def test_count_expires_exactly_when_its_bucket_leaves_the_window(clock):
    w = SlidingWindow(60, 10, clock=clock)  # 6 s buckets
    w.record_failure()  # t = 0, bucket 0
    clock.advance(59.999)
    assert w.counts() == (0, 1)
    clock.advance(0.001)  # t = 60: bucket 10 is current, bucket 0 left
    assert w.counts() == (0, 0)


def test_expiry_is_at_bucket_granularity_not_per_record(clock):
    w = SlidingWindow(60, 10, clock=clock)
    clock.advance(5.999)
    w.record_failure()  # bucket 0, although only 54.001 s before t = 60
    clock.advance(0.001)
    w.record_success()  # t = 6: bucket 1
    clock.advance(54)  # t = 60
    assert w.counts() == (1, 0)
    clock.advance(5.999)  # t = 65.999: bucket 10 still
    assert w.counts() == (1, 0)
    clock.advance(0.001)  # t = 66: bucket 1 left
    assert w.counts() == (0, 0)


def test_counts_spread_over_the_window_leave_one_bucket_at_a_time(clock):
    w = SlidingWindow(10, 5, clock=clock)  # 2 s buckets
    for _ in range(5):
        w.record_success()
        w.record_failure()
        clock.advance(2)
    # t = 10: the five records sat in buckets 0..4; bucket 0 has just left
    totals = []
    for _ in range(5):
        totals.append(w.total())
        clock.advance(2)
    assert totals == [8, 6, 4, 2, 0]


def test_single_bucket_window_expires_all_at_once(clock):
    w = SlidingWindow(1, 1, clock=clock)
    clock.advance(0.5)
    w.record_failure()
    clock.advance(0.499)
    assert w.counts() == (0, 1)
    clock.advance(0.001)
    assert w.counts() == (0, 0)


def test_a_long_silence_never_brings_old_counts_back(clock):
    w = SlidingWindow(1, 10, clock=clock)  # 100 ms buckets
    w.record_failure()
    clock.advance(3 * 86_400 + 0.05)
    assert w.counts() == (0, 0)
    w.record_success()
    assert w.counts() == (1, 0)


@pytest.mark.parametrize("record_after", [False, True])
def test_counts_from_exactly_2_pow_24_buckets_ago_never_come_back(clock, record_after):
    w = SlidingWindow(1, 1, clock=clock)  # one 1 s bucket: its tag comes round after 2^24 s
    w.record_failure()
    clock.advance(1 << 24)
    if record_after:
        w.record_success()
    assert w.counts() == (int(record_after), 0)


def test_counting_after_expiry_starts_from_zero_in_a_reused_bucket(clock):
    w = SlidingWindow(4, 2, clock=clock)
    w.record_failure()
    w.record_failure()
    clock.advance(4)  # same slot, two buckets later
    w.record_success()
    assert w.counts() == (1, 0)


# ----- a clock that goes backwards ---------------------------------------------------------------


def test_clock_going_backwards_resets_the_window(clock):
    w = SlidingWindow(60, 10, clock=clock)
    clock.advance(50)
    w.record_failure()
    w.record_success()
    clock.advance(-40)
    assert w.counts() == (0, 0)
    w.record_failure()
    assert w.counts() == (0, 1)
    clock.advance(30)  # forward again: the new count is still in the window
    assert w.counts() == (0, 1)


def test_clock_going_backwards_by_a_little_still_resets(clock):
    w = SlidingWindow(60, 10, clock=clock)
    clock.advance(10)
    w.record_success()
    clock.advance(timedelta(microseconds=-1))
    assert w.total() == 0


# ----- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("window_size", 0, ValueError),
        ("window_size", -1.5, ValueError),
        ("window_size", math.nan, ValueError),
        ("window_size", math.inf, ValueError),
        ("window_size", "60", TypeError),
        ("window_size", True, TypeError),
        ("window_size", None, TypeError),
        ("bucket_count", 0, ValueError),
        ("bucket_count", -2, ValueError),
        ("bucket_count", 1.5, TypeError),
        ("bucket_count", True, TypeError),
        ("bucket_count", "10", TypeError),
    ],
)
def test_invalid_settings_raise_naming_field_and_value(field, value, error):
    with pytest.raises(error, match=rf"{field}\b.*{re.escape(repr(value))}"):
        SlidingWindow(**{field: value})


def test_clock_must_be_a_manual_clock_or_none():
    with pytest.raises(TypeError, match="clock"):
        SlidingWindow(clock=object())


def test_window_too_short_for_its_buckets_is_a_value_error():
    with pytest.raises(ValueError, match=r"window_size.*bucket_count"):
        SlidingWindow(1e-8, 100)


def test_timedelta_window_size_is_stored_as_float_seconds(clock):
    w = SlidingWindow(timedelta(minutes=2), 4, clock=clock)
    assert w.window_size == 120.0
    assert type(w.window_size) is float
    w.record_success()
    clock.advance(119.9)
    assert w.total() == 1
    clock.advance(0.1)
    assert w.total() == 0


def test_integral_float_bucket_count_is_taken_as_int():
    w = SlidingWindow(60, 5.0)
    assert w.bucket_count == 5
    assert type(w.bucket_count) is int


# ----- threads -----------------------------------------------------------------------------------


def test_threads_counting_at_once_lose_no_count():
    clock = ManualClock()
    w = SlidingWindow(3600, 10, clock=clock)
    threads, per_thread = 8, 20_000
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            if (i + t) % 3 == 0:
                w.record_failure()
            else:
                w.record_success()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failures = sum(1 for t in range(threads) for i in range(per_thread) if (i + t) % 3 == 0)
    assert w.counts() == (threads * per_thread - failures, failures)


def test_threads_counting_while_the_clock_crosses_buckets_lose_no_count():
    clock = ManualClock()
    w = SlidingWindow(1000, 100, clock=clock)  # 10 s buckets; the run stays inside the window
    barrier = threading.Barrier(5)

    def count() -> None:
        barrier.wait()
        for _ in range(10_000):
            w.record_success()

    def tick() -> None:
        barrier.wait()
        for _ in range(200):
            clock.advance(1)

    workers = [threading.Thread(target=count) for _ in range(4)] + [threading.Thread(target=tick)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert clock.now() == 200
    assert w.counts() == (40_000, 0)
