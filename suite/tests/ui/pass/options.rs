//! Every argument at once, including `crate` for a renamed dependency and `registry` from a
//! `LazyLock`.
use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, Outcome, Registry};

mod renamed {
    pub use breaker::*;
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

#[derive(Debug)]
pub struct Error;
impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

fn classify(r: &Result<u32, Error>) -> Outcome {
    match r {
        Ok(503) => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Ignored,
    }
}

fn fallback(_tenant: &str, _n: u32, _open: CircuitOpen) -> Result<u32, Error> {
    Ok(0)
}

#[circuit_breaker(
    provider = "everything",
    tenant = tenant,
    registry = &REGISTRY,
    consecutive_failures = 3,
    failure_rate = 0.5,
    window = "60s",
    minimum_calls = 20,
    slow_call = "2s",
    slow_call_rate = 0.8,
    open_for = "250ms",
    max_open_for = "1h",
    backoff = 1.5,
    jitter = 0.1,
    half_open_probes = 3,
    half_open_successes = 2,
    on_abandoned = "ignored",
    classify = classify,
    fallback = fallback,
    crate = renamed,
)]
pub fn everything(tenant: &str, n: u32) -> Result<u32, Error> {
    Ok(n)
}

#[circuit_breaker(
    provider = "window-calls",
    window = 20,
    slow_call = "1m30s",
    crate = "crate::renamed"
)]
pub async fn count_window() -> Result<(), Error> {
    Ok(())
}

#[circuit_breaker(provider = "global", registry = Registry::global(), on_abandoned = "success")]
pub async fn global() -> Result<(), Error> {
    Ok(())
}

fn main() {
    let _ = everything("t", 1);
    let _ = count_window();
    let _ = global();
}
