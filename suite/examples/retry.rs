//! Retries and a circuit breaker, composed the right way round.
//!
//! - *Inside* the breaker, [backon](https://docs.rs/backon) retries transient 503s up to 3
//!   attempts, 100 ms apart. The whole retry budget runs under one permit, so the circuit sees one
//!   outcome per logical call: a blip absorbed by a retry is one success, and three failed
//!   attempts are one failure.
//! - *Outside* it, the caller's loop retries only rejections, and not on its own schedule:
//!   backon's `adjust` hook sleeps for `retry_after_hint(err)`, the time the circuit says is left
//!   until a probe may pass. No call is sent while the circuit is open.
//!
//! The provider is down from t = 1 s to t = 50 s. Time is a `ManualClock` that backon's sleeps
//! advance, so the demo runs instantly and prints the same timeline every time.
//!
//! ```text
//! cargo run -p breaker-suite --example retry
//! ```

use std::fmt;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ConstantBuilder, Retryable};
use breaker::{
    circuit_breaker, retry_after_hint, CircuitOpen, Classify, ManualClock, Outcome, Registry,
};

#[derive(Debug)]
enum ApiError {
    /// The breaker rejected the call: the provider was not called.
    Open(CircuitOpen),
    /// The provider answered 503.
    Unavailable,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Open(open) => write!(f, "{open}"),
            ApiError::Unavailable => f.write_str("503 Service Unavailable"),
        }
    }
}

/// The rejection is the source, so `retry_after_hint` finds it.
impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::Open(open) => Some(open),
            ApiError::Unavailable => None,
        }
    }
}

impl From<CircuitOpen> for ApiError {
    fn from(open: CircuitOpen) -> Self {
        ApiError::Open(open)
    }
}

impl Classify for ApiError {
    fn classify(&self) -> Outcome {
        match self {
            ApiError::Open(_) => Outcome::Ignored,
            ApiError::Unavailable => Outcome::Failure,
        }
    }
}

/// The provider, down from t = 1 s to t = 50 s, with one blip at t = 0.
struct Provider {
    clock: ManualClock,
    attempts: AtomicUsize,
    blips: AtomicUsize,
}

impl Provider {
    async fn attempt(&self) -> Result<&'static str, ApiError> {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.clock.elapsed();
        let down = (Duration::from_secs(1)..Duration::from_secs(50)).contains(&now);
        let blip = self
            .blips
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok();
        let result = if down || blip {
            Err(ApiError::Unavailable)
        } else {
            Ok("completion")
        };
        match &result {
            Ok(body) => println!("{}    attempt #{n}: {body}", at(now)),
            Err(e) => println!("{}    attempt #{n}: {e}", at(now)),
        }
        result
    }
}

fn at(t: Duration) -> String {
    format!("t={:>6.1}s", t.as_secs_f64())
}

/// A backon sleeper that advances the circuit's clock instead of waiting.
fn sleeper(clock: &ManualClock) -> impl Fn(Duration) -> Ready<()> + 'static {
    let clock = clock.clone();
    move |d| {
        clock.advance(d);
        ready(())
    }
}

/// One logical call: one permit of the (`llm`, `acme`) circuit covers up to 3 attempts. Trips
/// after 2 failed logical calls; open 30 s, then 60 s.
#[circuit_breaker(
    provider = "llm",
    tenant = "acme",
    registry = registry,
    consecutive_failures = 2,
    open_for = "30s",
)]
async fn complete(
    registry: &Registry,
    provider: &Provider,
    clock: &ManualClock,
) -> Result<&'static str, ApiError> {
    (|| provider.attempt())
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_millis(100))
                .with_max_times(2),
        )
        .when(|e| matches!(e, ApiError::Unavailable))
        .sleep(sleeper(clock))
        .await
}

/// A user request: the caller comes back after a rejection when the circuit says, never sooner.
async fn request(
    registry: &Registry,
    provider: &Provider,
    clock: &ManualClock,
) -> Result<&'static str, ApiError> {
    (|| complete(registry, provider, clock))
        .retry(ConstantBuilder::default().with_max_times(3))
        .when(|e| matches!(e, ApiError::Open(_)))
        .adjust(|e, backoff| retry_after_hint(e).or(backoff))
        .notify(|e, d| println!("{}  {e}; coming back in {d:?}", at(clock.elapsed())))
        .sleep(sleeper(clock))
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let clock = ManualClock::new();
    let registry = Registry::builder().clock(clock.clone()).build();
    let provider = Provider {
        clock: clock.clone(),
        attempts: AtomicUsize::new(0),
        blips: AtomicUsize::new(1),
    };

    for i in 1..=5 {
        if i == 2 {
            clock.advance(Duration::from_secs(1));
        }
        println!("{}  request {i}", at(clock.elapsed()));
        let result = request(&registry, &provider, &clock).await;
        let circuit = registry.circuit("llm", "acme");
        let outcome = match result {
            Ok(body) => format!("ok: {body}"),
            Err(e) => format!("failed: {e}"),
        };
        let streak = match circuit.metrics().consecutive_failures {
            0 => String::new(),
            n => format!(", {n} failed call(s) in a row"),
        };
        println!(
            "{}  request {i} {outcome} (circuit {}{streak})",
            at(clock.elapsed()),
            circuit.state(),
        );
    }

    let m = registry.circuit("llm", "acme").metrics();
    println!(
        "\n{} attempts reached the provider for 5 requests; the circuit opened {} times and \
         rejected {} calls, each retried once its retry_after had passed.",
        provider.attempts.load(Ordering::Relaxed),
        m.times_opened,
        m.rejected,
    );
}
