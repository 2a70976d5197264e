//! Loom models of the breaker's and the window's lock-free paths.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_models -- --nocapture`
//! (without `LOOM_MAX_PREEMPTIONS` the models default to a bound of 2). Each model prints the
//! number of executions loom explored.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;

use resilience_core::breaker::{Breaker, Config, Outcome, Permit, Rejected, State, Transition};
use resilience_core::clock::Tick;
use resilience_core::window::Window;

use State::{Closed, HalfOpen, Open};

/// Runs `f` under loom (preemption bound from `LOOM_MAX_PREEMPTIONS`, else 2) and prints how
/// many executions were explored.
fn check<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let executions = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    let bound = builder.preemption_bound;
    let start = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    println!(
        "loom model {name}: {} executions explored (preemption bound {bound:?}) in {:.1?}",
        executions.load(Ordering::Relaxed),
        start.elapsed()
    );
}

/// A small breaker: opens on one failure (unless `volume_threshold` says otherwise), sleeps
/// 10 ns, a window of 1000 ns in one bucket.
fn small(half_open_requests: u32) -> Config {
    Config {
        volume_threshold: 1,
        error_threshold: 0.5,
        sleep_window_ns: 10,
        max_sleep_window_ns: 1_000,
        half_open_requests,
        window_ns: 1_000,
        bucket_count: 1,
        ..Default::default()
    }
}

fn at(ns: i64) -> Tick {
    Tick::at(ns)
}

fn acquire(b: &Breaker, ns: i64) -> Result<Permit, Rejected> {
    b.try_acquire(|| at(ns))
}

/// Opens `b` with one failed call at `ns`.
fn open_with_a_failure(b: &Breaker, ns: i64) {
    let permit = acquire(b, ns).expect("closed admits");
    b.complete(permit, Outcome::Failure, || at(ns));
    assert_eq!(b.state(), Open);
}

fn drain(b: &Breaker) -> Vec<Transition> {
    assert!(b.begin_delivery());
    let mut out = Vec::new();
    while let Some(event) = b.next_event() {
        out.push(event);
    }
    assert!(!b.end_delivery());
    out
}

/// Asserts that `events`, starting from CLOSED, is a path of the state machine (without
/// forces): each event starts where the previous one ended, changes the state along an edge of
/// the machine, and generations strictly grow (so no transition is reported twice).
fn assert_valid_path(events: &[Transition]) {
    let mut state = Closed;
    let mut generation = 0;
    for e in events {
        assert_eq!(
            e.from, state,
            "event {e:?} does not start where the last ended: {events:?}"
        );
        assert!(
            matches!(
                (e.from, e.to),
                (Closed, Open) | (Open, HalfOpen) | (HalfOpen, Closed) | (HalfOpen, Open)
            ),
            "not an edge of the state machine: {e:?} in {events:?}"
        );
        assert!(
            e.generation > generation,
            "generation did not grow: {events:?}"
        );
        state = e.to;
        generation = e.generation;
    }
}

fn count(events: &[Transition], from: State, to: State) -> usize {
    events
        .iter()
        .filter(|e| e.from == from && e.to == to)
        .count()
}

// ----- (a) racing for the half-open permits -----

fn half_open_race(n: u32) {
    check(&format!("a_half_open_race_n{n}"), move || {
        let b = Arc::new(Breaker::new(small(n)));
        open_with_a_failure(&b, 0);
        // Three racers: two spawned threads and the main thread.
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || acquire(&b, 10))
            })
            .collect();
        let mut results = vec![acquire(&b, 10)];
        results.extend(handles.into_iter().map(|h| h.join().unwrap()));
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert!(admitted >= 1, "nobody admitted: {results:?}");
        assert!(
            admitted <= n as usize,
            "{admitted} admitted for {n} permits: {results:?}"
        );
        // Nothing completes and the tick is fixed, so the whole budget goes out.
        assert_eq!(admitted, n as usize, "{results:?}");
        for r in &results {
            match r {
                Ok(permit) => assert!(permit.is_trial()),
                Err(rejected) => assert_eq!(rejected.state, HalfOpen),
            }
        }
        assert_eq!(b.state(), HalfOpen);
        assert_eq!(b.snapshot(at(10)).half_open, Some((admitted as u64, 0, 0)));
        let events = drain(&b);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_valid_path(&events);
        assert_eq!(count(&events, Open, HalfOpen), 1);
    });
}

