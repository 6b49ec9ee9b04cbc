//! loom model tests of the circuit's state machine. Under `--cfg loom` the circuit's atomics are
//! loom's (see `src/sync.rs`), so each test below runs the real `Circuit` code under every
//! interleaving loom can reach within the preemption bound:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p breaker-core --test loom --release
//! ```
//!
//! The clock is a `ManualClock` advanced only before or after the threads run, so time is not a
//! source of nondeterminism here; the interleavings are.
#![cfg(loom)]

use std::time::Duration;

use breaker_core::{Circuit, Config, ManualClock, Outcome, State, Window};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const OPEN_FOR: Duration = Duration::from_secs(1);

/// Runs `f` under loom with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says otherwise.
/// Unbounded, three threads on a CAS loop do not finish; the races these tests hunt need at most
/// two preemptions, and 3 keeps the whole file to about 20 s on two cores.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn config(b: breaker_core::ConfigBuilder) -> Config {
    b.open_for(OPEN_FOR).build().unwrap()
}

/// A circuit tripped by one failure whose open period has just ended: the next `try_acquire`
/// turns it half-open.
fn expired(b: breaker_core::ConfigBuilder) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(config(b.consecutive_failures(1)), clock.clone());
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    clock.advance(OPEN_FOR);
    (c, clock)
}

#[test]
fn half_open_never_admits_more_than_half_open_probes() {
    model(|| {
        let (c, _clock) = expired(Config::builder().half_open_probes(2));
        // Counted by the test between a successful acquire and the record, so it is never above
        // the circuit's own in-flight count.
        let in_flight = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (c, in_flight) = (c.clone(), in_flight.clone());
                thread::spawn(move || {
                    if let Ok(p) = c.try_acquire() {
                        assert!(p.is_probe());
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} probes in flight, limit 2");
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        p.ignore();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every probe was ignored: the stay goes on with all slots free.
        assert_eq!(c.state(), State::HalfOpen);
        let a = c.try_acquire().expect("slot 1 free");
        let b = c.try_acquire().expect("slot 2 free");
        assert!(c.try_acquire().is_err(), "a third concurrent probe");
        drop((a, b));
    });
}

#[test]
fn held_probes_fill_exactly_the_slots() {
    model(|| {
        let (c, _clock) = expired(Config::builder().half_open_probes(2));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || c.try_acquire().ok())
            })
            .collect();
        let held: Vec<_> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(held.len(), 2, "two slots, three callers, nobody releases");
        assert_eq!(c.metrics().rejected, 1);
    });
}

#[test]
fn dropped_probe_always_frees_its_slot() {
    for abandoned in [Outcome::Ignored, Outcome::Success, Outcome::Failure] {
        model(move || {
            let (c, clock) = expired(
                Config::builder()
                    .half_open_probes(1)
                    .half_open_successes(2)
                    .on_abandoned(abandoned),
            );
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let c = c.clone();
                    thread::spawn(move || drop(c.try_acquire()))
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            // Whatever the drops counted as, the circuit is not wedged: a probe passes now or
            // after the open period they caused.
            clock.advance(OPEN_FOR * 4);
            let p = c
                .try_acquire()
                .expect("half-open wedged by a dropped probe");
            assert!(p.is_probe() || c.state() == State::Closed);
            p.ignore();
        });
    }
}

#[test]
fn exactly_one_thread_trips_a_closed_circuit() {
    model(|| {
        let c = Circuit::with_clock(
            config(Config::builder().consecutive_failures(1)),
            ManualClock::new(),
        );
        // Both permits are taken while closed, so both failures race the same trip.
        let permits = [c.try_acquire().unwrap(), c.try_acquire().unwrap()];
        let threads: Vec<_> = permits
            .into_iter()
            .map(|p| thread::spawn(move || p.failure()))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = c.metrics();
        assert_eq!(m.state, State::Open);
        assert_eq!(m.times_opened, 1);
        assert_eq!(m.retry_after, Some(OPEN_FOR), "the first open period");
    });
}

