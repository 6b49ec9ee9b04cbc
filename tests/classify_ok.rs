//! An `Ok` value whose type implements `Classify` is judged by it (issue 25: an `Ok(response)`
//! with a 503 counted as a success): a gateway returning the provider's response as `Ok` gets
//! its failures and its `Retry-After` without carrying them in an error type of its own.

use std::sync::LazyLock;
use std::time::Duration;

use breaker::{
    circuit_breaker, CircuitOpen, Classify, ErrorClass, ManualClock, Outcome, Registry, State,
    DEFAULT_TENANT,
};

static CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(CLOCK.clone()).build());

fn state(provider: &str) -> State {
    REGISTRY.get(provider, DEFAULT_TENANT).unwrap().state()
}

/// A provider's answer, as a client library hands it back: its status, and a `Retry-After`.
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
}

impl Classify for Reply {
    fn classify(&self) -> Outcome {
        match self.retry_after {
            _ if self.status < 400 => Outcome::Success,
            Some(d) if matches!(self.status, 429 | 503) => Outcome::RetryAfter(d),
            _ => ErrorClass::from_status(self.status).outcome(),
        }
    }
}

#[derive(Debug)]
struct Plain;

impl From<CircuitOpen> for Plain {
    fn from(_: CircuitOpen) -> Self {
        Plain
    }
}

#[circuit_breaker(provider = "ok-classified", registry = &REGISTRY, consecutive_failures = 2)]
async fn reply(status: u16) -> Result<Reply, Plain> {
    Ok(Reply {
        status,
        retry_after: None,
    })
}

#[circuit_breaker(provider = "ok-retry-after", registry = &REGISTRY, consecutive_failures = 5)]
fn reply_later(secs: u64) -> Result<Reply, Plain> {
    Ok(Reply {
        status: 429,
        retry_after: Some(Duration::from_secs(secs)),
    })
}

/// Both sides classify themselves.
#[derive(Debug)]
struct Failed(u16);

impl From<CircuitOpen> for Failed {
    fn from(_: CircuitOpen) -> Self {
        Failed(0)
    }
}

impl Classify for Failed {
    fn classify(&self) -> Outcome {
        ErrorClass::from_status(self.0).outcome()
    }
}

#[circuit_breaker(provider = "ok-and-err", registry = &REGISTRY, consecutive_failures = 2)]
async fn both(status: u16, err: bool) -> Result<Reply, Failed> {
    if err {
        return Err(Failed(status));
    }
    Ok(Reply {
        status,
        retry_after: None,
    })
}

/// A site's `classify = ..` still wins over the `Ok` type's own `Classify`.
fn always_fine(_: &Result<Reply, Plain>) -> Outcome {
    Outcome::Success
}

#[circuit_breaker(provider = "ok-overridden", registry = &REGISTRY, consecutive_failures = 2, classify = always_fine)]
async fn overridden(status: u16) -> Result<Reply, Plain> {
    Ok(Reply {
        status,
        retry_after: None,
    })
}

#[tokio::test]
async fn an_ok_with_a_503_is_a_failure_and_a_200_a_success() {
    assert!(reply(503).await.is_ok());
    assert!(reply(200).await.is_ok(), "a success resets the streak");
    assert!(reply(503).await.is_ok());
    assert_eq!(state("ok-classified"), State::Closed);
    assert!(reply(503).await.is_ok());
    assert_eq!(state("ok-classified"), State::Open, "two 503s in a row");
    assert!(matches!(reply(200).await, Err(Plain)), "rejected");
}

#[test]
fn an_ok_with_retry_after_opens_for_exactly_that_long() {
    assert!(reply_later(7).is_ok());
    let circuit = REGISTRY.get("ok-retry-after", DEFAULT_TENANT).unwrap();
    assert_eq!(
        circuit.state(),
        State::Open,
        "at once, whatever the threshold"
    );
    assert_eq!(circuit.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn ok_and_err_are_each_judged_by_their_own_type() {
    // A 400 `Err` is the caller's fault: not counted.
    assert!(both(400, true).await.is_err());
    assert!(both(400, true).await.is_err());
    assert_eq!(state("ok-and-err"), State::Closed);
    // A 503 `Ok`, then a 503 `Err`: two failures.
    assert!(both(503, false).await.is_ok());
    assert!(both(503, true).await.is_err());
    assert_eq!(state("ok-and-err"), State::Open);
}

#[tokio::test]
async fn a_sites_classify_wins_over_the_ok_types() {
    for _ in 0..3 {
        assert!(overridden(503).await.is_ok());
    }
    assert_eq!(state("ok-overridden"), State::Closed);
}

#[cfg(feature = "http")]
mod http_responses {
    use super::*;

    #[circuit_breaker(provider = "ok-http", registry = &REGISTRY, consecutive_failures = 2)]
    async fn get(status: u16) -> Result<http::Response<()>, Plain> {
        Ok(http::Response::builder().status(status).body(()).unwrap())
    }

    #[tokio::test]
    async fn an_http_response_with_a_503_is_a_failure() {
        assert!(get(503).await.is_ok());
        assert!(get(503).await.is_ok());
        assert_eq!(state("ok-http"), State::Open);
    }
}
