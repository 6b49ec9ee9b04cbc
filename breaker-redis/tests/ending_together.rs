//! Issue 18, item 2: one probe per fleet when many circuits end at once (a provider-wide
//! outage). The races for their probes used to go out one script per circuit in sequence,
//! starting a fixed 200 ms before the periods ended: with a backlog longer than that, circuits
//! whose race had not run yet went half-open on every replica, and were probed more than once.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use breaker_core::{Config, Registry};
use support::{eventually, replica_configured, RedisServer, BOUND};

const REPLICAS: usize = 6;
const CIRCUITS: usize = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_circuits_ending_together_are_probed_once_each() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let config = Config::builder()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(3))
        .probe_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut fleet: Vec<Registry> = Vec::new();
    for _ in 0..REPLICAS {
        let (r, health) = replica_configured(&server.url(), "checkout", config.clone(), |b| {
            // Room for every opening of the outage in the queue.
            b.queue_capacity(2 * CIRCUITS)
        })
        .await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push(r);
    }
    let tenants: Vec<String> = (0..CIRCUITS).map(|j| format!("tenant-{j}")).collect();
    // The provider fails for every tenant at once: the first replica trips them all.
    for t in &tenants {
        fleet[0].acquire("openai", t, None).unwrap().failure();
    }
    for (i, r) in fleet.iter().enumerate() {
        assert!(
            eventually(2 * BOUND, || tenants
                .iter()
                // Open as stored (its period may be over by the time the last one is read).
                .all(|t| r.circuit("openai", t).retry_after().is_some()))
            .await,
            "replica {i} did not open every circuit"
        );
    }

    // Every replica keeps calling every tenant until each circuit has closed everywhere; each
    // probe succeeds (and closes the fleet's circuit).
    let mut probers: HashMap<&str, Vec<usize>> = HashMap::new();
    let start = Instant::now();
    loop {
        let mut open = 0;
        for (i, r) in fleet.iter().enumerate() {
            for t in &tenants {
                match r.acquire("openai", t, None) {
                    Ok(permit) => {
                        if permit.is_probe() {
                            probers.entry(t).or_default().push(i);
                        }
                        permit.success();
                    }
                    Err(_) => open += 1,
                }
            }
        }
        if open == 0 || start.elapsed() > 3 * BOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut twice: Vec<(&str, &Vec<usize>)> = probers
        .iter()
        .filter(|(_, p)| p.len() > 1)
        .map(|(t, p)| (*t, p))
        .collect();
    twice.sort();
    let unprobed = tenants
        .iter()
        .filter(|t| !probers.contains_key(t.as_str()))
        .count();
    assert!(
        twice.is_empty() && unprobed == 0,
        "{} of {CIRCUITS} circuits probed more than once (e.g. {:?}), {unprobed} never",
        twice.len(),
        twice.iter().take(5).collect::<Vec<_>>()
    );
}
