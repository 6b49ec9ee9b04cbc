//! Issue 23, item 5, end to end: 100,000 tenants fail while the store is dead. Every call goes
//! through (nothing on the call path waits for the store), the evidence kept for the store's
//! return stays bounded (65,536 circuits watched at most, the rest dropped and counted), and a
//! store that comes back after the evidence went stale gets no burst of trips from it.

mod support;

use std::time::Duration;

use breaker_core::{Config, Registry, State};
use breaker_redis::FleetHealth;
use support::{eventually, replica_configured, RedisServer, BOUND};

const TENANTS: usize = 100_000;
/// `evidence.rs`'s `MAX_WATCHED`, and the provider those tenants belong to.
const MOST_WATCHED: u64 = (1 << 16) + 1;
/// `evidence.rs`'s `WATCH_FOR`: evidence older than this is never written.
const WATCH_FOR: Duration = Duration::from_secs(10);

/// Two failures in a row trip: one failure on each of two replicas would trip the fleet.
async fn member(url: &str) -> (Registry, FleetHealth) {
    let config = Config::builder()
        .consecutive_failures(2)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    let (registry, health) = replica_configured(url, "checkout", config, |b| b).await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    (registry, health)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_tenants_failing_while_the_store_is_dead_stay_bounded_and_go_stale() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let (a, a_health) = member(&server.url()).await;
    let (b, b_health) = member(&server.url()).await;
    server.kill();
    assert!(
        eventually(BOUND, || !a_health.is_connected()
            && !b_health.is_connected())
        .await
    );
    let names: Vec<String> = (0..TENANTS).map(|t| format!("t{t}")).collect();
    for registry in [&a, &b] {
        for tenant in &names {
            // Never refused, never an error: the store is nowhere on the call path.
            registry
                .acquire("openai", tenant, None)
                .expect("a closed circuit admits")
                .failure();
        }
    }
    for (name, health) in [("a", &a_health), ("b", &b_health)] {
        // Every failure is either watched (one entry per circuit) or dropped and counted.
        assert!(
            eventually(BOUND, || health.watched() + health.evidence_dropped()
                >= TENANTS as u64)
            .await,
            "{name}: {health:?}"
        );
        assert!(health.watched() <= MOST_WATCHED, "{name}: {health:?}");
        assert!(health.evidence_dropped() > 0, "{name}: {health:?}");
        assert_eq!(health.evidence_reports(), 0, "{name}: the store is dead");
    }
    // The store stays away longer than evidence counts.
    tokio::time::sleep(WATCH_FOR + Duration::from_secs(1)).await;
    let server = RedisServer::start_on(port).expect("restarted");
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);
    for (name, health) in [("a", &a_health), ("b", &b_health)] {
        assert!(
            eventually(BOUND, || health.watched() == 0).await,
            "{name} still watches stale evidence: {health:?}"
        );
        assert_eq!(
            health.evidence_reports(),
            0,
            "{name} wrote stale evidence: {health:?}"
        );
    }
    // One failure of each tenant on each replica, pooled, would have opened them all.
    assert!(support::incident_keys(&server).await.is_empty());
    for registry in [&a, &b] {
        for tenant in names.iter().step_by(997) {
            assert_eq!(registry.circuit("openai", tenant).state(), State::Closed);
        }
    }
    // And the fleet goes on pooling what is new.
    a.acquire("openai", "fresh", None).unwrap().failure();
    b.acquire("openai", "fresh", None).unwrap().failure();
    for registry in [&a, &b] {
        assert!(
            support::becomes(registry, "openai", "fresh", State::Open).await,
            "new evidence was not pooled after the store's return"
        );
    }
}
