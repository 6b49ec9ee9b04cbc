//! A user drop that the collector runs (a clock's, when its circuit is freed) may panic with a
//! payload whose own drop panics. Before, the collector contained the first panic but dropped
//! its payload outside the catch: the second panic escaped the drop of a circuit handle (an
//! abort when that drop ran while unwinding) and the rest of the batch of frees leaked.

use std::panic::{catch_unwind, panic_any, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use breaker_core::{Circuit, Clock, Config};

/// A panic payload whose drop panics.
struct PanickyPayload;

impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("the payload's drop panicked");
    }
}

/// A clock whose drop panics with a [`PanickyPayload`].
struct PayloadClock;

impl Clock for PayloadClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl Drop for PayloadClock {
    fn drop(&mut self) {
        panic_any(PanickyPayload);
    }
}

static COUNTED: AtomicUsize = AtomicUsize::new(0);

/// A clock that counts its drops, freed in the same batch as a [`PayloadClock`].
struct CountingClock;

impl Clock for CountingClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl Drop for CountingClock {
    fn drop(&mut self) {
        COUNTED.fetch_add(1, Ordering::SeqCst);
    }
}

fn drop_quietly(c: Circuit) {
    let r = catch_unwind(AssertUnwindSafe(move || drop(c)));
    assert!(r.is_ok(), "a panic escaped the drop of a circuit handle");
}

#[test]
fn a_panic_payload_whose_drop_panics_stays_inside_the_collector() {
    // The last handle of a circuit with no permit out frees it at once.
    drop_quietly(Circuit::with_clock(Config::default(), PayloadClock));

    // Two circuits kept by permits until after their handles are gone wait to be freed
    // together; the panicking one must not stop the other from being freed.
    let bad = Circuit::with_clock(Config::default(), PayloadClock);
    let good = Circuit::with_clock(Config::default(), CountingClock);
    let permits = [bad.try_acquire().unwrap(), good.try_acquire().unwrap()];
    drop_quietly(bad);
    drop_quietly(good);
    assert_eq!(COUNTED.load(Ordering::SeqCst), 0, "freed under a permit");
    let r = catch_unwind(AssertUnwindSafe(move || drop(permits)));
    assert!(r.is_ok(), "a panic escaped the drop of a permit");
    // Later collections (run here by other circuits' last handles) free both.
    for _ in 0..1000 {
        if COUNTED.load(Ordering::SeqCst) == 1 {
            return;
        }
        drop_quietly(Circuit::new(Config::default()));
    }
    panic!("the circuit freed after a panicking one leaked");
}
