//! Operator switches: forced open, disabled, metrics only, reset.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, State, Window};

fn circuit() -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder().consecutive_failures(2).build().unwrap();
    (Circuit::with_clock(config, clock.clone()), clock)
}

#[test]
fn forced_open_never_leaves_by_itself() {
    let (c, clock) = circuit();
    c.force_open();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(3600));
        assert_eq!(c.try_acquire().unwrap_err().state(), State::ForcedOpen);
    }
    assert_eq!(c.state(), State::ForcedOpen);
    c.reset();
    assert!(c.try_acquire().is_ok());
}

#[test]
fn disabled_passes_everything_and_records_nothing() {
    let config = Config::builder()
        .failure_rate(0.5, Window::Calls(4))
        .consecutive_failures(1)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, ManualClock::new());
    c.disable();
    for _ in 0..100 {
        c.try_acquire().unwrap().failure();
    }
    let m = c.metrics();
    assert_eq!(m.state, State::Disabled);
    assert_eq!(
        (m.calls_in_window, m.consecutive_failures, m.times_opened),
        (0, 0, 0)
    );
}

#[test]
fn metrics_only_records_but_never_trips() {
    let config = Config::builder()
        .failure_rate(0.5, Window::Calls(4))
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, ManualClock::new());
    c.metrics_only();
    for _ in 0..10 {
        c.try_acquire().unwrap().failure();
    }
    let m = c.metrics();
    assert_eq!(m.state, State::MetricsOnly);
    assert_eq!((m.calls_in_window, m.failure_rate), (4, 1.0));
    assert_eq!(m.times_opened, 0);
}

#[test]
fn reset_closes_and_clears_everything() {
    let (c, _) = circuit();
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    c.reset();
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.metrics().consecutive_failures, 0);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn reset_restarts_the_backoff_schedule() {
    let (c, clock) = circuit();
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(30));
    c.try_acquire().unwrap().failure();
    assert_eq!(c.retry_after(), Some(Duration::from_secs(60)));
    c.reset();
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    assert_eq!(c.retry_after(), Some(Duration::from_secs(30)));
}

#[test]
fn permits_from_before_a_switch_are_not_counted_after_it() {
    let (c, _) = circuit();
    let old = c.try_acquire().unwrap();
    let old2 = c.try_acquire().unwrap();
    c.reset();
    old.failure();
    old2.failure();
    assert_eq!(c.state(), State::Closed);
}
