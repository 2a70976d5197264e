//! Unit tests of the pure breaker core (`resilience_core::breaker`), driven by explicit ticks.
//!
//! Every transition of ../shared/CONTRACT.md ("Circuit breaker" and "Precise readings") has a
//! test here; the last tests race real threads on one breaker.

use std::sync::Barrier;

use resilience_core::breaker::{
    Breaker, Config, Force, Outcome, Permit, Rejected, State, Transition,
};
use resilience_core::clock::{Clock, ManualClock, Tick};

const SEC: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

/// A tick `s` whole seconds after the origin.
fn sec(s: i64) -> Tick {
    Tick::at(s * SEC)
}

/// A breaker that opens on one failure (volume 1, threshold 0.5), sleeps 10 s, and runs
/// `half_open_requests` trials.
fn quick(half_open_requests: u32) -> Config {
    Config {
        volume_threshold: 1,
        sleep_window_ns: 10 * SEC,
        half_open_requests,
        ..Default::default()
    }
}

fn acquire(b: &Breaker, now: Tick) -> Result<Permit, Rejected> {
    b.try_acquire(|| now)
}

fn admit(b: &Breaker, now: Tick) -> Permit {
    acquire(b, now).unwrap_or_else(|r| panic!("expected admission at {now:?}, got {r:?}"))
}

/// Acquire + complete at the same tick; returns what `complete` returned.
fn call(b: &Breaker, now: Tick, outcome: Outcome) -> bool {
    let permit = admit(b, now);
    b.complete(permit, outcome, || now)
}

/// Delivers every queued event (the binding's protocol) and returns them.
fn drain(b: &Breaker) -> Vec<Transition> {
    assert!(b.begin_delivery(), "nobody else is delivering");
    let mut out = Vec::new();
    while let Some(event) = b.next_event() {
        out.push(event);
    }
    assert!(!b.end_delivery(), "no event arrived during delivery");
    assert!(!b.has_events());
    out
}

fn path(events: &[Transition]) -> Vec<(State, State)> {
    events.iter().map(|e| (e.from, e.to)).collect()
}

use State::{Closed, HalfOpen, Open};

/// Opens a `quick` breaker with one failure at `now`.
fn open_now(b: &Breaker, now: Tick) {
    assert!(call(b, now, Outcome::Failure));
    assert_eq!(b.state(), Open);
}

// ----- CLOSED -> OPEN -----

#[test]
fn closed_does_not_judge_the_rate_below_volume_threshold() {
    let b = Breaker::new(Config {
        volume_threshold: 4,
        ..Default::default()
    });
    for i in 0..3 {
        assert!(call(&b, sec(i), Outcome::Failure));
        assert_eq!(b.state(), Closed, "after {} failures", i + 1);
    }
    assert_eq!(b.window_counts(sec(3)), (0, 3));
    // The 4th counted outcome reaches the volume: 3 of 4 failed, 0.75 >= 0.5.
    assert!(call(&b, sec(3), Outcome::Success));
    assert_eq!(b.state(), Open);
    let events = drain(&b);
    assert_eq!(path(&events), [(Closed, Open)]);
    assert_eq!(events[0].error_rate, 0.75);
    assert_eq!(events[0].generation, 1);
}

#[test]
fn closed_opens_when_the_rate_equals_the_threshold() {
    let b = Breaker::new(Config {
        volume_threshold: 4,
        error_threshold: 0.5,
        ..Default::default()
    });
    assert!(call(&b, sec(0), Outcome::Success));
    assert!(call(&b, sec(0), Outcome::Success));
    assert!(call(&b, sec(0), Outcome::Failure));
    assert_eq!(b.state(), Closed);
    assert!(call(&b, sec(0), Outcome::Failure)); // 2 of 4 = 0.5 >= 0.5
    assert_eq!(b.state(), Open);
    assert_eq!(drain(&b)[0].error_rate, 0.5);
}

#[test]
fn closed_stays_closed_below_the_threshold() {
    let b = Breaker::new(Config {
        volume_threshold: 2,
        error_threshold: 0.5,
        ..Default::default()
    });
    for _ in 0..3 {
        assert!(call(&b, sec(0), Outcome::Success));
    }
    assert!(call(&b, sec(0), Outcome::Failure)); // 1 of 4
    assert!(call(&b, sec(0), Outcome::Success));
    assert!(call(&b, sec(0), Outcome::Failure)); // 2 of 6
    assert_eq!(b.state(), Closed);
    assert_eq!(b.window_counts(sec(0)), (4, 2));
    assert!(drain(&b).is_empty());
}

