//! Behaviour 5: a versioned key layout under the namespace; every key has a TTL (open period +
//! margin); only circuits that open create keys; no tenant name reaches another circuit's key or
//! another namespace.

mod support;

use std::time::Duration;

use breaker_core::State;
use redis::aio::MultiplexedConnection;
use support::{becomes, connected, eventually, RedisServer, BOUND};

async fn keys(conn: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_openings_make_keys_each_with_a_ttl_of_period_plus_margin() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut conn = server.admin().await;
    let (a, health) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    for tenant in ["healthy-1", "healthy-2"] {
        a.acquire("openai", tenant, None).unwrap().success();
        a.acquire("openai", tenant, None).unwrap().ignore();
    }
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || health.published() == 1).await);
    assert_eq!(
        keys(&mut conn).await,
        ["breaker:v1:checkout:{openai:acme}:open"]
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("breaker:v1:checkout:{openai:acme}:open")
        .query_async(&mut conn)
        .await
        .unwrap();
    // 30 s open + 60 s default margin (the circuit's coarse clock may read the period a few
    // milliseconds long, never short).
    assert!(pttl > 80_000 && pttl <= 90_050, "{pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tenant_names_reach_only_their_own_circuit() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut conn = server.admin().await;
    let open_for = Duration::from_secs(30);
    let (a, a_health) = connected(&server.url(), "checkout", open_for).await;
    let (b, _) = connected(&server.url(), "checkout", open_for).await;
    let (other, _) = connected(&server.url(), "checkout:x", open_for).await;
    let long = "{}:\n".repeat(256); // 1 KiB of separators and braces
    let hostile = [
        "acme}:open",
        "{acme}",
        "acme:open\nbreaker:v1:checkout:{openai:acme}:open",
        "x} {openai:acme",
        "*",
        "acme ",
        long.as_str(),
    ];
    for tenant in hostile {
        a.circuit("openai", tenant).try_acquire().unwrap().failure();
    }
    assert!(eventually(BOUND, || a_health.published() == hostile.len() as u64).await);
    let stored = keys(&mut conn).await;
    assert_eq!(stored.len(), hostile.len(), "{stored:?}");
    for key in &stored {
        assert!(key.starts_with("breaker:v1:checkout:{openai:"), "{key}");
        assert!(key.ends_with("}:open"), "{key}");
        assert_eq!(key.matches('{').count(), 1, "one hash tag: {key}");
        assert_eq!(key.matches('}').count(), 1, "one hash tag: {key}");
        assert!(!key.contains(['\n', ' ', '*']), "{key}");
    }
    for tenant in hostile {
        assert!(
            becomes(&b, "openai", tenant, State::Open).await,
            "{tenant:?}"
        );
    }
    // The tenants whose names the hostile ones imitate, and the namespace "checkout:x".
    for tenant in ["acme", "x", "open", ""] {
        assert_eq!(
            b.circuit("openai", tenant).state(),
            State::Closed,
            "{tenant:?}"
        );
    }
    assert_eq!(b.len(), hostile.len() + 4);
    for tenant in hostile {
        assert_eq!(other.circuit("openai", tenant).state(), State::Closed);
    }
}
