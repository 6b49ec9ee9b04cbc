//! A panic while a permit is held (in the guarded call, or in the user's `Classify` impl while the
//! outcome is being worked out) unwinds through the permit's `Drop`: it counts as the config's
//! `on_abandoned` outcome, frees its half-open slot, and leaves nothing poisoned or wedged. The
//! circuit takes no lock, so there is nothing to poison; these tests hold it to that.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use breaker_core::{Circuit, Classify, Clock, Config, ManualClock, Outcome, State};

fn circuit(probes: u32, abandoned: Outcome) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(2)
        .half_open_probes(probes)
        .on_abandoned(abandoned)
        .open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    (Circuit::with_clock(config, clock.clone()), clock)
}

/// Runs `f` with a permit of `c` and lets it panic.
fn panic_holding_a_permit(c: &Circuit) {
    let permit = c.try_acquire().expect("admitted");
    let r = catch_unwind(AssertUnwindSafe(move || {
        let _held = permit;
        std::panic::panic_any(PROVIDER_PANIC);
    }));
    assert!(r.is_err());
}

fn quiet_panics() {
    // The panics these tests provoke are expected; hide only those, so a failing assertion still
    // prints its message.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.payload().downcast_ref::<&str>().copied();
            if !matches!(msg, Some(PROVIDER_PANIC | CLASSIFIER_PANIC | CLOCK_PANIC)) {
                default(info);
            }
        }));
    });
}

const PROVIDER_PANIC: &str = "provider client blew up";
const CLASSIFIER_PANIC: &str = "classifier bug";
const CLOCK_PANIC: &str = "clock bug";

#[test]
fn panic_in_a_closed_call_counts_as_on_abandoned() {
    quiet_panics();
    let (c, _clock) = circuit(1, Outcome::Failure);
    panic_holding_a_permit(&c);
    assert_eq!(c.metrics().consecutive_failures, 1);
    panic_holding_a_permit(&c);
    assert_eq!(
        c.state(),
        State::Open,
        "two abandoned calls are two failures"
    );

    let (c, _clock) = circuit(1, Outcome::Ignored);
    for _ in 0..10 {
        panic_holding_a_permit(&c);
    }
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.metrics().consecutive_failures, 0);
}

#[test]
fn panic_in_a_probe_frees_its_slot() {
    quiet_panics();
    for abandoned in [Outcome::Ignored, Outcome::Failure, Outcome::Success] {
        let (c, clock) = circuit(1, abandoned);
        c.try_acquire().unwrap().failure();
        c.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(1));
        panic_holding_a_permit(&c);
        let expected = match abandoned {
            Outcome::Ignored => State::HalfOpen,
            Outcome::Failure | Outcome::RetryAfter(_) => State::Open,
            Outcome::Success => State::Closed,
        };
        assert_eq!(c.state(), expected, "{abandoned:?}");
        // Not wedged: a call passes now, or once the reopened period is over.
        if let Some(left) = c.retry_after() {
            clock.advance(left);
        }
        c.try_acquire()
            .unwrap_or_else(|e| panic!("{abandoned:?}: wedged: {e}"))
            .success();
        assert_eq!(c.state(), State::Closed, "{abandoned:?}");
    }
}

/// An error type whose classification panics (a bug in user code).
struct Explosive;

impl Classify for Explosive {
    fn classify(&self) -> Outcome {
        std::panic::panic_any(CLASSIFIER_PANIC)
    }
}

#[test]
fn panicking_classifier_neither_poisons_nor_wedges() {
    quiet_panics();
    let (c, clock) = circuit(1, Outcome::Failure);
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(1));

    let probe = c.try_acquire().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| probe.record(Explosive.classify())));
    assert!(r.is_err());
    // The probe was abandoned (a failure here): reopened for the next backoff step.
    assert_eq!(c.state(), State::Open);
    assert_eq!(c.retry_after(), Some(Duration::from_secs(2)));
    clock.advance(Duration::from_secs(2));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    // Every entry point still answers after the panics.
    let m = c.metrics();
    assert_eq!((m.times_opened, m.consecutive_failures), (2, 0));
    c.force_open();
    c.reset();
    c.try_acquire().unwrap().success();
}

