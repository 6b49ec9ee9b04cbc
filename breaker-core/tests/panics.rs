//! A panic while a permit is held (in the guarded call, or in the user's `Classify` impl while the
//! outcome is being worked out) unwinds through the permit's `Drop`: it counts as the config's
//! `on_abandoned` outcome, frees its half-open slot, and leaves nothing poisoned or wedged. The
//! circuit takes no lock, so there is nothing to poison; these tests hold it to that.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use breaker_core::{Circuit, Classify, Config, ManualClock, Outcome, State};

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
            if !matches!(msg, Some(PROVIDER_PANIC | CLASSIFIER_PANIC)) {
                default(info);
            }
        }));
    });
}

const PROVIDER_PANIC: &str = "provider client blew up";
const CLASSIFIER_PANIC: &str = "classifier bug";

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
