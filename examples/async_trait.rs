//! `#[circuit_breaker]` on methods of an `#[async_trait]` impl, called through `dyn Provider`.
//!
//! Put `#[async_trait]` on the impl and `#[circuit_breaker]` on the method; the attribute
//! recognises the boxed future async-trait writes and wraps only its body.
//!
//! ```text
//! cargo run --example async_trait
//! ```

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

#[derive(Debug)]
enum Error {
    Rejected(CircuitOpen),
    Failed(String),
}

impl From<CircuitOpen> for Error {
    fn from(open: CircuitOpen) -> Self {
        Error::Rejected(open)
    }
}

#[async_trait]
trait Provider: Send + Sync {
    fn name(&self) -> &str;
    async fn complete(&self, prompt: String) -> Result<String, Error>;
}

/// Fails every call after the first two.
struct Flaky {
    calls: AtomicU32,
}

#[async_trait]
impl Provider for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    #[circuit_breaker(provider = "flaky", registry = &REGISTRY, consecutive_failures = 2)]
    async fn complete(&self, prompt: String) -> Result<String, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n > 2 {
            return Err(Error::Failed(format!("call #{n} failed")));
        }
        Ok(format!("call #{n}: {}", prompt.to_uppercase()))
    }
}

struct Steady;

#[async_trait]
impl Provider for Steady {
    fn name(&self) -> &str {
        "steady"
    }

    #[circuit_breaker(provider = "steady", registry = &REGISTRY)]
    async fn complete(&self, prompt: String) -> Result<String, Error> {
        Ok(prompt)
    }
}

#[tokio::main]
async fn main() {
    let providers: Vec<Arc<dyn Provider>> = vec![
        Arc::new(Flaky {
            calls: AtomicU32::new(0),
        }),
        Arc::new(Steady),
    ];
    for i in 1..=5 {
        for p in &providers {
            // The futures are `Send`: spawn them on the multi-threaded runtime.
            let task = tokio::spawn({
                let p = p.clone();
                async move { p.complete(format!("hello {i}")).await }
            });
            let shown = match task.await.expect("task panicked") {
                Ok(text) => text,
                Err(Error::Failed(why)) => format!("error: {why}"),
                Err(Error::Rejected(open)) => format!("rejected: {open}"),
            };
            println!("{i}  {:<6} {shown}", p.name());
        }
    }
}
