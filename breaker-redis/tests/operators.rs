//! Behaviour 7: an operator's `force_open`, `reset` and `disable` of a circuit on one replica
//! reach every replica, including one that starts later.

mod support;

use std::time::Duration;

use breaker_core::State;
use support::{becomes, connected, eventually, incident_keys, replica_with, RedisServer, BOUND};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_switches_reach_every_replica() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, _) = connected(&server.url(), "checkout", open_for).await;

    a.circuit("openai", "acme").force_open();
    assert!(becomes(&b, "openai", "acme", State::ForcedOpen).await);
    let (c, _) = connected(&server.url(), "checkout", open_for).await;
    assert!(
        becomes(&c, "openai", "acme", State::ForcedOpen).await,
        "a replica started later did not resync the switch"
    );

    b.circuit("openai", "acme").reset();
    for (name, r) in [("a", &a), ("c", &c)] {
        assert!(
            becomes(r, "openai", "acme", State::Closed).await,
            "{name} did not reset"
        );
    }

    c.circuit("openai", "globex").disable();
    assert!(becomes(&a, "openai", "globex", State::Disabled).await);
    assert_eq!(a.circuit("openai", "acme").state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_anywhere_closes_an_open_circuit_everywhere() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, _) = connected(&server.url(), "checkout", open_for).await;
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    b.circuit("openai", "acme").reset();
    assert!(becomes(&a, "openai", "acme", State::Closed).await);
    let keys = incident_keys(&server).await;
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_on_a_replica_whose_circuit_is_closed_still_resets_the_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // With a quorum of 2, a's lone trip is reported but not shared: b's circuit stays closed.
    let open_for = Duration::from_secs(30);
    let (a, a_health) = replica_with(&server.url(), "checkout", open_for, |f| f.quorum(2)).await;
    let (b, b_health) = replica_with(&server.url(), "checkout", open_for, |f| f.quorum(2)).await;
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(
        eventually(BOUND, || a_health.published() == 1).await,
        "a's report reached the store"
    );
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);

    // The operator resets acme on b, the replica they happen to reach: the reset is b's no-op
    // but the fleet's business.
    b.circuit("openai", "acme").reset();
    assert!(
        becomes(&a, "openai", "acme", State::Closed).await,
        "a stayed open: a reset of a closed circuit was not shared"
    );
    let keys = incident_keys(&server).await;
    assert!(keys.is_empty(), "a's report went with the reset: {keys:?}");
}
