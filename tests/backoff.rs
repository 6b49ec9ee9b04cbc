//! Open periods compound on every re-trip from half-open and reset when the circuit closes.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, State};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Fails the probe of each half-open stay and returns the open period that followed.
fn retrip(c: &Circuit, clock: &ManualClock) -> Duration {
    let period = c.retry_after().expect("open");
    clock.advance(period);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.state(), State::Open);
    c.retry_after().unwrap()
}

#[test]
fn compounds_30_60_120_240_300_300() {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(1).build().unwrap(),
        clock.clone(),
    );
    c.try_acquire().unwrap().failure();
    let mut periods = vec![c.retry_after().unwrap()];
    for _ in 0..5 {
        periods.push(retrip(&c, &clock));
    }
    assert_eq!(periods, [30, 60, 120, 240, 300, 300].map(secs).to_vec());
}

#[test]
fn resets_after_the_circuit_closes() {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(1).build().unwrap(),
        clock.clone(),
    );
    c.try_acquire().unwrap().failure();
    retrip(&c, &clock);
    assert_eq!(retrip(&c, &clock), secs(120));
    clock.advance(secs(120));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure();
    assert_eq!(c.retry_after(), Some(secs(30)));
}

#[test]
fn sub_second_periods_compound() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(250))
        .max_open_for(Duration::from_secs(1))
        .backoff_multiplier(2.0)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    let mut periods = vec![c.retry_after().unwrap()];
    for _ in 0..3 {
        periods.push(retrip(&c, &clock));
    }
    assert_eq!(
        periods,
        [250, 500, 1000, 1000].map(Duration::from_millis).to_vec()
    );
}

#[test]
fn multiplier_of_one_keeps_the_period() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .backoff_multiplier(1.0)
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    for _ in 0..3 {
        assert_eq!(retrip(&c, &clock), secs(30));
    }
}

#[test]
fn jitter_spreads_within_bounds_and_retry_after_matches() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .consecutive_failures(1)
        .jitter(0.5)
        .build()
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let c = Circuit::with_clock(config.clone(), clock.clone());
        c.try_acquire().unwrap().failure();
        let d = c.retry_after().unwrap();
        assert!(d >= secs(15) && d <= secs(45), "{d:?}");
        seen.insert(d);
        // The rejection reports the same real deadline the circuit will admit a probe at.
        clock.advance(d - Duration::from_micros(1));
        assert!(c.try_acquire().is_err());
        clock.advance(Duration::from_micros(1));
        assert!(c.try_acquire().is_ok());
    }
    assert!(seen.len() > 1, "jitter produced one value 50 times");
}
