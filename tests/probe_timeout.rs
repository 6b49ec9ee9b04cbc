//! A half-open probe whose call never returns (and whose permit is never dropped) stops holding
//! its slot after `probe_timeout`: it counts as `on_abandoned`, and its late outcome is stale.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breaker::{
    circuit_breaker, Circuit, CircuitOpen, Config, Event, ManualClock, Outcome, Permit, Reason,
    Registry, State,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The circuit: trips on one failure, open for 10 s; tripped, and its open period over.
fn tripped(config: breaker::ConfigBuilder) -> (Circuit, ManualClock) {
    let clock = ManualClock::new();
    let config = config
        .consecutive_failures(1)
        .open_for(secs(10))
        .build()
        .unwrap();
    let c = Circuit::with_clock(config, clock.clone());
    c.try_acquire().unwrap().failure();
    clock.advance(secs(10));
    (c, clock)
}

#[test]
fn a_hung_probe_reopens_the_circuit_on_the_next_backoff_step() {
    let (c, clock) = tripped(Config::builder().probe_timeout(secs(30)));
    let hung: Permit = c.try_acquire().unwrap();
    assert!(hung.is_probe());

    clock.advance(secs(29));
    let err = c.try_acquire().unwrap_err();
    assert_eq!(
        err.state(),
        State::HalfOpen,
        "still within the probe timeout"
    );
    assert_eq!(err.retry_after(), None);

    clock.advance(secs(1));
    let err = c.try_acquire().unwrap_err();
    assert_eq!(
        err.state(),
        State::Open,
        "the hung probe counted as a failure"
    );
    assert_eq!(
        err.retry_after(),
        Some(secs(20)),
        "level 1 of the backoff: 10 s × 2"
    );
    assert_eq!(c.metrics().times_opened, 2);

    // Too late: the hung probe belongs to a stay that is over.
    hung.success();
    assert_eq!(c.state(), State::Open);

    clock.advance(secs(20));
    let probe = c.try_acquire().unwrap();
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_hung_probe_is_let_go_after_the_default_timeout_not_after_a_week() {
    let (c, clock) = tripped(Config::builder());
    assert_eq!(c.config().probe_timeout(), secs(60));
    let _hung = c.try_acquire().unwrap();
    clock.advance(secs(7 * 24 * 3600));
    let err = c.try_acquire().unwrap_err();
    assert_eq!(err.state(), State::Open);
    assert_eq!(err.retry_after(), Some(secs(20)));
    clock.advance(secs(20));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn ignored_frees_the_slot_for_a_new_probe_and_the_late_outcome_is_stale() {
    let (c, clock) = tripped(
        Config::builder()
            .probe_timeout(secs(30))
            .on_abandoned(Outcome::Ignored),
    );
    let hung = c.try_acquire().unwrap();
    clock.advance(secs(30));
    let fresh = c
        .try_acquire()
        .expect("the hung probe's slot is free again");
    assert!(fresh.is_probe());
    hung.failure(); // stale: would reopen the circuit if it counted
    assert_eq!(c.state(), State::HalfOpen);
    fresh.success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn success_counts_the_hung_probe_as_a_success() {
    let (c, clock) = tripped(
        Config::builder()
            .probe_timeout(secs(30))
            .on_abandoned(Outcome::Success),
    );
    let hung = c.try_acquire().unwrap();
    clock.advance(secs(30));
    c.try_acquire().unwrap().success();
    assert_eq!(c.state(), State::Closed);
    hung.failure(); // stale: the circuit closed without it
    assert_eq!(c.state(), State::Closed);
    assert_eq!(c.metrics().consecutive_failures, 0);
}

#[test]
fn with_several_probes_the_timeout_runs_from_the_latest() {
    let (c, clock) = tripped(
        Config::builder()
            .half_open_probes(2)
            .probe_timeout(secs(30))
            .on_abandoned(Outcome::Ignored),
    );
    let first = c.try_acquire().unwrap();
    clock.advance(secs(20));
    let second = c.try_acquire().unwrap();
    clock.advance(secs(10));
    assert!(
        c.try_acquire().is_err(),
        "the second probe has been out for only 10 s"
    );
    clock.advance(secs(20));
    let a = c.try_acquire().unwrap();
    let b = c.try_acquire().unwrap();
    // Both old probes are stale now.
    first.failure();
    second.failure();
    assert_eq!(c.state(), State::HalfOpen);
    a.success();
    b.success();
    assert_eq!(c.state(), State::Closed);
}

#[test]
fn a_probe_that_returns_in_time_is_never_let_go() {
    let (c, clock) = tripped(Config::builder().probe_timeout(secs(30)));
    let probe = c.try_acquire().unwrap();
    clock.advance(secs(29));
    assert!(c.try_acquire().is_err());
    probe.success();
    assert_eq!(c.state(), State::Closed);
    clock.advance(secs(60));
    c.try_acquire().unwrap().success();
    assert_eq!(c.metrics().times_opened, 1);
}

#[test]
fn the_timeout_is_reported_as_its_own_reason() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let clock = ManualClock::new();
    let registry = Registry::builder()
        .clock(clock.clone())
        .default_config(
            Config::builder()
                .consecutive_failures(1)
                .open_for(secs(10))
                .probe_timeout(secs(30))
                .build()
                .unwrap(),
        )
        .listener(move |e: &Event<'_>| {
            if let Event::Transition { reason, .. } = e {
                log.lock().unwrap().push(*reason);
            }
        })
        .build();
    registry.acquire("p", "t", None).unwrap().failure();
    clock.advance(secs(10));
    let _hung = registry.acquire("p", "t", None).unwrap();
    clock.advance(secs(30));
    assert!(registry.acquire("p", "t", None).is_err());
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Reason::ConsecutiveFailures,
            Reason::OpenPeriodElapsed,
            Reason::ProbeTimedOut
        ]
    );
    assert_eq!(Reason::ProbeTimedOut.to_string(), "probe_timed_out");
}

#[derive(Debug)]
struct Down;

impl From<CircuitOpen> for Down {
    fn from(_: CircuitOpen) -> Self {
        Down
    }
}

#[circuit_breaker(provider = "hangs", registry = registry, consecutive_failures = 1, probe_timeout = "45s")]
fn call(registry: &Registry) -> Result<(), Down> {
    Err(Down)
}

#[test]
fn the_attribute_sets_the_probe_timeout() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    let _ = call(&registry);
    let circuit = registry.get("hangs", breaker::DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.config().probe_timeout(), secs(45));
}
