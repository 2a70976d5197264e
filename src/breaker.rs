//! The circuit-breaker state machine, lock-free on the call path.
//!
//! # Shape
//! * One 64-bit *state word* holds the state, the force flag and the *generation* (a number that
//!   grows by one on every transition). Every admission reads it once; a permit remembers the
//!   generation it was admitted in, and an outcome from an older generation is ignored (a call
//!   admitted before a transition never counts toward the period after it).
//! * Transitions are rare. They take the `events` mutex, check that the state word is still the
//!   one they decided on, publish the new word, and queue a [`Transition`] event. The winner of a
//!   race is therefore the only one to emit the event, and events queue in transition order. No
//!   user code ever runs under that mutex: the binding drains the queue after releasing it.
//! * HALF_OPEN trial slots are a budget word (`generation | remaining`) taken by CAS, plus one
//!   ticket per slot so a trial can be given back, completed, or judged orphaned exactly once.
//!   Trial outcomes are counted in a word that also carries the generation, so a late outcome
//!   from an earlier period changes the new period's counts by exactly zero.
//! * In CLOSED a call costs one counter bump to enter, and to finish one counter bump plus one
//!   CAS in the sliding window; the counters are striped by thread ([`crate::tally`]), so for
//!   the first few threads a bump is a plain store. A success reads the window only when a
//!   failure may be in it.
//! * Writes on the (rare) transition path are `swap`s rather than `store`s: the same ordering,
//!   and loom 0.7 models a swap racing other read-modify-writes exactly where it gets a plain
//!   store wrong (tokio-rs/loom#254), so `make test-loom` checks this code as it is.
//!
//! Known limit: a CLOSED-period outcome whose generation check passes just before a transition
//! that clears the window (reset, HALF_OPEN -> CLOSED) may still land in the cleared window, so
//! one late outcome can count in the new period (loom model `e_stale_closed_outcome_racing_reset`
//! shows it). Trial outcomes have no such window: their counters carry the generation.

use std::collections::VecDeque;

use crate::clock::Tick;
use crate::sync::{lock, AtomicBool, AtomicI64, AtomicU64, Mutex, Ordering};
use crate::tally::{self, Tally};
use crate::window::Window;

/// The largest `half_open_requests` the core accepts (trial counts are 16-bit fields).
pub const MAX_HALF_OPEN_REQUESTS: u32 = u16::MAX as u32;

/// Breaker states.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Every call is admitted and its outcome judged.
    Closed = 0,
    /// Calls are rejected until the sleep window has passed.
    Open = 1,
    /// A limited number of trial calls decide between CLOSED and OPEN.
    HalfOpen = 2,
}

impl State {
    /// The state's public name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }

    fn from_bits(bits: u64) -> State {
        match bits & 0b11 {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }
    }
}

/// A manual override set by `force_open` / `force_closed`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Force {
    /// No override: the breaker follows its rules.
    None = 0,
    /// Every call rejected.
    Open = 1,
    /// Every call admitted, outcomes not judged.
    Closed = 2,
}

/// The breaker's settings, with durations in nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Open when the window's error rate is at least this (0..=1).
    pub error_threshold: f64,
    /// Counted outcomes needed in the window before the rate is judged.
    pub volume_threshold: u64,
    /// Time OPEN before a call may start a trial period.
    pub sleep_window_ns: i64,
    /// Trial calls per HALF_OPEN period (1..=[`MAX_HALF_OPEN_REQUESTS`]).
    pub half_open_requests: u32,
    /// Success rate among the trials needed to close (0..=1).
    pub success_threshold: f64,
    /// Length of the sliding window.
    pub window_ns: i64,
    /// Buckets in the sliding window.
    pub bucket_count: u32,
    /// 0 = off; else also open after this many counted failures since the last close.
    pub failure_threshold: u64,
    /// Growth of the sleep window after each failed trial period.
    pub sleep_window_multiplier: f64,
    /// Cap on the grown sleep window.
    pub max_sleep_window_ns: i64,
}

