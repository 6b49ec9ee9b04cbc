//! Issue 23, item 6: a provider-wide circuit's pooled evidence is shared by the fleet as a tenant
//! circuit's is. Each replica reports its pooled window (calls, failures, the hashes of its
//! distinct failing tenants) under `(provider, "*")`; the store sums the windows, unions the
//! tenant sets, and trips the fleet's provider circuit: on failures spread so thin that no
//! replica trips alone, never on fewer distinct tenants than required across the fleet, and
//! never on a cut-off replica's late counts after the fleet recovered.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use breaker_core::{Config, ProviderWide, Registry, RegistryBuilder, State};
use breaker_redis::{FleetHealth, RedisFleet};
use redis::AsyncCommands;
use support::{eventually, replica_of, Proxy, RedisServer, BOUND};

const EVIDENCE: &str = "breaker:v1:checkout:{openai:%2A}:evidence";
const OPENING: &str = "breaker:v1:checkout:{openai:%2A}:open";

/// Trips on 8 pooled calls, half failing, from 4 distinct tenants; tenant circuits on 5 in a row
/// (never reached here: each tenant fails once per replica).
fn wide() -> ProviderWide {
    ProviderWide::builder()
        .minimum_calls(8)
        .distinct_tenants(4)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn member(url: &str) -> (Registry, FleetHealth) {
    let (registry, health) = replica_of(
        RedisFleet::builder(url).namespace("checkout"),
        RegistryBuilder::default()
            .default_config(Config::builder().consecutive_failures(5).build().unwrap())
            .provider_wide("openai", wide()),
    )
    .await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    (registry, health)
}

fn fail(registry: &Registry, tenant: &str) {
    registry
        .acquire("openai", tenant, None)
        .expect("closed")
        .failure();
}

fn wide_state(registry: &Registry) -> State {
    registry.provider_circuit("openai").unwrap().state()
}

async fn evidence(server: &RedisServer) -> HashMap<String, String> {
    let mut conn = server.admin().await;
    conn.hgetall(EVIDENCE).await.unwrap_or_default()
}

/// Waits until `n` replicas' fields `prefix:*` in the provider's evidence read `value`.
async fn pooled(server: &RedisServer, prefix: &str, value: &str, n: usize) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < BOUND {
        let found = evidence(server)
            .await
            .iter()
            .filter(|(k, v)| {
                k.strip_prefix(prefix).is_some_and(|r| r.starts_with(':')) && v.as_str() == value
            })
            .count();
        if found >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn opening_stored(server: &RedisServer) -> bool {
    let mut conn = server.admin().await;
    conn.exists(OPENING).await.unwrap()
}

async fn all_reject(fleet: &[&Registry]) {
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            eventually(BOUND, || wide_state(r) == State::Open).await,
            "replica {i}'s provider circuit never opened"
        );
        assert!(r
            .acquire("openai", "someone-new", None)
            .is_err_and(|e| e.is_provider_wide()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_trips_provider_wide_on_failures_no_replica_trips_on_alone() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut fleet = Vec::new();
    for _ in 0..4 {
        fleet.push(member(&server.url()).await);
    }
    // Two tenants per replica: 2 pooled calls of the 8 a replica needs alone.
    for (i, (r, _)) in fleet.iter().enumerate() {
        fail(r, &format!("r{i}-a"));
        fail(r, &format!("r{i}-b"));
        if i < 3 {
            assert!(
                pooled(&server, "f", "2", i + 1).await,
                "replica {i}'s report"
            );
            assert_eq!(wide_state(r), State::Closed);
        }
    }
    let replicas: Vec<&Registry> = fleet.iter().map(|(r, _)| r).collect();
    all_reject(&replicas).await;
    assert!(
        evidence(&server).await.is_empty(),
        "a trip spends the evidence"
    );
    for (i, (r, health)) in fleet.iter().enumerate() {
        let (calls, failures, _) = r.provider_wide_totals("openai").unwrap_or_default();
        assert!(
            calls < 8 && failures < 8,
            "replica {i} pooled {calls} alone"
        );
        assert!(health.evidence_reports() >= 1, "replica {i}: {health:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_distinct_tenants_than_required_across_the_fleet_do_not_trip_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut fleet = Vec::new();
    for _ in 0..4 {
        fleet.push(member(&server.url()).await.0);
    }
    // 8 failing calls of the fleet, but from 2 tenants (each replica's same two).
    for r in &fleet {
        fail(r, "a");
        fail(r, "b");
    }
    assert!(pooled(&server, "f", "2", 4).await);
    assert!(
        !opening_stored(&server).await,
        "two tenants opened the provider"
    );
    assert!(fleet.iter().all(|r| wide_state(r) == State::Closed));
    // Two more tenants, on one replica: the union holds four.
    fail(&fleet[0], "c");
    fail(&fleet[0], "d");
    all_reject(&fleet.iter().collect::<Vec<_>>()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_replicas_late_pooled_window_does_not_reopen_a_recovered_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let (a, _) = member(&server.url()).await;
    let (b, _) = member(&server.url()).await;
    let (p, p_health) = member(&proxy.url()).await;
    proxy.cut();
    assert!(eventually(BOUND, || !p_health.is_connected()).await);
    // p sees four tenants fail, and cannot write it.
    for t in ["p1", "p2", "p3", "p4"] {
        fail(&p, t);
    }
    // The fleet's incident (a trips alone), and its end, while p is away.
    for i in 0..8 {
        fail(&a, &format!("x{i}"));
    }
    assert_eq!(wide_state(&a), State::Open);
    assert!(eventually(BOUND, || wide_state(&b) == State::Open).await);
    a.provider_circuit("openai").unwrap().reset();
    assert!(eventually(BOUND, || wide_state(&b) == State::Closed).await);
    proxy.heal();
    assert!(eventually(BOUND, || p_health.is_connected()).await);
    // p reports its window, made before the end: baselined, not pooled.
    assert!(
        pooled(&server, "bf", "4", 1).await,
        "p's late report never came"
    );
    for t in ["y1", "y2", "y3", "y4"] {
        fail(&b, t);
    }
    assert!(pooled(&server, "f", "4", 2).await);
    // p's 4 and b's 4 would be 8 calls from 8 tenants: a trip, if p's late counts pooled.
    assert!(
        !opening_stored(&server).await,
        "p's late counts reopened the recovered fleet"
    );
    assert_eq!(wide_state(&b), State::Closed);
    // What p sees after its return counts: 2 more there, 2 more on b (6 each alone).
    fail(&p, "p5");
    fail(&p, "p6");
    fail(&b, "y5");
    fail(&b, "y6");
    all_reject(&[&a, &b, &p]).await;
}
