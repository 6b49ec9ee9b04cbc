//! The failure-rate policy over a time window.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, State, Window};

fn circuit(window: Duration, min: u32) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder()
        .failure_rate(0.5, Window::Time(window))
        .minimum_calls(min)
        .build()
        .unwrap();
    (Circuit::with_clock(config, clock.clone()), clock)
}

#[test]
fn failures_older_than_the_window_are_forgotten() {
    let (c, clock) = circuit(Duration::from_secs(16), 4);
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(16));
    assert_eq!(c.metrics().calls_in_window, 0);
    c.try_acquire().unwrap().failure();
    for _ in 0..3 {
        c.try_acquire().unwrap().success();
    }
    assert_eq!(c.state(), State::Closed, "1 failure of 4 in the window");
}

#[test]
fn trips_on_the_rate_within_the_window() {
    let (c, clock) = circuit(Duration::from_secs(60), 4);
    for _ in 0..2 {
        c.try_acquire().unwrap().success();
        clock.advance(Duration::from_secs(10));
    }
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open, "2 of 4 within 60 s");
}

#[test]
fn memory_does_not_grow_with_calls() {
    let (c, clock) = circuit(Duration::from_secs(1), 1_000_000);
    for _ in 0..100_000 {
        c.try_acquire().unwrap().success();
        clock.advance(Duration::from_micros(37));
    }
    let m = c.metrics();
    assert!(m.calls_in_window > 0 && m.calls_in_window <= 1_000_000 / 37 + 1);
}

/// A success trips the circuit when it is the call that brings the window to `minimum_calls`
/// with the rate already over, and when older successes aged out so that the rate rose without
/// a new failure. Successes that can do neither skip the check (an unstriped window's fast
/// path); these are the ones that must not.
#[test]
fn a_success_trips_when_it_reaches_minimum_calls_or_old_successes_age_out() {
    let (c, _clock) = circuit(Duration::from_secs(16), 20);
    for _ in 0..15 {
        c.try_acquire().unwrap().failure();
    }
    for _ in 0..4 {
        c.try_acquire().unwrap().success();
    }
    assert_eq!(c.state(), State::Closed, "19 calls, below minimum_calls");
    c.try_acquire().unwrap().success();
    assert_eq!(
        c.state(),
        State::Open,
        "the 20th call, a success: 15 of 20 failed"
    );

    let (c, clock) = circuit(Duration::from_secs(16), 10);
    for _ in 0..30 {
        c.try_acquire().unwrap().success();
    }
    clock.advance(Duration::from_secs(8));
    for _ in 0..20 {
        c.try_acquire().unwrap().failure();
    }
    // Many successes in the same bucket: each skips its check, none could trip.
    for _ in 0..5 {
        c.try_acquire().unwrap().success();
    }
    assert_eq!(c.state(), State::Closed, "20 of 55 failed");
    // The 30 successes of 0 s age out: the next success finds 20 of 26 failed.
    clock.advance(Duration::from_secs(9));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Open);
}
