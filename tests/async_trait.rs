//! `#[circuit_breaker]` inside `#[async_trait]` impls: trips, rejects without running the body,
//! reads the tenant from `self`, and keeps the future `Send`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());

#[derive(Debug)]
enum Error {
    Open(CircuitOpen),
    Down,
}

impl From<CircuitOpen> for Error {
    fn from(e: CircuitOpen) -> Self {
        Error::Open(e)
    }
}

#[async_trait]
trait Provider: Send + Sync {
    async fn complete(&self, prompt: String) -> Result<String, Error>;
}

struct Flaky {
    tenant: String,
    runs: AtomicU32,
}

#[async_trait]
impl Provider for Flaky {
    #[circuit_breaker(
        provider = "async-trait",
        tenant = self.tenant.as_str(),
        registry = &REGISTRY,
        consecutive_failures = 2
    )]
    async fn complete(&self, prompt: String) -> Result<String, Error> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if prompt == "fail" {
            return Err(Error::Down);
        }
        Ok(format!("{}: {prompt}", self.tenant))
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn works_through_async_trait() {
    let acme: Arc<dyn Provider> = Arc::new(Flaky {
        tenant: "acme".into(),
        runs: AtomicU32::new(0),
    });
    let flaky = Flaky {
        tenant: "globex".into(),
        runs: AtomicU32::new(0),
    };

    assert_eq!(
        assert_send(acme.complete("hi".into())).await.unwrap(),
        "acme: hi"
    );
    for _ in 0..2 {
        assert!(matches!(
            flaky.complete("fail".into()).await,
            Err(Error::Down)
        ));
    }
    assert_eq!(
        REGISTRY.get("async-trait", "globex").unwrap().state(),
        State::Open
    );
    match flaky.complete("hi".into()).await {
        Err(Error::Open(open)) => assert_eq!(open.tenant(), "globex"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        flaky.runs.load(Ordering::SeqCst),
        2,
        "rejected call ran the body"
    );
    assert!(
        acme.complete("again".into()).await.is_ok(),
        "acme is unaffected"
    );
}
