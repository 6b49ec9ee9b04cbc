//! The sweeps a creation runs (the idle-TTL sweep, and the sweep for space at the cap) unlink
//! idle circuits and free them at once. Before, they collected while the creator's own pin was
//! held, which kept the epoch from advancing past what they unlinked: nothing was freed until a
//! few later registry writes.

use std::sync::Mutex;
use std::time::Duration;

use breaker_core::{__pending_frees, ManualClock, Registry};

/// The count of pending frees is process-wide: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn the_idle_ttl_sweep_of_a_creation_frees_what_it_unlinks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::new();
    let r = Registry::builder()
        .clock(clock.clone())
        .idle_ttl(Duration::from_secs(1))
        .build();
    for i in 0..100 {
        r.acquire("p", &format!("t{i}"), None).unwrap().success();
    }
    let before = __pending_frees();
    // The first sweep clears the marks of use, the second unlinks (both run by creations).
    clock.advance(Duration::from_secs(2));
    r.acquire("p", "new-1", None).unwrap().success();
    clock.advance(Duration::from_secs(2));
    r.acquire("p", "new-2", None).unwrap().success();
    assert!(r.len() <= 2, "the sweep did not unlink: {} left", r.len());
    let after = __pending_frees();
    assert!(
        after <= before,
        "{after} wait to be freed after the creation's sweep ({before} before)"
    );
}

#[test]
fn the_sweep_for_space_at_the_cap_frees_what_it_unlinks() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clock = ManualClock::new();
    let r = Registry::builder()
        .clock(clock.clone())
        .max_circuits(100)
        .build();
    for i in 0..100 {
        r.acquire("p", &format!("t{i}"), None).unwrap().success();
    }
    // A sweep clears the marks of use; the next one, run for space by a creation at the cap,
    // unlinks them all.
    r.evict_idle();
    let before = __pending_frees();
    r.acquire("p", "new", None).unwrap().success();
    assert_eq!(r.len(), 1, "the sweep for space did not make room");
    let after = __pending_frees();
    assert!(
        after <= before,
        "{after} wait to be freed after the sweep for space ({before} before)"
    );
}
