//! Leaving the open state: probes, their limits, and their outcomes.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, Outcome, State};

fn tripped(builder: breaker::ConfigBuilder) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        builder.consecutive_failures(1).build().unwrap(),
        clock.clone(),
    );
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    (c, clock)
}

#[test]
fn open_becomes_half_open_after_the_open_period() {
    let (c, clock) = tripped(Config::builder());
    clock.advance(Duration::from_secs(30) - Duration::from_micros(1));
    assert_eq!(c.state(), State::Open);
    assert!(c.try_acquire().is_err());
    clock.advance(Duration::from_micros(1));
    assert_eq!(c.state(), State::HalfOpen);
    let probe = c.try_acquire().expect("admitted exactly at the boundary");
    assert!(probe.is_probe());
    assert_eq!(c.state(), State::HalfOpen);
    probe.success();
}

#[test]
fn half_open_success_closes() {
    let (c, clock) = tripped(Config::builder());
    clock.advance(Duration::from_secs(30));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    assert!(!c.try_acquire().unwrap().is_probe());
}

#[test]
fn half_open_failure_reopens() {
    let (c, clock) = tripped(Config::builder());
    clock.advance(Duration::from_secs(30));
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    assert_eq!(
        c.retry_after(),
        Some(Duration::from_secs(60)),
        "next backoff step"
    );
    assert_eq!(c.metrics().times_opened, 2);
}

#[test]
fn only_one_probe_by_default() {
    let (c, clock) = tripped(Config::builder());
    clock.advance(Duration::from_secs(30));
    let probe = c.try_acquire().unwrap();
    let err = c.try_acquire().unwrap_err();
    assert_eq!(err.state(), State::HalfOpen);
    assert_eq!(err.retry_after(), None, "unknown until the probe finishes");
    probe.success();
    assert!(c.try_acquire().is_ok());
}

#[test]
fn several_probes_and_successes() {
    let (c, clock) = tripped(Config::builder().half_open_probes(3).half_open_successes(2));
    clock.advance(Duration::from_secs(30));
    let p1 = c.try_acquire().unwrap();
    let p2 = c.try_acquire().unwrap();
    let p3 = c.try_acquire().unwrap();
    assert!(c.try_acquire().is_err(), "a fourth probe is rejected");
    p1.success();
    assert_eq!(c.state(), State::HalfOpen);
    p2.success();
    assert_eq!(c.state(), State::Closed);
    // The third probe belongs to a half-open stay that is over: it changes nothing.
    p3.failure();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn successes_beyond_probes_reuse_freed_slots() {
    let (c, clock) = tripped(Config::builder().half_open_probes(1).half_open_successes(3));
    clock.advance(Duration::from_secs(30));
    for _ in 0..2 {
        c.try_acquire().unwrap().success();
        assert_eq!(c.state(), State::HalfOpen);
    }
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn one_failing_probe_reopens_even_after_successes() {
    let (c, clock) = tripped(Config::builder().half_open_probes(2).half_open_successes(2));
    clock.advance(Duration::from_secs(30));
    let ok = c.try_acquire().unwrap();
    let bad = c.try_acquire().unwrap();
    ok.success();
    bad.failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn ignored_probe_frees_its_slot_without_counting() {
    let (c, clock) = tripped(Config::builder());
    clock.advance(Duration::from_secs(30));
    c.try_acquire().unwrap().record(Outcome::Ignored);
    assert_eq!(c.state(), State::HalfOpen);
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn closing_clears_the_failure_history() {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(2).build().unwrap(),
        clock.clone(),
    );
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(30));
    c.try_acquire().unwrap().success();
    assert_eq!(c.metrics().consecutive_failures, 0);
    c.try_acquire().unwrap().failure();
    assert_eq!(
        c.state(),
        State::Closed,
        "one failure after closing is not two"
    );
}
