//! A time-bucketed sliding window of success and failure counts, lock-free.
//!
//! Time is cut into *epochs* of `bucket_ns` each; the window holds the last `n` epochs, in a ring
//! of `n` slots (epoch `x` lives in slot `x mod n`). Each slot has one 64-bit word for failures
//! and [`ROWS`] words for successes, one per *row*: a thread records its successes in its own row
//! (the stripe it owns in [`crate::tally`], or the shared last row), so threads recording at once
//! do not fight over one cache line; readers add the rows up. Each word packs the epoch's 24-bit
//! *tag* with a 40-bit count:
//!
//! ```text
//!   63            40 39                              0
//!  +----------------+---------------------------------+
//!  | tag (epoch mod |             count               |
//!  |      2^24)     |                                 |
//!  +----------------+---------------------------------+
//! ```
//!
//! Because the tag and the count change together in one compare-and-swap, an increment can never
//! land in a slot after another thread recycled it for a later epoch: the recycle and the
//! increment are ordered by the CAS, and an increment for an epoch that a newer one has displaced
//! is dropped (it had expired anyway). Readers only count words whose tag matches the epoch the
//! slot stands for in their window, so stale words need no eager clearing.
//!
//! `head` remembers the newest epoch recorded. Whoever moves it forward clears, in the slots of
//! the epochs entering the window, any word left from another epoch; this keeps a word from an
//! epoch `2^24` buckets ago from passing for a current one after a long silence. (Resets are
//! `swap`s rather than `store`s so that loom models them faithfully; see `breaker.rs`.)

use crate::clock::Tick;
use crate::sync::{AtomicI64, AtomicU64, Ordering};

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << 24) - 1;
/// A word that holds nothing (never a valid tag/count pair in practice: it would need a count of
/// 2^40 - 1 in one bucket).
const EMPTY: u64 = u64::MAX;
/// Epoch distances from here on may make two epochs' tags look equal or out of order.
const TAG_HORIZON: i64 = 1 << 23;
/// `head` before anything was recorded.
const NO_EPOCH: i64 = i64::MIN;

#[inline]
fn tag(epoch: i64) -> u64 {
    (epoch as u64) & TAG_MASK
}

#[inline]
fn pack(tag: u64, count: u64) -> u64 {
    (tag << COUNT_BITS) | count
}

#[inline]
fn word_tag(word: u64) -> u64 {
    word >> COUNT_BITS
}

/// True when tag `a` is ahead of tag `b` on the 24-bit circle.
#[inline]
fn tag_is_newer(a: u64, b: u64) -> bool {
    let distance = a.wrapping_sub(b) & TAG_MASK;
    distance != 0 && distance < (1 << 23)
}

/// Floor division by a divisor fixed at construction, without a hardware divide: a multiply by a
/// precomputed reciprocal and a shift. Every record needs the epoch of `now` (a division by
/// `bucket_ns`) and its slot (a remainder by `n`); a 64-bit `idiv` costs tens of cycles, the
/// multiply a few.
///
/// For `d = 2^c` it is a shift. Otherwise, with `c = ceil(log2 d)` (so `c >= 2`), `k = 63 + c`
/// and `magic = ceil(2^k / d)` (which fits in 64 bits), `(x * magic) >> k == x / d` for every
/// `0 <= x < 2^63`: the error `x * (magic * d - 2^k) / (d * 2^k)` is below `2^63 / 2^k = 2^-c <
/// 1/d`, too little to reach the next integer. As `k > 64` that is the high word of the product
/// shifted by `k - 64`. Negative dividends (a manual clock set before zero) take `div_euclid`.
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: i64,
    /// 0 for a power of two.
    magic: u64,
    /// `c` for a power of two, else `k - 64`.
    shift: u32,
}