const SEC: i64 = 1_000_000_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            error_threshold: 0.5,
            volume_threshold: 10,
            sleep_window_ns: 30 * SEC,
            half_open_requests: 5,
            success_threshold: 0.6,
            window_ns: 60 * SEC,
            bucket_count: 10,
            failure_threshold: 0,
            sleep_window_multiplier: 1.5,
            max_sleep_window_ns: 300 * SEC,
        }
    }
}

impl Config {
    /// Checks every field; the message names the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be within 0..=1, got {v}"))
            }
        };
        unit("error_threshold", self.error_threshold)?;
        unit("success_threshold", self.success_threshold)?;
        if self.sleep_window_ns < 0 {
            return Err(format!(
                "sleep_window must be >= 0, got {}ns",
                self.sleep_window_ns
            ));
        }
        if !(1..=MAX_HALF_OPEN_REQUESTS).contains(&self.half_open_requests) {
            return Err(format!(
                "half_open_requests must be within 1..={MAX_HALF_OPEN_REQUESTS}, got {}",
                self.half_open_requests
            ));
        }
        if self.window_ns < 1 {
            return Err(format!("window_size must be > 0, got {}ns", self.window_ns));
        }
        if self.bucket_count < 1 {
            return Err(format!(
                "bucket_count must be >= 1, got {}",
                self.bucket_count
            ));
        }
        if !(self.sleep_window_multiplier >= 1.0 && self.sleep_window_multiplier.is_finite()) {
            return Err(format!(
                "sleep_window_multiplier must be a finite number >= 1, got {}",
                self.sleep_window_multiplier
            ));
        }
        if self.max_sleep_window_ns < self.sleep_window_ns {
            return Err(format!(
                "max_sleep_window ({}ns) must be >= sleep_window ({}ns)",
                self.max_sleep_window_ns, self.sleep_window_ns
            ));
        }
        Ok(())
    }
}

/// The right to run one call, handed out by [`Breaker::try_acquire`]; give it back to
/// [`Breaker::complete`] exactly once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
    trial: Option<Trial>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Trial {
    slot: usize,
    ticket: u64,
}

impl Permit {
    /// The generation the call was admitted in.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True for a HALF_OPEN trial call.
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }
}

/// Why a call was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// OPEN, or HALF_OPEN when every trial slot was taken.
    pub state: State,
    /// Nanoseconds until a trial may be admitted; `None` while forced open.
    pub retry_after_ns: Option<i64>,
}

/// How a call ended, as far as the breaker is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Counts as a success.
    Success,
    /// Counts as a failure.
    Failure,
    /// Not counted at all (classifier said no, or cancellation); a trial slot is given back.
    Ignored,
}

/// A state change, queued in order and delivered by the binding outside any lock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Generation of the new state period.
    pub generation: u64,
    /// The error rate that drove the change: the window's, or the trials' for a trial decision.
    pub error_rate: f64,
}

/// A consistent-enough view for `metrics()`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// Current state.
    pub state: State,
    /// Current override.
    pub force: Force,
    /// Current generation.
    pub generation: u64,
    /// Successes in the window.
    pub successes: u64,
    /// Failures in the window.
    pub failures: u64,
    /// Lifetime rejections.
    pub rejected: u64,
    /// Admitted calls not yet completed.
    pub in_flight: u64,
    /// Lifetime admissions.
    pub total_executions: u64,
    /// Lifetime trials judged failed because they ran for a whole sleep window.
    pub orphaned: u64,
    /// The current (possibly grown) sleep window.
    pub sleep_window_ns: i64,
    /// While HALF_OPEN: trials running, successful, failed.
    pub half_open: Option<(u64, u64, u64)>,
}

// State word: generation << 8 | force << 4 | state.
#[inline]
fn pack_word(generation: u64, force: Force, state: State) -> u64 {
    (generation << 8) | ((force as u64) << 4) | state as u64
}

#[inline]
fn word_state(word: u64) -> State {
    State::from_bits(word)
}

#[inline]
fn word_force(word: u64) -> Force {
    match (word >> 4) & 0b11 {
        0 => Force::None,
        1 => Force::Open,
        _ => Force::Closed,
    }
}

#[inline]
fn word_generation(word: u64) -> u64 {
    word >> 8
}

