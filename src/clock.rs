//! Time sources for the core.
//!
//! The core never asks the operating system for the time itself: every operation that needs the
//! time takes a [`Tick`]. A tick carries nanoseconds on a monotonic scale plus an *era*, a counter
//! that a clock bumps each time it goes backwards. The sliding window resets when the era changes,
//! so a clock that goes backwards is detected exactly where it happens, while two threads that read
//! a monotonic clock a few nanoseconds apart (and record in the "wrong" order) are not mistaken for
//! a clock going backwards.

use crate::sync::{AtomicI64, AtomicU64, Ordering};

/// One reading of a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Nanoseconds on the clock's own monotonic scale (the origin is arbitrary).
    pub ns: i64,
    /// Bumped each time the clock went backwards; 0 for clocks that never do.
    pub era: u64,
}

impl Tick {
    /// A tick in era 0, for clocks that never go backwards and for tests.
    pub const fn at(ns: i64) -> Self {
        Tick { ns, era: 0 }
    }
}

/// Something that tells the time.
pub trait Clock: Send + Sync {
    /// The current reading.
    fn now(&self) -> Tick;
}

/// The process's monotonic clock.
///
/// On Linux this is `CLOCK_MONOTONIC_COARSE`: a read of a shared page (a few ns, no syscall) with
/// the resolution of the kernel tick (1-4 ms), plenty for second-sized windows and sleep windows.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Tick {
        Tick::at(monotonic_ns())
    }
}

#[cfg(target_os = "linux")]
#[inline]
// `time_t` and `c_long` are narrower than i64 on some 32-bit targets, so the casts stay.
#[allow(clippy::unnecessary_cast)]
fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every Linux
    // since 2.6.32 and clock_gettime cannot fail for it with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as i64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as i64)
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn monotonic_ns() -> i64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    i64::try_from(origin.elapsed().as_nanos()).unwrap_or(i64::MAX)
}

/// A clock that only moves when told to: tests advance it instead of sleeping.
///
/// Thread-safe; any number of breakers and windows may share one.
#[derive(Debug, Default)]
pub struct ManualClock {
    ns: AtomicI64,
    era: AtomicU64,
}

impl ManualClock {
    /// A clock reading `start_ns`.
    pub fn new(start_ns: i64) -> Self {
        ManualClock {
            ns: AtomicI64::new(start_ns),
            era: AtomicU64::new(0),
        }
    }

    /// Moves the clock by `delta_ns`; a negative delta moves it backwards and starts a new era.
    pub fn advance(&self, delta_ns: i64) {
        if delta_ns < 0 {
            // Release: a reader that sees the new era also sees every write made before it.
            self.era.fetch_add(1, Ordering::Release);
        }
        // AcqRel: readers of the time see the writes that happened before the advance.
        self.ns.fetch_add(delta_ns, Ordering::AcqRel);
    }

    /// Nanoseconds now.
    pub fn ns(&self) -> i64 {
        self.ns.load(Ordering::Acquire)
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Tick {
        // Era first: a reader racing a backwards move sees the new era no later than the new time.
        let era = self.era.load(Ordering::Acquire);
        Tick {
            ns: self.ns.load(Ordering::Acquire),
            era,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(5);
        assert_eq!(clock.now(), Tick { ns: 5, era: 0 });
        clock.advance(10);
        assert_eq!(clock.now(), Tick { ns: 15, era: 0 });
    }

    #[test]
    fn manual_clock_going_backwards_starts_a_new_era() {
        let clock = ManualClock::new(100);
        clock.advance(-40);
        assert_eq!(clock.now(), Tick { ns: 60, era: 1 });
    }

    #[test]
    fn monotonic_clock_never_decreases_on_one_thread() {
        let clock = MonotonicClock;
        let mut last = clock.now().ns;
        for _ in 0..1000 {
            let now = clock.now().ns;
            assert!(now >= last);
            last = now;
        }
    }
}
