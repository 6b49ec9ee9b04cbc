//! `classify = path` and `Classify`: decide which results count against the provider.
//!
//! `ApiError: Classify` makes a 401 (the caller's credentials) count as a success, since the
//! provider answered; `classify = ..` on one site makes an `Ok` carrying "overloaded" a failure.
//!
//! ```text
//! cargo run --example classify
//! ```

use std::sync::LazyLock;

use breaker::{
    circuit_breaker, CircuitOpen, Classify, ErrorClass, ManualClock, Outcome, Registry,
    DEFAULT_TENANT,
};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

#[derive(Debug)]
enum ApiError {
    Rejected(CircuitOpen),
    Status(u16),
}

impl From<CircuitOpen> for ApiError {
    fn from(open: CircuitOpen) -> Self {
        ApiError::Rejected(open)
    }
}

impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
            ApiError::Rejected(_) => Outcome::Ignored,
            ApiError::Status(code) => ErrorClass::from_status(*code).outcome(),
        }
    }
}

/// Uses `ApiError: Classify` automatically.
#[circuit_breaker(provider = "auth-api", registry = &REGISTRY, consecutive_failures = 2)]
async fn login(status: u16) -> Result<(), ApiError> {
    Err(ApiError::Status(status))
}

/// The site's own rule: an "overloaded" body is a failure even though the call returned `Ok`.
fn overloaded_is_failure(result: &Result<String, ApiError>) -> Outcome {
    match result {
        Ok(body) if body.contains("overloaded") => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(e) => e.classify(),
    }
}

#[circuit_breaker(
    provider = "chat-api",
    registry = &REGISTRY,
    consecutive_failures = 2,
    classify = overloaded_is_failure,
)]
async fn chat(body: &str) -> Result<String, ApiError> {
    Ok(body.to_owned())
}

fn state(provider: &str) -> String {
    REGISTRY
        .get(provider, DEFAULT_TENANT)
        .map_or("-".into(), |c| c.state().to_string())
}

fn show<T: std::fmt::Debug>(result: &Result<T, ApiError>) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(ApiError::Rejected(open)) => format!("rejected: {open}"),
        Err(ApiError::Status(code)) => format!(
            "HTTP {code} -> {:?}",
            ErrorClass::from_status(*code).outcome()
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for status in [401, 401, 401, 503, 503, 401] {
        let result = login(status).await;
        println!(
            "login -> {:<70} auth-api: {}",
            show(&result),
            state("auth-api")
        );
    }
    println!();
    for body in [
        "hello",
        "overloaded, try later",
        "overloaded, try later",
        "hello",
    ] {
        let result = chat(body).await;
        println!(
            "chat  -> {:<70} chat-api: {}",
            show(&result),
            state("chat-api")
        );
    }
}
