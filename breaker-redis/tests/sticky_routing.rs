//! Issue 18, item 1: under sticky routing each tenant is called by one replica only, yet every
//! replica hears of its openings. The probe must go to the replica that calls the tenant: a
//! replica that never calls it (with no circuit for it, or one that has seen no call since)
//! used to win the fleet's race as often as the caller, take the lease (10 s, or the circuit's
//! `probe_timeout`) and never probe, holding the tenant open on the caller meanwhile.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use breaker_core::{Config, Registry, State};
use support::{eventually, replica_configured, RedisServer, BOUND};

const REPLICAS: usize = 4;
const TENANTS: usize = 16;
const OPEN_FOR: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenant_is_probed_by_its_caller_within_about_one_period() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(OPEN_FOR)
        // An idle winner with a circuit used to hold the lease this long.
        .probe_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut fleet: Vec<Registry> = Vec::new();
    for _ in 0..REPLICAS {
        let (r, health) =
            replica_configured(&server.url(), "checkout", config.clone(), |b| b).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(r);
    }
    let tenant = |j: usize| format!("tenant-{j}");
    let caller = |j: usize| j % REPLICAS;
    // Half of the tenants were called once, long ago, on every replica: those replicas have a
    // circuit for them, but no traffic. The other half exist only on their caller.
    for j in 0..TENANTS / 2 {
        for r in &fleet {
            r.acquire("openai", &tenant(j), None).unwrap().success();
        }
    }
    let mut tripped = HashMap::new();
    for j in 0..TENANTS {
        fleet[caller(j)]
            .acquire("openai", &tenant(j), None)
            .unwrap()
            .failure();
        tripped.insert(j, Instant::now());
    }
    // Every replica has heard of every opening (those with a circuit reject the tenant).
    for j in 0..TENANTS / 2 {
        for r in &fleet {
            assert!(
                eventually(BOUND, || r.circuit("openai", &tenant(j)).state()
                    == State::Open)
                .await
            );
        }
    }

    // Each caller keeps calling its tenants (a call every 20 ms) and records its first probe.
    let mut probed: HashMap<usize, Duration> = HashMap::new();
    let start = Instant::now();
    while probed.len() < TENANTS && start.elapsed() < 2 * BOUND {
        for j in 0..TENANTS {
            if probed.contains_key(&j) {
                continue;
            }
            if let Ok(permit) = fleet[caller(j)].acquire("openai", &tenant(j), None) {
                assert!(
                    permit.is_probe(),
                    "{} admitted a call that is no probe",
                    tenant(j)
                );
                probed.insert(j, tripped[&j].elapsed());
                permit.success();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut late: Vec<String> = (0..TENANTS)
        .filter(|j| probed.get(j).is_none_or(|after| *after > 2 * OPEN_FOR))
        .map(|j| format!("{}: {:?}", tenant(j), probed.get(&j)))
        .collect();
    late.sort();
    assert!(
        late.is_empty(),
        "tenants not probed by their caller within two {OPEN_FOR:?} periods of their trip \
         (probed after): {late:?}"
    );
}
