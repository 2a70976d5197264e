//! Lifetime counts of admitted and finished calls, kept per thread.
//!
//! Every call a breaker admits bumps `admitted` on the way in and `finished` on the way out. With
//! one shared atomic each, that is two locked read-modify-writes per call (the larger part of the
//! success path's cost) on cache lines that every thread writes, which free-threaded Python turns
//! into contention. Instead a [`Tally`] has a few cache-line-sized *stripes*:
//!
//! * The first [`EXCLUSIVE`] threads alive at once each own one stripe index, process-wide (the
//!   same index in every breaker). Only the owner ever writes its stripe, so a bump is a plain
//!   load and store: no lock prefix, and no line shared with another writer.
//! * Any other thread, and a thread whose thread-local storage is being torn down, bumps the last,
//!   shared stripe with `fetch_add`.
//!
//! Readers add the stripes up; the sums are exact once the writers are quiet, and never ahead of
//! what happened. An index returns to the pool when its thread exits. The pool is one atomic bit
//! mask, never a lock (a lock held by another thread at `fork()` would stay held in the child):
//! the release's `fetch_and` and the claim's compare-and-swap order the old owner's last store
//! before the new owner's first load.
//!
//! Under `--cfg loom` every bump takes the shared path (loom models atomics, not thread-locals).

use crate::sync::{AtomicU64, Ordering};

/// Stripes owned by one thread each; the shared stripe comes after them.
pub const EXCLUSIVE: usize = 3;

/// One thread's counts, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe {
    admitted: AtomicU64,
    finished: AtomicU64,
}

impl Stripe {
    #[inline]
    fn field(&self, which: Which) -> &AtomicU64 {
        match which {
            Which::Admitted => &self.admitted,
            Which::Finished => &self.finished,
        }
    }
}

#[derive(Clone, Copy)]
enum Which {
    Admitted,
    Finished,
}

/// Admitted and finished call counts, striped by thread.
#[derive(Debug)]
pub struct Tally {
    stripes: Box<[Stripe]>,
}

impl Default for Tally {
    fn default() -> Self {
        Self::new()
    }
}

impl Tally {
    /// All counts zero.
    pub fn new() -> Self {
        Tally {
            stripes: (0..=EXCLUSIVE).map(|_| Stripe::default()).collect(),
        }
    }

    /// Counts one admitted call.
    #[inline]
    pub fn admit(&self) {
        self.bump(thread_stripe(), Which::Admitted);
    }

    /// Counts one finished call.
    #[inline]
    pub fn finish(&self) {
        self.bump(thread_stripe(), Which::Finished);
    }

    /// [`Tally::finish`] for a caller that already asked [`thread_stripe`] on this thread.
    #[inline]
    pub fn finish_at(&self, stripe: Option<usize>) {
        self.bump(stripe, Which::Finished);
    }

    /// Calls admitted so far.
    pub fn admitted(&self) -> u64 {
        self.sum(Which::Admitted)
    }

    /// Calls finished so far.
    pub fn finished(&self) -> u64 {
        self.sum(Which::Finished)
    }

