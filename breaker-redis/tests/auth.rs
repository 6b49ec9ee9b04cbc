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