impl Divisor {
    fn new(d: i64) -> Self {
        assert!(d >= 1, "divisor must be >= 1");
        if d.count_ones() == 1 {
            return Divisor {
                d,
                magic: 0,
                shift: d.trailing_zeros(),
            };
        }
        let c = 64 - ((d - 1) as u64).leading_zeros(); // ceil(log2 d), >= 2 here
        let k = 63 + c;
        let magic = (1u128 << k).div_ceil(d as u128);
        Divisor {
            d,
            magic: u64::try_from(magic).expect("the reciprocal fits in 64 bits"),
            shift: k - 64,
        }
    }

    /// `x.div_euclid(d)`.
    #[inline]
    fn div(&self, x: i64) -> i64 {
        if x < 0 {
            x.div_euclid(self.d)
        } else if self.magic == 0 {
            x >> self.shift
        } else {
            let high = ((x as u128 * self.magic as u128) >> 64) as u64;
            (high >> self.shift) as i64
        }
    }

    /// `x.rem_euclid(d)`.
    #[inline]
    fn rem(&self, x: i64) -> i64 {
        if x >= 0 {
            x - self.div(x) * self.d // q * d <= x: no overflow
        } else {
            x.rem_euclid(self.d)
        }
    }
}

/// Success rows: one per owned stripe, plus the shared one.
pub const ROWS: usize = crate::tally::EXCLUSIVE + 1;

/// Words per success row: at least 8, so the same slot's words in two rows are 64 bytes or more
/// apart and never share a cache line.
fn row_len(n: usize) -> usize {
    n.max(8)
}

/// Success and failure counts over the last `window` of time, bucketed.
#[derive(Debug)]
pub struct Window {
    n: i64,
    /// Divides by the bucket length in nanoseconds (time to epoch).
    per_bucket: Divisor,
    /// Divides by `n` (epoch to slot).
    per_ring: Divisor,
    /// `n` failure words, one per slot.
    failures: Box<[AtomicU64]>,
    /// `ROWS` rows of `row_len` success words; slot `i` of row `r` is `r * row_len + i`.
    successes: Box<[AtomicU64]>,
    row_len: usize,
    head: AtomicI64,
    era: AtomicU64,
    /// The newest epoch with a failure recorded (NO_EPOCH: none since the last clear); lets a
    /// success skip judging a window that holds no failure.
    last_failure: AtomicI64,
}

impl Window {
    /// A window of `window_ns` nanoseconds cut into `buckets` buckets.
    ///
    /// # Panics
    /// If `window_ns < 1` or `buckets < 1` (the Python layer validates before this).
    pub fn new(window_ns: i64, buckets: u32) -> Self {
        assert!(window_ns >= 1, "window_ns must be >= 1");
        assert!(buckets >= 1, "buckets must be >= 1");
        let n = i64::from(buckets);
        let empty = |count: usize| (0..count).map(|_| AtomicU64::new(EMPTY)).collect();
        let row_len = row_len(buckets as usize);
        Window {
            n,
            per_bucket: Divisor::new((window_ns / n).max(1)),
            per_ring: Divisor::new(n),
            failures: empty(buckets as usize),
            successes: empty(ROWS * row_len),
            row_len,
            head: AtomicI64::new(NO_EPOCH),
            era: AtomicU64::new(0),
            last_failure: AtomicI64::new(NO_EPOCH),
        }
    }

    /// Length of one bucket in nanoseconds.
    pub fn bucket_ns(&self) -> i64 {
        self.per_bucket.d
    }

    /// Records one outcome at `now`. Returns false when the outcome was dropped because `now` lies
    /// before the window (a thread that read the clock long ago) or in an abandoned era.
    #[inline]
    pub fn record(&self, now: Tick, failure: bool) -> bool {
        let row = crate::tally::row(crate::tally::thread_stripe());
        self.record_in(row, now, self.epoch(now), failure)
    }

    /// The epoch (bucket number) of `now`.
    #[inline]
    pub fn epoch(&self, now: Tick) -> i64 {
        self.per_bucket.div(now.ns)
    }