#[test]
fn exactly_one_failing_probe_reopens() {
    model(|| {
        let (c, _clock) = expired(Config::builder().half_open_probes(2));
        let permits = [c.try_acquire().unwrap(), c.try_acquire().unwrap()];
        let threads: Vec<_> = permits
            .into_iter()
            .map(|p| thread::spawn(move || p.failure()))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = c.metrics();
        assert_eq!(m.state, State::Open);
        assert_eq!(m.times_opened, 2, "one trip from closed, one reopen");
        assert_eq!(
            m.retry_after,
            Some(OPEN_FOR * 2),
            "one backoff step, not two"
        );
    });
}

#[test]
fn exactly_one_caller_turns_open_into_half_open() {
    model(|| {
        let (c, _clock) = expired(Config::builder());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || c.try_acquire().ok())
            })
            .collect();
        let held: Vec<_> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(held.len(), 1, "one probe slot");
        assert!(held[0].is_probe());
        held.into_iter().for_each(|p| p.success());
        assert_eq!(c.state(), State::Closed);
    });
}

#[test]
fn probe_successes_race_to_close_once() {
    model(|| {
        let (c, _clock) = expired(Config::builder().half_open_probes(2).half_open_successes(2));
        let permits = [c.try_acquire().unwrap(), c.try_acquire().unwrap()];
        let threads: Vec<_> = permits
            .into_iter()
            .map(|p| thread::spawn(move || p.success()))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = c.metrics();
        assert_eq!(m.state, State::Closed, "two successes out of two needed");
        assert_eq!(m.times_opened, 1);
    });
}

#[test]
fn concurrent_failures_lose_no_count() {
    model(|| {
        let c = Circuit::with_clock(
            config(
                Config::builder()
                    .consecutive_failures(10)
                    .failure_rate(1.0, Window::Calls(8))
                    .minimum_calls(8),
            ),
            ManualClock::new(),
        );
        let permits = [
            c.try_acquire().unwrap(),
            c.try_acquire().unwrap(),
            c.try_acquire().unwrap(),
        ];
        let threads: Vec<_> = permits
            .into_iter()
            .map(|p| thread::spawn(move || p.failure()))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = c.metrics();
        assert_eq!(m.consecutive_failures, 3);
        assert_eq!((m.calls_in_window, m.failures_in_window), (3, 3));
        assert_eq!(m.state, State::Closed);
    });
}

#[test]
fn concurrent_evictions_lose_no_count() {
    model(|| {
        let c = Circuit::with_clock(
            config(Config::builder().failure_rate(1.0, Window::Calls(2))),
            ManualClock::new(),
        );
        // Fill the window with one failure and one success, then race two records that evict
        // exactly those two slots.
        c.try_acquire().unwrap().failure();
        c.try_acquire().unwrap().success();
        let permits = [c.try_acquire().unwrap(), c.try_acquire().unwrap()];
        let outcomes = [Outcome::Success, Outcome::Failure];
        let threads: Vec<_> = permits
            .into_iter()
            .zip(outcomes)
            .map(|(p, o)| thread::spawn(move || p.record(o)))
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = c.metrics();
        assert_eq!((m.calls_in_window, m.failures_in_window), (2, 1));
    });
}

#[test]
fn concurrent_rejections_are_all_counted() {
    model(|| {
        let (c, _clock) = expired(Config::builder());
        // Back to open, with time left: every caller is rejected.
        c.try_acquire().unwrap().failure();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || c.try_acquire().unwrap_err().retry_after())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Some(OPEN_FOR * 2));
        }
        assert_eq!(c.metrics().rejected, 2);
    });
}

