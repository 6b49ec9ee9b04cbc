//! Classification: a site's `classify = path` wins; otherwise `E: Classify` decides; otherwise
//! every `Err` is a failure.

use std::sync::LazyLock;

use breaker::{
    circuit_breaker, CircuitOpen, Classify, ErrorClass, ManualClock, Outcome, Registry, State,
    DEFAULT_TENANT,
};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

fn state(provider: &str) -> State {
    REGISTRY.get(provider, DEFAULT_TENANT).unwrap().state()
}

#[derive(Debug)]
enum ApiError {
    Open,
    Status(u16),
}

impl From<CircuitOpen> for ApiError {
    fn from(_: CircuitOpen) -> Self {
        ApiError::Open
    }
}

impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
            ApiError::Open => Outcome::Ignored,
            ApiError::Status(s) => ErrorClass::from_status(*s).outcome(),
        }
    }
}

#[circuit_breaker(provider = "classified", registry = &REGISTRY, consecutive_failures = 2)]
async fn classified(status: u16) -> Result<(), ApiError> {
    Err(ApiError::Status(status))
}

#[derive(Debug)]
struct Plain;

impl From<CircuitOpen> for Plain {
    fn from(_: CircuitOpen) -> Self {
        Plain
    }
}

#[circuit_breaker(provider = "plain", registry = &REGISTRY, consecutive_failures = 2)]
async fn plain() -> Result<(), Plain> {
    Err(Plain)
}

/// An `Ok` carrying a 503 is a failure for this site.
fn by_status(r: &Result<u16, ApiError>) -> Outcome {
    match r {
        Ok(status) if *status >= 500 => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(e) => e.classify(),
    }
}

#[circuit_breaker(provider = "custom", registry = &REGISTRY, consecutive_failures = 2, classify = by_status)]
fn custom(status: u16) -> Result<u16, ApiError> {
    Ok(status)
}

#[tokio::test]
async fn classify_on_the_error_type_decides() {
    for _ in 0..5 {
        assert!(classified(401).await.is_err());
    }
    assert_eq!(state("classified"), State::Closed, "auth errors never trip");
    assert!(classified(503).await.is_err());
    assert!(classified(503).await.is_err());
    assert_eq!(state("classified"), State::Open);
}

#[tokio::test]
async fn without_classify_every_err_is_a_failure() {
    assert!(plain().await.is_err());
    assert_eq!(state("plain"), State::Closed);
    assert!(plain().await.is_err());
    assert_eq!(state("plain"), State::Open);
}

#[test]
fn the_site_classifier_wins() {
    for _ in 0..5 {
        assert_eq!(custom(200).unwrap(), 200);
    }
    assert_eq!(state("custom"), State::Closed);
    assert!(custom(503).is_ok());
    assert!(custom(503).is_ok());
    assert_eq!(state("custom"), State::Open, "two Ok(503)s tripped it");
    assert!(matches!(custom(200), Err(ApiError::Open)));
}
