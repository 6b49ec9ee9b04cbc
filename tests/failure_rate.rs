//! The failure-rate policy over a count window.

use breaker::{Circuit, Config, ManualClock, State, Window};

fn circuit(threshold: f64, n: u32, min: u32) -> Circuit {
    let config = Config::builder()
        .failure_rate(threshold, Window::Calls(n))
        .minimum_calls(min)
        .build()
        .unwrap();
    Circuit::with_clock(config, ManualClock::new())
}

#[test]
fn count_window_slides_one_outcome_at_a_time() {
    let c = circuit(0.5, 4, 4);
    c.try_acquire().unwrap().failure();
    for _ in 0..3 {
        c.try_acquire().unwrap().success();
    }
    let m = c.metrics();
    assert_eq!((m.calls_in_window, m.failure_rate), (4, 0.25));
    c.try_acquire().unwrap().success();
    let m = c.metrics();
    assert_eq!(
        (m.calls_in_window, m.failure_rate),
        (4, 0.0),
        "the fifth success evicts the failure"
    );
}

#[test]
fn a_success_can_trip_the_rate() {
    // F, F, F, S with min 5: not enough calls yet. The fifth outcome, a success, makes 3/5 = 0.6.
    let c = circuit(0.5, 10, 5);
    for _ in 0..3 {
        c.try_acquire().unwrap().failure();
    }
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn minimum_calls_gates_the_rate() {
    let c = circuit(0.5, 100, 10);
    for _ in 0..9 {
        c.try_acquire().unwrap().failure();
    }
    assert_eq!(c.state(), State::Closed, "9 failures < minimum of 10 calls");
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
}

#[test]
fn old_successes_slide_out_so_failures_trip_within_one_window() {
    // The peers' bug: a window that never slides needs 1,000 failures after 1,000 successes.
    let c = circuit(0.5, 10, 10);
    for _ in 0..1000 {
        c.try_acquire().unwrap().success();
    }
    for i in 0..5 {
        assert_eq!(c.state(), State::Closed, "after {i} failures");
        c.try_acquire().unwrap().failure();
    }
    assert_eq!(c.state(), State::Open, "5 of the last 10");
}

#[test]
fn threshold_is_inclusive() {
    let c = circuit(0.25, 4, 4);
    c.try_acquire().unwrap().failure();
    for _ in 0..2 {
        c.try_acquire().unwrap().success();
    }
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Open, "1/4 = 0.25 reaches 0.25");
}

#[test]
fn explicit_consecutive_policy_stays_active_beside_the_rate() {
    let config = Config::builder()
        .failure_rate(0.9, Window::Calls(100))
        .consecutive_failures(3)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, ManualClock::new());
    for _ in 0..3 {
        c.try_acquire().unwrap().failure();
    }
    assert_eq!(c.state(), State::Open);
}

#[test]
fn window_is_empty_after_the_circuit_closes() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .failure_rate(0.5, Window::Calls(4))
        .minimum_calls(2)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    clock.advance(std::time::Duration::from_secs(30));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.metrics().calls_in_window, 0);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Closed, "1 call is below the minimum of 2");
}
