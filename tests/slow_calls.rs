//! The slow-call policy: the permit measures the call on the circuit's clock.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, State, Window};

fn circuit() -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = Config::builder()
        .slow_calls(Duration::from_secs(2), 0.5)
        .window(Window::Calls(4))
        .minimum_calls(4)
        .build()
        .unwrap();
    (Circuit::with_clock(config, clock.clone()), clock)
}

fn call(c: &Circuit, clock: &ManualClock, took: Duration) {
    let permit = c.try_acquire().unwrap();
    clock.advance(took);
    permit.success();
}

#[test]
fn slow_successes_trip_the_slow_rate() {
    let (c, clock) = circuit();
    call(&c, &clock, Duration::from_secs(3));
    call(&c, &clock, Duration::from_millis(100));
    call(&c, &clock, Duration::from_millis(100));
    assert_eq!(c.state(), State::Closed);
    call(&c, &clock, Duration::from_secs(5));
    assert_eq!(c.state(), State::Open, "2 of 4 slower than 2 s");
    assert_eq!(c.metrics().failure_rate, 0.0);
}

#[test]
fn a_call_at_the_threshold_is_not_slow() {
    let (c, clock) = circuit();
    for _ in 0..4 {
        call(&c, &clock, Duration::from_secs(2));
    }
    assert_eq!(c.metrics().slow_rate, 0.0);
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_slow_probe_reopens() {
    let (c, clock) = circuit();
    c.force_open();
    c.reset();
    for _ in 0..4 {
        call(&c, &clock, Duration::from_secs(3));
    }
    assert_eq!(c.state(), State::Open);
    clock.advance(Duration::from_secs(30));
    call(&c, &clock, Duration::from_secs(3));
    assert_eq!(
        c.state(),
        State::Open,
        "the provider answered, but still too slowly"
    );
    clock.advance(Duration::from_secs(60));
    call(&c, &clock, Duration::from_millis(10));
    assert_eq!(c.state(), State::Closed);
}