#[test]
fn a_half_open_race_one_permit() {
    half_open_race(1);
}

#[test]
fn a_half_open_race_two_permits() {
    half_open_race(2);
}

// ----- (b) failures racing the open timer -----

#[test]
fn b_failures_racing_the_open_timer() {
    check("b_failures_racing_the_open_timer", || {
        let b = Arc::new(Breaker::new(Config {
            volume_threshold: 2,
            error_threshold: 0.5,
            ..small(1)
        }));
        let p1 = acquire(&b, 0).unwrap();
        let p2 = acquire(&b, 0).unwrap();
        let failing = [p1, p2].map(|permit| {
            let b = b.clone();
            thread::spawn(move || {
                b.complete(permit, Outcome::Failure, || at(0));
            })
        });
        let prober = {
            let b = b.clone();
            thread::spawn(move || {
                let admitted = acquire(&b, 10);
                if let Ok(permit) = admitted {
                    b.complete(permit, Outcome::Success, || at(10));
                }
                admitted
            })
        };
        for h in failing {
            h.join().unwrap();
        }
        let probe = prober.join().unwrap();

        // Events are drained here rather than by the threads through begin_delivery /
        // end_delivery: that handshake relies on SeqCst accesses, which loom 0.7 does not model
        // (tokio-rs/loom#180), and on a plain store racing a swap (tokio-rs/loom#254), so loom
        // reports executions the Rust memory model forbids.
        let mut events = Vec::new();
        while let Some(event) = b.next_event() {
            events.push(event);
        }
        assert!(!b.has_events());
        assert_valid_path(&events);
        assert_eq!(count(&events, Closed, Open), 1, "{events:?}");
        assert!(count(&events, Open, HalfOpen) <= 1, "{events:?}");
        let last = events.last().expect("the breaker opened");
        assert_eq!(b.state(), last.to);
        assert_eq!(b.generation(), last.generation);
        match probe {
            Ok(permit) if permit.is_trial() => {
                // The single trial succeeded: the whole cycle, once.
                let path: Vec<_> = events.iter().map(|e| (e.from, e.to)).collect();
                assert_eq!(path, [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]);
            }
            Ok(_) => assert_eq!(events.len(), 1, "admitted while CLOSED: {events:?}"),
            Err(rejected) => panic!("the sleep window had elapsed: {rejected:?}"),
        }
    });
}

// ----- (c) the window at a bucket boundary -----

#[test]
fn c_window_writers_across_a_bucket_boundary() {
    check("c_window_writers_across_a_bucket_boundary", || {
        // 2 buckets of 10 ns: epoch 0 = [0, 10), epoch 1 = [10, 20).
        let w = Arc::new(Window::new(20, 2));
        let writers = [false, true].map(|failure| {
            let w = w.clone();
            thread::spawn(move || assert!(w.record(at(9), failure)))
        });
        let advancing = {
            let w = w.clone();
            thread::spawn(move || assert!(w.record(at(10), true)))
        };
        for h in writers {
            h.join().unwrap();
        }
        advancing.join().unwrap();
        assert_eq!(w.counts(at(10)), (1, 2), "both buckets, every record");
        assert_eq!(w.counts(at(19)), (1, 2));
        assert_eq!(w.counts(at(20)), (0, 1), "epoch 0 expired");
    });
}

