//! The annotated function trips after the configured failures and then rejects without running
//! its body.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State};

static CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(CLOCK.clone()).build());
static RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
enum Error {
    Open(CircuitOpen),
    Down,
}

impl From<CircuitOpen> for Error {
    fn from(e: CircuitOpen) -> Self {
        Error::Open(e)
    }
}

#[circuit_breaker(provider = "flaky", registry = &REGISTRY, consecutive_failures = 3)]
async fn call(fail: bool) -> Result<u32, Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if fail {
        Err(Error::Down)
    } else {
        Ok(7)
    }
}

#[tokio::test]
async fn trips_after_the_configured_failures_and_skips_the_body() {
    assert_eq!(call(false).await.unwrap(), 7);
    for _ in 0..3 {
        assert!(matches!(call(true).await, Err(Error::Down)));
    }
    let circuit = REGISTRY.get("flaky", breaker::DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.state(), State::Open);
    assert_eq!(RUNS.load(Ordering::SeqCst), 4);

    for _ in 0..5 {
        match call(false).await {
            Err(Error::Open(open)) => {
                assert_eq!(open.provider(), "flaky");
                assert_eq!(open.tenant(), breaker::DEFAULT_TENANT);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        4,
        "a rejected call ran the body"
    );
}
