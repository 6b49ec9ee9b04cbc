//! Stress: every core hammering one registry with random tenants and outcomes, cancelling calls
//! in flight (tokio `timeout` / `select!` on paused time, plain drops, permits held across
//! flapping), forcing circuits open and resetting them, and moving the shared clock. Afterwards
//! every circuit is in a legal state, nothing is wedged, and the test's own tally of calls adds
//! up and matches what the circuits report.
//!
//! `cargo test` runs a small size (well under a second of work per core); `BREAKER_STRESS=1`
//! runs a hundred times more on ten thousand tenants.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use breaker_core::{Config, ManualClock, Outcome, Permit, Registry, State, Window};

const PROVIDERS: [&str; 3] = ["consecutive", "count-window", "time-window"];

/// The test's tally; every attempt ends in exactly one of the other buckets.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
    abandoned: AtomicU64,
    forced: AtomicU64,
    resets: AtomicU64,
}

impl Tally {
    fn count(&self, o: Outcome) {
        match o {
            Outcome::Success => &self.successes,
            Outcome::Failure | Outcome::RetryAfter(_) => &self.failures,
            Outcome::Ignored => &self.ignored,
        }
        .fetch_add(1, Relaxed);
    }
}

struct Size {
    ops_per_thread: u32,
    tenants: u32,
}

fn size() -> Size {
    if std::env::var_os("BREAKER_STRESS").is_some() {
        Size {
            ops_per_thread: 2_000_000,
            tenants: 10_000,
        }
    } else {
        Size {
            ops_per_thread: 50_000 / scale(),
            tenants: 64,
        }
    }
}

/// `BREAKER_SCALE=n` divides the work by `n` (valgrind runs these at a tenth or less).
fn scale() -> u32 {
    std::env::var("BREAKER_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1u32)
        .max(1)
}

fn registry(clock: ManualClock) -> Registry {
    let open = |b: breaker_core::ConfigBuilder| {
        b.open_for(Duration::from_millis(5))
            .max_open_for(Duration::from_millis(40))
            .on_abandoned(Outcome::Failure)
    };
    let r = Registry::builder()
        .clock(clock)
        .default_config(Config::default())
        .build();
    r.configure(
        PROVIDERS[0],
        open(
            Config::builder()
                .consecutive_failures(3)
                .half_open_probes(2),
        )
        .build()
        .unwrap(),
    );
    r.configure(
        PROVIDERS[1],
        open(
            Config::builder()
                .failure_rate(0.5, Window::Calls(10))
                .minimum_calls(5)
                .half_open_probes(3)
                .half_open_successes(2)
                .jitter(0.5),
        )
        .build()
        .unwrap(),
    );
    r.configure(
        PROVIDERS[2],
        open(
            Config::builder()
                .failure_rate(0.6, Window::Time(Duration::from_millis(160)))
                .slow_calls(Duration::from_millis(3), 0.8)
                .minimum_calls(4)
                .on_abandoned(Outcome::Ignored),
        )
        .build()
        .unwrap(),
    );
    r
}

fn outcome() -> Outcome {
    match fastrand::u8(0..10) {
        0..=4 => Outcome::Success,
        5..=7 => Outcome::Failure,
        8 => Outcome::RetryAfter(std::time::Duration::from_micros(fastrand::u64(0..3))),
        _ => Outcome::Ignored,
    }
}

/// A call that takes `work_ms` of tokio (paused) time and the shared circuit clock, then records.
async fn call(permit: Permit, work_ms: u64, clock: &ManualClock, tally: &Tally) {
    tokio::time::sleep(Duration::from_millis(work_ms)).await;
    if work_ms > 2 {
        clock.advance(Duration::from_millis(1)); // long enough to count as slow sometimes
    }
    let o = outcome();
    permit.record(o);
    tally.count(o);
}

fn worker(registry: &Registry, clock: &ManualClock, tally: &Tally, ops: u32, tenants: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        // Permits kept across later operations (and so across transitions): they go stale.
        let mut held: Vec<Permit> = Vec::new();
        for _ in 0..ops {
            let provider = PROVIDERS[fastrand::usize(..PROVIDERS.len())];
            let tenant = format!("t{}", fastrand::u32(..tenants));
            match fastrand::u16(..1000) {
                // Operations flapping circuits between forced open and closed.
                0..=9 => {
                    registry.circuit(provider, &tenant).force_open();
                    tally.forced.fetch_add(1, Relaxed);
                    continue;
                }
                10..=24 => {
                    registry.circuit(provider, &tenant).reset();
                    tally.resets.fetch_add(1, Relaxed);
                    continue;
                }
                25..=59 => {
                    clock.advance(Duration::from_micros(fastrand::u64(..4_000)));
                    continue;
                }
                _ => {}
            }
            tally.calls.fetch_add(1, Relaxed);
            let permit = match registry.acquire(provider, &tenant, None) {
                Ok(p) => p,
                Err(e) => {
                    assert_ne!(e.state(), State::Closed);
                    assert_eq!((e.provider(), e.tenant()), (provider, tenant.as_str()));
                    tally.rejected.fetch_add(1, Relaxed);
                    continue;
                }
            };
            match fastrand::u8(..10) {
                0..=4 => {
                    let o = outcome();
                    permit.record(o);
                    tally.count(o);
                }
                5 | 6 => {
                    // Cancelled by a timeout when the call outlives it.
                    let (work, limit) = (fastrand::u64(..5), fastrand::u64(..5));
                    let done = tokio::time::timeout(
                        Duration::from_millis(limit),
                        call(permit, work, clock, tally),
                    )
                    .await;
                    if done.is_err() {
                        tally.abandoned.fetch_add(1, Relaxed);
                    }
                }
                7 => {
                    // Cancelled by a competing branch.
                    let (work, other) = (fastrand::u64(..5), fastrand::u64(..5));
                    tokio::select! {
                        _ = call(permit, work, clock, tally) => {}
                        _ = tokio::time::sleep(Duration::from_millis(other)) => {
                            tally.abandoned.fetch_add(1, Relaxed);
                        }
                    }
                }
                8 => {
                    drop(permit);
                    tally.abandoned.fetch_add(1, Relaxed);
                }
                _ => {
                    held.push(permit);
                    if held.len() > 8 {
                        let p = held.swap_remove(fastrand::usize(..held.len()));
                        let o = outcome();
                        p.record(o);
                        tally.count(o);
                    }
                }
            }
        }
        tally.abandoned.fetch_add(held.len() as u64, Relaxed);
        drop(held);
    });
}

