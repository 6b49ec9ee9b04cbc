//! Issue 23: the fleet trips on the fleet's failures. Each replica writes, behind its calls, the
//! failure streak and window of its circuits that failed lately; the store adds them up (one
//! field per replica, store time) and trips the fleet. Consecutive failures: the fleet's
//! failures since the last success any replica reported; rate windows: the pooled outcomes;
//! a quorum of distinct replicas; late counts of a cut-off replica never reopen a recovered
//! fleet; a restarted store relearns; a replica's own clock does not matter.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use breaker_core::{Clock, Config, Registry, State, Window};
use breaker_redis::FleetHealth;
use redis::AsyncCommands;
use support::{becomes, eventually, replica_configured, replica_of, Proxy, RedisServer, BOUND};

const OPEN_FOR: Duration = Duration::from_secs(30);

fn streak(n: u32) -> Config {
    Config::builder()
        .consecutive_failures(n)
        .open_for(OPEN_FOR)
        .build()
        .unwrap()
}

async fn connected(url: &str, config: Config, quorum: u32) -> (Registry, FleetHealth) {
    let (registry, health) =
        replica_configured(url, "checkout", config, |b| b.quorum(quorum)).await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    (registry, health)
}

fn fail(registry: &Registry, tenant: &str) {
    registry
        .acquire("openai", tenant, None)
        .expect("closed")
        .failure();
}

/// The pooled evidence of `tenant`, field by field.
async fn evidence(server: &RedisServer, tenant: &str) -> HashMap<String, String> {
    let mut conn = server.admin().await;
    conn.hgetall(format!("breaker:v1:checkout:{{openai:{tenant}}}:evidence"))
        .await
        .unwrap_or_default()
}

/// Waits until some replica's field `prefix:*` in `tenant`'s evidence reads `value`.
async fn pooled(server: &RedisServer, tenant: &str, prefix: &str, value: &str) -> bool {
    pooled_n(server, tenant, prefix, value, 1).await
}