#[test]
fn volume_threshold_zero_judges_from_the_first_outcome() {
    let b = Breaker::new(Config {
        volume_threshold: 0,
        ..Default::default()
    });
    assert!(call(&b, sec(0), Outcome::Success)); // rate 0 < 0.5
    assert_eq!(b.state(), Closed);
    assert!(call(&b, sec(0), Outcome::Failure)); // 1 of 2
    assert_eq!(b.state(), Open);
}

#[test]
fn ignored_outcomes_are_not_counted_in_closed() {
    let b = Breaker::new(quick(1));
    for _ in 0..5 {
        assert!(!call(&b, sec(0), Outcome::Ignored));
    }
    assert_eq!(b.window_counts(sec(0)), (0, 0));
    assert_eq!(b.state(), Closed);
    let snap = b.snapshot(sec(0));
    assert_eq!(snap.total_executions, 5);
    assert_eq!(snap.in_flight, 0);
}

#[test]
fn failure_threshold_counts_failures_since_close_not_consecutive_not_expired() {
    let b = Breaker::new(Config {
        failure_threshold: 3,
        volume_threshold: 1_000,
        window_ns: 10 * SEC,
        bucket_count: 2,
        ..Default::default()
    });
    assert!(call(&b, sec(0), Outcome::Failure));
    assert!(call(&b, sec(1), Outcome::Success));
    assert!(call(&b, sec(2), Outcome::Success));
    // Long after the first failure left the window.
    assert!(call(&b, sec(100), Outcome::Failure));
    assert_eq!(b.window_counts(sec(100)), (0, 1));
    assert!(!call(&b, sec(101), Outcome::Ignored));
    assert!(call(&b, sec(102), Outcome::Success));
    assert_eq!(b.state(), Closed);
    assert!(call(&b, sec(200), Outcome::Failure)); // the 3rd counted failure
    assert_eq!(b.state(), Open);
    assert_eq!(path(&drain(&b)), [(Closed, Open)]);
}

#[test]
fn failure_threshold_restarts_counting_after_close() {
    let b = Breaker::new(Config {
        failure_threshold: 2,
        volume_threshold: 1_000,
        sleep_window_ns: 10 * SEC,
        half_open_requests: 1,
        ..Default::default()
    });
    assert!(call(&b, sec(0), Outcome::Failure));
    assert!(call(&b, sec(0), Outcome::Failure));
    assert_eq!(b.state(), Open);
    assert!(call(&b, sec(10), Outcome::Success)); // the trial closes it
    assert_eq!(b.state(), Closed);
    assert!(call(&b, sec(11), Outcome::Failure));
    assert_eq!(b.state(), Closed, "one failure since the close");
    assert!(call(&b, sec(12), Outcome::Failure));
    assert_eq!(b.state(), Open);
}

// ----- OPEN -----

#[test]
fn open_rejects_with_the_exact_retry_after() {
    let b = Breaker::new(quick(1));
    let opened = Tick::at(3 * SEC + 500 * MS);
    open_now(&b, opened);
    let cases = [
        (opened.ns, 10 * SEC),
        (opened.ns + 3_500 * MS, 6_500 * MS),
        (opened.ns + 10 * SEC - 1, 1),
    ];
    for (i, &(at, retry)) in cases.iter().enumerate() {
        assert_eq!(
            acquire(&b, Tick::at(at)),
            Err(Rejected {
                state: Open,
                retry_after_ns: Some(retry)
            })
        );
        assert_eq!(b.snapshot(Tick::at(at)).rejected, i as u64 + 1);
    }
    // Exactly at the end of the sleep window the next call is a trial.
    let permit = admit(&b, Tick::at(opened.ns + 10 * SEC));
    assert!(permit.is_trial());
    assert_eq!(b.state(), HalfOpen);
}

#[test]
fn open_moves_to_half_open_only_on_an_admission() {
    let b = Breaker::new(quick(2));
    open_now(&b, sec(0));
    let generation = b.generation();
    // Long after the sleep window, reading the state does not move it.
    assert_eq!(b.state(), Open);
    let snap = b.snapshot(sec(1_000));
    assert_eq!(snap.state, Open);
    assert_eq!(snap.half_open, None);
    assert_eq!(b.generation(), generation);
    assert_eq!(path(&drain(&b)), [(Closed, Open)]);

    let permit = admit(&b, sec(1_000));
    assert!(permit.is_trial());
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.generation(), generation + 1);
    assert_eq!(permit.generation(), b.generation());
    let events = drain(&b);
    assert_eq!(path(&events), [(Open, HalfOpen)]);
    assert_eq!(events[0].generation, generation + 1);
    assert_eq!(b.snapshot(sec(1_000)).half_open, Some((1, 0, 0)));
}

// ----- HALF_OPEN -> CLOSED / OPEN -----

