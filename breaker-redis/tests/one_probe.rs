//! Behaviour 2: when the fleet's open period ends, one replica probes (it holds a lease in the
//! store that lapses after its circuit's `probe_timeout`); the others stay open until its
//! outcome is published.
//! A success closes every replica; a failure reopens every replica on the next backoff step with
//! the prober's jitter draw; a prober that dies lets its lease lapse and another one probes.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, Permit, Registry, State};
use support::{becomes, eventually, replica_configured, RedisServer, BOUND};

async fn fleet_of(server: &RedisServer, n: usize, probe_timeout: Duration) -> Vec<Registry> {
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(800))
        // Each replica would draw its own period from ±20 %: a shared one is the prober's.
        .jitter(0.2)
        .probe_timeout(probe_timeout)
        .build()
        .unwrap();
    let mut fleet = Vec::new();
    for _ in 0..n {
        let (registry, health) =
            replica_configured(&server.url(), "checkout", config.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(registry);
    }
    fleet
}

/// Calls every replica in turn until one admits a call; returns its index and permit, after
/// checking that the others keep rejecting for a while longer.
async fn the_one_probe(fleet: &[Registry], skip: Option<usize>) -> (usize, Permit) {
    let start = Instant::now();
    let (prober, permit) = loop {
        assert!(start.elapsed() < BOUND, "no replica ever probed");
        let admitted = fleet
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .find_map(|(i, r)| r.acquire("openai", "acme", None).ok().map(|p| (i, p)));
        if let Some(found) = admitted {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(permit.is_probe());
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        for (i, r) in fleet.iter().enumerate() {
            if Some(i) != skip {
                assert!(
                    r.acquire("openai", "acme", None).is_err(),
                    "replica {i} let a second call through while {prober} probes"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (prober, permit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_probe_per_fleet_and_its_success_closes_every_replica() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3, Duration::from_secs(5)).await;
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
    let (_, probe) = the_one_probe(&fleet, None).await;
    probe.success();
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            becomes(r, "openai", "acme", State::Closed).await,
            "replica {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_probe_reopens_every_replica_one_step_up_with_one_jitter_draw() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3, Duration::from_secs(5)).await;
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
    let (prober, probe) = the_one_probe(&fleet, None).await;
    probe.failure();
    let period = fleet[prober]
        .circuit("openai", "acme")
        .retry_after()
        .unwrap();
    assert!(
        period > Duration::from_millis(1200),
        "level 1: 1.6 s ± 20 %, got {period:?}"
    );
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            eventually(BOUND, || {
                r.circuit("openai", "acme")
                    .retry_after()
                    .is_some_and(|left| {
                        left <= period && left + Duration::from_millis(150) > period
                    })
            })
            .await,
            "replica {i} did not take the prober's period {period:?}: {:?}",
            r.circuit("openai", "acme").retry_after()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_probers_lease_lapses_and_another_replica_probes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, 3, Duration::from_millis(700)).await;
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
    let (prober, probe) = the_one_probe(&fleet, None).await;
    // The prober hangs forever: no outcome, ever.
    std::mem::forget(probe);
    let (next, probe) = the_one_probe(&fleet, Some(prober)).await;
    assert_ne!(next, prober);
    probe.success();
    for (i, r) in fleet.iter().enumerate() {
        if i != prober {
            assert!(
                becomes(r, "openai", "acme", State::Closed).await,
                "replica {i}"
            );
        }
    }
}