    /// [`Window::record`] with a success going to `row` (any row below [`ROWS`] is correct;
    /// the calling thread's own row, [`crate::tally::row`], keeps threads apart), for a caller
    /// that already has `now`'s [`Window::epoch`].
    #[inline]
    pub fn record_in(&self, row: usize, now: Tick, epoch: i64, failure: bool) -> bool {
        if !self.enter_era(now.era) {
            return false;
        }
        // Acquire: pairs with the AcqRel CAS in `advance_head`, so the clearing done by whoever
        // moved head is visible before we write into a slot it cleared.
        let head = self.head.load(Ordering::Acquire);
        if epoch > head {
            self.advance_head(head, epoch);
        } else if epoch <= head.saturating_sub(self.n) {
            return false;
        }
        let index = self.per_ring.rem(epoch) as usize;
        if !failure {
            return add_one(self.success_word(row, index), tag(epoch));
        }
        let added = add_one(&self.failures[index], tag(epoch));
        // SeqCst, with the load in `may_hold_failures`: a success that does not see this
        // failure recorded was itself recorded before it, and the failure's own judgement of
        // the window then counts that success.
        self.last_failure.fetch_max(epoch, Ordering::SeqCst);
        added
    }

    /// False only when no failure can be inside the window ending in `epoch` (a cheap check
    /// that spares a success the read of every bucket).
    #[inline]
    pub fn may_hold_failures(&self, epoch: i64) -> bool {
        let newest = self.last_failure.load(Ordering::SeqCst);
        newest != NO_EPOCH && epoch - newest < self.n
    }

    /// `(successes, failures)` inside the window ending at `now`.
    pub fn counts(&self, now: Tick) -> (u64, u64) {
        self.enter_era(now.era);
        let epoch = self.epoch(now);
        // Every word holds an epoch within the n epochs ending at `head` (writers move head
        // before they write), so only epochs inside both windows can hold counts. This also
        // keeps a word whose tag merely repeats (2^24 buckets later) from being read.
        // Acquire: pairs with the head CAS, so the recycling it did is visible.
        let head = self.head.load(Ordering::Acquire);
        if head == NO_EPOCH {
            return (0, 0);
        }
        let last = epoch.min(head);
        let first = (epoch - self.n + 1).max(head - self.n + 1);
        let (mut ok, mut failed) = (0, 0);
        // Acquire: see the count that the CAS in `add_one` published.
        let count = |word: &AtomicU64, want: u64| {
            let w = word.load(Ordering::Acquire);
            if w != EMPTY && word_tag(w) == want {
                w & COUNT_MASK
            } else {
                0
            }
        };
        let mut index = self.per_ring.rem(first) as usize;
        for x in first..=last {
            let want = tag(x);
            for row in 0..ROWS {
                ok += count(self.success_word(row, index), want);
            }
            failed += count(&self.failures[index], want);
            index = self.next_index(index);
        }
        (ok, failed)
    }

    /// Forgets every count.
    pub fn clear(&self) {
        for word in self.successes.iter().chain(self.failures.iter()) {
            // Release: a reader that sees EMPTY sees the clear as a whole in this word.
            word.swap(EMPTY, Ordering::Release);
        }
        self.head.swap(NO_EPOCH, Ordering::Release);
        self.last_failure.swap(NO_EPOCH, Ordering::Release);
    }

    /// Follows the clock into `era`; false if `era` is older than the window's (the reading was
    /// taken before the clock went backwards and is dropped).
    #[inline]
    fn enter_era(&self, era: u64) -> bool {
        // Acquire: after seeing a new era we also see the clear that its winner performed.
        let current = self.era.load(Ordering::Acquire);
        era == current || self.change_era(era, current)
    }

