//! Behaviour 4, a replica cut off from a store that stays up: the closes and resets that the
//! others made meanwhile deleted keys, and no resync can find what is gone; the replica ends
//! them when it is back, because the store is the same one and the keys it knew should still
//! have been there.

mod support;

use std::time::Duration;

use breaker_core::State;
use support::{becomes, connected, eventually, replica, Proxy, RedisServer, BOUND};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_and_resets_made_while_a_replica_was_cut_off_reach_it_when_it_is_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, b_health) = replica(&proxy.url(), "checkout", open_for).await;
    assert!(eventually(BOUND, || b_health.is_connected()).await);

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    a.circuit("openai", "globex").force_open();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    assert!(becomes(&b, "openai", "globex", State::ForcedOpen).await);

    proxy.cut();
    assert!(
        eventually(BOUND, || !b_health.is_connected()).await,
        "b noticed the partition"
    );
    // While b cannot hear: acme's incident ends (an operator's reset stands in for a probe's
    // success: both delete the opening), and globex's switch is reset.
    a.circuit("openai", "acme").reset();
    a.circuit("openai", "globex").reset();
    assert_eq!(b.circuit("openai", "acme").state(), State::Open);
    assert_eq!(b.circuit("openai", "globex").state(), State::ForcedOpen);

    proxy.heal();
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    assert!(
        becomes(&b, "openai", "acme", State::Closed).await,
        "b kept an opening that ended while it was cut off"
    );
    assert!(
        becomes(&b, "openai", "globex", State::Closed).await,
        "b kept a switch that was reset while it was cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_replica_keeps_an_opening_that_is_still_there() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, b_health) = replica(&proxy.url(), "checkout", open_for).await;
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);

    proxy.cut();
    assert!(eventually(BOUND, || !b_health.is_connected()).await);
    proxy.heal();
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    // Reconnected and reconciled: nothing ended, so nothing closes.
    assert_eq!(b.circuit("openai", "acme").state(), State::Open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_reopening_written_late_does_not_reopen_a_recovered_fleet() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let open_for = Duration::from_secs(2);
    let (b, _) = connected(&server.url(), "checkout", open_for).await;
    let (a, a_health) = replica(&proxy.url(), "checkout", open_for).await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    let tripped = std::time::Instant::now();
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    proxy.cut();
    assert!(eventually(BOUND, || !a_health.is_connected()).await);
    tokio::time::sleep_until((tripped + Duration::from_millis(2150)).into()).await;
    // a, alone, probes and fails: its reopening is kept for the store's return...
    let probe = a.acquire("openai", "acme", None).unwrap();
    assert!(probe.is_probe());
    probe.failure();
    // ...then (store time tells ends apart to the millisecond) the fleet's prober, b, succeeds:
    // the incident is over. (b had no calls in the period: its first ones are rejected until it
    // has raced for the lease and won it.)
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = std::time::Instant::now();
    let probe = loop {
        if let Ok(probe) = b.acquire("openai", "acme", None) {
            break probe;
        }
        assert!(start.elapsed() < BOUND, "b never probed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);
    proxy.heal();
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    // a's reopening, older than b's close, is refused: b stays closed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.circuit("openai", "acme").state(),
        State::Closed,
        "a's reopening, older than b's close, reopened b"
    );
}
