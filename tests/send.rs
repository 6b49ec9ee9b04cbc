//! The future of an annotated `async fn` is `Send` (and `'static` with owned arguments), so it
//! can be spawned on a multi-threaded runtime.

use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

#[derive(Debug)]
struct Error;

impl From<CircuitOpen> for Error {
    fn from(_: CircuitOpen) -> Self {
        Error
    }
}

#[circuit_breaker(provider = "spawned", tenant = tenant.as_str(), registry = &REGISTRY, slow_call = "1s")]
async fn work(tenant: String, n: u32) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(n * 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_can_be_spawned() {
    let handles: Vec<_> = (0..8)
        .map(|i| tokio::spawn(work(format!("t{}", i % 2), i)))
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap().unwrap();
    }
    assert_eq!(total, 56);
    assert_eq!(REGISTRY.len(), 2);
}

static FALLBACK_REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

async fn spare(tenant: &str, n: u32, _open: CircuitOpen) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(n + u32::try_from(tenant.len()).unwrap_or(0))
}

#[circuit_breaker(provider = "spawned-fallback", tenant = tenant, registry = &FALLBACK_REGISTRY, fallback = spare)]
async fn work_with_fallback(tenant: &str, n: u32) -> Result<u32, Error> {
    tokio::task::yield_now().await;
    Ok(n)
}

/// The fallback's future is awaited inside the annotated function's: it stays `Send` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_with_an_async_fallback_can_be_spawned() {
    FALLBACK_REGISTRY
        .circuit("spawned-fallback", "acme")
        .force_open();
    let spawned = tokio::spawn(async { work_with_fallback("acme", 1).await });
    assert_eq!(spawned.await.unwrap().unwrap(), 5, "the fallback's answer");
}