#[test]
fn c_window_advancing_writer_recycles_a_slot() {
    check("c_window_advancing_writer_recycles_a_slot", || {
        // Epoch 0 lives in slot 0; epoch 2 ([20, 30)) takes slot 0 over.
        let w = Arc::new(Window::new(20, 2));
        assert!(w.record(at(0), true)); // epoch 0, about to expire
        let writers = [false, false].map(|failure| {
            let w = w.clone();
            thread::spawn(move || assert!(w.record(at(19), failure)))
        });
        let advancing = {
            let w = w.clone();
            thread::spawn(move || assert!(w.record(at(20), true)))
        };
        for h in writers {
            h.join().unwrap();
        }
        advancing.join().unwrap();
        assert_eq!(
            w.counts(at(20)),
            (2, 1),
            "epochs 1 and 2 exactly; epoch 0's failure gone"
        );
        assert_eq!(w.counts(at(30)), (0, 1));
    });
}

// ----- (d) a stale-generation trial completion -----

/// A permit of HALF_OPEN generation g completes (with `outcome`) while another thread ends that
/// period (a failed trial re-opens it). Whatever the interleaving, the next trial period starts
/// from zero: its counters and budget change by exactly 0 from the stale completion.
fn stale_trial_racing_the_period_end(name: &str, outcome: Outcome) {
    check(name, move || {
        // success_threshold 1.0 with 2 trials: one failure decides OPEN.
        let b = Arc::new(Breaker::new(Config {
            success_threshold: 1.0,
            ..small(2)
        }));
        open_with_a_failure(&b, 0); // window: one failure at 0
        let stale = acquire(&b, 10).unwrap();
        let failing = acquire(&b, 10).unwrap();
        let late = {
            let b = b.clone();
            thread::spawn(move || b.complete(stale, outcome, || at(10)))
        };
        let ender = {
            let b = b.clone();
            thread::spawn(move || b.complete(failing, Outcome::Failure, || at(10)))
        };
        late.join().unwrap();
        assert!(
            ender.join().unwrap(),
            "the failure of a current trial counts"
        );
        assert_eq!(b.state(), Open);
        assert_eq!(
            b.window_counts(at(10)),
            (0, 1),
            "trials never touch the window"
        );

        // The next period (grown sleep window: 15 ns).
        let fresh = acquire(&b, 25).expect("the next period's first trial");
        assert!(fresh.generation() > stale.generation());
        assert_eq!(b.snapshot(at(25)).half_open, Some((1, 0, 0)));
        let second = acquire(&b, 25).expect("the budget is 2 again");
        assert_eq!(acquire(&b, 25).unwrap_err().state, HalfOpen, "and not 3");
        assert_eq!(b.snapshot(at(25)).half_open, Some((2, 0, 0)));
        assert!(b.complete(fresh, Outcome::Success, || at(25)));
        assert_eq!(b.snapshot(at(25)).half_open, Some((1, 1, 0)));
        assert!(b.complete(second, Outcome::Success, || at(25)));
        assert_eq!(b.state(), Closed);
        let events = drain(&b);
        assert_valid_path(&events);
        assert_eq!(events.len(), 5, "{events:?}");
    });
}

#[test]
fn d_stale_trial_success_racing_the_period_end() {
    stale_trial_racing_the_period_end(
        "d_stale_trial_success_racing_the_period_end",
        Outcome::Success,
    );
}

#[test]
fn d_stale_trial_ignored_racing_the_period_end() {
    stale_trial_racing_the_period_end(
        "d_stale_trial_ignored_racing_the_period_end",
        Outcome::Ignored,
    );
}

