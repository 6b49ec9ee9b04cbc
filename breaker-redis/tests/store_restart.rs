//! A store that restarts empty loses the fleet's openings and probe leases. The replicas keep
//! the periods they knew; before this was fixed each of them then probed on its own when the
//! period ended (one probe per replica), where the README promised one extra probe at most.
//! Now the replicas that knew an opening write it back into the store that lost it, and the
//! race for one probe works as before.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{Config, Permit, Registry, State};
use breaker_redis::FleetHealth;
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

/// A fleet of [`REPLICAS`] on `server` with `config`, every replica connected.
async fn fleet_of(server: &RedisServer, config: &Config) -> (Vec<Registry>, Vec<FleetHealth>) {
    let mut fleet = Vec::new();
    let mut healths = Vec::new();
    for _ in 0..REPLICAS {
        let (registry, health) =
            replica_configured(&server.url(), "checkout", config.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(registry);
        healths.push(health);
    }
    (fleet, healths)
}

/// Kills `server` and starts an empty one on its port; returns when every replica is back.
async fn restart(server: RedisServer, healths: &[FleetHealth]) -> RedisServer {
    let port = server.port;
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
    server
}

/// Lets every probe in `probes` succeed, asserts that at most two replicas probed (one extra
/// probe at most, as the README promises), and waits for every replica to close.
async fn succeed_and_close(fleet: &[Registry], probes: Vec<(usize, Permit)>, when: &str) {
    let probers: Vec<usize> = probes.iter().map(|(i, _)| *i).collect();
    for (_, permit) in probes {
        permit.success();
    }
    assert!(
        probers.len() <= 2,
        "{} of {REPLICAS} replicas probed {when}: {probers:?}",
        probers.len()
    );
    for r in fleet {
        assert!(becomes(r, "openai", "acme", State::Closed).await);
    }
}

/// Calls every replica but those in `probes` until `window` after the first probe (or, with
/// some in `probes` already, for `window`), keeping each probe admitted, unfinished, in
/// `probes`: a replica that probes on its own is seen, not overtaken by another's outcome.
async fn collect_probes(fleet: &[Registry], probes: &mut Vec<(usize, Permit)>, window: Duration) {
    let mut since: Option<Instant> = (!probes.is_empty()).then(Instant::now);
    let start = Instant::now();
    while since.is_none_or(|at| at.elapsed() < window) {
        assert!(start.elapsed() < BOUND * 2, "no replica ever probed");
        for (i, r) in fleet.iter().enumerate() {
            if probes.iter().any(|(p, _)| *p == i) {
                continue;
            }
            if let Ok(permit) = r.acquire("openai", "acme", None) {
                assert!(permit.is_probe(), "replica {i} admitted a plain call");
                since.get_or_insert_with(Instant::now);
                probes.push((i, permit));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_restart_costs_at_most_one_extra_probe() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (fleet, healths) = fleet_of(&server, &config()).await;
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
    let server = restart(server, &healths).await;
    assert!(
        tripped.elapsed() < Duration::from_secs(3),
        "the restart took the whole open period ({:?}): this test needs a faster machine",
        tripped.elapsed()
    );
    for r in &fleet {
        assert_eq!(r.circuit("openai", "acme").state(), State::Open);
    }

    // Traffic on every replica once the period ends, for 2 s after the first probe.
    let mut probes = Vec::new();
    collect_probes(&fleet, &mut probes, Duration::from_secs(2)).await;
    // The probe's success still closes every replica, through the restarted store.
    succeed_and_close(&fleet, probes, "after the restart").await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_a_probe_lets_one_more_replica_probe_at_most() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_millis(500))
        // The lease: long enough for the restart within it.
        .probe_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let (fleet, healths) = fleet_of(&server, &config).await;
    fleet[0]
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    for r in &fleet[1..] {
        assert!(becomes(r, "openai", "acme", State::Open).await);
    }
    // One replica probes, and its probe is still running when the store restarts empty: its
    // lease is lost, and the opening's period is over (its key was in its margin).
    let mut probes = Vec::new();
    collect_probes(&fleet, &mut probes, Duration::ZERO).await;
    assert_eq!(probes.len(), 1);
    let leased = Instant::now();
    let server = restart(server, &healths).await;
    assert!(
        leased.elapsed() < Duration::from_secs(3),
        "the restart outlasted the lease ({:?}): this test needs a faster machine",
        leased.elapsed()
    );
    // The others race again as the lease lapses: the opening written back gives them something
    // to race for, so one more probes at most, not each of them.
    collect_probes(&fleet, &mut probes, Duration::from_secs(6)).await;
    succeed_and_close(&fleet, probes, "during the probe").await;
    drop(server);
}
