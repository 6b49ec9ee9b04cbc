//! An ACL user that may connect, subscribe and read but not write as the fleet does. Before this
//! was fixed, a user without `EVAL` read connected between incidents though it could share
//! nothing, and a user without `PUBLISH` had its openings stored but never announced (Lua does
//! not roll back the write) while its health said nothing of it. Now the store's refusal is
//! checked at connection and on every write, health reads not connected (and cannot publish),
//! and the replica goes on applying the others' changes. On Redis and on Valkey, whose errors
//! for a refusal inside a script differ.

mod support;

use std::time::Duration;

use breaker_core::{Registry, State};
use breaker_redis::FleetHealth;
use support::{becomes, connected, eventually, replica, RedisServer, BOUND};

const OPEN_FOR: Duration = Duration::from_secs(60);

async fn set_user(server: &RedisServer, rules: &[&str]) {
    let mut admin = server.admin().await;
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg(rules)
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
}

/// A replica as user `app`, whose session is up: it applies an opening of `probe` made by
/// `other`.
async fn app_replica(
    server: &RedisServer,
    other: &Registry,
    probe: &str,
) -> (Registry, FleetHealth) {
    let url = format!("redis://app:pw@127.0.0.1:{}/", server.port);
    let (app, health) = replica(&url, "checkout", OPEN_FOR).await;
    // Only an up session applies another replica's opening (at its resync, or on its message).
    other
        .circuit("openai", probe)
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        becomes(&app, "openai", probe, State::Open).await,
        "the replica never applied another one's opening: {health:?}"
    );
    (app, health)
}

async fn open_keys(server: &RedisServer) -> Vec<String> {
    let mut conn = server.admin().await;
    redis::cmd("KEYS")
        .arg("breaker:v1:checkout:*:open")
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn without_eval(server: RedisServer) {
    set_user(
        &server,
        &["on", ">pw", "~*", "&*", "+@all", "-eval", "-evalsha"],
    )
    .await;
    let (b, _) = connected(&server.url(), "checkout", OPEN_FOR).await;
    let (app, health) = app_replica(&server, &b, "acme").await;
    // Between incidents: the session is up, yet this replica can share nothing.
    assert!(
        eventually(BOUND, || !health.is_connected()).await,
        "a user without EVAL reads connected: {health:?}"
    );
    assert!(!health.can_publish(), "{health:?}");

    // An opening here is refused: dropped and counted, not taken for a store failure.
    app.circuit("openai", "globex")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        eventually(BOUND, || health.dropped() >= 1).await,
        "{health:?}"
    );
    assert_eq!(
        health.failures(),
        0,
        "a refusal is no store failure: {health:?}"
    );
    assert!(open_keys(&server)
        .await
        .iter()
        .all(|k| !k.contains("globex")));
    assert_eq!(b.circuit("openai", "globex").state(), State::Closed);
    // And it still applies the others' changes.
    b.circuit("openai", "initech")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(becomes(&app, "openai", "initech", State::Open).await);
}

async fn publish_revoked(server: RedisServer) {
    set_user(&server, &["on", ">pw", "~*", "&*", "+@all"]).await;
    let (b, _) = connected(&server.url(), "checkout", OPEN_FOR).await;
    let (app, health) = app_replica(&server, &b, "acme").await;
    assert!(
        eventually(BOUND, || health.is_connected()).await,
        "{health:?}"
    );

    // PUBLISH is revoked on the live connection: the next opening's script writes its key,
    // then fails to announce it.
    set_user(&server, &["-publish"]).await;
    app.circuit("openai", "globex")
        .try_acquire()
        .unwrap()
        .failure();
    assert!(
        eventually(BOUND, || health.unannounced() == 1).await,
        "an opening stored but not announced went unnoticed: {health:?}"
    );
    assert!(
        open_keys(&server)
            .await
            .iter()
            .any(|k| k.contains("globex")),
        "the opening was stored"
    );
    assert!(!health.is_connected(), "{health:?}");
    assert!(!health.can_publish(), "{health:?}");
    assert_eq!(
        health.failures(),
        0,
        "a refusal is no store failure: {health:?}"
    );

    // PUBLISH is granted again: seen by the check that runs while refused.
    set_user(&server, &["+publish"]).await;
    assert!(
        eventually(BOUND, || health.is_connected() && health.can_publish()).await,
        "{health:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_eval_reads_not_connected_on_redis() {
    if let Some(server) = RedisServer::start() {
        without_eval(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_eval_reads_not_connected_on_valkey() {
    if let Some(server) = RedisServer::start_valkey() {
        without_eval(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_stored_but_not_announced_is_reported_on_redis() {
    if let Some(server) = RedisServer::start() {
        publish_revoked(server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_stored_but_not_announced_is_reported_on_valkey() {
    if let Some(server) = RedisServer::start_valkey() {
        publish_revoked(server).await;
    }
}