/// The same across reset(): the stale trial completes while another thread resets the breaker
/// and records in the new CLOSED period; that period's window holds exactly its own outcome,
/// and the trial period after it starts from zero.
#[test]
fn d_stale_trial_completion_racing_reset() {
    check("d_stale_trial_completion_racing_reset", || {
        let b = Arc::new(Breaker::new(Config {
            volume_threshold: 2,
            ..small(2)
        }));
        let p = acquire(&b, 0).unwrap();
        b.complete(p, Outcome::Failure, || at(0));
        let p = acquire(&b, 0).unwrap();
        b.complete(p, Outcome::Failure, || at(0));
        assert_eq!(b.state(), Open);
        let stale = acquire(&b, 10).unwrap();
        let late = {
            let b = b.clone();
            thread::spawn(move || b.complete(stale, Outcome::Failure, || at(10)))
        };
        let resetter = {
            let b = b.clone();
            thread::spawn(move || {
                b.reset();
                let p = acquire(&b, 10).expect("CLOSED after reset");
                assert!(b.complete(p, Outcome::Failure, || at(10)));
            })
        };
        late.join().unwrap();
        resetter.join().unwrap();
        assert_eq!(b.state(), Closed, "one failure < volume 2");
        assert_eq!(
            b.window_counts(at(10)),
            (0, 1),
            "only the failure after the reset"
        );
        let p = acquire(&b, 10).unwrap();
        assert!(b.complete(p, Outcome::Failure, || at(10)));
        assert_eq!(b.state(), Open);
        let fresh = acquire(&b, 20).expect("the next period's first trial");
        assert!(fresh.generation() > stale.generation());
        assert_eq!(b.snapshot(at(20)).half_open, Some((1, 0, 0)));
    });
}

/// The stale completion racing the start of the next trial period itself. Ignored: loom 0.7.3
/// does not apply RMW atomicity to later plain stores (tokio-rs/loom#254, fix proposed in
/// tokio-rs/loom#391), and `reset_trials` / `publish` reset the slots and counters with plain
/// stores, so loom explores executions where the stale completion's compare_exchange is ordered
/// after those stores, which the Rust memory model forbids. With those stores made `swap`s (a
/// scratch copy, not in src) the model passes.
#[test]
fn d_stale_trial_completion_racing_the_next_trial_period() {
    check(
        "d_stale_trial_completion_racing_the_next_trial_period",
        || {
            let b = Arc::new(Breaker::new(Config {
                success_threshold: 1.0,
                ..small(2)
            }));
            open_with_a_failure(&b, 0);
            let stale = acquire(&b, 10).unwrap();
            let failing = acquire(&b, 10).unwrap();
            let late = {
                let b = b.clone();
                thread::spawn(move || b.complete(stale, Outcome::Success, || at(10)))
            };
            let mover = {
                let b = b.clone();
                thread::spawn(move || {
                    b.complete(failing, Outcome::Failure, || at(10)); // OPEN, 15 ns
                    acquire(&b, 25).expect("the next period's first trial")
                })
            };
            late.join().unwrap();
            let fresh = mover.join().unwrap();
            assert_eq!(b.state(), HalfOpen);
            assert_eq!(b.generation(), fresh.generation());
            assert_eq!(b.snapshot(at(25)).half_open, Some((1, 0, 0)));
            assert!(b.complete(fresh, Outcome::Success, || at(25)));
            assert_eq!(b.snapshot(at(25)).half_open, Some((0, 1, 0)));
        },
    );
}

// ----- races around period changes: once bugs, now regression models (e is a known limit) -----

/// A CLOSED-period outcome completing while another thread calls reset(): whichever comes
/// first, the window must end empty (counted then cleared, or ignored as stale).
#[test]
#[ignore = "known limit, documented in src/breaker.rs: a stale CLOSED outcome racing a \
            window-clearing transition can count in the new period"]
fn e_stale_closed_outcome_racing_reset() {
    check("e_stale_closed_outcome_racing_reset", || {
        let b = Arc::new(Breaker::new(Config {
            volume_threshold: 100,
            ..small(1)
        }));
        let permit = acquire(&b, 0).unwrap();
        let late = {
            let b = b.clone();
            thread::spawn(move || b.complete(permit, Outcome::Failure, || at(0)))
        };
        let resetter = {
            let b = b.clone();
            thread::spawn(move || b.reset())
        };
        late.join().unwrap();
        resetter.join().unwrap();
        assert_eq!(b.window_counts(at(0)), (0, 0));
    });
}