    /// The slow part of [`Window::enter_era`]: `era` differs from the window's.
    #[cold]
    #[inline(never)]
    fn change_era(&self, era: u64, mut current: u64) -> bool {
        loop {
            if era == current {
                return true;
            }
            if era < current {
                return false;
            }
            match self
                .era
                .compare_exchange(current, era, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // The clock went backwards: everything counted so far lies in a future that
                    // will never come on the new timeline.
                    self.clear();
                    return true;
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// Moves `head` to `epoch` (once per bucket: off the hot path).
    #[cold]
    #[inline(never)]
    fn advance_head(&self, mut seen: i64, epoch: i64) {
        while epoch > seen {
            match self
                .head
                .compare_exchange_weak(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.recycle(seen, epoch);
                    return;
                }
                Err(now_seen) => seen = now_seen,
            }
        }
    }

    /// Clears words left from other epochs in the slots of the epochs in `(old, new]`.
    fn recycle(&self, old: i64, new: i64) {
        // After a jump of 2^23 buckets or more a stale word's tag may equal the new epoch's, so
        // tags can't tell stale from fresh: clear everything. The price is that a record racing
        // this very first record after such a silence (days, for second-sized buckets) can be
        // lost; below that distance, tags are exact and nothing fresh is ever cleared.
        let long_silence = old != NO_EPOCH && new - old >= TAG_HORIZON;
        let first = if old == NO_EPOCH || new - old >= self.n {
            new - self.n + 1
        } else {
            old + 1
        };
        let mut index = self.per_ring.rem(first) as usize;
        for x in first..=new {
            let want = tag(x);
            let words = (0..ROWS)
                .map(|row| self.success_word(row, index))
                .chain(std::iter::once(&self.failures[index]));
            for word in words {
                if long_silence {
                    word.swap(EMPTY, Ordering::Release);
                } else {
                    clear_unless(word, want);
                }
            }
            index = self.next_index(index);
        }
    }

    /// The success word of slot `index` in `row`.
    #[inline]
    fn success_word(&self, row: usize, index: usize) -> &AtomicU64 {
        &self.successes[row * self.row_len + index]
    }

    /// The slot after `index`, around the ring.
    #[inline]
    fn next_index(&self, index: usize) -> usize {
        if index + 1 == self.failures.len() {
            0
        } else {
            index + 1
        }
    }
}

/// Adds one to `word` for the epoch tagged `want`, recycling the word if it holds an older epoch.
/// Returns false when a newer epoch already owns the word (the outcome has expired).
#[inline]
fn add_one(word: &AtomicU64, want: u64) -> bool {
    let mut current = word.load(Ordering::Relaxed);
    loop {
        let next = if current != EMPTY && word_tag(current) == want {
            if current & COUNT_MASK == COUNT_MASK {
                return true; // saturated: 2^40 - 1 outcomes in one bucket
            }
            current + 1
        } else if current != EMPTY && tag_is_newer(word_tag(current), want) {
            return false;
        } else {
            pack(want, 1)
        };
        // AcqRel on success: publishes the count to readers and orders us after the previous
        // owner of the word; Relaxed on failure: we only retry with the fresh value.
        match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) => current = seen,
        }
    }
}

