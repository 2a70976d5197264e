//! Criterion benchmarks of the pure Rust core (no Python): `cargo bench --bench core`.
//!
//! Every case reads the time the way the binding does (`MonotonicClock`, i.e.
//! `CLOCK_MONOTONIC_COARSE`), so the figures are what one `cb.call(f)` costs inside Rust.
//!
//! Each case runs twice: timed by the wall clock (groups `wall_*`, criterion's default) and by
//! the thread's CPU clock (groups `cpu_*`). On a machine shared with other busy processes the
//! wall clock also counts the time the thread sat descheduled; the CPU clock does not, so the
//! `cpu_*` figures are the ones to trust there. `benches/report.py` reads the estimates criterion
//! writes under `<target dir>/criterion/` and checks "acquire + record success <= 25 ns".

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use resilience_core::breaker::{Breaker, Config, Outcome, State};
use resilience_core::clock::{Clock, MonotonicClock, Tick};
use resilience_core::window::Window;

const SEC: i64 = 1_000_000_000;

#[inline]
fn now() -> Tick {
    MonotonicClock.now()
}

/// One admitted call that succeeds: what `cb.call(f)` asks of the core on its success path.
#[inline]
fn acquire_success(breaker: &Breaker) {
    let permit = breaker.try_acquire(now).expect("a closed breaker admits");
    black_box(breaker.complete(permit, Outcome::Success, now));
}

/// A breaker that counts failures but never judges them (the volume threshold is never met), so
/// the failure path can be measured for as long as criterion likes without the breaker opening.
fn never_opening() -> Breaker {
    Breaker::new(Config {
        volume_threshold: u64::MAX,
        ..Config::default()
    })
}

/// A breaker opened by a real failure, with a sleep window far longer than the benchmark.
fn opened() -> Breaker {
    let breaker = Breaker::new(Config {
        volume_threshold: 1,
        sleep_window_ns: 3600 * SEC,
        max_sleep_window_ns: 3600 * SEC,
        ..Config::default()
    });
    let permit = breaker.try_acquire(now).expect("a closed breaker admits");
    breaker.complete(permit, Outcome::Failure, now);
    assert_eq!(
        breaker.state(),
        State::Open,
        "one failure over volume 1 opens"
    );
    breaker
}

fn single_thread<M: Measurement>(c: &mut Criterion<M>, kind: &str) {
    let mut group = c.benchmark_group(format!("{kind}_breaker"));

    let breaker = Breaker::new(Config::default());
    group.bench_function("acquire_record_success", |b| {
        b.iter(|| acquire_success(black_box(&breaker)));
    });

    let breaker = never_opening();
    group.bench_function("acquire_record_failure", |b| {
        b.iter(|| {
            let breaker = black_box(&breaker);
            let permit = breaker.try_acquire(now).expect("never opens");
            black_box(breaker.complete(permit, Outcome::Failure, now))
        });
    });

    let breaker = opened();
    group.bench_function("rejected_open", |b| {
        b.iter(|| black_box(black_box(&breaker).try_acquire(now)).is_err());
    });
    assert_eq!(
        breaker.state(),
        State::Open,
        "still open after the benchmark"
    );
    group.finish();

    let mut group = c.benchmark_group(format!("{kind}_window"));
    let window = Window::new(60 * SEC, 10);
    group.bench_function("record", |b| {
        b.iter(|| black_box(black_box(&window).record(now(), false)));
    });
    group.bench_function("counts", |b| {
        b.iter(|| black_box(black_box(&window).counts(now())));
    });
    group.finish();
}

/// `threads` threads run `iters` acquire + record success each on one shared breaker, each timed
/// by `clock` from a common start (thread start-up is not timed). Returns the slowest thread's
/// time, so the figure is nanoseconds per operation *per thread*; criterion's throughput line
/// gives the operations per second of all threads together.
fn contended(breaker: &Breaker, threads: usize, iters: u64, clock: fn() -> Duration) -> Duration {
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let began = clock();
                    for _ in 0..iters {
                        acquire_success(black_box(breaker));
                    }
                    clock().saturating_sub(began)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn contention<M: Measurement<Value = Duration>>(
    c: &mut Criterion<M>,
    kind: &str,
    clock: fn() -> Duration,
) {
    let mut group = c.benchmark_group(format!("{kind}_contention"));
    group.measurement_time(Duration::from_secs(4));
    for threads in [1_usize, 2] {
        let breaker = Breaker::new(Config::default());
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(format!("acquire_record_success_{threads}_threads"), |b| {
            b.iter_custom(|iters| contended(&breaker, threads, iters, clock));
        });
    }
    group.finish();
}

fn read_clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and both clocks used here exist on Linux.
    unsafe { libc::clock_gettime(id, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn wall_clock() -> Duration {
    read_clock(libc::CLOCK_MONOTONIC)
}

fn thread_cpu_clock() -> Duration {
    read_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Criterion measurement by the calling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`).
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_clock()
    }

    fn end(&self, began: Duration) -> Duration {
        thread_cpu_clock().saturating_sub(began)
    }

    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        static NANOSECONDS: WallTime = WallTime;
        NANOSECONDS.formatter() // a duration either way
    }
}

fn wall(c: &mut Criterion) {
    single_thread(c, "wall");
    contention(c, "wall", wall_clock);
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    single_thread(c, "cpu");
    contention(c, "cpu", thread_cpu_clock);
}

criterion_group! {
    name = wall_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = wall
}
criterion_group! {
    name = cpu_benches;
    config = Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
