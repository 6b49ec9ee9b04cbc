//! A panicking listener is contained: the call that raised the event, the circuit, the registry
//! and the other listeners carry on as if it had returned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use breaker::{Config, Event, ManualClock, Registry, State};

fn panicking_registry(clock: &ManualClock, calls: Arc<AtomicUsize>) -> Registry {
    // The listener's panics are expected: keep the test output free of their messages.
    std::panic::set_hook(Box::new(|_| {}));
    Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .open_for(Duration::from_secs(10))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .listener(|event: &Event<'_>| panic!("listener failed on {event:?}"))
        .listener(move |_: &Event<'_>| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .build()
}

#[test]
fn every_path_that_emits_survives_a_panicking_listener() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let r = panicking_registry(&clock, calls.clone());
    let c = r.circuit("openai", "acme");

    c.try_acquire().unwrap().failure(); // closed -> open
    assert_eq!(c.state(), State::Open);
    let rejected = c.try_acquire().unwrap_err(); // rejected
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(10)));

    clock.advance(Duration::from_secs(10));
    let probe = c.try_acquire().unwrap(); // open -> half-open: the probe slot is not lost
    assert!(probe.is_probe());
    assert!(c.try_acquire().is_err(), "the one probe slot is taken");
    probe.success(); // half-open -> closed
    assert_eq!(c.state(), State::Closed);

    c.force_open(); // operator
    c.reset();
    assert_eq!(c.state(), State::Closed);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        7,
        "the second listener saw every event"
    );
}

#[test]
fn a_panic_leaves_later_events_deliverable_on_the_same_thread() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let r = panicking_registry(&clock, calls.clone());
    for tenant in ["a", "b", "c"] {
        r.circuit("openai", tenant).try_acquire().unwrap().failure();
    }
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(r.len(), 3);
}

/// A panic payload whose own `Drop` panics: dropping it is user code too.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panicked");
    }
}

#[test]
fn a_listener_panic_whose_payload_panicked_on_drop_escaped_and_wedged_the_circuit() {
    std::panic::set_hook(Box::new(|_| {}));
    let clock = ManualClock::new();
    let r = Registry::builder()
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .open_for(Duration::from_secs(10))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .listener(|_: &Event<'_>| std::panic::panic_any(Bomb))
        .build();
    // Every call below raises an event; none of them may panic.
    r.acquire("openai", "acme", None).unwrap().failure(); // closed -> open
    assert!(r.acquire("openai", "acme", None).is_err()); // rejected
    clock.advance(Duration::from_secs(10));
    // Open -> half-open takes the probe slot, then tells the listeners: a panic escaping here
    // left the slot taken with no permit to free it.
    let probe = r.acquire("openai", "acme", None).unwrap();
    assert!(probe.is_probe());
    probe.success(); // half-open -> closed
    assert_eq!(r.circuit("openai", "acme").state(), State::Closed);
}
