//! An annotated function recovers through half-open: after the open period one probe runs the
//! body; its success closes the circuit, its failure reopens it for the next backoff step.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State, DEFAULT_TENANT};

static CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(CLOCK.clone()).build());
static HEALTHY: AtomicBool = AtomicBool::new(false);
static RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
enum Error {
    Open,
    Down,
}

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error::Open
    }
}

#[circuit_breaker(
    provider = "recovering",
    registry = &REGISTRY,
    consecutive_failures = 1,
    open_for = "10s",
    backoff = 2.0,
)]
fn call() -> Result<(), Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if HEALTHY.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(Error::Down)
    }
}

#[test]
fn recovers_through_half_open() {
    let state = || REGISTRY.get("recovering", DEFAULT_TENANT).unwrap().state();
    assert!(matches!(call(), Err(Error::Down)));
    assert_eq!(state(), State::Open);

    CLOCK.advance(Duration::from_secs(10));
    assert_eq!(state(), State::HalfOpen);
    assert!(
        matches!(call(), Err(Error::Down)),
        "the probe ran and failed"
    );
    assert_eq!(state(), State::Open);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);

    CLOCK.advance(Duration::from_secs(10));
    assert!(
        matches!(call(), Err(Error::Open)),
        "open for 20s after a failed probe"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);

    HEALTHY.store(true, Ordering::SeqCst);
    CLOCK.advance(Duration::from_secs(10));
    assert!(call().is_ok(), "the probe ran and succeeded");
    assert_eq!(state(), State::Closed);
    assert!(call().is_ok());
    assert_eq!(RUNS.load(Ordering::SeqCst), 4);
}