/// Empties `word` unless it holds epoch `want` (a racing writer may already have started it).
fn clear_unless(word: &AtomicU64, want: u64) {
    let mut current = word.load(Ordering::Relaxed);
    while current != EMPTY && word_tag(current) != want {
        match word.compare_exchange_weak(current, EMPTY, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn divisor_matches_div_euclid_and_rem_euclid() {
        let mut divisors: Vec<i64> = (1..=2_000).collect();
        for bit in 1..63 {
            let p = 1i64 << bit;
            divisors.extend([p - 1, p, p + 1]);
        }
        divisors.extend([
            1_000_000,
            6_000_000_000,
            999_999_937,
            1_000_000_007,
            i64::MAX / 3,
            i64::MAX - 1,
            i64::MAX,
        ]);
        // A fixed xorshift sequence: deterministic, spread over the whole range.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &d in &divisors {
            let div = Divisor::new(d);
            let mut xs = vec![0, 1, d - 1, d, d.saturating_add(1), i64::MAX, i64::MAX - 1];
            xs.extend([-1, -d, i64::MIN, i64::MIN + 1]);
            for k in [2i64, 3, 1_000, 1 << 20, 1 << 40] {
                if let Some(m) = d.checked_mul(k) {
                    xs.extend([m - 1, m, m + 1]);
                }
            }
            for _ in 0..200 {
                let r = next();
                xs.push((r >> 1) as i64); // any non-negative
                xs.push((r >> (r % 60 + 1)) as i64); // small ones too
                xs.push(r as i64); // negative half the time
            }
            for x in xs {
                assert_eq!(div.div(x), x.div_euclid(d), "{x} / {d}");
                assert_eq!(div.rem(x), x.rem_euclid(d), "{x} % {d}");
            }
        }
    }

    const SEC: i64 = 1_000_000_000;

    fn at(s: f64) -> Tick {
        Tick::at((s * SEC as f64) as i64)
    }

    #[test]
    fn empty_window_counts_nothing() {
        let w = Window::new(60 * SEC, 10);
        assert_eq!(w.counts(at(0.0)), (0, 0));
    }

    #[test]
    fn records_land_in_counts() {
        let w = Window::new(60 * SEC, 10);
        assert!(w.record(at(1.0), false));
        assert!(w.record(at(2.0), true));
        assert!(w.record(at(2.5), true));
        assert_eq!(w.counts(at(3.0)), (1, 2));
    }

    #[test]
    fn count_expires_exactly_when_its_bucket_leaves_the_window() {
        // 10 buckets of 6 s: a record at t=0 lives in epoch 0, which leaves at t=60.
        let w = Window::new(60 * SEC, 10);
        w.record(at(0.0), true);
        assert_eq!(w.counts(at(59.999)), (0, 1));
        assert_eq!(w.counts(at(60.0)), (0, 0));
    }

    #[test]
    fn bucket_boundary_splits_expiry() {
        let w = Window::new(60 * SEC, 10);
        w.record(at(5.999), false); // epoch 0
        w.record(at(6.0), false); // epoch 1
        assert_eq!(w.counts(at(60.0)), (1, 0));
        assert_eq!(w.counts(at(66.0)), (0, 0));
    }

    #[test]
    fn successes_in_every_row_are_counted_expired_and_cleared_together() {
        let w = Window::new(10 * SEC, 2); // 5 s buckets
        for row in 0..ROWS {
            for _ in 0..=row {
                assert!(w.record_in(row, at(1.0), w.epoch(at(1.0)), false));
            }
        }
        let all = (ROWS * (ROWS + 1) / 2) as u64;
        assert_eq!(w.counts(at(1.0)), (all, 0));
        w.record_in(0, at(6.0), w.epoch(at(6.0)), false); // the next bucket: both still inside
        assert_eq!(w.counts(at(6.0)), (all + 1, 0));
        // Epoch 2 reuses epoch 0's slot: every row's old words are recycled, none leak in.
        w.record_in(ROWS - 1, at(11.0), w.epoch(at(11.0)), false);
        assert_eq!(w.counts(at(11.0)), (2, 0));
        w.clear();
        assert_eq!(w.counts(at(11.0)), (0, 0));
        for row in 0..ROWS {
            w.record_in(row, at(12.0), w.epoch(at(12.0)), false);
        }
        assert_eq!(w.counts(at(12.0)), (ROWS as u64, 0));
        // A long silence clears every row unconditionally.
        let later = at(12.0 + 5.0 * (TAG_HORIZON as f64 + 1.0));
        w.record_in(1, later, w.epoch(later), true);
        assert_eq!(w.counts(later), (0, 1));
    }

    #[test]
    fn rows_of_one_slot_never_share_a_cache_line() {
        for buckets in [1u32, 2, 7, 8, 10, 100] {
            let w = Window::new(60 * SEC, buckets);
            for i in 0..buckets as usize {
                let lines: Vec<usize> = (0..ROWS)
                    .map(|row| std::ptr::from_ref(w.success_word(row, i)) as usize / 64)
                    .collect();
                for pair in lines.windows(2) {
                    assert_ne!(pair[0], pair[1], "buckets {buckets}, slot {i}");
                }
            }
        }
    }

    #[test]
    fn slot_reuse_after_a_full_window_starts_from_zero() {
        let w = Window::new(10 * SEC, 2);
        w.record(at(1.0), true);
        w.record(at(11.0), false); // same slot, epoch 2
        assert_eq!(w.counts(at(11.0)), (1, 0));
    }

    #[test]
    fn late_record_for_an_expired_epoch_is_dropped() {
        let w = Window::new(10 * SEC, 2);
        w.record(at(30.0), false);
        assert!(!w.record(at(1.0), true));
        assert_eq!(w.counts(at(30.0)), (1, 0));
    }

    #[test]
    fn slightly_stale_record_still_counts_in_its_own_bucket() {
        let w = Window::new(10 * SEC, 10);
        w.record(at(5.0), false);
        assert!(w.record(at(4.5), true));
        assert_eq!(w.counts(at(5.0)), (1, 1));
        assert_eq!(w.counts(at(14.9)), (1, 0));
    }

    #[test]
    fn clock_going_backwards_resets_the_window() {
        let w = Window::new(60 * SEC, 10);
        w.record(
            Tick {
                ns: 50 * SEC,
                era: 0,
            },
            true,
        );
        w.record(
            Tick {
                ns: 51 * SEC,
                era: 0,
            },
            false,
        );
        assert_eq!(
            w.counts(Tick {
                ns: 10 * SEC,
                era: 1
            }),
            (0, 0)
        );
        assert!(w.record(
            Tick {
                ns: 10 * SEC,
                era: 1
            },
            true
        ));
        assert_eq!(
            w.counts(Tick {
                ns: 10 * SEC,
                era: 1
            }),
            (0, 1)
        );
        // A reading from before the clock went back is dropped.
        assert!(!w.record(
            Tick {
                ns: 52 * SEC,
                era: 0
            },
            true
        ));
    }

    #[test]
    fn long_silence_does_not_resurrect_old_counts() {
        let w = Window::new(SEC, 10); // 100 ms buckets
        w.record(at(0.0), true);
        // Exactly 2^24 buckets later the tag of epoch 0 comes round again.
        let later = (1_i64 << 24) * (SEC / 10);
        w.record(Tick::at(later + SEC / 10), false);
        assert_eq!(w.counts(Tick::at(later + SEC / 10)), (1, 0));
    }

    #[test]
    fn clear_forgets_everything() {
        let w = Window::new(60 * SEC, 10);
        w.record(at(1.0), true);
        w.clear();
        assert_eq!(w.counts(at(1.0)), (0, 0));
        w.record(at(1.0), false);
        assert_eq!(w.counts(at(1.0)), (1, 0));
    }

    #[test]
    fn single_bucket_window_expires_whole() {
        let w = Window::new(SEC, 1);
        w.record(at(0.5), true);
        assert_eq!(w.counts(at(0.99)), (0, 1));
        assert_eq!(w.counts(at(1.0)), (0, 0));
    }

    #[test]
    fn eight_threads_lose_no_record() {
        let w = Window::new(3600 * SEC, 10);
        let per_thread = 50_000_u64;
        std::thread::scope(|s| {
            for t in 0..8 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..per_thread {
                        w.record(at(1.0), (i + t) % 3 == 0);
                    }
                });
            }
        });
        let (ok, failed) = w.counts(at(1.0));
        assert_eq!(ok + failed, 8 * per_thread);
        let expected_failed: u64 = (0..8)
            .map(|t| (0..per_thread).filter(|i| (i + t) % 3 == 0).count() as u64)
            .sum();
        assert_eq!(failed, expected_failed);
    }

    #[test]
    fn threads_crossing_bucket_boundaries_place_every_record() {
        // Each thread records at its own increasing times; all within one window.
        let w = Window::new(1000 * SEC, 100);
        std::thread::scope(|s| {
            for t in 0..8_i64 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..10_000_i64 {
                        w.record(Tick::at(i * 50_000_000 + t), false);
                    }
                });
            }
        });
        let (ok, _) = w.counts(Tick::at(9_999 * 50_000_000 + 8));
        assert_eq!(ok, 80_000);
    }
}