/// Waits until `n` replicas' fields `prefix:*` in `tenant`'s evidence read `value`.
async fn pooled_n(server: &RedisServer, tenant: &str, prefix: &str, value: &str, n: usize) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < BOUND {
        let fields = evidence(server, tenant).await;
        let found = fields
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

async fn opening_stored(server: &RedisServer, tenant: &str) -> bool {
    let mut conn = server.admin().await;
    conn.exists(format!("breaker:v1:checkout:{{openai:{tenant}}}:open"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failure_on_each_of_three_replicas_trips_a_fleet_of_threshold_three() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas = [
        connected(&server.url(), streak(3), 1).await.0,
        connected(&server.url(), streak(3), 1).await.0,
        connected(&server.url(), streak(3), 1).await.0,
    ];
    let (late, _) = connected(&server.url(), streak(3), 1).await;
    for (i, r) in replicas.iter().enumerate() {
        fail(r, "acme");
        // In turn: each report lands before the next failure (no two in one write).
        assert!(i == 2 || pooled(&server, "acme", "s", "1").await);
    }
    for r in replicas.iter().chain([&late]) {
        assert!(
            becomes(r, "openai", "acme", State::Open).await,
            "the fleet's three failures did not open every replica"
        );
    }
    assert_eq!(
        replicas[0].circuit("openai", "globex").state(),
        State::Closed
    );
    let left = evidence(&server, "acme").await;
    assert!(left.is_empty(), "a trip spends the evidence: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_on_any_replica_restarts_the_fleets_streak() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = connected(&server.url(), streak(4), 1).await;
    let (b, _) = connected(&server.url(), streak(4), 1).await;
    let (c, _) = connected(&server.url(), streak(4), 1).await;
    for r in [&a, &b, &c] {
        fail(r, "acme");
    }
    assert!(pooled_n(&server, "acme", "s", "1", 3).await);
    // c's success (found by its next look: successes are never told) baselines a's and b's
    // streaks so far, and its own is 0.
    c.acquire("openai", "acme", None).unwrap().success();
    assert!(
        pooled(&server, "acme", "s", "0").await,
        "c's success was never reported"
    );
    fail(&a, "acme");
    fail(&b, "acme");
    // a and b have streaks of 2, of which 1 each is after the success: 2 in all; without the
    // restart the fleet would count 4 and trip.
    assert!(pooled_n(&server, "acme", "s", "2", 2).await);
    assert!(
        !opening_stored(&server, "acme").await,
        "the fleet counted failures from before a success"
    );
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);
    // Two more after the success: 4, the fleet trips (no replica has 4 of its own).
    fail(&c, "acme");
    fail(&a, "acme");
    for r in [&a, &b, &c] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thin_tenant_trips_on_the_fleets_window() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .failure_rate(0.5, Window::Calls(20))
        .minimum_calls(10)
        .open_for(OPEN_FOR)
        .build()
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(connected(&server.url(), config.clone(), 1).await.0);
    }
    // 3 calls per replica: no replica fills its own minimum of 10; the fleet's 12 do.
    for round in 0..3 {
        for r in &replicas {
            if r.circuit("openai", "thin").state() == State::Open {
                continue;
            }
            fail(r, "thin");
        }
        let _ = round;
    }
    for r in &replicas {
        assert!(
            becomes(r, "openai", "thin", State::Open).await,
            "the pooled window never tripped"
        );
        assert!(r.circuit("openai", "thin").metrics().calls_in_window < 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_quorum_one_replicas_failures_do_not_open_the_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = connected(&server.url(), streak(3), 3).await;
    let (b, _) = connected(&server.url(), streak(3), 3).await;
    let (c, _) = connected(&server.url(), streak(3), 3).await;
    fail(&a, "acme");
    fail(&a, "acme");
    assert!(pooled(&server, "acme", "s", "2").await);
    fail(&b, "acme");
    // 3 failures pooled, from 2 replicas: short of the quorum of 3.
    assert!(pooled(&server, "acme", "s", "1").await);
    assert!(!opening_stored(&server, "acme").await);
    assert_eq!(c.circuit("openai", "acme").state(), State::Closed);
    fail(&c, "acme");
    for r in [&a, &b, &c] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_replicas_late_counts_do_not_reopen_a_recovered_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let (a, _) = connected(&server.url(), streak(4), 1).await;
    let (b, _) = connected(&server.url(), streak(4), 1).await;
    let (p, p_health) = connected(&proxy.url(), streak(4), 1).await;
    proxy.cut();
    assert!(eventually(BOUND, || !p_health.is_connected()).await);
    // p sees two failures it cannot write.
    fail(&p, "acme");
    fail(&p, "acme");
    // The fleet's incident, and its end, while p is away.
    for _ in 0..4 {
        if a.circuit("openai", "acme").state() == State::Closed {
            fail(&a, "acme");
        }
    }
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    a.circuit("openai", "acme").reset();
    assert!(becomes(&b, "openai", "acme", State::Closed).await);
    proxy.heal();
    assert!(eventually(BOUND, || p_health.is_connected()).await);
    // p reports its streak of 2, made before the end: baselined, not pooled.
    assert!(
        pooled(&server, "acme", "b", "2").await,
        "p's late report never came"
    );
    fail(&b, "acme");
    assert!(pooled(&server, "acme", "s", "1").await);
    fail(&b, "acme");
    assert!(pooled(&server, "acme", "s", "2").await);
    // p's 2 and b's 2 would be 4: a trip, if p's late counts were pooled.
    assert!(
        !opening_stored(&server, "acme").await,
        "p's late counts reopened the recovered fleet"
    );
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);
    // Its failures after its return count: p 1, b 3 (no replica has 4 of its own).
    fail(&p, "acme");
    fail(&b, "acme");
    for r in [&a, &b, &p] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restarted_mid_incident_relearns_the_evidence() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let (a, a_health) = connected(&server.url(), streak(3), 1).await;
    let (b, b_health) = connected(&server.url(), streak(3), 1).await;
    fail(&a, "acme");
    fail(&a, "acme");
    assert!(pooled(&server, "acme", "s", "2").await);
    server.kill();
    assert!(
        eventually(BOUND, || !a_health.is_connected()
            && !b_health.is_connected())
        .await
    );
    let server = RedisServer::start_on(port).expect("restarted");
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);
    // a reports its streak again by itself, with nothing lost but the store's copy.
    assert!(
        pooled(&server, "acme", "s", "2").await,
        "a did not report again"
    );
    fail(&b, "acme");
    for r in [&a, &b] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

/// A clock an hour ahead of the others': the circuit's own time (its window) runs on it; the
/// pooled window runs on the store's.
#[derive(Debug)]
struct Ahead;

impl Clock for Ahead {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now() + Duration::from_secs(3600)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_clock_is_skewed_pools_into_the_same_time_window() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .failure_rate(0.5, Window::Time(Duration::from_secs(20)))
        .minimum_calls(4)
        .open_for(OPEN_FOR)
        .build()
        .unwrap();
    let (a, _) = connected(&server.url(), config.clone(), 1).await;
    let (skewed, health) = replica_of(
        breaker_redis::RedisFleet::builder(server.url()).namespace("checkout"),
        Registry::builder().default_config(config).clock(Ahead),
    )
    .await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    fail(&skewed, "acme");
    fail(&skewed, "acme");
    assert!(pooled(&server, "acme", "f", "2").await);
    fail(&a, "acme");
    fail(&a, "acme");
    for r in [&a, &skewed] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_circuits_write_no_evidence() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = connected(&server.url(), streak(3), 1).await;
    for _ in 0..1000 {
        a.acquire("openai", "acme", None).unwrap().success();
    }
    let mut conn = server.admin().await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !stats.contains("cmdstat_evalsha") && !stats.contains("cmdstat_hset"),
        "{stats}"
    );
    assert!(evidence(&server, "acme").await.is_empty());
}
