//! A future dropped mid-call (here by `tokio::time::timeout`) counts as the site's
//! `on_abandoned`, and a dropped probe never wedges half-open.

use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State};

#[derive(Debug)]
struct Error;

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "hangs", registry = registry, consecutive_failures = 2, open_for = "5s")]
async fn hang(registry: &Registry, hang: bool) -> Result<(), Error> {
    if hang {
        std::future::pending::<()>().await;
    }
    Ok(())
}

#[circuit_breaker(
    provider = "hangs-ignored",
    registry = registry,
    consecutive_failures = 1,
    on_abandoned = "ignored"
)]
async fn hang_ignored(registry: &Registry) -> Result<(), Error> {
    std::future::pending::<()>().await;
    Ok(())
}

/// Tokio's paused clock drives the timeout; the circuits run on a `ManualClock`.
async fn timed_out(f: impl std::future::Future<Output = Result<(), Error>>) -> bool {
    tokio::time::timeout(Duration::from_secs(1), f)
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn abandoned_calls_count_as_failures_by_default() {
    let clock = ManualClock::new();
    let registry = Registry::builder().clock(clock.clone()).build();
    assert!(timed_out(hang(&registry, true)).await);
    assert!(timed_out(hang(&registry, true)).await);
    let circuit = registry.get("hangs", breaker::DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.state(), State::Open);

    // The probe hangs too and is dropped: its slot is freed, so a later probe gets in.
    clock.advance(Duration::from_secs(5));
    assert!(timed_out(hang(&registry, true)).await);
    assert_eq!(
        circuit.state(),
        State::Open,
        "the abandoned probe counted as a failure"
    );
    clock.advance(Duration::from_secs(10));
    assert!(
        hang(&registry, false).await.is_ok(),
        "half-open is not wedged"
    );
    assert_eq!(circuit.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn on_abandoned_from_the_attribute_applies() {
    let registry = Registry::builder().clock(ManualClock::new()).build();
    for _ in 0..3 {
        assert!(timed_out(hang_ignored(&registry)).await);
    }
    let circuit = registry
        .get("hangs-ignored", breaker::DEFAULT_TENANT)
        .unwrap();
    assert_eq!(circuit.state(), State::Closed);
}