/// The low 32 bits of a generation, stored beside the half-open counters.
#[inline]
fn gen_tag(generation: u64) -> u64 {
    generation & 0xFFFF_FFFF
}

const FREE: u64 = 0;
/// A trial ticket is `generation (16 bits) | admission offset (36 bits) | sequence (12 bits)`.
/// The offset is the admission time after the HALF_OPEN period began, in 1024 ns units (about
/// 19 hours); the sequence is never 0, so no ticket is FREE. A ticket names the period it was
/// claimed for (a claim racing the start of the next period is recognisably not one of its
/// trials) and carries its own admission time, so a slot is claimed with one CAS and the orphan
/// rule needs no second, racy field.
const TICKET_SEQ_BITS: u32 = 12;
const TICKET_OFFSET_BITS: u32 = 36;
const TICKET_UNIT_NS: i64 = 1024;
const TICKET_MAX_OFFSET: u64 = (1 << TICKET_OFFSET_BITS) - 1;

fn ticket_gen(generation: u64) -> u64 {
    generation & 0xFFFF
}

fn make_ticket(generation: u64, since_ns: i64, now: Tick, seq: u64) -> u64 {
    let offset = (now.ns.saturating_sub(since_ns).max(0) / TICKET_UNIT_NS) as u64;
    (ticket_gen(generation) << (TICKET_OFFSET_BITS + TICKET_SEQ_BITS))
        | (offset.min(TICKET_MAX_OFFSET) << TICKET_SEQ_BITS)
        | (seq % ((1 << TICKET_SEQ_BITS) - 1) + 1)
}

/// True when `ticket` was claimed for the period `generation`.
fn ticket_of(ticket: u64, generation: u64) -> bool {
    ticket >> (TICKET_OFFSET_BITS + TICKET_SEQ_BITS) == ticket_gen(generation)
}

/// Nanoseconds a trial has been running at `now`.
fn ticket_age_ns(since_ns: i64, ticket: u64, now: Tick) -> i64 {
    let offset = ((ticket >> TICKET_SEQ_BITS) & TICKET_MAX_OFFSET) as i64;
    now.ns
        .saturating_sub(since_ns.saturating_add(offset * TICKET_UNIT_NS))
}

/// A thread-safe circuit breaker. Time comes in as [`Tick`]s from the caller's clock.
#[derive(Debug)]
pub struct Breaker {
    cfg: Config,
    word: AtomicU64,
    window: Window,
    /// When OPEN: the time a trial period may begin.
    open_until: AtomicI64,
    /// The current sleep window (grows after failed trial periods).
    sleep_ns: AtomicI64,
    failures_since_close: AtomicU64,
    /// `gen_tag << 32 | trial admissions left`.
    trial_budget: AtomicU64,
    /// `gen_tag << 32 | successes << 16 | failures`.
    trial_outcomes: AtomicU64,
    tickets: Box<[AtomicU64]>,
    next_ticket: AtomicU64,
    /// When the current HALF_OPEN period began (the origin of ticket times).
    trials_since: AtomicI64,
    /// Admitted and finished calls (`total_executions`, `in_flight`), striped by thread.
    calls: Tally,
    rejected: AtomicU64,
    orphaned: AtomicU64,
    /// Pending transition events; its lock is also the transition lock.
    events: Mutex<VecDeque<Transition>>,
    pending: AtomicU64,
    dispatching: AtomicBool,
}

