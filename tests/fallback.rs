//! `fallback = path`: a rejected call returns the fallback's result, computed from the same
//! arguments plus the rejection; the body does not run.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());
/// One counter per test: the tests run in parallel, so a shared one would see the other's runs.
static FREE_FN_RUNS: AtomicU32 = AtomicU32::new(0);
static METHOD_RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, PartialEq)]
struct Down;

async fn cached(prompt: String, attempt: u32, open: CircuitOpen) -> Result<String, Down> {
    Ok(format!("cached {prompt} #{attempt} ({})", open.provider()))
}

/// No `From<CircuitOpen>` on the error type: the fallback makes it unnecessary.
#[circuit_breaker(provider = "fb", registry = &REGISTRY, consecutive_failures = 1, fallback = cached)]
async fn complete(prompt: String, attempt: u32) -> Result<String, Down> {
    FREE_FN_RUNS.fetch_add(1, Ordering::SeqCst);
    if prompt == "fail" {
        Err(Down)
    } else {
        Ok(format!("live {prompt} #{attempt}"))
    }
}

struct Client {
    tenant: String,
}

impl Client {
    #[circuit_breaker(
        provider = "fb-method",
        tenant = self.tenant.as_str(),
        registry = &REGISTRY,
        consecutive_failures = 1,
        fallback = Self::stale,
    )]
    fn lookup(&self, key: &str) -> Result<String, Down> {
        METHOD_RUNS.fetch_add(1, Ordering::SeqCst);
        if key == "fail" {
            Err(Down)
        } else {
            Ok(format!("{}:{key}", self.tenant))
        }
    }

    fn stale(&self, key: &str, open: CircuitOpen) -> Result<String, Down> {
        assert_eq!(open.tenant(), self.tenant);
        Ok(format!("stale {key}"))
    }
}

#[tokio::test]
async fn async_fallback_is_awaited_and_the_body_skipped() {
    assert_eq!(complete("fail".into(), 1).await, Err(Down));
    assert_eq!(FREE_FN_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(complete("hi".into(), 2).await.unwrap(), "cached hi #2 (fb)");
    assert_eq!(
        FREE_FN_RUNS.load(Ordering::SeqCst),
        1,
        "the body did not run"
    );
}

#[test]
fn method_fallback_gets_self_first() {
    let c = Client {
        tenant: "acme".into(),
    };
    assert_eq!(c.lookup("fail"), Err(Down));
    assert_eq!(c.lookup("k").unwrap(), "stale k");
    assert_eq!(
        METHOD_RUNS.load(Ordering::SeqCst),
        1,
        "the body did not run"
    );
    let other = Client {
        tenant: "globex".into(),
    };
    assert_eq!(other.lookup("k").unwrap(), "globex:k");
}
