//! Behaviour 6: with `.quorum(k)`, an opening is shared only once k distinct replicas reported
//! one within their open periods, so one sick replica cannot open the fleet.

mod support;

use std::time::Duration;

use breaker_core::{Registry, State};
use breaker_redis::FleetHealth;
use support::{all_keys, becomes, eventually, replica_with, RedisServer, BOUND};

async fn fleet_of(server: &RedisServer, open_for: Duration) -> Vec<(Registry, FleetHealth)> {
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let (registry, health) =
            replica_with(&server.url(), "checkout", open_for, |b| b.quorum(2)).await;
        assert!(eventually(BOUND, || health.is_connected()).await);
        fleet.push((registry, health));
    }
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sick_replica_does_not_open_the_fleet_two_do() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, Duration::from_secs(30)).await;
    let [(a, a_health), (b, b_health), (c, _)] = &fleet[..] else {
        unreachable!()
    };

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || a_health.published() == 1).await);
    // The report is in; no opening was written, so nothing can open the others.
    assert_eq!(
        all_keys(&server).await,
        ["breaker:v1:checkout:{openai:acme}:reports"]
    );
    assert_eq!(
        a.circuit("openai", "acme").state(),
        State::Open,
        "open on its own"
    );
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);
    assert_eq!(c.circuit("openai", "acme").state(), State::Closed);

    // A second replica's report makes the quorum: the third, which saw no failure, opens.
    b.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || b_health.published() == 1).await);
    assert!(becomes(c, "openai", "acme", State::Open).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_older_than_their_open_period_do_not_count() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = fleet_of(&server, Duration::from_millis(300)).await;
    let [(a, a_health), (b, b_health), (c, _)] = &fleet[..] else {
        unreachable!()
    };
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || a_health.published() == 1).await);
    // a's report lapses with its 300 ms period (the key goes with its last report).
    assert!(
        eventually(BOUND, || {
            server
                .client()
                .get_connection()
                .and_then(|mut conn| {
                    redis::cmd("EXISTS")
                        .arg("breaker:v1:checkout:{openai:acme}:reports")
                        .query::<bool>(&mut conn)
                })
                .is_ok_and(|exists| !exists)
        })
        .await
    );
    b.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || b_health.published() == 1).await);
    assert_eq!(
        all_keys(&server).await,
        ["breaker:v1:checkout:{openai:acme}:reports"],
        "one live report: no opening"
    );
    assert_eq!(c.circuit("openai", "acme").state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_replicas_failed_probe_does_not_bypass_the_quorum() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // Quorum 2: a trips alone (a report), then its own probe fails. That reopening skipped the
    // quorum and opened the whole fleet: one sick replica could open everybody.
    let open_for = Duration::from_millis(300);
    let (a, a_health) = replica_with(&server.url(), "checkout", open_for, |f| f.quorum(2)).await;
    let (b, b_health) = replica_with(&server.url(), "checkout", open_for, |f| f.quorum(2)).await;
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || a_health.published() == 1).await);
    let start = std::time::Instant::now();
    let probe = loop {
        assert!(start.elapsed() < BOUND, "a never probed");
        if let Ok(p) = a.acquire("openai", "acme", None) {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.failure();
    assert!(
        eventually(BOUND, || a_health.published() == 2).await,
        "a's second report"
    );
    assert_eq!(
        b.circuit("openai", "acme").state(),
        State::Closed,
        "one replica's reports opened b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starting_while_a_report_lives_connects() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open_for = Duration::from_secs(30);
    let (a, ah) = replica_with(&server.url(), "checkout", open_for, |b| b.quorum(2)).await;
    assert!(eventually(BOUND, || ah.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || ah.published() == 1).await);
    let (_c, ch) = replica_with(&server.url(), "checkout", open_for, |b| b.quorum(2)).await;
    assert!(
        eventually(Duration::from_secs(5), || ch.is_connected()).await,
        "c never connected while a's report lives; failures = {}",
        ch.failures()
    );
}