/// Regression: `reset` cleared the count window with plain stores while a record was between its
/// slot swap and its counter update, leaving a failure counted that no slot held. The next
/// success then read as a 100 % failure rate and tripped the circuit.
#[test]
fn reset_racing_a_record_leaves_no_phantom_failure() {
    model(|| {
        let c = Circuit::with_clock(
            config(
                Config::builder()
                    .failure_rate(1.0, Window::Calls(1))
                    .minimum_calls(1),
            ),
            ManualClock::new(),
        );
        c.try_acquire().unwrap().success();
        let p = c.try_acquire().unwrap();
        let recorder = thread::spawn(move || p.failure());
        let resetter = {
            let c = c.clone();
            thread::spawn(move || c.reset())
        };
        recorder.join().unwrap();
        resetter.join().unwrap();
        // Whichever came first, after the reset the circuit must be closed or (if the failure
        // landed after it) count at most that one failure; a success then leaves 0 failures.
        if c.state() == State::Closed {
            c.try_acquire().unwrap().success();
            let m = c.metrics();
            assert_eq!(
                (m.state, m.calls_in_window, m.failures_in_window),
                (State::Closed, 1, 0),
                "a success after reset must not trip: {m:?}"
            );
        }
    });
}

/// A `force_open`/`reset` flapping against probes and records never leaves an illegal state:
/// after everything settles the circuit is closed and answers like a fresh one.
#[test]
fn operator_transitions_race_probes_without_wedging() {
    model(|| {
        let (c, _clock) = expired(Config::builder().half_open_probes(1));
        let probe = c.try_acquire().unwrap();
        let prober = thread::spawn(move || probe.failure());
        let operator = {
            let c = c.clone();
            thread::spawn(move || {
                c.force_open();
                c.reset();
            })
        };
        prober.join().unwrap();
        operator.join().unwrap();
        // The reset is the last transition; the probe either failed before the force-open or
        // found its half-open stay gone.
        assert_eq!(c.state(), State::Closed);
        let p = c.try_acquire().expect("reset circuit admits");
        assert!(!p.is_probe());
        p.success();
        assert_eq!(c.metrics().consecutive_failures, 0);
    });
}

/// A retuning that replaces the window (another size) while records run on the old one: every
/// record lands in one window or the other, the old one stays valid for a record that read it
/// before the swap, and afterwards the circuit counts in the new window only.
#[test]
fn retuning_swaps_the_window_under_concurrent_records() {
    model(|| {
        let rate = |n| {
            config(
                Config::builder()
                    .failure_rate(1.0, Window::Calls(n))
                    .minimum_calls(n),
            )
        };
        let c = Circuit::with_clock(rate(4), ManualClock::new());
        let p = c.try_acquire().unwrap();
        let q = c.try_acquire().unwrap();
        let recorder = thread::spawn(move || {
            p.failure();
            q.success();
        });
        let tuner = {
            let c = c.clone();
            thread::spawn(move || c.__retune_for_loom(rate(2)))
        };
        recorder.join().unwrap();
        tuner.join().unwrap();
        let m = c.metrics();
        assert!(m.calls_in_window <= 2, "{m:?}");
        assert_eq!(m.state, State::Closed, "never 2 failures of 2: {m:?}");
        assert_eq!(c.config().window(), Window::Calls(2));
        c.try_acquire().unwrap().failure();
        c.try_acquire().unwrap().failure();
        assert_eq!(c.state(), State::Open, "two failures fill the new window");
    });
}

/// A plain circuit retuned to a windowed one while a success takes the fast path: the flag and
/// the window change together as far as later calls can tell, and no call is lost or doubled.
#[test]
fn retuning_a_plain_circuit_races_a_success_safely() {
    model(|| {
        let c = Circuit::with_clock(
            config(Config::builder().consecutive_failures(1)),
            ManualClock::new(),
        );
        let p = c.try_acquire().unwrap();
        let caller = thread::spawn(move || p.success());
        let tuner = {
            let c = c.clone();
            thread::spawn(move || {
                c.__retune_for_loom(config(
                    Config::builder()
                        .failure_rate(0.5, Window::Calls(2))
                        .minimum_calls(2),
                ))
            })
        };
        caller.join().unwrap();
        tuner.join().unwrap();
        assert!(c.metrics().calls_in_window <= 1);
        c.try_acquire().unwrap().failure();
        let m = c.metrics();
        assert!(m.calls_in_window >= 1 && m.calls_in_window <= 2, "{m:?}");
        assert_eq!(m.failures_in_window, 1);
    });
}

