//! `tenant = ..`: one circuit per (provider, tenant); one tenant's failures never reject another.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::LazyLock;

use breaker::{circuit_breaker, CircuitOpen, ManualClock, Registry, State};

static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| Registry::builder().clock(ManualClock::new()).build());
static RUNS: AtomicU32 = AtomicU32::new(0);

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

struct Scope {
    tenant_id: String,
}

#[circuit_breaker(
    provider = "llm",
    tenant = scope.tenant_id.as_str(),
    registry = &REGISTRY,
    consecutive_failures = 2
)]
async fn complete(scope: &Scope, prompt: String) -> Result<String, Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if prompt == "fail" {
        Err(Error::Down)
    } else {
        Ok(format!("{}: {prompt}", scope.tenant_id))
    }
}

/// The tenant is an owned argument that the body moves: it is read before the move.
#[circuit_breaker(provider = "llm-owned", tenant = tenant, registry = &REGISTRY, consecutive_failures = 1)]
async fn owned(tenant: String) -> Result<String, Error> {
    if tenant == "bad" {
        Err(Error::Down)
    } else {
        Ok(tenant)
    }
}

#[tokio::test]
async fn tenants_are_isolated() {
    let acme = Scope {
        tenant_id: "acme".into(),
    };
    let globex = Scope {
        tenant_id: "globex".into(),
    };

    for _ in 0..2 {
        assert!(matches!(
            complete(&acme, "fail".into()).await,
            Err(Error::Down)
        ));
    }
    assert_eq!(REGISTRY.get("llm", "acme").unwrap().state(), State::Open);
    let before = RUNS.load(Ordering::SeqCst);
    match complete(&acme, "hello".into()).await {
        Err(Error::Open(open)) => assert_eq!(open.tenant(), "acme"),
        other => panic!("expected acme to be rejected, got {other:?}"),
    }
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        before,
        "rejected call ran the body"
    );

    assert_eq!(
        complete(&globex, "hello".into()).await.unwrap(),
        "globex: hello"
    );
    assert_eq!(
        REGISTRY.get("llm", "globex").unwrap().state(),
        State::Closed
    );
}

#[tokio::test]
async fn an_owned_tenant_is_read_before_the_body_moves_it() {
    assert!(owned("bad".into()).await.is_err());
    assert_eq!(
        REGISTRY.get("llm-owned", "bad").unwrap().state(),
        State::Open
    );
    assert_eq!(owned("good".into()).await.unwrap(), "good");
    assert!(matches!(owned("bad".into()).await, Err(Error::Open(_))));
}
