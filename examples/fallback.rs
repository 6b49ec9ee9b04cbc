//! `fallback = path`: while the circuit is open, answer from a cache instead of failing.
//!
//! ```text
//! cargo run --example fallback
//! ```

use std::sync::LazyLock;
use std::time::Duration;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry};

static CLOCK: LazyLock<ManualClock> = LazyLock::new(ManualClock::new);
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(CLOCK.clone()).build());

#[derive(Debug)]
struct Timeout;

/// Same arguments as `forecast`, plus the rejection; same return type. No `From<CircuitOpen>`
/// is needed on `Timeout`: a rejected call never becomes an error.
async fn cached_forecast(city: &str, open: CircuitOpen) -> Result<String, Timeout> {
    let wait = open.retry_after().unwrap_or_default();
    Ok(format!(
        "{city}: cloudy (cached; live data again in {wait:?})"
    ))
}

#[circuit_breaker(
    provider = "weather",
    registry = &REGISTRY,
    consecutive_failures = 2,
    open_for = "30s",
    fallback = cached_forecast,
)]
async fn forecast(city: &str) -> Result<String, Timeout> {
    // The live service is down for the first 40 simulated seconds.
    if CLOCK.elapsed() < Duration::from_secs(40) {
        Err(Timeout)
    } else {
        Ok(format!("{city}: sunny (live)"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for _ in 0..8 {
        let t = CLOCK.elapsed().as_secs();
        match forecast("Lisbon").await {
            Ok(text) => println!("t={t:>3}s  {text}"),
            Err(Timeout) => println!("t={t:>3}s  timed out"),
        }
        CLOCK.advance(Duration::from_secs(10));
    }
}
