//! `probe = name`: the body of an annotated function can tell that its call is the circuit's
//! half-open probe (issue 25: gateways tag probes in their logs and response headers, and only
//! manual permits had `Permit::is_probe`).

use std::sync::LazyLock;
use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State, DEFAULT_TENANT};

// One registry and clock per test: tests run in parallel, and one's clock advance must not end
// another's open period.
static CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(CLOCK.clone()).build());
static SYNC_CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static SYNC_REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(SYNC_CLOCK.clone()).build());

#[derive(Debug, PartialEq)]
enum Error {
    Open,
    Upstream,
}

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error::Open
    }
}

/// Answers whether it ran as a probe; fails when asked to.
#[circuit_breaker(provider = "tagged", registry = &REGISTRY, consecutive_failures = 1, open_for = "10s", probe = is_probe)]
async fn tagged(fail: bool) -> Result<bool, Error> {
    if fail {
        return Err(Error::Upstream);
    }
    Ok(is_probe)
}

#[circuit_breaker(provider = "tagged-sync", registry = &SYNC_REGISTRY, consecutive_failures = 1, open_for = "10s", probe = probing)]
fn tagged_sync(fail: bool) -> Result<bool, Error> {
    if fail {
        Err(Error::Upstream)
    } else {
        Ok(probing)
    }
}

#[tokio::test]
async fn an_async_body_knows_its_probe() {
    assert_eq!(tagged(false).await, Ok(false), "closed: not a probe");
    assert_eq!(tagged(true).await, Err(Error::Upstream));
    assert_eq!(tagged(false).await, Err(Error::Open));
    CLOCK.advance(Duration::from_secs(10));
    assert_eq!(
        tagged(false).await,
        Ok(true),
        "the call after the open period probes"
    );
    let circuit = REGISTRY.get("tagged", DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(tagged(false).await, Ok(false), "closed again");
}

#[test]
fn a_sync_body_knows_its_probe() {
    assert_eq!(tagged_sync(false), Ok(false));
    assert_eq!(tagged_sync(true), Err(Error::Upstream));
    assert_eq!(tagged_sync(false), Err(Error::Open));
    SYNC_CLOCK.advance(Duration::from_secs(10));
    assert_eq!(tagged_sync(false), Ok(true));
    assert_eq!(tagged_sync(false), Ok(false));
}