#[test]
fn half_open_closes_early_at_three_successes_of_five() {
    let b = Breaker::new(Config {
        volume_threshold: 1,
        sleep_window_ns: 10 * SEC,
        half_open_requests: 5,
        success_threshold: 0.6,
        ..Default::default()
    });
    open_now(&b, sec(0));
    let trials: Vec<Permit> = (0..5).map(|_| admit(&b, sec(10))).collect();
    assert!(trials.iter().all(Permit::is_trial));
    assert!(b.complete(trials[0], Outcome::Failure, || sec(11)));
    assert!(b.complete(trials[1], Outcome::Success, || sec(11)));
    assert!(b.complete(trials[2], Outcome::Failure, || sec(11)));
    // 1 ok, 2 failed: 3 of 5 is still possible, (5 - 2) / 5 = 0.6 is not < 0.6.
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.snapshot(sec(11)).half_open, Some((2, 1, 2)));
    assert!(b.complete(trials[3], Outcome::Success, || sec(11)));
    assert_eq!(b.state(), HalfOpen);
    assert!(b.complete(trials[4], Outcome::Success, || sec(11))); // 3 of 5 meets 0.6
    assert_eq!(b.state(), Closed);
    let snap = b.snapshot(sec(11));
    assert_eq!((snap.successes, snap.failures), (0, 0), "window cleared");
    assert_eq!(snap.sleep_window_ns, 10 * SEC);
    assert_eq!(snap.half_open, None);
    let events = drain(&b);
    assert_eq!(
        path(&events),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
    assert_eq!(events[2].error_rate, 0.4); // 2 failed of 5 trial outcomes
}

#[test]
fn half_open_closes_before_every_trial_finished() {
    let b = Breaker::new(quick(5));
    open_now(&b, sec(0));
    let trials: Vec<Permit> = (0..5).map(|_| admit(&b, sec(10))).collect();
    assert!(b.complete(trials[0], Outcome::Success, || sec(10)));
    assert!(b.complete(trials[1], Outcome::Success, || sec(10)));
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.snapshot(sec(10)).half_open, Some((3, 2, 0)));
    assert!(b.complete(trials[2], Outcome::Success, || sec(10)));
    assert_eq!(
        b.state(),
        Closed,
        "3 of 5 successes decide before the last 2 finish"
    );
    assert_eq!(drain(&b)[2].error_rate, 0.0);
}

#[test]
fn half_open_reopens_as_soon_as_success_is_impossible() {
    let b = Breaker::new(quick(5)); // success_threshold 0.6, multiplier 1.5
    open_now(&b, sec(0));
    let trials: Vec<Permit> = (0..5).map(|_| admit(&b, sec(10))).collect();
    assert!(b.complete(trials[0], Outcome::Failure, || sec(10)));
    assert!(b.complete(trials[1], Outcome::Failure, || sec(10)));
    assert_eq!(b.state(), HalfOpen, "3 successes of 5 still possible");
    assert!(b.complete(trials[2], Outcome::Failure, || sec(12)));
    assert_eq!(b.state(), Open);
    let snap = b.snapshot(sec(12));
    assert_eq!(snap.sleep_window_ns, 15 * SEC, "10 s x 1.5");
    assert_eq!(
        acquire(&b, sec(12)),
        Err(Rejected {
            state: Open,
            retry_after_ns: Some(15 * SEC)
        })
    );
    assert_eq!(
        acquire(&b, Tick::at(27 * SEC - 1)),
        Err(Rejected {
            state: Open,
            retry_after_ns: Some(1)
        })
    );
    let events = drain(&b);
    assert_eq!(
        path(&events),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
    );
    assert_eq!(events[2].error_rate, 1.0);
    // The two trials still running belong to the ended period: their outcomes change nothing.
    b.complete(trials[3], Outcome::Success, || sec(13));
    b.complete(trials[4], Outcome::Success, || sec(13));
    assert_eq!(b.state(), Open);
    assert!(b.snapshot(sec(13)).half_open.is_none());
    assert!(drain(&b).is_empty());
    assert!(admit(&b, sec(27)).is_trial());
}

#[test]
fn late_trial_outcome_after_its_period_ended_is_not_reported_as_counted() {
    // After an early decision (either way) the still-running trials belong to an ended period.
    let b = Breaker::new(quick(5));
    open_now(&b, sec(0));
    let trials: Vec<Permit> = (0..5).map(|_| admit(&b, sec(10))).collect();
    for permit in &trials[..3] {
        assert!(b.complete(*permit, Outcome::Success, || sec(10)));
    }
    assert_eq!(b.state(), Closed);
    assert!(
        !b.complete(trials[3], Outcome::Success, || sec(11)),
        "a trial of an ended HALF_OPEN period must not count (rule 5)"
    );
    assert!(!b.complete(trials[4], Outcome::Failure, || sec(11)));
}