/// A hung probe past its timeout, with two callers finding its slot taken at once: with
/// `on_abandoned = Ignored` exactly one of them gets the freed slot, and the hung probe's late
/// outcome changes nothing.
#[test]
fn a_timed_out_probe_frees_its_slot_exactly_once() {
    model(|| {
        let (c, clock) = expired(
            Config::builder()
                .probe_timeout(OPEN_FOR)
                .on_abandoned(Outcome::Ignored),
        );
        let hung = c.try_acquire().unwrap();
        clock.advance(OPEN_FOR);
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (c, admitted) = (c.clone(), admitted.clone());
                thread::spawn(move || {
                    if let Ok(p) = c.try_acquire() {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        std::mem::forget(p); // still out when the threads end
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::SeqCst), 1);
        hung.failure();
        assert_eq!(c.state(), State::HalfOpen, "the late failure is stale");
    });
}

/// The same race with the default `on_abandoned = Failure`: the circuit reopens once, one step
/// up the backoff, and both callers are turned away.
#[test]
fn a_timed_out_probe_reopens_the_circuit_once() {
    model(|| {
        let (c, clock) = expired(Config::builder().probe_timeout(OPEN_FOR));
        let _hung = c.try_acquire().unwrap();
        clock.advance(OPEN_FOR);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let c = c.clone();
                thread::spawn(move || assert!(c.try_acquire().is_err()))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.metrics().times_opened, 2);
        assert_eq!(c.retry_after(), Some(OPEN_FOR * 2));
    });
}

/// `max_in_flight`: concurrent admissions, records and drops through the real circuit never let
/// more than the limit in at once, and every place comes back (none leaks, none is given back
/// twice: afterwards exactly the limit can be taken again).
#[test]
fn the_bulkhead_never_admits_more_than_max_in_flight_and_loses_no_place() {
    model(|| {
        let c = Circuit::new(
            Config::builder()
                .consecutive_failures(100)
                .max_in_flight(1)
                .build()
                .unwrap(),
        );
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let (c, inside) = (c.clone(), inside.clone());
                thread::spawn(move || match c.try_acquire_scoped() {
                    Ok(p) => {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 1, "{now} calls in flight, limit 1");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        if i == 0 {
                            drop(p);
                        } else {
                            p.failure();
                        }
                    }
                    Err(open) => assert!(open.is_full()),
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let a = c.try_acquire_scoped().expect("the place is free");
        assert!(c.try_acquire_scoped().unwrap_err().is_full());
        drop(a);
    });
}

/// In-flight detection: calls that hang race an admission that finds them overdue and their own
/// late records: each is counted once, either found overdue (and its record ignored) or
/// recorded, never both and never neither.
#[test]
fn an_overdue_call_is_counted_exactly_once_under_races() {
    model(|| {
        let clock = ManualClock::new();
        let c = Circuit::with_clock(
            config(
                Config::builder()
                    .slow_calls(Duration::from_millis(500), 1.0)
                    .window(Window::Calls(10))
                    .minimum_calls(10),
            ),
            clock.clone(),
        );
        let hung: Vec<_> = (0..2).map(|_| c.try_acquire().unwrap()).collect();
        clock.advance(Duration::from_millis(1000));
        let threads: Vec<_> = hung
            .into_iter()
            .map(|p| thread::spawn(move || p.success()))
            .collect();
        c.try_acquire().unwrap().ignore(); // finds what is still in flight overdue
        for t in threads {
            t.join().unwrap();
        }
        let m = c.metrics();
        // Both hung calls in the window exactly once (slow, found or recorded late).
        assert_eq!((m.calls_in_window, m.slow_in_window), (2, 2));
    });
}
