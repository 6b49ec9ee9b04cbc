//! Listeners run with nothing held: they may call back into the registry and its circuits, and
//! the events those calls raise are not delivered back to them (no recursion).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use breaker::{Config, Event, ManualClock, Registry, State};

/// A registry whose listener can reach the registry itself, through a slot filled after `build`.
fn registry_with(
    clock: &ManualClock,
    listener: impl Fn(&Registry, &Event<'_>) + Send + Sync + 'static,
) -> Arc<Registry> {
    let slot: Arc<OnceLock<Weak<Registry>>> = Arc::new(OnceLock::new());
    let reach = slot.clone();
    let registry = Arc::new(
        Registry::builder()
            .default_config(
                Config::builder()
                    .consecutive_failures(1)
                    .open_for(Duration::from_secs(10))
                    .build()
                    .unwrap(),
            )
            .clock(clock.clone())
            .listener(move |event: &Event<'_>| {
                if let Some(r) = reach.get().and_then(Weak::upgrade) {
                    listener(&r, event);
                }
            })
            .build(),
    );
    slot.set(Arc::downgrade(&registry)).unwrap();
    registry
}

#[test]
fn a_listener_sees_the_new_state_and_may_use_the_registry() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let r = registry_with(&clock, move |r, event| {
        if let Event::Transition {
            provider,
            tenant,
            to,
            ..
        } = *event
        {
            let circuit = r.circuit(provider, tenant);
            // The transition is published before listeners run.
            log.lock().unwrap().push((circuit.state(), to));
            // Reads, writes and new circuits from inside a listener neither deadlock nor
            // recurse: this rejection's own event is not delivered.
            let _ = circuit.metrics();
            let _ = circuit.try_acquire().map(|p| p.ignore());
            r.circuit("audit", tenant).try_acquire().unwrap().success();
            assert!(!r.snapshot().is_empty());
        }
    });
    let c = r.circuit("openai", "acme");
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    c.try_acquire().unwrap().success();

    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Open, State::Open),
            (State::HalfOpen, State::HalfOpen),
            (State::Closed, State::Closed),
        ]
    );
    assert!(r.get("audit", "acme").is_some());
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_listener_that_retries_on_rejection_does_not_recurse() {
    let clock = ManualClock::new();
    let rejections = Arc::new(AtomicUsize::new(0));
    let count = rejections.clone();
    let r = registry_with(&clock, move |r, event| {
        if let Event::Rejected {
            provider, tenant, ..
        } = *event
        {
            count.fetch_add(1, Ordering::Relaxed);
            // Would reject again and, were its event delivered, call this listener forever.
            assert!(r.circuit(provider, tenant).try_acquire().is_err());
        }
    });
    let c = r.circuit("openai", "acme");
    c.try_acquire().unwrap().failure();
    assert!(c.try_acquire().is_err());
    assert!(c.try_acquire().is_err());
    assert_eq!(
        rejections.load(Ordering::Relaxed),
        2,
        "one per caller's rejection"
    );
    assert_eq!(
        c.metrics().rejected,
        4,
        "the listener's own rejections still count"
    );
}

#[test]
fn a_listener_may_switch_another_circuit_by_hand() {
    let clock = ManualClock::new();
    let r = registry_with(&clock, |r, event| {
        if let Event::Transition {
            provider: "primary",
            tenant,
            to: State::Open,
            ..
        } = *event
        {
            r.circuit("secondary", tenant).force_open();
        }
    });
    r.circuit("primary", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert_eq!(r.circuit("secondary", "acme").state(), State::ForcedOpen);
}
