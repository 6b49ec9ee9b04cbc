//! Behaviour 7: an operator's `force_open`, `reset` and `disable` of a circuit on one replica
//! reach every replica, including one that starts later.

mod support;

use std::time::Duration;

use breaker_core::State;
use support::{all_keys, becomes, connected, RedisServer};

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
    let keys = all_keys(&server).await;
    assert!(keys.is_empty(), "{keys:?}");
}