#[test]
fn trial_permit_completed_after_reset_is_not_reported_as_counted() {
    let b = Breaker::new(quick(2));
    open_now(&b, sec(0));
    let trial = admit(&b, sec(10));
    b.reset();
    assert!(!b.complete(trial, Outcome::Failure, || sec(11)));
}

#[test]
fn trial_permit_completed_after_reset_changes_nothing() {
    // The observable state, beside the return value tested above.
    let b = Breaker::new(quick(2));
    open_now(&b, sec(0));
    let trial = admit(&b, sec(10));
    let other = admit(&b, sec(10));
    b.reset();
    let generation = b.generation();
    b.complete(trial, Outcome::Failure, || sec(11));
    b.complete(other, Outcome::Failure, || sec(11));
    assert_eq!(b.state(), Closed);
    assert_eq!(b.generation(), generation);
    assert_eq!(b.window_counts(sec(11)), (0, 0));
    assert_eq!(
        path(&drain(&b)),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
}

#[test]
fn sleep_window_grows_by_the_multiplier_is_capped_and_resets_on_close() {
    let b = Breaker::new(Config {
        volume_threshold: 1,
        sleep_window_ns: 10 * SEC,
        sleep_window_multiplier: 2.0,
        max_sleep_window_ns: 35 * SEC,
        half_open_requests: 1,
        ..Default::default()
    });
    let mut now = 0;
    open_now(&b, sec(now));
    assert_eq!(b.snapshot(sec(now)).sleep_window_ns, 10 * SEC);
    for expected in [20, 35, 35] {
        now += b.snapshot(sec(now)).sleep_window_ns / SEC;
        assert!(call(&b, sec(now), Outcome::Failure)); // the single trial fails
        assert_eq!(b.state(), Open);
        assert_eq!(b.snapshot(sec(now)).sleep_window_ns, expected * SEC);
        assert_eq!(
            acquire(&b, sec(now)).unwrap_err().retry_after_ns,
            Some(expected * SEC)
        );
    }
    now += 35;
    assert!(call(&b, sec(now), Outcome::Success));
    assert_eq!(b.state(), Closed);
    assert_eq!(b.snapshot(sec(now)).sleep_window_ns, 10 * SEC);
    // The next opening from CLOSED uses the configured value again.
    open_now(&b, sec(now));
    assert_eq!(
        acquire(&b, sec(now)).unwrap_err().retry_after_ns,
        Some(10 * SEC)
    );
}

#[test]
fn default_sleep_window_compounds_30_45_67_5() {
    let b = Breaker::new(Config {
        volume_threshold: 1,
        half_open_requests: 1,
        ..Default::default()
    });
    let mut now = 0;
    open_now(&b, Tick::at(now));
    for expected in [45 * SEC, 67_500 * MS, 101_250 * MS] {
        now += b.snapshot(Tick::at(now)).sleep_window_ns;
        assert!(call(&b, Tick::at(now), Outcome::Failure));
        assert_eq!(b.snapshot(Tick::at(now)).sleep_window_ns, expected);
    }
}

// ----- generation check -----

#[test]
fn closed_permit_completing_after_the_breaker_opened_changes_nothing() {
    let b = Breaker::new(Config {
        volume_threshold: 2,
        ..Default::default()
    });
    let late = admit(&b, sec(0));
    assert!(call(&b, sec(0), Outcome::Failure));
    assert!(call(&b, sec(0), Outcome::Failure));
    assert_eq!(b.state(), Open);
    let before = b.window_counts(sec(1));
    assert!(!b.complete(late, Outcome::Failure, || sec(1)));
    assert!(!b.complete(late, Outcome::Success, || sec(1)));
    assert_eq!(b.window_counts(sec(1)), before);
    assert_eq!(path(&drain(&b)), [(Closed, Open)]);
}

#[test]
fn closed_permit_completing_after_reset_changes_nothing() {
    let b = Breaker::new(quick(1));
    let late = admit(&b, sec(0));
    assert!(call(&b, sec(0), Outcome::Success)); // a no-transition outcome first
    b.reset(); // CLOSED -> CLOSED: a new period without an event
    assert_eq!(b.window_counts(sec(0)), (0, 0));
    assert!(!b.complete(late, Outcome::Failure, || sec(1)));
    assert_eq!(b.window_counts(sec(1)), (0, 0));
    assert_eq!(b.state(), Closed, "the stale failure would have opened it");
    assert!(drain(&b).is_empty());
}

#[test]
fn trial_permit_of_an_earlier_half_open_period_changes_nothing() {
    let b = Breaker::new(Config {
        half_open_requests: 2,
        success_threshold: 1.0,
        ..quick(2)
    });
    open_now(&b, sec(0));
    let stale = admit(&b, sec(10));
    let failing = admit(&b, sec(10));
    assert!(b.complete(failing, Outcome::Failure, || sec(10))); // (2 - 1) / 2 < 1.0: reopen
    assert_eq!(b.state(), Open);
    let fresh = admit(&b, sec(25)); // 15 s grown window
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.snapshot(sec(25)).half_open, Some((1, 0, 0)));
    assert!(!b.complete(stale, Outcome::Success, || sec(25)));
    assert!(!b.complete(stale, Outcome::Ignored, || sec(25)));
    assert_eq!(b.snapshot(sec(25)).half_open, Some((1, 0, 0)));
    // The stale Ignored did not give a slot to the new period either: budget is 2 - 1.
    let second = admit(&b, sec(25));
    assert_eq!(
        acquire(&b, sec(25)).unwrap_err().state,
        HalfOpen,
        "the budget of 2 is spent"
    );
    assert!(b.complete(fresh, Outcome::Success, || sec(25)));
    assert!(b.complete(second, Outcome::Success, || sec(25)));
    assert_eq!(b.state(), Closed);
}

