//! User code that the collector runs when it frees a circuit (the drop of a clock, or of what a
//! listener captured, once the last circuit using them goes) cannot abort the process: before,
//! two such drops panicking in one batch of frees was a panic while unwinding, an abort.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use breaker_core::{Circuit, Clock, Registry};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A clock whose drop panics.
struct PanickyClock;

impl Clock for PanickyClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl Drop for PanickyClock {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
        panic!("a clock's drop panicked");
    }
}

/// A value a listener captures, whose drop panics.
struct PanickyCapture;

impl Drop for PanickyCapture {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
        panic!("a listener's captured value panicked on drop");
    }
}

#[test]
fn two_panicking_user_drops_in_one_batch_of_frees_do_not_abort() {
    let with_clock = Registry::builder().clock(PanickyClock).build();
    let capture = PanickyCapture;
    let with_listener = Registry::builder()
        .listener(move |_: &breaker_core::Event<'_>| {
            let _ = &capture;
        })
        .build();
    // Circuits that outlive their registries keep the clock and the listener until the
    // collector frees them; permits on both keep both circuits until they are released, so
    // both are freed by one collection.
    let circuits: Vec<Circuit> = [&with_clock, &with_listener]
        .iter()
        .map(|r| r.circuit("p", "t"))
        .collect();
    let permits: Vec<_> = circuits.iter().map(|c| c.try_acquire().unwrap()).collect();
    drop(with_clock);
    drop(with_listener);
    drop(circuits);
    assert_eq!(
        DROPPED.load(Ordering::SeqCst),
        0,
        "still held by the permits"
    );
    for p in permits {
        p.success();
    }
    // Any registry write collects: the two drops panic there, are contained, and the call
    // returns normally.
    let other = Registry::default();
    for i in 0..1_000 {
        other.circuit("q", &format!("t{i}"));
        other.remove("q", &format!("t{i}"));
        if DROPPED.load(Ordering::SeqCst) == 2 {
            return;
        }
    }
    panic!("freed {} of 2", DROPPED.load(Ordering::SeqCst));
}
