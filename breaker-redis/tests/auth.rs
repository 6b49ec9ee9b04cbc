//! Password URLs (`redis://:password@host/`, `redis://user:password@host/`) authenticate; a
//! wrong password is a degraded start, never an error on a call.

mod support;

use std::time::Duration;

use breaker_core::State;
use support::{becomes, connected, eventually, free_port, replica, RedisServer, BOUND};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_urls_authenticate_and_a_wrong_one_degrades() {
    let port = free_port();
    let Some(_server) = RedisServer::start_with(port, &["--requirepass", "s3cret"]) else {
        return;
    };
    let open_for = Duration::from_secs(30);
    let (a, _) = connected(&format!("redis://:s3cret@127.0.0.1:{port}/"), "n", open_for).await;
    let (b, _) = connected(
        &format!("redis://default:s3cret@127.0.0.1:{port}/"),
        "n",
        open_for,
    )
    .await;
    let (wrong, health) = replica(&format!("redis://:nope@127.0.0.1:{port}/"), "n", open_for).await;

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    assert!(eventually(BOUND, || health.failures() >= 2).await);
    assert!(!health.is_connected());
    assert!(
        wrong.acquire("openai", "acme", None).is_ok(),
        "alone, and closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_info_connects_and_shares() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // A least-privilege user (no @dangerous, hence no INFO): the fleet only uses INFO to tell
    // a reconnection to the same store, and goes on without it.
    let mut admin = server.admin().await;
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@all",
            "-@dangerous",
        ])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://app:pw@127.0.0.1:{}/", server.port);
    let open_for = Duration::from_secs(30);
    let (a, a_health) = replica(&url, "checkout", open_for).await;
    let (b, b_health) = replica(&url, "checkout", open_for).await;
    assert!(
        eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await,
        "never connected: {a_health:?}"
    );
    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
}
