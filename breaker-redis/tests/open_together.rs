//! Behaviour 1: when one replica's circuit opens, every replica of the namespace rejects that
//! (provider, tenant), for what is left of that open period, including replicas that start
//! later; other tenants and namespaces are untouched; a success after the period closes them all.

mod support;

use std::time::Duration;

use breaker_core::State;
use support::{becomes, connected, eventually, incident_keys, RedisServer, BOUND};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_open_together_for_what_is_left_of_the_period() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, _) = connected(&server.url(), "checkout", open_for).await;
    let (other, _) = connected(&server.url(), "billing", open_for).await;
    // `b` has a circuit for acme already; `c` will have none until after the opening.
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    let local = a.circuit("openai", "acme").retry_after().unwrap();

    assert!(
        becomes(&b, "openai", "acme", State::Open).await,
        "b never opened"
    );
    let rejected = b.acquire("openai", "acme", None).unwrap_err();
    let left = rejected.retry_after().unwrap();
    assert!(
        // The circuits' coarse clocks may read a period a few milliseconds long, never short.
        left <= local + Duration::from_millis(50) && left > local - Duration::from_secs(5),
        "what is left of a's period ({local:?}), not a new one: {left:?}"
    );

    // A replica that starts later rejects too, though it never called acme.
    let (c, _) = connected(&server.url(), "checkout", open_for).await;
    assert!(
        eventually(BOUND, || c.acquire("openai", "acme", None).is_err()).await,
        "a replica started later did not resync"
    );
    assert!(
        c.circuit("openai", "acme").retry_after().unwrap() <= local + Duration::from_millis(50)
    );

    // Untouched: another tenant, another provider, another namespace.
    assert_eq!(b.circuit("openai", "globex").state(), State::Closed);
    assert_eq!(b.circuit("anthropic", "acme").state(), State::Closed);
    assert_eq!(other.circuit("openai", "acme").state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_probe_closes_every_replica() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open_for = Duration::from_millis(500);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, _) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);

    // After a's period (b's own config would stay open 30 s: it follows the fleet's period),
    // one of them probes; its success closes both.
    let start = std::time::Instant::now();
    let probe = loop {
        assert!(start.elapsed() < BOUND, "nobody probed");
        if let Some(p) = [&a, &b]
            .iter()
            .find_map(|r| r.acquire("openai", "acme", None).ok())
        {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.success();
    assert!(
        becomes(&a, "openai", "acme", State::Closed).await,
        "a did not close"
    );
    assert!(
        becomes(&b, "openai", "acme", State::Closed).await,
        "b did not close"
    );
    let keys = incident_keys(&server).await;
    assert!(keys.is_empty(), "the opening's key went with it: {keys:?}");
}