impl Breaker {
    /// A CLOSED breaker.
    ///
    /// # Panics
    /// If the config is invalid (see [`Config::validate`]).
    pub fn new(cfg: Config) -> Self {
        if let Err(msg) = cfg.validate() {
            panic!("invalid circuit breaker config: {msg}");
        }
        let slots = cfg.half_open_requests as usize;
        Breaker {
            window: Window::new(cfg.window_ns, cfg.bucket_count),
            word: AtomicU64::new(pack_word(0, Force::None, State::Closed)),
            open_until: AtomicI64::new(0),
            sleep_ns: AtomicI64::new(cfg.sleep_window_ns),
            failures_since_close: AtomicU64::new(0),
            trial_budget: AtomicU64::new(0),
            trial_outcomes: AtomicU64::new(0),
            tickets: (0..slots).map(|_| AtomicU64::new(FREE)).collect(),
            next_ticket: AtomicU64::new(0),
            trials_since: AtomicI64::new(0),
            calls: Tally::new(),
            rejected: AtomicU64::new(0),
            orphaned: AtomicU64::new(0),
            events: Mutex::new(VecDeque::new()),
            pending: AtomicU64::new(0),
            dispatching: AtomicBool::new(false),
            cfg,
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The current state. Never moves OPEN to HALF_OPEN: only an admission does that.
    #[inline]
    pub fn state(&self) -> State {
        word_state(self.word.load(Ordering::Acquire))
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        word_generation(self.word.load(Ordering::Acquire))
    }

    /// Asks to run one call. `clock` is read at most once, and only when the state needs the
    /// time (OPEN and HALF_OPEN); a CLOSED breaker admits without reading it.
    pub fn try_acquire(&self, clock: impl FnOnce() -> Tick) -> Result<Permit, Rejected> {
        let mut clock = Some(clock);
        let mut tick: Option<Tick> = None;
        let mut now = move || {
            *tick.get_or_insert_with(|| (clock.take().expect("clock is read at most once"))())
        };
        loop {
            // Acquire: pairs with the Release store of every transition, so the fields a
            // transition wrote (open_until, trial words) are visible once we see its word.
            let word = self.word.load(Ordering::Acquire);
            match word_state(word) {
                State::Closed => {
                    self.calls.admit();
                    return Ok(Permit {
                        generation: word_generation(word),
                        trial: None,
                    });
                }
                State::Open => {
                    if word_force(word) == Force::Open {
                        return Err(self.reject(State::Open, None));
                    }
                    let t = now();
                    let until = self.open_until.load(Ordering::Acquire);
                    if t.ns < until {
                        return Err(self.reject(State::Open, Some(until - t.ns)));
                    }
                    self.begin_trials(word, t);
                }
                State::HalfOpen => {
                    let t = now();
                    if self.judge_orphans(word, t) {
                        continue;
                    }
                    if let Some(permit) = self.take_trial(word, t) {
                        self.calls.admit();
                        return Ok(permit);
                    }
                    if self.word.load(Ordering::Acquire) != word {
                        continue;
                    }
                    let retry_after = self.next_orphan_deadline(t).unwrap_or(0);
                    return Err(self.reject(State::HalfOpen, Some(retry_after)));
                }
            }
        }
    }

    /// Reports how an admitted call ended. `clock` is read only when the outcome is counted.
    /// Returns true when the outcome counted toward the breaker's current period (false for an
    /// ignored outcome, or one of a call admitted in an earlier period).
    pub fn complete(&self, permit: Permit, outcome: Outcome, clock: impl FnOnce() -> Tick) -> bool {
        // One thread-local lookup serves the call counter and the window row.
        let stripe = tally::thread_stripe();
        self.calls.finish_at(stripe);
        match permit.trial {
            None => {
                if outcome == Outcome::Ignored {
                    return false;
                }
                let word = self.word.load(Ordering::Acquire);
                if word_generation(word) != permit.generation {
                    return false; // admitted in an earlier period
                }
                self.count_closed(
                    tally::row(stripe),
                    word,
                    clock(),
                    outcome == Outcome::Failure,
                );
                true
            }
            Some(trial) => {
                // AcqRel: only the one who frees the slot may account for the trial; a sweeper
                // that judged it orphaned, or a transition that cleared it, got there first.
                if self.tickets[trial.slot]
                    .compare_exchange(trial.ticket, FREE, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
                {
                    return false;
                }
                match outcome {
                    Outcome::Ignored => {
                        self.give_back_trial(permit.generation);
                        false
                    }
                    Outcome::Success => self.count_trial(permit.generation, true, clock),
                    Outcome::Failure => self.count_trial(permit.generation, false, clock),
                }
            }
        }
    }

    /// Records an outcome without a permit (the manual `record_success` / `record_failure`):
    /// it counts toward the current period. In HALF_OPEN it completes one running trial, and
    /// counts nothing when no trial is running (the trial it belonged to was judged orphaned).
    /// Returns true when the outcome was counted.
    pub fn record(&self, outcome: Outcome, clock: impl FnOnce() -> Tick) -> bool {
        let stripe = tally::thread_stripe();
        // Keep in_flight from going negative when records outnumber admissions. (Two threads
        // racing here may both pass the check; `snapshot` saturates in_flight at zero.)
        if self.calls.finished() < self.calls.admitted() {
            self.calls.finish_at(stripe);
        }
        let word = self.word.load(Ordering::Acquire);
        match word_state(word) {
            State::Closed => {
                if outcome == Outcome::Ignored {
                    return false;
                }
                self.count_closed(
                    tally::row(stripe),
                    word,
                    clock(),
                    outcome == Outcome::Failure,
                );
                true
            }
            State::Open => false,
            State::HalfOpen => {
                let generation = word_generation(word);
                let freed = self.tickets.iter().any(|slot| {
                    let ticket = slot.load(Ordering::Acquire);
                    ticket != FREE
                        && ticket_of(ticket, generation)
                        && slot
                            .compare_exchange(ticket, FREE, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                });
                if !freed {
                    return false;
                }
                match outcome {
                    Outcome::Ignored => {
                        self.give_back_trial(generation);
                        false
                    }
                    Outcome::Success => self.count_trial(generation, true, clock),
                    Outcome::Failure => self.count_trial(generation, false, clock),
                }
            }
        }
    }

    /// Rejects every call until [`Breaker::clear_force`] or [`Breaker::reset`].
    pub fn force_open(&self, now: Tick) {
        let mut events = lock(&self.events);
        let word = self.word.load(Ordering::Acquire);
        let sleep = self.sleep_ns.load(Ordering::Relaxed);
        self.open_until
            .swap(now.ns.saturating_add(sleep), Ordering::Relaxed);
        self.publish(&mut events, word, Force::Open, State::Open, None);
    }

    /// Admits every call and judges no outcome until [`Breaker::clear_force`] or
    /// [`Breaker::reset`].
    pub fn force_closed(&self, now: Tick) {
        let mut events = lock(&self.events);
        let word = self.word.load(Ordering::Acquire);
        if word_state(word) != State::Closed {
            self.enter_closed();
        }
        let rate = self.window_error_rate(now);
        self.publish(&mut events, word, Force::Closed, State::Closed, Some(rate));
    }

    /// Ends a force; the breaker keeps its state and follows its rules again. An OPEN breaker's
    /// sleep window counts from the moment it was forced open.
    pub fn clear_force(&self) {
        let mut events = lock(&self.events);
        let word = self.word.load(Ordering::Acquire);
        if word_force(word) != Force::None {
            self.publish(&mut events, word, Force::None, word_state(word), None);
        }
    }

    /// Back to a fresh CLOSED breaker: force, window, trial counters and the grown sleep window
    /// are cleared. Outcomes of calls admitted before the reset are ignored.
    pub fn reset(&self) {
        let mut events = lock(&self.events);
        let word = self.word.load(Ordering::Acquire);
        self.enter_closed();
        self.publish(&mut events, word, Force::None, State::Closed, Some(0.0));
    }

    /// `(successes, failures)` in the window at `now`.
    pub fn window_counts(&self, now: Tick) -> (u64, u64) {
        self.window.counts(now)
    }

    /// A snapshot for `metrics()`.
    pub fn snapshot(&self, now: Tick) -> Snapshot {
        let word = self.word.load(Ordering::Acquire);
        let (successes, failures) = self.window.counts(now);
        // finished first: admitted is read later, so it is rarely behind it (and in_flight
        // saturates at zero when it is).
        let finished = self.calls.finished();
        let admitted = self.calls.admitted();
        let half_open = (word_state(word) == State::HalfOpen).then(|| {
            let generation = word_generation(word);
            let running = self
                .tickets
                .iter()
                .map(|t| t.load(Ordering::Relaxed))
                .filter(|&t| t != FREE && ticket_of(t, generation))
                .count() as u64;
            let outcomes = self.trial_outcomes.load(Ordering::Acquire);
            if outcomes >> 32 == gen_tag(word_generation(word)) {
                (running, (outcomes >> 16) & 0xFFFF, outcomes & 0xFFFF)
            } else {
                (running, 0, 0)
            }
        });
        Snapshot {
            state: word_state(word),
            force: word_force(word),
            generation: word_generation(word),
            successes,
            failures,
            rejected: self.rejected.load(Ordering::Relaxed),
            in_flight: admitted.saturating_sub(finished),
            total_executions: admitted,
            orphaned: self.orphaned.load(Ordering::Relaxed),
            sleep_window_ns: self.sleep_ns.load(Ordering::Relaxed),
            half_open,
        }
    }

    /// True when transition events wait to be delivered. One relaxed load: cheap enough to ask
    /// after every call.
    #[inline]
    pub fn has_events(&self) -> bool {
        self.pending.load(Ordering::Relaxed) != 0
    }

    /// Takes the right to deliver events. Only one thread delivers at a time, which keeps the
    /// delivery in transition order; the others leave the events to it.
    pub fn begin_delivery(&self) -> bool {
        // SeqCst with `end_delivery` and the push in `publish`: a thread that pushes an event
        // and then fails to take the right is guaranteed to be seen by the deliverer's re-check.
        !self.dispatching.swap(true, Ordering::SeqCst)
    }

    /// The next event to deliver, oldest first.
    pub fn next_event(&self) -> Option<Transition> {
        let event = lock(&self.events).pop_front();
        if event.is_some() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
        event
    }

    /// Gives the right back; true when events arrived meanwhile and the caller should try again.
    pub fn end_delivery(&self) -> bool {
        self.dispatching.swap(false, Ordering::SeqCst);
        self.pending.load(Ordering::SeqCst) != 0
    }

    // ----- internals -----

    fn reject(&self, state: State, retry_after_ns: Option<i64>) -> Rejected {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        Rejected {
            state,
            retry_after_ns,
        }
    }

    fn window_error_rate(&self, now: Tick) -> f64 {
        let (ok, failed) = self.window.counts(now);
        rate(failed, ok + failed)
    }

    /// Counts a CLOSED-period outcome (a success in the window's `row`) and opens the breaker if
    /// rule 1 says so.
    #[inline]
    fn count_closed(&self, row: usize, word: u64, now: Tick, failed: bool) {
        let epoch = self.window.epoch(now);
        self.window.record_in(row, now, epoch, failed);
        if word_force(word) == Force::Closed {
            return;
        }
        if !failed && self.cfg.error_threshold > 0.0 && !self.window.may_hold_failures(epoch) {
            return; // no failure in the window: the error rate is 0 and can't reach the threshold
        }
        let mut open = false;
        if failed && self.cfg.failure_threshold > 0 {
            // Relaxed: the count only decides; the transition itself re-checks under the lock.
            let seen = self.failures_since_close.fetch_add(1, Ordering::Relaxed) + 1;
            open = seen >= self.cfg.failure_threshold;
        }
        let (ok, bad) = self.window.counts(now);
        let total = ok + bad;
        if !open && total > 0 && total >= self.cfg.volume_threshold {
            open = rate(bad, total) >= self.cfg.error_threshold;
        }
        if open {
            let mut events = lock(&self.events);
            if self.word.load(Ordering::Acquire) != word {
                return; // someone else moved the breaker on
            }
            let sleep = self.sleep_ns.load(Ordering::Relaxed);
            self.open_until
                .swap(now.ns.saturating_add(sleep), Ordering::Relaxed);
            self.publish(
                &mut events,
                word,
                Force::None,
                State::Open,
                Some(rate(bad, total)),
            );
        }
    }

    /// OPEN -> HALF_OPEN, if `word` is still current.
    fn begin_trials(&self, word: u64, now: Tick) {
        let mut events = lock(&self.events);
        if self.word.load(Ordering::Acquire) != word {
            return;
        }
        self.reset_trials(word_generation(word) + 1, now);
        // publish's Release store of the word makes the resets above visible with it.
        self.publish(&mut events, word, Force::None, State::HalfOpen, None);
    }

    /// Fresh trial counters for the HALF_OPEN period `generation` (under the transition lock).
    fn reset_trials(&self, generation: u64, now: Tick) {
        let tag = gen_tag(generation);
        self.trials_since.swap(now.ns, Ordering::Relaxed);
        self.trial_outcomes.swap(tag << 32, Ordering::Release);
        // Release, and before the slots are freed: a claimer that takes a slot freed here also
        // sees the new period's budget tag, and so knows its claim belongs to an ended period.
        self.trial_budget.store(
            (tag << 32) | u64::from(self.cfg.half_open_requests),
            Ordering::Release,
        );
        for slot in self.tickets.iter() {
            slot.swap(FREE, Ordering::Release);
        }
    }

    /// Moves the breaker to `to` because something outside it decided so (a fleet coordinator
    /// sharing one breaker between processes). OPEN admits trials `open_for_ns` after `now`;
    /// HALF_OPEN starts a fresh trial period; CLOSED starts with an empty window. Does nothing
    /// while forced, or when already in `to` (OPEN only moves its trial time). Returns true when
    /// the state changed.
    pub fn enter(&self, to: State, now: Tick, open_for_ns: i64) -> bool {
        let mut events = lock(&self.events);
        let word = self.word.load(Ordering::Acquire);
        if word_force(word) != Force::None {
            return false;
        }
        if to == State::Open {
            self.open_until
                .swap(now.ns.saturating_add(open_for_ns.max(0)), Ordering::Relaxed);
        }
        if word_state(word) == to {
            return false;
        }
        match to {
            State::Closed => self.enter_closed(),
            State::HalfOpen => self.reset_trials(word_generation(word) + 1, now),
            State::Open => {}
        }
        let rate = self.window_error_rate(now);
        self.publish(&mut events, word, Force::None, to, Some(rate));
        true
    }

    /// Takes one trial slot of the period `word` names.
    fn take_trial(&self, word: u64, now: Tick) -> Option<Permit> {
        let generation = word_generation(word);
        let tag = gen_tag(generation);
        let mut budget = self.trial_budget.load(Ordering::Acquire);
        loop {
            if budget >> 32 != tag || budget & 0xFFFF_FFFF == 0 {
                return None;
            }
            // AcqRel: the budget decides admission; it must not be reordered with the slot claim.
            match self.trial_budget.compare_exchange_weak(
                budget,
                budget - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(seen) => budget = seen,
            }
        }
        let since = self.trials_since.load(Ordering::Relaxed);
        let seq = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let ticket = make_ticket(generation, since, now, seq);
        for (slot, cell) in self.tickets.iter().enumerate() {
            // AcqRel: the claim publishes the ticket (and with it the admission time).
            if cell
                .compare_exchange(FREE, ticket, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if self.trial_budget.load(Ordering::Acquire) >> 32 != tag
                || self.word.load(Ordering::Acquire) != word
            {
                // The period ended while we claimed the slot: it belongs to the next period now.
                let _ = cell.compare_exchange(ticket, FREE, Ordering::AcqRel, Ordering::Relaxed);
                return None;
            }
            return Some(Permit {
                generation,
                trial: Some(Trial { slot, ticket }),
            });
        }
        // Every slot is held (by a claim from an ended period): return the budget.
        self.give_back_trial(generation);
        None
    }

    fn give_back_trial(&self, generation: u64) {
        let tag = gen_tag(generation);
        let _ = self
            .trial_budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |budget| {
                (budget >> 32 == tag).then_some(budget + 1)
            });
    }

    /// Counts a trial outcome for `generation` and decides the period once the result is certain.
    fn count_trial(&self, generation: u64, success: bool, clock: impl FnOnce() -> Tick) -> bool {
        let tag = gen_tag(generation);
        let step = if success { 1 << 16 } else { 1 };
        // AcqRel: the count and its generation change together; an outcome of an ended period
        // finds another generation here and changes nothing.
        let Ok(before) =
            self.trial_outcomes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |outcomes| {
                    (outcomes >> 32 == tag).then_some(outcomes + step)
                })
        else {
            return false;
        };
        let after = before + step;
        let (ok, failed) = ((after >> 16) & 0xFFFF, after & 0xFFFF);
        let n = f64::from(self.cfg.half_open_requests);
        let threshold = self.cfg.success_threshold;
        let to = if ok as f64 / n >= threshold {
            State::Closed
        } else if (n - failed as f64) / n < threshold {
            State::Open
        } else {
            return true;
        };
        self.end_trials(generation, to, clock(), rate(failed, ok + failed));
        true
    }

    /// HALF_OPEN -> CLOSED or OPEN, if the period `generation` is still current.
    fn end_trials(&self, generation: u64, to: State, now: Tick, error_rate: f64) {
        let mut events = lock(&self.events);
        let word = self.word.load(Ordering::Acquire);
        if word_generation(word) != generation || word_state(word) != State::HalfOpen {
            return;
        }
        if to == State::Closed {
            self.enter_closed();
        } else {
            let grown = (self.sleep_ns.load(Ordering::Relaxed) as f64
                * self.cfg.sleep_window_multiplier)
                .min(self.cfg.max_sleep_window_ns as f64) as i64;
            self.sleep_ns.swap(grown, Ordering::Relaxed);
            self.open_until
                .swap(now.ns.saturating_add(grown), Ordering::Relaxed);
        }
        self.publish(&mut events, word, Force::None, to, Some(error_rate));
    }

    /// Fails every trial that has run for a whole sleep window. True if that ended the period.
    fn judge_orphans(&self, word: u64, now: Tick) -> bool {
        let limit = self.sleep_ns.load(Ordering::Relaxed);
        if limit <= 0 {
            return false; // with no sleep window every running trial would be "late"
        }
        let generation = word_generation(word);
        let since = self.trials_since.load(Ordering::Relaxed);
        for cell in self.tickets.iter() {
            let ticket = cell.load(Ordering::Acquire);
            // A claim for another period is its claimer's to undo, never an orphan of this one.
            if ticket == FREE
                || !ticket_of(ticket, generation)
                || ticket_age_ns(since, ticket, now) < limit
            {
                continue;
            }
            if cell
                .compare_exchange(ticket, FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                self.orphaned.fetch_add(1, Ordering::Relaxed);
                self.count_trial(generation, false, || now);
            }
        }
        self.word.load(Ordering::Acquire) != word
    }

    /// Nanoseconds until the oldest running trial is judged orphaned.
    fn next_orphan_deadline(&self, now: Tick) -> Option<i64> {
        let limit = self.sleep_ns.load(Ordering::Relaxed);
        let since = self.trials_since.load(Ordering::Relaxed);
        self.tickets
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .filter(|&ticket| ticket != FREE)
            .map(|ticket| (limit - ticket_age_ns(since, ticket, now)).max(0))
            .min()
    }

    /// The bookkeeping of every entry into CLOSED (called under the transition lock).
    fn enter_closed(&self) {
        self.window.clear();
        self.sleep_ns
            .swap(self.cfg.sleep_window_ns, Ordering::Relaxed);
        self.failures_since_close.swap(0, Ordering::Relaxed);
    }

    /// Publishes a new state word (generation + 1) and queues the event if the state changed.
    /// Must be called with the transition lock held (`events` is its guard).
    fn publish(
        &self,
        events: &mut VecDeque<Transition>,
        old: u64,
        force: Force,
        to: State,
        error_rate: Option<f64>,
    ) {
        let generation = word_generation(old) + 1;
        if word_state(old) == State::HalfOpen {
            // The trial period is over: late trial outcomes and returned slots of it must find
            // another generation here and change nothing.
            let tag = gen_tag(generation) << 32;
            self.trial_outcomes.swap(tag, Ordering::Relaxed);
            self.trial_budget.swap(tag, Ordering::Relaxed);
        }
        // Release: every field written for the new period becomes visible with the word.
        self.word
            .swap(pack_word(generation, force, to), Ordering::Release);
        let from = word_state(old);
        if from != to {
            events.push_back(Transition {
                from,
                to,
                generation,
                error_rate: error_rate.unwrap_or(0.0),
            });
            self.pending.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[inline]
fn rate(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}