// ----- half-open permit accounting -----

#[test]
fn half_open_admits_its_budget_then_rejects_with_half_open_state() {
    let b = Breaker::new(quick(2));
    open_now(&b, sec(0));
    let first = admit(&b, sec(10));
    let _second = admit(&b, Tick::at(12 * SEC));
    // Rejected while HALF_OPEN: the retry_after is when the oldest trial becomes orphaned.
    assert_eq!(
        acquire(&b, sec(13)),
        Err(Rejected {
            state: HalfOpen,
            retry_after_ns: Some(7 * SEC)
        })
    );
    let snap = b.snapshot(sec(13));
    assert_eq!(snap.half_open, Some((2, 0, 0)));
    assert_eq!(snap.rejected, 1);
    assert_eq!(snap.in_flight, 2);
    // An ignored trial gives its slot back.
    assert!(!b.complete(first, Outcome::Ignored, || sec(13)));
    assert_eq!(b.snapshot(sec(13)).half_open, Some((1, 0, 0)));
    let third = admit(&b, sec(13));
    assert!(third.is_trial());
    assert!(acquire(&b, sec(13)).is_err());
    assert_eq!(b.snapshot(sec(13)).half_open, Some((2, 0, 0)));
}

#[test]
fn ignored_trials_never_wedge_half_open() {
    let b = Breaker::new(quick(1));
    open_now(&b, sec(0));
    for i in 0..10 {
        let trial = admit(&b, sec(10 + i));
        assert!(acquire(&b, sec(10 + i)).is_err());
        assert!(!b.complete(trial, Outcome::Ignored, || sec(10 + i)));
        assert_eq!(b.state(), HalfOpen);
    }
    assert!(call(&b, sec(30), Outcome::Success));
    assert_eq!(b.state(), Closed);
    assert_eq!(
        path(&drain(&b)),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
}

// ----- orphaned trials -----

#[test]
fn a_trial_running_a_whole_sleep_window_is_judged_failed_at_the_next_admission() {
    let b = Breaker::new(quick(3)); // success_threshold 0.6
    open_now(&b, sec(0));
    let hung = admit(&b, sec(10));
    // Not yet a whole sleep window: nothing is judged.
    let second = admit(&b, Tick::at(20 * SEC - 1));
    assert_eq!(b.snapshot(sec(20)).orphaned, 0);
    assert_eq!(b.snapshot(sec(20)).half_open, Some((2, 0, 0)));
    // At 10 s after its admission the hung trial is judged a failure by this admission.
    let third = admit(&b, sec(20));
    let snap = b.snapshot(sec(20));
    assert_eq!(snap.orphaned, 1);
    assert_eq!(snap.half_open, Some((2, 0, 1)));
    assert_eq!(snap.state, HalfOpen, "(3 - 1) / 3 >= 0.6");
    // Its own late outcome is ignored.
    assert!(!b.complete(hung, Outcome::Success, || sec(21)));
    assert_eq!(b.snapshot(sec(21)).half_open, Some((2, 0, 1)));
    assert!(b.complete(second, Outcome::Success, || sec(21)));
    assert!(b.complete(third, Outcome::Success, || sec(21))); // 2 of 3 >= 0.6
    assert_eq!(b.state(), Closed);
    assert_eq!(b.snapshot(sec(21)).orphaned, 1, "a lifetime count");
}

#[test]
fn an_orphaned_trial_can_reopen_the_breaker() {
    let b = Breaker::new(quick(1));
    open_now(&b, sec(0));
    let hung = admit(&b, sec(10));
    assert_eq!(
        acquire(&b, sec(15)),
        Err(Rejected {
            state: HalfOpen,
            retry_after_ns: Some(5 * SEC)
        })
    );
    // At 20 s the hung trial is judged failed, that decides the period, and the breaker
    // re-opens with the grown window: the admission that noticed is rejected.
    assert_eq!(
        acquire(&b, sec(20)),
        Err(Rejected {
            state: Open,
            retry_after_ns: Some(15 * SEC)
        })
    );
    assert_eq!(b.snapshot(sec(20)).orphaned, 1);
    assert!(!b.complete(hung, Outcome::Success, || sec(21)));
    assert_eq!(b.state(), Open);
    let events = drain(&b);
    assert_eq!(
        path(&events),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
    );
    assert_eq!(events[2].error_rate, 1.0);
    assert!(admit(&b, sec(35)).is_trial());
}

#[test]
fn reading_the_state_never_judges_orphans() {
    let b = Breaker::new(quick(1));
    open_now(&b, sec(0));
    let _hung = admit(&b, sec(10));
    let snap = b.snapshot(sec(1_000));
    assert_eq!(snap.orphaned, 0);
    assert_eq!(snap.state, HalfOpen);
    assert_eq!(snap.half_open, Some((1, 0, 0)));
}

// ----- force and reset -----

#[test]
fn force_open_rejects_everything_until_clear_force() {
    let b = Breaker::new(quick(1));
    let permit = admit(&b, sec(0));
    b.force_open(sec(5));
    assert_eq!(b.state(), Open);
    assert_eq!(b.snapshot(sec(5)).force, Force::Open);
    for at in [5, 15, 10_000] {
        assert_eq!(
            acquire(&b, sec(at)),
            Err(Rejected {
                state: Open,
                retry_after_ns: None
            })
        );
    }
    // A call admitted before the force does not count.
    assert!(!b.complete(permit, Outcome::Success, || sec(6)));
    assert_eq!(path(&drain(&b)), [(Closed, Open)]);

    b.clear_force();
    assert_eq!(b.state(), Open);
    assert_eq!(b.snapshot(sec(5)).force, Force::None);
    assert!(drain(&b).is_empty(), "the state did not change");
}

#[test]
fn after_clear_force_the_sleep_window_counts_from_the_force() {
    let b = Breaker::new(quick(1));
    b.force_open(sec(100));
    b.clear_force();
    assert_eq!(
        acquire(&b, Tick::at(110 * SEC - 1)),
        Err(Rejected {
            state: Open,
            retry_after_ns: Some(1)
        })
    );
    assert!(admit(&b, sec(110)).is_trial());
}

#[test]
fn force_open_from_half_open_ends_the_trials() {
    let b = Breaker::new(quick(2));
    open_now(&b, sec(0));
    let trial = admit(&b, sec(10));
    b.force_open(sec(10));
    assert_eq!(b.state(), Open);
    b.complete(trial, Outcome::Success, || sec(11));
    assert_eq!(b.state(), Open);
    assert_eq!(
        path(&drain(&b)),
        [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open)]
    );
    // Forcing an OPEN breaker open again is no transition.
    b.force_open(sec(12));
    assert!(drain(&b).is_empty());
}

