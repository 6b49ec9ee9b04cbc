//! `reqwest::Response` as the `Ok` of an annotated function (feature `reqwest`): judged by its
//! status and `Retry-After`, as an `Err` carrying it would be (issue 25: an `Ok(response)` with
//! a 503 counted as a success).
#![cfg(feature = "reqwest")]

use std::sync::LazyLock;
use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State, DEFAULT_TENANT};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

/// The gateway's own error: `reqwest::Error` cannot hold a rejection (the orphan rule forbids
/// `impl From<CircuitOpen> for reqwest::Error`).
#[derive(Debug)]
enum GatewayError {
    Open(CircuitOpen),
    Http(reqwest::Error),
}

impl From<CircuitOpen> for GatewayError {
    fn from(open: CircuitOpen) -> Self {
        GatewayError::Open(open)
    }
}

impl From<reqwest::Error> for GatewayError {
    fn from(e: reqwest::Error) -> Self {
        GatewayError::Http(e)
    }
}

/// A provider's answer as reqwest hands it back, without a network: reqwest builds a
/// `Response` from an `http::Response`.
#[circuit_breaker(provider = "ok-reqwest", registry = &REGISTRY, consecutive_failures = 2)]
async fn get(
    status: u16,
    retry_after: Option<&'static str>,
) -> Result<reqwest::Response, GatewayError> {
    let mut response = http::Response::builder().status(status);
    if let Some(secs) = retry_after {
        response = response.header("retry-after", secs);
    }
    Ok(reqwest::Response::from(response.body("").unwrap()))
}

#[tokio::test]
async fn a_reqwest_response_is_judged_by_its_status_and_retry_after() {
    assert!(get(200, None).await.is_ok());
    assert!(get(503, None).await.is_ok());
    assert!(get(200, None).await.is_ok(), "a success resets the streak");
    let circuit = REGISTRY.get("ok-reqwest", DEFAULT_TENANT).unwrap();
    assert_eq!(circuit.state(), State::Closed);
    assert!(get(503, None).await.is_ok());
    assert!(get(503, None).await.is_ok());
    assert_eq!(circuit.state(), State::Open, "two 503s in a row");
    circuit.reset();
    assert!(get(429, Some("9")).await.is_ok());
    assert_eq!(
        circuit.state(),
        State::Open,
        "at once, for the provider's time"
    );
    assert_eq!(circuit.retry_after(), Some(Duration::from_secs(9)));
    match get(200, None).await {
        Err(GatewayError::Open(open)) => assert_eq!(open.state(), State::Open),
        Err(GatewayError::Http(e)) => panic!("no network here: {e}"),
        Ok(_) => panic!("an open circuit let the call through"),
    }
}
