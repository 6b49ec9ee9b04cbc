//! Error classes decide what counts against a provider.

use breaker::{Circuit, Classify, Config, ErrorClass, ManualClock, Outcome, State};

#[test]
fn auth_and_bad_requests_do_not_trip() {
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(1).build().unwrap(),
        ManualClock::new(),
    );
    for status in [400, 401, 403, 404, 422] {
        c.try_acquire()
            .unwrap()
            .record(ErrorClass::from_status(status).classify());
    }
    c.try_acquire()
        .unwrap()
        .record(ErrorClass::ContextOverflow.outcome());
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn provider_faults_trip() {
    for class in [
        ErrorClass::from_status(500),
        ErrorClass::from_status(502),
        ErrorClass::from_status(503),
        ErrorClass::from_status(504),
        ErrorClass::from_status(529),
        ErrorClass::from_status(429),
        ErrorClass::Network,
        ErrorClass::Timeout,
    ] {
        let c = Circuit::with_clock(
            Config::builder().consecutive_failures(1).build().unwrap(),
            ManualClock::new(),
        );
        c.try_acquire().unwrap().record(class.outcome());
        assert_eq!(c.state(), State::Open, "{class:?}");
    }
}

#[test]
fn unknown_proves_nothing() {
    assert_eq!(ErrorClass::Unknown.outcome(), Outcome::Ignored);
    let c = Circuit::with_clock(
        Config::builder().consecutive_failures(1).build().unwrap(),
        ManualClock::new(),
    );
    c.try_acquire().unwrap().failure();
    let open = c.try_acquire().unwrap_err();
    assert_eq!(
        open.classify(),
        Outcome::Ignored,
        "a nested rejection is not a provider fault"
    );
}
