//! Non-async functions: `?` and early returns are recorded; rejected calls skip the body.

use std::sync::atomic::{AtomicU32, Ordering};

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State, DEFAULT_TENANT};

static RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
enum Error {
    Open,
    Parse,
}

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error::Open
    }
}

impl From<std::num::ParseIntError> for Error {
    fn from(_: std::num::ParseIntError) -> Self {
        Error::Parse
    }
}

#[circuit_breaker(provider = "sync", registry = registry, consecutive_failures = 2)]
fn parse(registry: &Registry, s: &str) -> Result<u32, Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if s == "early" {
        return Err(Error::Parse);
    }
    let n: u32 = s.parse()?;
    Ok(n)
}

#[test]
fn question_mark_and_early_return_errors_are_recorded() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    assert_eq!(parse(&registry, "7").unwrap(), 7);
    assert!(matches!(parse(&registry, "x"), Err(Error::Parse)), "`?`");
    let circuit = registry.get("sync", DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.metrics().consecutive_failures, 1);
    assert!(
        matches!(parse(&registry, "early"), Err(Error::Parse)),
        "`return`"
    );
    assert_eq!(circuit.state(), State::Open);

    let runs = RUNS.load(Ordering::SeqCst);
    assert!(matches!(parse(&registry, "1"), Err(Error::Open)));
    assert_eq!(RUNS.load(Ordering::SeqCst), runs);
}