#[test]
fn force_closed_admits_everything_and_judges_nothing() {
    let b = Breaker::new(quick(1));
    open_now(&b, sec(0));
    b.force_closed(sec(1));
    assert_eq!(b.state(), Closed);
    assert_eq!(b.snapshot(sec(1)).force, Force::Closed);
    for _ in 0..20 {
        assert!(call(&b, sec(1), Outcome::Failure));
    }
    assert_eq!(b.state(), Closed);
    assert_eq!(path(&drain(&b)), [(Closed, Open), (Open, Closed)]);
    // Forcing closed again changes no state.
    b.force_closed(sec(1));
    assert!(drain(&b).is_empty());

    b.clear_force();
    assert_eq!(b.state(), Closed);
    assert_eq!(b.snapshot(sec(1)).force, Force::None);
    assert!(drain(&b).is_empty());
    assert!(call(&b, sec(2), Outcome::Failure)); // judged again
    assert_eq!(b.state(), Open);
    assert_eq!(path(&drain(&b)), [(Closed, Open)]);
}

#[test]
fn reset_clears_force_window_trials_and_the_grown_sleep_window() {
    let b = Breaker::new(Config {
        failure_threshold: 2,
        ..quick(1)
    });
    open_now(&b, sec(0));
    assert!(call(&b, sec(10), Outcome::Failure)); // failed trial: window grows to 15 s
    assert_eq!(b.snapshot(sec(10)).sleep_window_ns, 15 * SEC);
    b.force_open(sec(10));
    b.reset();
    let snap = b.snapshot(sec(10));
    assert_eq!(snap.state, Closed);
    assert_eq!(snap.force, Force::None);
    assert_eq!((snap.successes, snap.failures), (0, 0));
    assert_eq!(snap.sleep_window_ns, 10 * SEC);
    assert_eq!(snap.half_open, None);
    assert_eq!(
        path(&drain(&b)),
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, Closed)
        ]
    );
    // The breaker works from scratch: the next opening uses the configured window.
    open_now(&b, sec(20));
    assert_eq!(
        acquire(&b, sec(20)).unwrap_err().retry_after_ns,
        Some(10 * SEC)
    );
}

