//! A permit outlives the stay it was issued in (a hung call) while the circuit moves on. Its
//! outcome must never touch a later stay: not free a probe slot it does not hold, not reopen a
//! fresh half-open circuit.

use std::time::Duration;

use breaker_core::{Circuit, Config, ManualClock, Outcome, State};

/// Regression: the state word identifies a stay by tag and an 8-bit generation, so after exactly
/// 256 transitions a probe held from an old half-open stay matched the new one, freed its slot
/// and let a second probe in past `half_open_probes(1)`.
#[test]
fn probe_held_across_256_transitions_does_not_free_a_new_slot() {
    for transitions_between in [254u32, 510, 1022] {
        let clock = ManualClock::new();
        let c = Circuit::with_clock(
            Config::builder()
                .consecutive_failures(1)
                .open_for(Duration::from_secs(1))
                .on_abandoned(Outcome::Ignored)
                .build()
                .unwrap(),
            clock.clone(),
        );
        c.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(1));
        let stale = c.try_acquire().unwrap();
        assert!(stale.is_probe());
        // Burn generations with operator flapping, ending closed...
        for _ in 0..transitions_between / 2 {
            c.force_open();
            c.reset();
        }
        // ...then trip and take a fresh probe: two more transitions.
        c.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(1));
        let fresh = c.try_acquire().unwrap();
        assert!(fresh.is_probe());

        drop(stale); // ignored: would free a slot if it were taken for the fresh stay's own
        assert!(
            c.try_acquire().is_err(),
            "a second concurrent probe after {transitions_between} + 2 transitions"
        );
        fresh.success();
        assert_eq!(c.state(), State::Closed);
    }
}

#[test]
fn stale_failure_never_reopens_a_fresh_half_open_stay() {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        Config::builder()
            .consecutive_failures(1)
            .half_open_probes(2)
            .open_for(Duration::from_secs(1))
            .build()
            .unwrap(),
        clock.clone(),
    );
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(1));
    let stale = c.try_acquire().unwrap();
    for _ in 0..127 {
        c.force_open();
        c.reset();
    }
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(1));
    let fresh = c.try_acquire().unwrap();
    stale.failure();
    assert_eq!(c.state(), State::HalfOpen, "the stale failure reopened it");
    fresh.success();
}

/// Regression: a probe-timeout expiry that keeps the circuit half-open (on_abandoned `Ignored`,
/// or `Success` short of closing) made the next half-open word with the same stay number (the
/// trip count), only the 8-bit gen changed: after 256 expiries in one stay the first expired
/// probe matched again, and its late `ignore()` freed the slot the latest probe held.
#[test]
fn a_probe_expired_256_expiries_ago_does_not_free_a_new_slot() {
    for expiries in [255usize, 256, 512] {
        let clock = ManualClock::new();
        let c = Circuit::with_clock(
            Config::builder()
                .consecutive_failures(1)
                .half_open_probes(1)
                .half_open_successes(1)
                .on_abandoned(Outcome::Ignored)
                .probe_timeout(Duration::from_secs(1))
                .open_for(Duration::from_secs(1))
                .build()
                .unwrap(),
            clock.clone(),
        );
        c.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(2));
        let old = c.try_acquire().expect("first probe");
        let mut hung = Vec::new();
        for _ in 0..expiries {
            clock.advance(Duration::from_secs(2));
            hung.push(
                c.try_acquire()
                    .expect("the probes out expired: a new one passes"),
            );
        }
        assert_eq!(c.state(), State::HalfOpen);
        old.ignore();
        assert!(
            c.try_acquire().is_err(),
            "a second probe passed half_open_probes(1) after {expiries} expiries"
        );
        // The latest probe's success is the one that closes the circuit.
        hung.pop().unwrap().success();
        assert_eq!(c.state(), State::Closed);
    }
}
