//! `rediss://` (feature `tls`): replicas share openings over TLS with a private CA, a password or
//! ACL user in the URL, and a client certificate where the store asks for one; a store whose
//! certificate the client does not trust is a degraded start whose warning says why, and calls
//! go on; a client key that is not its certificate's is an `Err` of `build`.

#![cfg(feature = "tls")]

mod support;

#[path = "support/pki.rs"]
mod pki;

use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use breaker_core::State;
use breaker_redis::RedisFleet;
use pki::Pki;
use support::{becomes, eventually, replica_with, BOUND};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

const OPEN_FOR: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_open_together_over_tls_with_a_private_ca() {
    let pki = Pki::new();
    let Some(server) = pki.server(&[]) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}/", server.port);
    let with_ca = |b: breaker_redis::RedisFleetBuilder| b.tls_root_certificate(pki.ca_pem.clone());
    let (a, a_health) = replica_with(&url, "checkout", OPEN_FOR, with_ca).await;
    let (b, b_health) = replica_with(&url, "checkout", OPEN_FOR, with_ca).await;
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(
        becomes(&b, "openai", "acme", State::Open).await,
        "b never opened"
    );
    assert!(b.acquire("openai", "acme", None).is_err());
    assert_eq!(b.circuit("openai", "globex").state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_user_password_urls_authenticate_and_a_wrong_password_degrades() {
    let pki = Pki::new();
    // An ACL user of its own, and `default` with a password.
    let Some(server) = pki.server(&[
        "--requirepass",
        "s3cret",
        "--user",
        "breaker",
        "on",
        ">fleet-pass",
        "~*",
        "&*",
        "+@all",
    ]) else {
        return;
    };
    let port = server.port;
    let with_ca = |b: breaker_redis::RedisFleetBuilder| b.tls_root_certificate(pki.ca_pem.clone());
    let user = format!("rediss://breaker:fleet-pass@127.0.0.1:{port}/");
    let default = format!("rediss://default:s3cret@localhost:{port}/");
    let wrong = format!("rediss://breaker:nope@127.0.0.1:{port}/");
    let (a, a_health) = replica_with(&user, "n", OPEN_FOR, with_ca).await;
    let (b, b_health) = replica_with(&default, "n", OPEN_FOR, with_ca).await;
    let (w, w_health) = replica_with(&wrong, "n", OPEN_FOR, with_ca).await;
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    assert!(eventually(BOUND, || w_health.failures() >= 2).await);
    assert!(!w_health.is_connected());
    assert!(
        w.acquire("openai", "acme", None).is_ok(),
        "alone, and closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_store_is_a_degraded_start_that_logs_why_and_calls_go_on() {
    let warnings = capture();
    let pki = Pki::new();
    let Some(server) = pki.server(&[]) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}/", server.port);
    let other_ca = pki::ca("another CA").pem();
    // Another CA's root; and no root at all (the system's roots, which never signed ours).
    let (wrong, wrong_health) = replica_with(&url, "untrusted", OPEN_FOR, |b| {
        b.tls_root_certificate(other_ca)
    })
    .await;
    let (system, system_health) = replica_with(&url, "untrusted", OPEN_FOR, |b| b).await;
    assert!(eventually(BOUND, || wrong_health.failures() >= 2).await);
    assert!(eventually(BOUND, || system_health.failures() >= 2).await);
    assert!(!wrong_health.is_connected() && !system_health.is_connected());

    for registry in [&wrong, &system] {
        let permit = registry
            .acquire("openai", "acme", None)
            .expect("calls go on");
        permit.failure();
        // Local circuits still work: the failure opens this replica's own circuit.
        assert_eq!(registry.circuit("openai", "acme").state(), State::Open);
    }
    let logged = warnings.lock().unwrap().clone();
    assert!(
        logged
            .iter()
            .any(|w| w.contains("degraded") && w.contains("UnknownIssuer")),
        "the handshake's reason reaches the degraded warning: {logged:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let Some(server) = pki.server(&["--tls-auth-clients", "yes"]) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}/", server.port);
    let with_cert = |b: breaker_redis::RedisFleetBuilder| {
        b.tls_root_certificate(pki.ca_pem.clone())
            .tls_client_certificate(pki.client_cert_pem.clone(), pki.client_key_pem.clone())
    };
    let (a, a_health) = replica_with(&url, "mtls", OPEN_FOR, with_cert).await;
    let (b, b_health) = replica_with(&url, "mtls", OPEN_FOR, with_cert).await;
    let (anonymous, anonymous_health) = replica_with(&url, "mtls", OPEN_FOR, |b| {
        b.tls_root_certificate(pki.ca_pem.clone())
    })
    .await;
    assert!(eventually(BOUND, || a_health.is_connected() && b_health.is_connected()).await);

    a.circuit("openai", "acme").try_acquire().unwrap().failure();
    assert!(becomes(&b, "openai", "acme", State::Open).await);
    assert!(eventually(BOUND, || anonymous_health.failures() >= 2).await);
    assert!(!anonymous_health.is_connected());
    assert!(anonymous.acquire("openai", "acme", None).is_ok());
}

#[tokio::test]
async fn a_client_key_that_is_not_its_certificates_is_a_config_error() {
    let pki = Pki::new();
    let stranger = pki::leaf(
        &pki::ca("another CA"),
        vec!["stranger.test".to_owned()],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let err = RedisFleet::builder("rediss://127.0.0.1:1/")
        .tls_client_certificate(pki.client_cert_pem.clone(), stranger.key_pem)
        .build()
        .await
        .unwrap_err();
    assert_eq!(err.field(), "tls_client_certificate", "{err}");

    // The right pair builds (and, with nothing listening, starts degraded).
    let fleet = RedisFleet::builder("rediss://127.0.0.1:1/")
        .tls_root_certificate(pki.ca_pem.clone())
        .tls_client_certificate(pki.client_cert_pem.clone(), pki.client_key_pem.clone())
        .build()
        .await
        .unwrap();
    assert!(!fleet.health().is_connected());
}

/// The fleet's `WARN` events (target `breaker::fleet`) of this test binary, as `field=value`
/// lines; installed once, as the process's subscriber, since the fleet logs from its own task.
fn capture() -> Arc<Mutex<Vec<String>>> {
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LINES
        .get_or_init(|| {
            let lines = Arc::default();
            tracing::subscriber::set_global_default(Capture(Arc::clone(&lines)))
                .expect("no other subscriber in this test binary");
            lines
        })
        .clone()
}

struct Capture(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "breaker::fleet" && *metadata.level() == tracing::Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
