//! A store that restarts empty loses the fleet's openings and probe leases. The replicas keep
//! the periods they knew; before this was fixed each of them then probed on its own when the
//! period ended (one probe per replica), where the README promised one extra probe at most.
//! Now the replicas that knew an opening write it back into the store that lost it, and the
//! race for one probe works as before.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, Permit, Registry, State};
use support::{becomes, eventually, replica_configured, RedisServer, BOUND};

const REPLICAS: usize = 4;

fn config() -> Config {
    Config::builder()
        .consecutive_failures(1)
        // Long enough for the restart and every replica's reconnection within it.
        .open_for(Duration::from_secs(4))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_restart_costs_at_most_one_extra_probe() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let mut fleet: Vec<Registry> = Vec::new();
    let mut healths = Vec::new();
    for _ in 0..REPLICAS {
        let (registry, health) =
            replica_configured(&server.url(), "checkout", config(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(registry);
        healths.push(health);
    }
    let tripped = Instant::now();
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }

    // The store restarts empty: the opening and any lease are gone.
    server.kill();
    assert!(
        eventually(BOUND, || healths.iter().all(|h| !h.is_connected())).await,
        "the restart was not noticed"
    );
    let server = RedisServer::start_on(port).expect("restart on the same port");
    assert!(
        eventually(BOUND, || healths.iter().all(|h| h.is_connected())).await,
        "the replicas did not reconnect"
    );
    assert!(
        tripped.elapsed() < Duration::from_secs(3),
        "the restart took the whole open period ({:?}): this test needs a faster machine",
        tripped.elapsed()
    );
    for r in &fleet {
        assert_eq!(r.circuit("openai", "acme").state(), State::Open);
    }

    // Traffic on every replica once the period ends. A probe is held (not finished) while the
    // others are called, so that a replica probing on its own is seen, not overtaken by the
    // first probe's close.
    let mut probes: Vec<(usize, Permit)> = Vec::new();
    let mut first_probe: Option<Instant> = None;
    let start = Instant::now();
    while first_probe.is_none_or(|at| at.elapsed() < Duration::from_secs(2)) {
        assert!(start.elapsed() < BOUND * 2, "no replica ever probed");
        for (i, r) in fleet.iter().enumerate() {
            if probes.iter().any(|(p, _)| *p == i) {
                continue;
            }
            if let Ok(permit) = r.acquire("openai", "acme", None) {
                assert!(permit.is_probe(), "replica {i} admitted a plain call");
                first_probe.get_or_insert_with(Instant::now);
                probes.push((i, permit));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let probers: Vec<usize> = probes.iter().map(|(i, _)| *i).collect();
    for (_, permit) in probes {
        permit.success();
    }
    assert!(
        probers.len() <= 2,
        "{} of {REPLICAS} replicas probed after the restart: {probers:?}",
        probers.len()
    );
    // The probe's success still closes every replica, through the restarted store.
    for r in &fleet {
        assert!(becomes(r, "openai", "acme", State::Closed).await);
    }
    drop(server);
}
