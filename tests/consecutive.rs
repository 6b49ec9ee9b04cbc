//! The consecutive-failure policy (the reference design's only policy).

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, State};

fn circuit(n: u32) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder().consecutive_failures(n).build().unwrap();
    (Circuit::with_clock(config, clock.clone()), clock)
}

#[test]
fn n_failures_open() {
    let (c, _) = circuit(5);
    for i in 0..4 {
        c.try_acquire().unwrap().failure();
        assert_eq!(c.state(), State::Closed, "after {} failures", i + 1);
    }
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    assert_eq!(c.metrics().times_opened, 1);
}

#[test]
fn success_resets_the_consecutive_count() {
    let (c, _) = circuit(3);
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    assert_eq!(c.metrics().consecutive_failures, 2);
    c.try_acquire().unwrap().success();
    assert_eq!(c.metrics().consecutive_failures, 0);
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn ignored_outcomes_neither_count_nor_reset() {
    let (c, _) = circuit(2);
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().ignore();
    assert_eq!(c.metrics().consecutive_failures, 1);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn default_policy_is_five_consecutive_failures() {
    let c = Circuit::with_clock(Config::default(), ManualClock::new());
    for _ in 0..4 {
        c.try_acquire().unwrap().failure();
    }
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn open_circuit_rejects_without_admitting() {
    let (c, clock) = circuit(1);
    c.try_acquire().unwrap().failure();
    for _ in 0..3 {
        let err = c.try_acquire().unwrap_err();
        assert_eq!(err.state(), State::Open);
    }
    assert_eq!(c.metrics().rejected, 3);
    clock.advance(Duration::from_secs(29));
    assert!(c.try_acquire().is_err());
}