/// A manual clock that panics on its `n`th reading from when it is armed (a bug in user code).
#[derive(Clone)]
struct PanickyClock {
    time: ManualClock,
    /// Readings left before the panic; 0 when disarmed.
    countdown: Arc<AtomicU32>,
}

impl PanickyClock {
    fn new() -> Self {
        PanickyClock {
            time: ManualClock::new(),
            countdown: Arc::new(AtomicU32::new(0)),
        }
    }

    fn panic_at_reading(&self, n: u32) {
        self.countdown.store(n, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.countdown.store(0, Ordering::SeqCst);
    }
}

impl Clock for PanickyClock {
    fn now(&self) -> Instant {
        let left = self.countdown.load(Ordering::SeqCst);
        if left == 1 {
            self.countdown.store(0, Ordering::SeqCst);
            std::panic::panic_any(CLOCK_PANIC);
        }
        if left > 1 {
            self.countdown.store(left - 1, Ordering::SeqCst);
        }
        self.time.now()
    }
}

/// A circuit that reads its clock on admission and on every outcome (slow calls are a policy),
/// open, with its open period over: the next call turns it half-open.
fn timed_open_circuit(probes: u32) -> (Circuit, PanickyClock) {
    let clock = PanickyClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .half_open_probes(probes)
        .slow_calls(Duration::from_secs(5), 1.0)
        .open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    clock.time.advance(Duration::from_secs(1));
    (c, clock)
}

/// Not wedged: probes pass until enough succeed, and the circuit closes.
fn assert_recovers(c: &Circuit, what: &str) {
    for _ in 0..2 {
        if c.state() == State::Closed {
            break;
        }
        let probe = c
            .try_acquire()
            .unwrap_or_else(|e| panic!("{what}: wedged: {e}"));
        probe.success();
    }
    assert_eq!(c.state(), State::Closed, "{what}");
}

#[test]
fn a_clock_panicking_after_admission_took_a_probe_slot_wedged_the_circuit_half_open() {
    quiet_panics();
    for probes in [1, 2] {
        for reading in 1..=3 {
            let (c, clock) = timed_open_circuit(probes);
            // With two slots, the panic hits the second probe's admission (half-open already).
            let first = (probes == 2).then(|| c.try_acquire().unwrap());
            clock.panic_at_reading(reading);
            let admitted = catch_unwind(AssertUnwindSafe(|| c.try_acquire()));
            clock.disarm();
            if let Ok(permit) = admitted {
                permit.unwrap().success();
            }
            if let Some(first) = first {
                first.success();
            }
            assert_recovers(
                &c,
                &format!("{probes} probe(s), panic at reading {reading}"),
            );
        }
    }
}

#[test]
fn a_clock_panicking_while_a_probe_recorded_wedged_the_circuit_half_open() {
    quiet_panics();
    for outcome in [Outcome::Success, Outcome::Failure, Outcome::Ignored] {
        let (c, clock) = timed_open_circuit(1);
        let probe = c.try_acquire().unwrap();
        clock.panic_at_reading(1);
        let r = catch_unwind(AssertUnwindSafe(|| probe.record(outcome)));
        assert!(
            r.is_err(),
            "{outcome:?}: the clock's panic reaches the caller"
        );
        clock.disarm();
        // The outcome was lost with the panic; the slot was not.
        assert_eq!(c.state(), State::HalfOpen, "{outcome:?}");
        assert_recovers(&c, &format!("{outcome:?}"));
    }
}

#[test]
fn a_clock_panicking_in_a_permit_dropped_while_unwinding_aborted_the_process() {
    quiet_panics();
    // Before, the permit's drop (abandoning the probe) read the panicking clock during the
    // provider's panic: a panic while panicking, which aborts this whole test binary.
    let (c, clock) = timed_open_circuit(1);
    let probe = c.try_acquire().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _held = probe;
        clock.panic_at_reading(1);
        std::panic::panic_any(PROVIDER_PANIC);
    }));
    clock.disarm();
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&PROVIDER_PANIC));
    assert_recovers(&c, "abandoned probe");

    // Dropped outside a panic, the drop contains the clock's panic as well.
    let probe = c.try_acquire().unwrap();
    clock.panic_at_reading(1);
    drop(probe);
    clock.disarm();
    c.try_acquire().unwrap().success();
}
