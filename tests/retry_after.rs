//! `CircuitOpen::retry_after` is the real time left, never a made-up value.

use std::time::Duration;

use breaker::{Circuit, Config, ManualClock, State};

#[test]
fn shrinks_as_the_clock_advances() {
    let clock = ManualClock::new();
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(1).build().unwrap(),
        clock.clone(),
    );
    c.try_acquire().unwrap().failure();
    let mut last = Duration::MAX;
    for step in [0u64, 1, 5, 10, 13] {
        clock.advance(Duration::from_secs(step));
        let left = c.try_acquire().unwrap_err().retry_after().unwrap();
        assert!(left < last || step == 0);
        last = left;
    }
    assert_eq!(last, Duration::from_secs(1));
    clock.advance(Duration::from_millis(999));
    assert_eq!(
        c.try_acquire().unwrap_err().retry_after(),
        Some(Duration::from_millis(1))
    );
}

#[test]
fn forced_open_has_no_retry_after() {
    let c = Circuit::with_clock(Config::default(), ManualClock::new());
    c.force_open();
    let err = c.try_acquire().unwrap_err();
    assert_eq!(err.state(), State::ForcedOpen);
    assert_eq!(err.retry_after(), None);
    assert_eq!(err.to_string(), "circuit forced open");
}

#[test]
fn error_is_clone_display_and_error() {
    fn assert_error<E: std::error::Error + Clone + Send + Sync + 'static>(_: &E) {}
    let registry = breaker::Registry::builder()
        .default_config(Config::builder().consecutive_failures(1).build().unwrap())
        .clock(ManualClock::new())
        .build();
    registry
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    let err = registry
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap_err();
    assert_error(&err);
    assert_eq!((err.provider(), err.tenant()), ("openai", "acme"));
    assert_eq!(
        err.clone().to_string(),
        "circuit open for provider `openai`, tenant `acme`: retry after 30s"
    );
}