    #[inline]
    fn bump(&self, stripe: Option<usize>, which: Which) {
        match stripe {
            Some(index) => {
                let cell = self.stripes[index].field(which);
                // Relaxed load and store: this thread is the stripe's only writer (see the
                // module docs), so no increment can be lost; readers only need the value.
                cell.store(
                    cell.load(Ordering::Relaxed).wrapping_add(1),
                    Ordering::Relaxed,
                );
            }
            None => {
                // Relaxed: a statistic; it orders nothing.
                self.stripes[EXCLUSIVE]
                    .field(which)
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn sum(&self, which: Which) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.field(which).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// The stripe the calling thread owns, or None when it uses the shared one. Valid for this
/// thread only: hand it to [`Tally::finish_at`] on the same thread, never to another.
#[inline]
pub fn thread_stripe() -> Option<usize> {
    owner::stripe()
}

/// The row of a per-stripe table (such as the window's success rows) for `stripe`: the stripe's
/// own index, or the shared last row.
#[inline]
pub fn row(stripe: Option<usize>) -> usize {
    stripe.unwrap_or(EXCLUSIVE)
}

#[cfg(not(loom))]
mod owner {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::EXCLUSIVE;

    /// Not asked for a stripe yet.
    const UNCLAIMED: u8 = u8::MAX - 1;
    /// Uses the shared stripe: none was free, or the thread is exiting.
    const SHARED: u8 = u8::MAX;

    /// Bit `i` is set while some thread owns stripe `i`.
    static CLAIMED: AtomicU32 = AtomicU32::new(0);
    const ALL: u32 = (1 << EXCLUSIVE) - 1;
    const _: () = assert!(EXCLUSIVE < 32, "the claim mask has 32 bits");

    thread_local! {
        /// This thread's stripe index, UNCLAIMED or SHARED. A `Cell<u8>` with a const
        /// initializer and no destructor: reading it is one thread-local load, and it stays
        /// readable while the thread's destructors run.
        static INDEX: Cell<u8> = const { Cell::new(UNCLAIMED) };
        /// Gives the index back when the thread exits.
        static RELEASE: Release = const { Release };
    }

    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            // Switch to the shared stripe before giving the index away: from here on this thread
            // never writes the owned stripe again.
            let index = INDEX.with(|i| i.replace(SHARED));
            if usize::from(index) < EXCLUSIVE {
                // Release: our last store to the stripe happens before the next owner's claim.
                CLAIMED.fetch_and(!(1 << index), Ordering::Release);
            }
        }
    }

    /// The stripe this thread owns, or None for the shared one.
    #[inline]
    pub(super) fn stripe() -> Option<usize> {
        let index = INDEX.with(Cell::get);
        if usize::from(index) < EXCLUSIVE {
            Some(usize::from(index))
        } else if index == UNCLAIMED {
            claim()
        } else {
            None
        }
    }

    #[cold]
    fn claim() -> Option<usize> {
        // Register the release first: if the thread's destructors are already running, it can't
        // be registered, and the thread must not own anything it could never give back.
        if RELEASE.try_with(|_| ()).is_err() {
            INDEX.with(|i| i.set(SHARED));
            return None;
        }
        let mut mask = CLAIMED.load(Ordering::Relaxed);
        while mask & ALL != ALL {
            let free = (!mask).trailing_zeros();
            // Acquire: see the previous owner's last store to this stripe (its Release above).
            match CLAIMED.compare_exchange_weak(
                mask,
                mask | (1 << free),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    INDEX.with(|i| i.set(free as u8));
                    return Some(free as usize);
                }
                Err(seen) => mask = seen,
            }
        }
        INDEX.with(|i| i.set(SHARED));
        None
    }
}

#[cfg(loom)]
mod owner {
    #[inline]
    pub(super) fn stripe() -> Option<usize> {
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn counts_from_one_thread_add_up() {
        let t = Tally::new();
        for _ in 0..1000 {
            t.admit();
        }
        for _ in 0..400 {
            t.finish();
        }
        assert_eq!((t.admitted(), t.finished()), (1000, 400));
    }

    #[test]
    fn more_threads_than_stripes_lose_no_count() {
        // Twice as many threads as owned stripes, all alive at once: half share the last stripe.
        let threads = 2 * EXCLUSIVE + 1;
        let per_thread = 100_000u64;
        let tally = Arc::new(Tally::new());
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (tally, start) = (tally.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..per_thread {
                        tally.admit();
                        tally.finish();
                    }
                    start.wait(); // keep every thread alive until all are done
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total = threads as u64 * per_thread;
        assert_eq!((tally.admitted(), tally.finished()), (total, total));
    }

    #[test]
    fn stripes_are_reused_after_their_threads_exit() {
        // Many short-lived threads in waves: owned indexes come back to the pool, and counts
        // written by an exited owner are kept when a new thread takes its index over.
        let tally = Arc::new(Tally::new());
        for _ in 0..20 {
            let handles: Vec<_> = (0..EXCLUSIVE)
                .map(|_| {
                    let tally = tally.clone();
                    std::thread::spawn(move || {
                        for _ in 0..1_000 {
                            tally.admit();
                        }
                        owner::stripe()
                    })
                })
                .collect();
            let owned = handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .count();
            // Other tests run threads at the same time, so not every wave gets every index; the
            // counts must be exact regardless.
            assert!(owned <= EXCLUSIVE);
        }
        assert_eq!(tally.admitted(), 20 * EXCLUSIVE as u64 * 1_000);
    }

    #[test]
    fn a_stripe_is_one_cache_line() {
        assert_eq!(std::mem::align_of::<Stripe>(), 64);
        assert_eq!(std::mem::size_of::<Stripe>(), 64);
    }
}