#[test]
fn registry_survives_all_cores_cancelling_and_flapping() {
    let size = size();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let clock = ManualClock::new();
    let registry = Arc::new(registry(clock.clone()));
    let tally = Arc::new(Tally::default());

    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| worker(&registry, &clock, &tally, size.ops_per_thread, size.tenants));
        }
    });

    let t = |c: &AtomicU64| c.load(Relaxed);
    let calls = t(&tally.calls);
    assert_eq!(
        calls,
        t(&tally.successes)
            + t(&tally.failures)
            + t(&tally.ignored)
            + t(&tally.rejected)
            + t(&tally.abandoned),
        "every call ends exactly once"
    );
    assert!(calls > 0 && t(&tally.rejected) > 0 && t(&tally.abandoned) > 0);

    // What the circuits report, summed, against the tally.
    let mut rejected = 0;
    let mut opened = 0;
    let mut circuits = 0;
    registry.for_each(|c| {
        circuits += 1;
        let m = c.metrics();
        let config = c.config();
        rejected += m.rejected;
        opened += u64::from(m.times_opened);
        assert!(m.failures_in_window <= m.calls_in_window, "{m:?}");
        assert!(m.slow_in_window <= m.calls_in_window, "{m:?}");
        if let Window::Calls(n) = config.window() {
            assert!(m.calls_in_window <= n, "{m:?}");
        }
        if !(config.failure_rate().is_some() || config.slow_calls().is_some()) {
            assert_eq!(m.calls_in_window, 0);
        }
        if let Some(left) = m.retry_after {
            // Jitter may stretch the longest period by half.
            assert!(left <= config.max_open_for() * 3 / 2, "{m:?}");
        }
        match m.state {
            State::Closed | State::Open | State::HalfOpen | State::ForcedOpen => {}
            other => panic!("{other:?}: nothing in this test disables a circuit"),
        }
        // Every permit is gone, so a half-open circuit has all its probe slots free.
        if c.state() == State::HalfOpen {
            let probes: Vec<_> = (0..config.half_open_probes())
                .map(|i| {
                    c.try_acquire()
                        .unwrap_or_else(|e| panic!("probe {i} of {m:?} refused: {e}"))
                })
                .collect();
            probes.into_iter().for_each(Permit::ignore);
        }
        // And nothing is wedged: reset, it serves.
        c.reset();
        c.try_acquire().expect("reset circuit admits").success();
        assert_eq!(c.state(), State::Closed);
    });
    assert_eq!(
        rejected,
        t(&tally.rejected),
        "no rejection lost or double-counted"
    );
    assert!(circuits <= PROVIDERS.len() * size.tenants as usize);
    assert!(opened > 0, "the policies tripped at least once");
    eprintln!(
        "{threads} threads, {circuits} circuits: {calls} calls, {} rejected, {} abandoned, \
         {opened} trips, {} forced opens, {} resets",
        t(&tally.rejected),
        t(&tally.abandoned),
        t(&tally.forced),
        t(&tally.resets),
    );
}

/// Issue 22: rejections are counted in per-thread stripes once threads reject at once; eight
/// threads hammering one open circuit (more threads than this host has cores, so stripes are
/// shared too) lose no count and count none twice.
#[test]
fn rejections_of_one_circuit_from_many_threads_are_all_counted() {
    use breaker_core::Circuit;
    const THREADS: u64 = 8;
    const EACH: u64 = 20_000;
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        Config::builder()
            .consecutive_failures(1)
            .open_for(Duration::from_secs(60))
            .build()
            .unwrap(),
        clock,
    );
    c.try_acquire().unwrap().failure();
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..EACH {
                    assert!(c.try_acquire_scoped().is_err());
                }
            });
        }
    });
    assert_eq!(c.metrics().rejected, THREADS * EACH);
}