#[test]
fn reset_of_a_closed_breaker_is_no_transition() {
    let b = Breaker::new(quick(1));
    let generation = b.generation();
    b.reset();
    assert_eq!(b.state(), Closed);
    assert!(b.generation() > generation, "but a new period");
    assert!(drain(&b).is_empty());
}

#[test]
fn reset_clears_failure_threshold_progress() {
    let b = Breaker::new(Config {
        failure_threshold: 2,
        volume_threshold: 1_000,
        ..Default::default()
    });
    assert!(call(&b, sec(0), Outcome::Failure));
    b.reset();
    assert!(call(&b, sec(0), Outcome::Failure));
    assert_eq!(b.state(), Closed);
    assert!(call(&b, sec(0), Outcome::Failure));
    assert_eq!(b.state(), Open);
}

// ----- events -----

#[test]
fn events_are_delivered_once_each_and_in_transition_order() {
    let b = Breaker::new(quick(1));
    assert!(!b.has_events());
    open_now(&b, sec(0)); // gen 1
    assert!(call(&b, sec(10), Outcome::Failure)); // gen 2 half-open, gen 3 open (15 s)
    assert!(call(&b, sec(25), Outcome::Success)); // gen 4 half-open, gen 5 closed
    b.force_open(sec(26)); // gen 6
    b.force_closed(sec(27)); // gen 7
    b.reset(); // gen 8, CLOSED -> CLOSED: no event
    assert!(b.has_events());

    assert!(b.begin_delivery());
    assert!(!b.begin_delivery(), "one deliverer at a time");
    let mut got = Vec::new();
    while let Some(event) = b.next_event() {
        got.push(event);
    }
    assert!(!b.end_delivery());
    assert!(!b.has_events());
    assert_eq!(b.next_event(), None, "each event is delivered once");
    assert_eq!(
        path(&got),
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed),
            (Closed, Open),
            (Open, Closed),
        ]
    );
    let generations: Vec<u64> = got.iter().map(|e| e.generation).collect();
    assert_eq!(generations, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(b.generation(), 8);
}

#[test]
fn an_event_queued_during_delivery_is_announced_by_end_delivery() {
    let b = Breaker::new(quick(1));
    open_now(&b, sec(0));
    assert!(b.begin_delivery());
    assert_eq!(b.next_event().map(|e| (e.from, e.to)), Some((Closed, Open)));
    // Another thread's transition while we deliver.
    let trial = admit(&b, sec(10));
    assert!(b.end_delivery(), "the caller must try again");
    assert_eq!(path(&drain(&b)), [(Open, HalfOpen)]);
    assert!(b.complete(trial, Outcome::Success, || sec(10)));
    assert_eq!(path(&drain(&b)), [(HalfOpen, Closed)]);
}

// ----- the window through the breaker -----

#[test]
fn window_counts_expire_at_bucket_boundaries() {
    // 10 s window in 2 buckets of 5 s.
    let b = Breaker::new(Config {
        window_ns: 10 * SEC,
        bucket_count: 2,
        volume_threshold: 3,
        error_threshold: 0.5,
        ..Default::default()
    });
    assert!(call(&b, Tick::at(5 * SEC - 1), Outcome::Failure)); // bucket [0, 5)
    assert!(call(&b, sec(5), Outcome::Failure)); // bucket [5, 10)
    assert_eq!(b.window_counts(Tick::at(10 * SEC - 1)), (0, 2));
    assert_eq!(
        b.window_counts(sec(10)),
        (0, 1),
        "the first bucket left at 10 s"
    );
    // Had the first failure not expired, this would be 3 failures of 3 and open.
    assert!(call(&b, sec(10), Outcome::Failure));
    assert_eq!(b.state(), Closed);
    assert_eq!(b.window_counts(sec(10)), (0, 2));
    assert_eq!(b.window_counts(sec(15)), (0, 1));
    assert_eq!(b.window_counts(sec(20)), (0, 0));
    assert!(call(&b, sec(14), Outcome::Success)); // 2 failures of 3 in [5, 15)
    assert_eq!(b.state(), Open);
}

