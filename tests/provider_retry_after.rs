//! `Outcome::RetryAfter`: the provider said when to come back, so the circuit opens at once for
//! exactly that long (capped at `max_open_for`), and the backoff level moves as for any trip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{
    circuit_breaker, Circuit, CircuitOpen, Config, Event, ManualClock, Outcome, Reason, Registry,
    State,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn circuit(config: breaker::ConfigBuilder) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    (
        Circuit::with_clock(config.build().unwrap(), clock.clone()),
        clock,
    )
}

#[test]
fn opens_a_closed_circuit_at_once_for_exactly_that_long() {
    // Five failures in a row would be needed; one answer with a time to come back is enough.
    let (c, clock) = circuit(Config::builder().jitter(0.5));
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(secs(42)));
    assert_eq!(c.state(), State::Open);
    let err = c.try_acquire().unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(42)), "exactly, never jittered");
    assert_eq!(c.metrics().times_opened, 1);
    clock.advance(secs(42));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn is_capped_at_max_open_for() {
    let (c, _) = circuit(Config::builder().max_open_for(secs(600)));
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(Duration::MAX));
    assert_eq!(c.retry_after(), Some(secs(600)));
}

#[test]
fn zero_is_a_plain_failure() {
    let (c, _) = circuit(Config::builder().consecutive_failures(2));
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(Duration::ZERO));
    assert_eq!(c.state(), State::Closed, "one failure of two");
    assert_eq!(c.metrics().consecutive_failures, 1);
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(Duration::ZERO));
    assert_eq!(c.retry_after(), Some(secs(30)), "the config's own period");
}

#[test]
fn counts_as_a_failure_in_the_window() {
    let (c, _) = circuit(
        Config::builder()
            .failure_rate(0.5, breaker::Window::Calls(10))
            .minimum_calls(10),
    );
    c.try_acquire().unwrap().success();
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(secs(5)));
    let m = c.metrics();
    assert_eq!((m.calls_in_window, m.failures_in_window), (2, 1));
    assert_eq!(m.state, State::Open);
}

#[test]
fn on_a_probe_it_reopens_one_backoff_step_up_for_the_providers_time() {
    let (c, clock) = circuit(Config::builder().consecutive_failures(1).open_for(secs(10)));
    c.try_acquire().unwrap().failure(); // level 0: 10 s
    clock.advance(secs(10));
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(secs(3))); // level 1, for the provider's 3 s
    assert_eq!(c.retry_after(), Some(secs(3)));
    clock.advance(secs(3));
    c.try_acquire().unwrap().failure(); // level 2 of the schedule: 10 s × 4
    assert_eq!(c.retry_after(), Some(secs(40)));
    clock.advance(secs(40));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    c.try_acquire().unwrap().failure(); // closing restarted the schedule
    assert_eq!(c.retry_after(), Some(secs(10)));
}

#[test]
fn a_late_outcome_of_an_earlier_stay_changes_nothing() {
    let (c, clock) = circuit(Config::builder().consecutive_failures(1));
    let late = c.try_acquire().unwrap();
    c.try_acquire().unwrap().failure();
    clock.advance(secs(30));
    c.try_acquire().unwrap().success();
    late.record(Outcome::RetryAfter(secs(100)));
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn metrics_only_records_it_but_never_opens() {
    let (c, _) = circuit(Config::builder());
    c.metrics_only();
    c.try_acquire()
        .unwrap()
        .record(Outcome::RetryAfter(secs(100)));
    assert_eq!(c.state(), State::MetricsOnly);
    assert_eq!(c.metrics().consecutive_failures, 1);
}

#[test]
fn the_transition_carries_the_providers_time() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let registry = Registry::builder()
        .clock(ManualClock::new())
        .default_config(Config::builder().max_open_for(secs(300)).build().unwrap())
        .listener(move |e: &Event<'_>| {
            if let Event::Transition { reason, to, .. } = e {
                log.lock().unwrap().push((*to, *reason));
            }
        })
        .build();
    registry
        .acquire("p", "t", None)
        .unwrap()
        .record(Outcome::RetryAfter(secs(900)));
    assert_eq!(
        *seen.lock().unwrap(),
        [(State::Open, Reason::RetryAfter(secs(300)))],
        "the period the circuit took, after the cap"
    );
    assert_eq!(Reason::RetryAfter(secs(1)).to_string(), "retry_after");
}

/// A provider's time longer than `max_open_for` is cut to it, and that is said (issue 25: the
/// upstream sent `Retry-After: 7`, clients got 4, and nothing told the operator why).
#[test]
fn a_capped_retry_after_is_told_to_the_listeners() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .clock(clock.clone())
        .default_config(
            Config::builder()
                .open_for(secs(2))
                .max_open_for(secs(4))
                .build()
                .unwrap(),
        )
        .listener(move |e: &Event<'_>| {
            if let Event::RetryAfterCapped {
                tenant,
                asked,
                applied,
                ..
            } = e
            {
                log.lock()
                    .unwrap()
                    .push((tenant.to_string(), *asked, *applied));
            }
        })
        .build();
    // Within the cap: nothing to say.
    registry
        .acquire("p", "within", None)
        .unwrap()
        .record(Outcome::RetryAfter(secs(3)));
    // Above it, on a closed circuit and on a probe.
    registry
        .acquire("p", "above", None)
        .unwrap()
        .record(Outcome::RetryAfter(secs(7)));
    assert_eq!(
        *seen.lock().unwrap(),
        [("above".to_string(), secs(7), secs(4))]
    );
    let circuit = registry.get("p", "above").unwrap();
    assert_eq!(circuit.retry_after(), Some(secs(4)));
    clock.advance(secs(4));
    let probe = registry.acquire("p", "above", None).unwrap();
    assert!(probe.is_probe());
    probe.record(Outcome::RetryAfter(secs(9)));
    assert_eq!(
        seen.lock().unwrap()[1],
        ("above".to_string(), secs(9), secs(4))
    );
    assert_eq!(circuit.retry_after(), Some(secs(4)));
}

#[derive(Debug)]
enum ApiError {
    Throttled { retry_after_secs: u64 },
    Open,
}

impl From<CircuitOpen> for ApiError {
    fn from(_: CircuitOpen) -> Self {
        ApiError::Open
    }
}

/// A site's classifier hands the provider's time to the circuit.
fn throttled(result: &Result<(), ApiError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Success,
        Err(ApiError::Throttled { retry_after_secs }) => {
            Outcome::RetryAfter(Duration::from_secs(*retry_after_secs))
        }
        Err(ApiError::Open) => Outcome::Ignored,
    }
}

#[circuit_breaker(provider = "llm", registry = registry, classify = throttled)]
fn complete(registry: &Registry) -> Result<(), ApiError> {
    Err(ApiError::Throttled {
        retry_after_secs: 20,
    })
}

#[test]
fn a_classify_function_returns_it_through_the_attribute() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    assert!(matches!(
        complete(&registry),
        Err(ApiError::Throttled { .. })
    ));
    match complete(&registry) {
        Err(ApiError::Open) => {}
        other => panic!("expected a rejection, got {other:?}"),
    }
    let circuit = registry.get("llm", breaker::DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.retry_after(), Some(secs(20)));
}
