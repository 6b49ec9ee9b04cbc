//! The fleet against Valkey (`valkey-server`, the Linux Foundation's fork of Redis 7.2): the
//! same commands, scripts and pub/sub, run end to end (CI installs it: `.ci/run`).

mod support;

use std::time::Duration;

use breaker_core::State;
use support::{
    becomes, connected, eventually, incident_keys, replica, replica_with, Proxy, RedisServer, BOUND,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_valkey_replicas_open_together_probe_once_and_close_together() {
    let Some(server) = RedisServer::start_valkey() else {
        return;
    };
    let (a, _) = connected(&server.url(), "checkout", Duration::from_millis(600)).await;
    let (b, _) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    let left = b.circuit("openai", "acme").retry_after().unwrap();
    // What is left of a's 600 ms (read on a coarse clock, so a few ms high at most), not b's 30 s.
    assert!(
        left < Duration::from_secs(1),
        "a's period, not b's own: {left:?}"
    );
    assert_eq!(b.circuit("openai", "globex").state(), State::Closed);

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
    for r in [&a, &b] {
        assert!(r.acquire("openai", "acme", None).is_err(), "a second probe");
    }
    probe.success();
    assert!(becomes(&a, "openai", "acme", State::Closed).await);
    assert!(becomes(&b, "openai", "acme", State::Closed).await);
    let keys = incident_keys(&server).await;
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_valkey_the_quorum_script_and_operators_work() {
    let Some(server) = RedisServer::start_valkey() else {
        return;
    };
    let open_for = Duration::from_secs(30);
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (r, health) = replica_with(&server.url(), "checkout", open_for, |f| f.quorum(2)).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(r);
    }
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    fleet[1]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        becomes(&fleet[2], "openai", "acme", State::Open).await,
        "two reports make the quorum"
    );
    fleet[2].circuit("openai", "globex").force_open();
    assert!(becomes(&fleet[0], "openai", "globex", State::ForcedOpen).await);
    fleet[1].circuit("openai", "globex").reset();
    assert!(becomes(&fleet[0], "openai", "globex", State::Closed).await);
    assert!(becomes(&fleet[2], "openai", "globex", State::Closed).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_valkey_a_cut_off_replica_catches_up_with_a_close_it_missed() {
    let Some(server) = RedisServer::start_valkey() else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, b_health) = replica(&proxy.url(), "checkout", open_for).await;
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    proxy.cut();
    assert!(eventually(BOUND, || !b_health.is_connected()).await);
    a.circuit("openai", "acme").reset();
    proxy.heal();
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    assert!(
        becomes(&b, "openai", "acme", State::Closed).await,
        "Valkey's INFO run_id did not let b reconcile"
    );
}

/// Issue 23 on Valkey: the evidence script (a hash per circuit, `TIME`, `HGETALL`) runs as on
/// Redis, and a fleet of three trips on one failure of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_valkey_the_fleets_failures_trip_it() {
    let Some(server) = RedisServer::start_valkey() else {
        return;
    };
    let streak = breaker_core::Config::builder()
        .consecutive_failures(3)
        .open_for(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let (registry, health) =
            support::replica_configured(&server.url(), "checkout", streak.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        replicas.push(registry);
    }
    for r in &replicas {
        r.acquire("openai", "acme", None).unwrap().failure();
    }
    for r in &replicas {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

/// Issue 23, item 6 on Valkey: a provider-wide circuit's pooled windows and tenant sets (the
/// script's set union) trip the fleet's provider circuit, though no replica has enough alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_valkey_the_fleets_provider_wide_evidence_trips_it() {
    let Some(server) = RedisServer::start_valkey() else {
        return;
    };
    let wide = breaker_core::ProviderWide::builder()
        .minimum_calls(8)
        .distinct_tenants(4)
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let (registry, health) = support::replica_of(
            breaker_redis::RedisFleet::builder(server.url()).namespace("checkout"),
            breaker_core::Registry::builder().provider_wide("openai", wide.clone()),
        )
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        replicas.push(registry);
    }
    for (i, r) in replicas.iter().enumerate() {
        for t in ["a", "b"] {
            r.acquire("openai", &format!("{t}{i}"), None)
                .unwrap()
                .failure();
        }
    }
    for r in &replicas {
        assert!(
            eventually(BOUND, || r
                .acquire("openai", "new", None)
                .is_err_and(|e| e.is_provider_wide()))
            .await
        );
    }
}