#[test]
fn a_clock_going_backwards_resets_the_window() {
    let clock = ManualClock::new(100 * SEC);
    let b = Breaker::new(Config {
        volume_threshold: 4,
        ..Default::default()
    });
    let stale = admit(&b, clock.now());
    for _ in 0..3 {
        assert!(call(&b, clock.now(), Outcome::Failure));
    }
    let old_tick = clock.now();
    assert_eq!(b.window_counts(clock.now()), (0, 3));
    clock.advance(-50 * SEC);
    let now = clock.now();
    assert_eq!(
        now,
        Tick {
            ns: 50 * SEC,
            era: 1
        }
    );
    assert_eq!(b.window_counts(now), (0, 0));
    assert!(call(&b, now, Outcome::Failure));
    assert_eq!(b.window_counts(now), (0, 1));
    assert_eq!(b.state(), Closed, "the 3 old failures are gone");
    // An outcome timed on the old timeline is dropped.
    b.complete(stale, Outcome::Failure, || old_tick);
    assert_eq!(b.window_counts(clock.now()), (0, 1));
    assert_eq!(b.state(), Closed);
}

// ----- threads -----

#[test]
fn eight_threads_lose_no_outcome_and_leave_nothing_in_flight() {
    const THREADS: u64 = 8;
    const N: u64 = 20_000;
    let b = Breaker::new(Config {
        error_threshold: 1.0,
        volume_threshold: u64::MAX,
        window_ns: 3_600 * SEC,
        bucket_count: 10,
        ..Default::default()
    });
    let now = sec(1);
    let outcome = |t: u64, i: u64| match (t + i) % 5 {
        0 => Outcome::Ignored,
        1 | 2 => Outcome::Failure,
        _ => Outcome::Success,
    };
    let start = Barrier::new(THREADS as usize);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (b, start) = (&b, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..N {
                    let permit = admit(b, now);
                    let counted = b.complete(permit, outcome(t, i), || now);
                    assert_eq!(counted, outcome(t, i) != Outcome::Ignored);
                }
            });
        }
    });
    let (mut ok, mut failed) = (0, 0);
    for t in 0..THREADS {
        for i in 0..N {
            match outcome(t, i) {
                Outcome::Success => ok += 1,
                Outcome::Failure => failed += 1,
                Outcome::Ignored => {}
            }
        }
    }
    assert_eq!(b.window_counts(now), (ok, failed));
    let snap = b.snapshot(now);
    assert_eq!(snap.state, Closed);
    assert_eq!(snap.in_flight, 0);
    assert_eq!(snap.total_executions, THREADS * N);
    assert_eq!(snap.rejected, 0);
    assert_eq!((snap.successes, snap.failures), (ok, failed));
    assert!(drain(&b).is_empty());
}

#[test]
fn eight_threads_racing_into_half_open_get_at_most_the_budget() {
    const THREADS: usize = 8;
    for half_open_requests in [1_u32, 2, 3, 5] {
        for _round in 0..50 {
            let b = Breaker::new(quick(half_open_requests));
            open_now(&b, sec(0));
            let start = Barrier::new(THREADS);
            let results: Vec<Result<Permit, Rejected>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let (b, start) = (&b, &start);
                        s.spawn(move || {
                            start.wait();
                            acquire(b, sec(10))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let admitted = results.iter().filter(|r| r.is_ok()).count();
            // Nothing completes and the tick is fixed, so the whole budget goes out.
            assert!(admitted <= half_open_requests as usize);
            assert_eq!(admitted, half_open_requests as usize);
            for r in &results {
                match r {
                    Ok(permit) => assert!(permit.is_trial()),
                    Err(rejected) => assert_eq!(rejected.state, HalfOpen),
                }
            }
            let snap = b.snapshot(sec(10));
            assert_eq!(snap.half_open, Some((admitted as u64, 0, 0)));
            assert_eq!(snap.total_executions, 1 + admitted as u64);
            assert_eq!(snap.rejected, (THREADS - admitted) as u64);
            assert_eq!(path(&drain(&b)), [(Closed, Open), (Open, HalfOpen)]);
        }
    }
}

#[test]
fn eight_threads_failing_together_open_the_breaker_once() {
    const THREADS: usize = 8;
    for _round in 0..50 {
        let b = Breaker::new(Config {
            volume_threshold: 4,
            ..quick(1)
        });
        let start = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                let (b, start) = (&b, &start);
                s.spawn(move || {
                    start.wait();
                    for _ in 0..4 {
                        if let Ok(permit) = acquire(b, sec(0)) {
                            b.complete(permit, Outcome::Failure, || sec(0));
                        }
                    }
                });
            }
        });
        assert_eq!(b.state(), Open);
        assert_eq!(path(&drain(&b)), [(Closed, Open)]);
        assert_eq!(b.snapshot(sec(0)).in_flight, 0);
    }
}