/// A thread claiming a trial slot in HALF_OPEN generation g races the end of that period and the
/// start of the next, which hands out both of its slots. Every trial admitted in the new period
/// must hold a slot and count, and no claim of generation g may occupy a slot of the new one.
/// (Written against the old reserve-then-store claim, which let a stalled claimer overwrite a
/// new trial's ticket; the one-CAS claim fixed that, but a generation-g claim can still land in
/// a free slot of the new period.)
#[test]
fn f_slot_claim_racing_the_next_period() {
    check("f_slot_claim_racing_the_next_period", || {
        let b = Arc::new(Breaker::new(Config {
            success_threshold: 1.0,
            ..small(2)
        }));
        open_with_a_failure(&b, 0);
        let first = acquire(&b, 10).unwrap(); // slot 0 of generation g
        let claimer = {
            let b = b.clone();
            thread::spawn(move || acquire(&b, 10)) // wants slot 1 of generation g
        };
        let mover = {
            let b = b.clone();
            thread::spawn(move || {
                b.complete(first, Outcome::Failure, || at(10)); // OPEN until 25
                let x = acquire(&b, 25);
                let y = acquire(&b, 25);
                (x, y)
            })
        };
        let claimed = claimer.join().unwrap();
        let (x, y) = mover.join().unwrap();
        let all = [claimed, x, y];
        let live: Vec<Permit> = all
            .into_iter()
            .flatten()
            .filter(|p| p.generation() == b.generation())
            .collect();
        let snap = b.snapshot(at(25));
        assert_eq!(b.state(), HalfOpen);
        // Every trial admitted in the current period holds a slot, and each one counts.
        assert_eq!(
            snap.half_open,
            Some((live.len() as u64, 0, 0)),
            "{all:?} {snap:?}"
        );
        for permit in &live {
            assert!(
                b.complete(*permit, Outcome::Success, || at(25)),
                "{permit:?} of {all:?} lost its slot"
            );
        }
    });
}

/// A thread takes the last trial budget of HALF_OPEN generation g and stalls before claiming a
/// slot; the period fails, the next one starts at tick 25 and its first trial completes; the
/// stalled thread then claims a free slot with its generation-g ticket, and before it re-checks
/// the generation an admission at tick 40 (a sleep window later) judges orphans. The generation-g
/// claim must not be judged an orphaned trial of the new period.
#[test]
fn f_stale_claim_is_not_an_orphan_of_the_next_period() {
    check("f_stale_claim_is_not_an_orphan_of_the_next_period", || {
        // 3 trials, 0.6: two failures decide OPEN, one does not.
        let b = Arc::new(Breaker::new(small(3)));
        open_with_a_failure(&b, 0);
        let a = acquire(&b, 10).unwrap();
        let c = acquire(&b, 10).unwrap();
        let claimer = {
            let b = b.clone();
            thread::spawn(move || acquire(&b, 10)) // the last budget of generation g
        };
        let mover = {
            let b = b.clone();
            thread::spawn(move || {
                b.complete(a, Outcome::Failure, || at(10));
                b.complete(c, Outcome::Failure, || at(10)); // OPEN until 25
                let x = acquire(&b, 25).expect("the next period's first trial");
                assert!(b.complete(x, Outcome::Success, || at(25)));
                // Only now does anyone look for orphans, a sleep window (15) later.
                let b = b.clone();
                thread::spawn(move || acquire(&b, 40))
            })
        };
        let claimed = claimer.join().unwrap();
        let sweeper = mover.join().unwrap().join().unwrap();
        let generation = b.generation();
        let snap = b.snapshot(at(40));
        // The claimer may legitimately end up with a trial of the new period (its retry after
        // the period changed); if the sweep judged that one orphaned, its completion is ignored.
        let live = claimed.ok().filter(|p| p.generation() == generation);
        let counted = live.map(|p| b.complete(p, Outcome::Success, || at(40)));
        let expected_orphans = u64::from(counted == Some(false));
        assert_eq!(
            snap.orphaned, expected_orphans,
            "claimer {claimed:?} sweeper {sweeper:?} {snap:?}"
        );
        let (_, _, failed) = snap.half_open.expect("still HALF_OPEN");
        assert_eq!(failed, expected_orphans, "{snap:?}");
    });
}
