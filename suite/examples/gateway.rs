//! An axum gateway in front of a failing upstream: `#[circuit_breaker]` guards the upstream call
//! per tenant, and a rejection answers the client itself (`CircuitOpen: IntoResponse` with the
//! `axum` feature): `503 Service Unavailable` with `Retry-After` in whole seconds.
//!
//! The example starts an upstream that fails every request for `acme` and serves `globex`, the
//! gateway in front of it, and a client that calls both tenants a few times, printing each
//! answer. `acme`'s circuit trips after 3 upstream failures; its next calls get the breaker's 503
//! without reaching the upstream, while `globex` is served throughout. Then it asks the admin
//! endpoint for open circuits (`?state=open`, parsed into a `breaker::CircuitState`).
//!
//! ```text
//! cargo run -p breaker-suite --example gateway --features axum,serde,reqwest
//! ```

// Shared with tests/gateway.rs; under a folder without `main.rs`, so Cargo does not take it for
// an example of its own.
#[path = "gateway/app.rs"]
mod app;

use std::sync::Arc;

use app::Gateway;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use breaker::Registry;
use tokio::net::TcpListener;

#[derive(serde::Deserialize)]
struct Caller {
    tenant: String,
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serving") });
    url
}

#[tokio::main]
async fn main() {
    // The upstream: down for acme, fine for globex.
    let upstream = serve(Router::new().route(
        "/answer",
        get(|Query(caller): Query<Caller>| async move {
            match caller.tenant.as_str() {
                "acme" => (StatusCode::SERVICE_UNAVAILABLE, "down\n".to_owned()),
                tenant => (StatusCode::OK, format!("hello, {tenant}\n")),
            }
        }),
    ))
    .await;
    let gateway = Arc::new(Gateway {
        client: reqwest::Client::new(),
        upstream,
        registry: Arc::new(Registry::default()),
    });
    let gateway_url = serve(app::router(gateway)).await;

    let client = reqwest::Client::new();
    for round in 1..=5 {
        for tenant in ["acme", "globex"] {
            let response = client
                .get(format!("{gateway_url}/complete?tenant={tenant}"))
                .send()
                .await
                .expect("the gateway answers");
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| format!(" retry-after: {}s", v.to_str().unwrap_or("?")))
                .unwrap_or_default();
            let body = response.text().await.unwrap_or_default();
            println!(
                "round {round} {tenant:>6}: {status}{retry_after} {}",
                body.trim_end()
            );
        }
    }
    let open = client
        .get(format!("{gateway_url}/admin/circuits?state=open"))
        .send()
        .await
        .expect("the gateway answers")
        .text()
        .await
        .unwrap_or_default();
    println!("open circuits: {open}");
}
