//! Issue 19, item 6: a provider-wide circuit in a fleet on a real store. Its opening (made on one
//! replica by the pooled outcomes of its tenants) reaches every replica, which then reject every
//! tenant of the provider; after the period one replica probes for the whole fleet and the
//! provider (the lease of the circuit `(provider, "*")`), and its success closes every replica.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, ProviderWide, Registry, RegistryBuilder, State};
use breaker_redis::RedisFleet;
use support::{eventually, replica_of, RedisServer, BOUND};

async fn fleet_of(server: &RedisServer, n: usize) -> Vec<Registry> {
    let wide = ProviderWide::builder()
        .minimum_calls(3)
        .distinct_tenants(3)
        .open_for(Duration::from_millis(800))
        .probe_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..n {
        let (registry, health) = replica_of(
            RedisFleet::builder(server.url()).namespace("checkout"),
            RegistryBuilder::default()
                .default_config(Config::builder().consecutive_failures(5).build().unwrap())
                .provider_wide("openai", wide.clone()),
        )
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(registry);
    }
    fleet
}

fn wide_state(r: &Registry) -> State {
    r.provider_circuit("openai").unwrap().state()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_per_fleet_for_the_provider_and_its_success_closes_every_replica() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3).await;
    for t in ["a", "b", "c"] {
        fleet[0].acquire("openai", t, None).unwrap().failure();
    }
    assert_eq!(wide_state(&fleet[0]), State::Open);
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            eventually(BOUND, || r
                .acquire("openai", &format!("new-{i}"), None)
                .is_err_and(|e| e.is_provider_wide()))
            .await,
            "replica {i} rejects provider-wide"
        );
    }
    // One probe for the whole fleet, whichever replica and tenant call first.
    let start = Instant::now();
    let (prober, probe) = loop {
        assert!(start.elapsed() < BOUND, "no replica ever probed");
        let admitted = fleet.iter().enumerate().find_map(|(i, r)| {
            r.acquire("openai", &format!("t{i}"), None)
                .ok()
                .map(|p| (i, p))
        });
        if let Some(found) = admitted {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        for (i, r) in fleet.iter().enumerate() {
            assert!(
                r.acquire("openai", "other", None).is_err(),
                "replica {i} let a second call through while {prober} probes"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    probe.success();
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            eventually(BOUND, || wide_state(r) == State::Closed).await,
            "replica {i}"
        );
        r.acquire("openai", "after", None).unwrap().success();
    }
}
