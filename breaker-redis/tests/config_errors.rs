//! Invalid settings are an `Err` naming the setting; an unreachable store is not an error.

use std::time::Duration;

use breaker_redis::RedisFleet;

#[tokio::test]
async fn invalid_settings_name_their_field() {
    let cases = [
        (RedisFleet::builder("http://127.0.0.1:6379/"), "url"),
        (RedisFleet::builder("not a url"), "url"),
        (
            RedisFleet::builder("redis://127.0.0.1/").namespace(""),
            "namespace",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").namespace("n".repeat(257)),
            "namespace",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").queue_capacity(0),
            "queue_capacity",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").command_timeout(Duration::ZERO),
            "command_timeout",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").connect_timeout(Duration::ZERO),
            "connect_timeout",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").quorum(0),
            "quorum",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").probe_lease(Duration::ZERO),
            "probe_lease",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").operator_ttl(Duration::ZERO),
            "operator_ttl",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").margin(Duration::from_secs(90_000)),
            "margin",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().await.unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn tls_without_the_tls_feature_is_an_error_naming_the_feature() {
    let cases = [
        (RedisFleet::builder("rediss://127.0.0.1:6380/"), "url"),
        (RedisFleet::builder("VALKEYS://u:p@127.0.0.1/"), "url"),
        (
            RedisFleet::builder("redis://127.0.0.1/").tls_root_certificate("pem"),
            "tls_root_certificate",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").tls_client_certificate("cert", "key"),
            "tls_client_certificate",
        ),
    ];
    for (builder, field) in cases {
        let err = builder.build().await.unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains("`redis-tls`"), "{err}");
    }
}

/// A garbled certificate that is still a PEM block.
#[cfg(feature = "tls")]
const NOT_A_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

#[cfg(feature = "tls")]
#[tokio::test]
async fn invalid_tls_settings_name_their_field() {
    let tls = || RedisFleet::builder("rediss://127.0.0.1:6380/");
    let cases = [
        (tls().tls_root_certificate(""), "tls_root_certificate"),
        (
            tls().tls_root_certificate("not a pem"),
            "tls_root_certificate",
        ),
        (
            tls().tls_root_certificate(NOT_A_CERTIFICATE),
            "tls_root_certificate",
        ),
        (
            tls().tls_root_certificate(
                "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
            ),
            "tls_root_certificate",
        ),
        (
            tls().tls_client_certificate("not a pem", "not a key"),
            "tls_client_certificate",
        ),
        (
            tls().tls_client_certificate(NOT_A_CERTIFICATE, "not a key"),
            "tls_client_certificate",
        ),
        // TLS settings with a plain URL would be ignored: refused instead.
        (
            RedisFleet::builder("redis://127.0.0.1/").tls_root_certificate(NOT_A_CERTIFICATE),
            "tls_root_certificate",
        ),
        (
            RedisFleet::builder("redis://127.0.0.1/").tls_client_certificate("c", "k"),
            "tls_client_certificate",
        ),
        // No certificate check is not offered.
        (RedisFleet::builder("rediss://127.0.0.1/#insecure"), "url"),
        (RedisFleet::builder("rediss://127.0.0.1/#other"), "url"),
    ];
    for (builder, field) in cases {
        let err = builder.build().await.unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    // With the feature, a `rediss://` URL with a password and the system's roots builds.
    let fleet = RedisFleet::builder("rediss://user:pass@127.0.0.1:1/")
        .build()
        .await
        .unwrap();
    assert!(!fleet.health().is_connected());
}

#[tokio::test]
async fn an_unreachable_store_is_a_degraded_start_not_an_error() {
    // Port 1 on the loopback: nothing listens there.
    let fleet = RedisFleet::builder("redis://127.0.0.1:1/")
        .build()
        .await
        .unwrap();
    assert!(!fleet.health().is_connected());
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let built = poll_once(RedisFleet::builder("redis://127.0.0.1/").build());
    assert_eq!(built.unwrap_err().field(), "runtime");
}

/// Polls a future that never waits to completion, without any runtime.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("build waited"),
    }
}
