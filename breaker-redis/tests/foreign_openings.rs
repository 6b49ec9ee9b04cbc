//! What another replica (or anyone who can write the store) shares is bounded by this replica's
//! own config: an opening stored for years holds a circuit no longer than its longest open
//! period (and the fleet races for its probe before that ends), and an opening deleted from the
//! store ends the circuits it opened.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, Registry, State};
use redis::aio::MultiplexedConnection;
use support::{becomes, connected, eventually, replica_configured, RedisServer, BOUND};

/// 281,474,976 s (8.9 years): what the review's hostile opening held a circuit for.
const YEARS_MS: u64 = 281_474_976_000;

/// A circuit's coarse clock may read what is left a few milliseconds long: room for it, tiny
/// beside years.
const SLACK: Duration = Duration::from_secs(1);

fn key(namespace: &str, tenant: &str) -> String {
    format!("breaker:v1:{namespace}:{{openai:{tenant}}}:open")
}

/// Stores an opening of `tenant` at `level` that lasts for years, and announces it, as a
/// replica named `evil` would.
async fn store_for_years(
    conn: &mut MultiplexedConnection,
    namespace: &str,
    tenant: &str,
    level: u32,
) {
    redis::cmd("SET")
        .arg(key(namespace, tenant))
        .arg(format!("{level}:60000:evil:{YEARS_MS}"))
        .arg("PX")
        .arg(YEARS_MS)
        .query_async::<()>(conn)
        .await
        .unwrap();
    redis::cmd("PUBLISH")
        .arg(format!("breaker:v1:{namespace}:changes"))
        .arg(format!("v1 open evil openai {tenant}"))
        .query_async::<()>(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_stored_for_years_holds_a_circuit_no_longer_than_its_max_open_for() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let namespace = "years";
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1))
        .max_open_for(Duration::from_secs(5))
        .build()
        .unwrap();
    let bound = Duration::from_secs(5); // max_open_for, without jitter
                                        // Found by the resync of a replica that starts after it was stored ...
    store_for_years(&mut admin, namespace, "acme", 0).await;
    let (b, health) = replica_configured(&server.url(), namespace, config, |b| b).await;
    assert!(eventually(BOUND, || health.is_connected()).await);
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    let left = b.circuit("openai", "acme").retry_after().unwrap();
    assert!(
        left <= bound + SLACK,
        "held for {left:?} against max_open_for 5 s"
    );
    // ... and announced to one that runs, at the highest level there is.
    store_for_years(&mut admin, namespace, "globex", 31).await;
    assert!(becomes(&b, "openai", "globex", State::Open).await);
    let left = b.circuit("openai", "globex").retry_after().unwrap();
    assert!(
        left <= bound + SLACK,
        "held for {left:?} against max_open_for 5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_deleted_from_the_store_ends_the_circuits_it_opened() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let namespace = "deleted";
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), namespace, open_for).await;
    let (b, _) = connected(&server.url(), namespace, open_for).await;
    // One stored for years by someone else, one by a replica of the fleet.
    store_for_years(&mut admin, namespace, "acme", 0).await;
    a.circuit("openai", "globex")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    assert!(becomes(&b, "openai", "globex", State::Open).await);

    // Deleted by hand (an operator, a script): no replica announced an end.
    redis::cmd("DEL")
        .arg(key(namespace, "acme"))
        .arg(key(namespace, "globex"))
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    for (name, replica) in [("a", &a), ("b", &b)] {
        for tenant in ["acme", "globex"] {
            assert!(
                becomes(replica, "openai", tenant, State::Closed).await,
                "{name} kept {tenant}'s deleted opening: {:?} left",
                replica.circuit("openai", tenant).retry_after()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_stored_for_years_is_probed_once_per_fleet_when_the_circuits_end_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let namespace = "years-race";
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(500))
        .max_open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut fleet: Vec<Registry> = Vec::new();
    for _ in 0..3 {
        let (registry, health) =
            replica_configured(&server.url(), namespace, config.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        registry.circuit("openai", "acme");
        fleet.push(registry);
    }
    store_for_years(&mut admin, namespace, "acme", 0).await;
    for r in &fleet {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
    // Every circuit ends its hold after 1 s, not when the store says: the race for the probe
    // must run before that, or each replica probes on its own.
    let start = Instant::now();
    let (prober, _probe) = loop {
        assert!(start.elapsed() < BOUND, "no replica ever probed");
        let admitted = fleet
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.acquire("openai", "acme", None).ok().map(|p| (i, p)));
        if let Some(found) = admitted {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        for (i, r) in fleet.iter().enumerate() {
            assert!(
                r.acquire("openai", "acme", None).is_err(),
                "replica {i} probed too while {prober} probes"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
