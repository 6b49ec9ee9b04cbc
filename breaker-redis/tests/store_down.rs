//! Behaviour 4: the store fails, the service does not. With the server killed, calls go on with
//! local circuits and no errors, local trips still work, and the queue stays bounded; when the
//! store returns, replicas reconnect and resync by themselves. Also a start with the store down.

mod support;

use std::time::{Duration, Instant};

use breaker_core::{ManualClock, Registry, State};
use breaker_redis::RedisFleet;
use support::{
    becomes, connected, eventually, incident_keys, replica, replica_of, RedisServer, BOUND,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_the_store_is_down_and_replicas_resync_when_it_returns() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let url = server.url();
    let open_for = Duration::from_secs(30);
    let (a, a_health) = connected(&url, "checkout", open_for).await;
    let (b, b_health) = connected(&url, "checkout", open_for).await;
    server.kill();
    assert!(
        eventually(BOUND, || !a_health.is_connected()
            && !b_health.is_connected())
        .await,
        "degraded is visible"
    );

    // 10,000 calls, none refused and none failing, well within a generous bound.
    let start = Instant::now();
    let mut passed = 0;
    for i in 0..10_000 {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        a.acquire("openai", tenant, None).unwrap().success();
        passed += 1;
    }
    assert_eq!(passed, 10_000);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "calls waited on a dead store: {:?}",
        start.elapsed()
    );

    // Local trips still work, and many of them only fill the bounded queue. More than the
    // queue (1,024) and the changes kept for the store's return (2,048) can hold together, so
    // some are dropped however fast the task drains the queue meanwhile (3,000 were not
    // always enough on a loaded host: the task kept up and kept them all).
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert_eq!(a.circuit("openai", "acme").state(), State::Open);
    for i in 0..4000 {
        a.circuit("openai", &format!("t{i}"))
            .try_acquire()
            .unwrap()
            .failure();
    }
    assert!(a_health.dropped() > 0, "a full queue drops and counts");
    assert_eq!(b.circuit("openai", "acme").state(), State::Closed);

    // The store comes back (empty): both reconnect by themselves, and sharing works again.
    let _server = RedisServer::start_on(port).expect("restart on the same port");
    assert!(
        eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await,
        "replicas did not reconnect"
    );
    assert!(a_health.failures() >= 1);
    // The store came back empty, yet a's opening made during the outage (still running) was
    // kept and is shared now.
    assert!(
        becomes(&b, "openai", "acme", State::Open).await,
        "an opening made while the store was down never reached b"
    );
    b.circuit("openai", "initech")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        becomes(&a, "openai", "initech", State::Open).await,
        "sharing did not resume after the store returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_with_the_store_down_is_degraded_then_catches_up() {
    // A port nothing listens on, yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (late, health) = replica(&url, "checkout", Duration::from_secs(30)).await;
    assert!(!health.is_connected());
    late.acquire("openai", "acme", None).unwrap().success();

    let Some(_server) = RedisServer::start_on(port) else {
        return;
    };
    let (first, _) = connected(&url, "checkout", Duration::from_secs(30)).await;
    first
        .circuit("openai", "acme")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        becomes(&late, "openai", "acme", State::Open).await,
        "the replica that started degraded never caught up"
    );
    assert!(health.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_ends_with_the_registry() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let fleet = RedisFleet::builder(server.url()).build().await.unwrap();
    let health = fleet.health();
    let registry = Registry::builder().fleet(fleet).build();
    assert!(eventually(BOUND, || health.is_connected()).await);
    let clients = || {
        let info: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut server.client().get_connection().unwrap())
            .unwrap();
        info.lines().count()
    };
    assert_eq!(clients(), 3, "the fleet's two connections and ours");
    drop(registry);
    assert!(
        eventually(BOUND, || clients() == 1).await,
        "the fleet's connections outlived its registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_degrades_and_recovers_by_itself() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, health) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    let (b, _) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    // The server stops answering every client for 3 s (its connections stay open): only the
    // fleet's timeouts can tell.
    let mut admin = server.admin().await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    assert!(
        eventually(BOUND, || !health.is_connected()).await,
        "a silent store is noticed"
    );
    let start = Instant::now();
    for _ in 0..10_000 {
        a.acquire("openai", "globex", None).unwrap().success();
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert_eq!(a.circuit("openai", "acme").state(), State::Open);

    assert!(
        eventually(BOUND, || health.is_connected()).await,
        "the fleet did not recover when the store answered again"
    );
    // The opening made while the store was silent waited in the queue, and is shared now.
    assert!(becomes(&b, "openai", "acme", State::Open).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_the_store_missed_is_written_when_it_answers_again() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // a runs on a manual clock, so its 30 s period can end while the store is silent.
    let clock = ManualClock::new();
    let (a, a_health) = replica_of(
        RedisFleet::builder(server.url()).namespace("checkout"),
        Registry::builder()
            .default_config(support::config(Duration::from_secs(30)))
            .clock(clock.clone()),
    )
    .await;
    let (b, _) = connected(&server.url(), "checkout", Duration::from_secs(30)).await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);

    // The store stops answering (its keys stay), and meanwhile a's probe succeeds.
    let mut admin = server.admin().await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(31));
    let probe = a.acquire("openai", "acme", None).unwrap();
    assert!(probe.is_probe());
    probe.success();
    assert_eq!(a.circuit("openai", "acme").state(), State::Closed);
    assert!(
        eventually(BOUND, || a_health.failures() >= 1).await,
        "the silent store was noticed"
    );

    // b would stay open for the rest of the fleet's 30 s; the close reaches it first.
    assert!(
        becomes(&b, "openai", "acme", State::Closed).await,
        "the close made while the store was silent never reached b"
    );
    let keys = incident_keys(&server).await;
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(a_health.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_close_gives_way_to_an_opening_written_after_it() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let clock = ManualClock::new();
    let (a, a_health) = replica_of(
        RedisFleet::builder(server.url()).namespace("checkout"),
        Registry::builder()
            .default_config(support::config(Duration::from_secs(30)))
            .clock(clock.clone()),
    )
    .await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(eventually(BOUND, || a_health.published() == 1).await);

    // The store goes away; a's probe succeeds meanwhile, and a keeps its close.
    server.kill();
    clock.advance(Duration::from_secs(31));
    a.acquire("openai", "acme", None).unwrap().success();
    // a's reconnection attempts back off (50 ms, doubling to 2 s).
    assert!(eventually(BOUND, || a_health.failures() >= 5).await);

    // The store returns, and before a is back, another replica trips acme anew: its opening
    // is younger than a's close, which must not end it.
    let server = RedisServer::start_on(port).expect("restart on the same port");
    let key = "breaker:v1:checkout:{openai:acme}:open";
    let mut conn = server.admin().await;
    redis::cmd("SET")
        .arg(key)
        .arg("0:60000:cafe:90000")
        .arg("PX")
        .arg(90_000)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    assert!(
        becomes(&a, "openai", "acme", State::Open).await,
        "a did not take the newer opening"
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists, "a's late close ended a newer opening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_known_before_a_restart_closes_nothing_after_a_later_blip() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = server.port;
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&server.url(), "checkout", open_for).await;
    let (b, b_health) = connected(&server.url(), "checkout", open_for).await;
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    // The store restarts empty: b keeps the period it knew (the key was lost, not ended).
    server.kill();
    assert!(eventually(BOUND, || !b_health.is_connected()).await);
    let server = RedisServer::start_on(port).expect("restart on the same port");
    assert!(eventually(BOUND, || b_health.is_connected()).await);
    assert_eq!(b.circuit("openai", "acme").state(), State::Open);
    // Later a blip on that same store: what b knew before the restart must not read as ended.
    let failures = b_health.failures();
    let mut admin = server.admin().await;
    for kind in ["normal", "pubsub"] {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg(kind)
            .query_async::<redis::Value>(&mut admin)
            .await
            .unwrap();
    }
    assert!(
        eventually(BOUND, || b_health.failures() > failures
            && b_health.is_connected())
        .await
    );
    assert_eq!(
        b.circuit("openai", "acme").state(),
        State::Open,
        "b closed an opening nobody ended (it was lost in the restart)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reset_does_not_end_a_newer_opening() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = support::Proxy::start(server.port).await;
    let open_for = Duration::from_secs(30);
    let (b, _) = connected(&server.url(), "checkout", open_for).await;
    let (a, a_health) = replica(&proxy.url(), "checkout", open_for).await;
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    proxy.cut();
    assert!(eventually(BOUND, || !a_health.is_connected()).await);
    // An operator resets acme on a, which cannot write it yet; then b trips acme anew.
    a.circuit("openai", "acme").reset();
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.circuit("openai", "acme").try_acquire().unwrap().failure();
    proxy.heal();
    assert!(eventually(BOUND, || a_health.is_connected()).await);
    assert!(
        becomes(&a, "openai", "acme", State::Open).await,
        "a did not take b's newer opening"
    );
    assert_eq!(
        b.circuit("openai", "acme").state(),
        State::Open,
        "a's older reset ended b's newer incident"
    );
}
